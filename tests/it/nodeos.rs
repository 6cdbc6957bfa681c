//! The daemon on nodeos: a real supervisord running simulated nodeos nodes
//! (`nodekeeper-sim --chain nodeos`, every one started `--pause-on-startup` as `supervisor-conf`
//! generates, all appending the blocks they make to one events file) and a real `nodekeeper run`
//! with `chain = "nodeos"`, each node's `rest_url` and `[leadership] producer`. Shows restarts of a
//! crashed, stuck, lagging and hung node (each with its restart-log row and reason), exactly one
//! node producing from an all-paused boot (also behind a wrapper command, whose boot the adapter
//! cannot read), a hung producer restarted and a stuck one paused and replaced, production
//! resuming at the start of a turn with no block made twice (the events file over the whole run),
//! a node alone whose head is old restarted as a stale tip, and a second sim used as the
//! reference (`reference_url`) showing a node alone lagging.
//! A producer hung for good (hanging again after every restart) is replaced: its restarted
//! process boots paused, so its silence is vouched for and another node is resumed. A standby
//! resumed by hand is paused again; a dirty database (exit 2) holds its node.
//!
//! The sims run as `DIR/nodeos` (a symlink to the simulator), so that the adapter reads their
//! supervisord command as nodeos's own and judges `--pause-on-startup` from it. Blocks last 500 ms:
//! the daemon has no setting for the block interval and assumes nodeos's (`DEFAULT_BLOCK_INTERVAL`),
//! so a faster sim chain would give it a wrong slot clock. Six producers make a 36 s round in which
//! a `slot_window` of 12 blocks leaves 12 s clear of our turn and of the round's rollover; waiting
//! for that window makes the file take about two minutes (its tests run concurrently).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use nodekeeper::restart_log::{RestartAction, RestartRow};
use serde_json::{Value, json};

use crate::support::{
    Daemon, DaemonConfig, Program, Supervisord, USER, free_port, http, sim_binary, wait_until,
};

/// The active schedule: ours second of six.
const PRODUCERS: &str =
    "eosnationftw,nodekeeper,eosphereiobp,teamgreymass,aus1genereos,cryptolions1";
const OURS: &str = "nodekeeper";
const TURN: u64 = 12;

/// One simulated nodeos node.
#[derive(Clone, Debug)]
struct Bp {
    name: String,
    url: String,
}

impl Bp {
    async fn fault(&self, fault: Value) {
        let response = http()
            .post(format!("{}/sim/fault", self.url))
            .header("content-type", "application/json")
            .body(fault.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /sim/fault {fault} to {}: {e}", self.name));
        assert!(response.status().is_success(), "{fault}: {response:?}");
    }

    async fn state(&self) -> Option<Value> {
        let response = http()
            .get(format!("{}/sim/state", self.url))
            .timeout(Duration::from_millis(800))
            .send()
            .await
            .ok()?;
        serde_json::from_slice(&response.bytes().await.ok()?).ok()
    }
}

/// A supervisord running `n` nodeos sims, and the daemon's configuration for them.
struct Pool {
    sup: Supervisord,
    bps: Vec<Bp>,
    events: PathBuf,
    config: DaemonConfig,
    dir: tempfile::TempDir,
}

/// One line of the events file: a block a sim made.
#[derive(Clone, Debug, serde::Deserialize)]
struct Made {
    node: String,
    producer: String,
    block_num: u64,
}

impl Pool {
    async fn start(n: usize, leadership: bool) -> Pool {
        Pool::start_as(n, leadership, true).await
    }

    /// `as_nodeos`: the programs run `DIR/nodeos` (the adapter reads the command as nodeos's);
    /// else the simulator under its own name, as a wrapper script would be seen.
    async fn start_as(n: usize, leadership: bool, as_nodeos: bool) -> Pool {
        let dir = tempfile::Builder::new()
            .prefix("nk-nodeos-")
            .tempdir()
            .expect("a temporary directory");
        let nodeos = dir.path().join("nodeos");
        std::os::unix::fs::symlink(sim_binary(), &nodeos).expect("symlink nodeos -> the sim");
        let events = dir.path().join("blocks.jsonl");
        let mut builder = Supervisord::builder();
        let mut bps = Vec::new();
        for index in 1..=n {
            let name = format!("bp{index}");
            let listen = format!("127.0.0.1:{}", free_port());
            let command = format!(
                "{} --chain nodeos --pause-on-startup --name {name} --listen {listen} \
                 --block-interval-ms 500 --producers {PRODUCERS} --producer {OURS} \
                 --bootstrap-secs 0.3 --events {} --control {} --data-dir {}",
                if as_nodeos {
                    nodeos.display().to_string()
                } else {
                    sim_binary().to_string()
                },
                events.display(),
                dir.path().join(format!("control-{name}")).display(),
                dir.path().join(format!("data-{name}")).display()
            );
            builder = builder.program(Program::new(&name, &command));
            bps.push(Bp {
                name,
                url: format!("http://{listen}"),
            });
        }
        let sup = builder.start().await;
        let config = write_config(&sup, &bps, leadership);
        Pool {
            sup,
            bps,
            events,
            config,
            dir,
        }
    }

    /// Writes `line` into `node`'s control file: the fault outlives a restart.
    fn control(&self, node: &str, line: &str) {
        std::fs::write(self.dir.path().join(format!("control-{node}")), line)
            .expect("write the control file");
    }

    fn bp(&self, name: &str) -> &Bp {
        self.bps.iter().find(|bp| bp.name == name).unwrap()
    }

    fn made(&self) -> Vec<Made> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
            .collect()
    }

    /// Every sim's `/sim/state` (`None`: no answer).
    async fn states(&self) -> BTreeMap<String, Option<Value>> {
        let mut out = BTreeMap::new();
        for bp in &self.bps {
            out.insert(bp.name.clone(), bp.state().await);
        }
        out
    }

    /// The nodes whose production is not paused, when every node answered.
    async fn unpaused(&self) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for (name, state) in self.states().await {
            if state?["paused"] == json!(false) {
                out.push(name);
            }
        }
        Some(out)
    }

    /// Waits until exactly one node is unpaused, and returns it.
    async fn sole_producer(&self, within: Duration) -> String {
        wait_until("exactly one node producing", within, || async move {
            self.unpaused()
                .await
                .filter(|names| names.len() == 1)
                .map(|names| names[0].clone())
        })
        .await
    }
}

/// Polls `check` every 50 ms until it returns `Some`; at `within`, panics with `what` and the
/// daemon's log (its last 150 lines).
async fn wait_logged<T, F, Fut>(daemon: &Daemon, what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            let log = daemon.log_text();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(150)..].join("\n");
            panic!("timed out after {within:?} waiting for {what}; the daemon's log:\n{tail}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The daemon's configuration: nodeos, each node's `rest_url`, tight thresholds and, with
/// `leadership`, our producer with a 12-block window.
fn write_config(sup: &Supervisord, bps: &[Bp], leadership: bool) -> DaemonConfig {
    let dir = sup.dir().join("nk");
    std::fs::create_dir_all(&dir).expect("the daemon's directory");
    std::fs::write(
        dir.join("supervisor.password"),
        format!("{}\n", sup.password),
    )
    .expect("password file");
    let nodes: Vec<Value> = bps
        .iter()
        .map(|bp| {
            std::fs::create_dir_all(dir.join("nodes").join(&bp.name)).expect("node dir");
            json!({"name": bp.name, "rest_url": bp.url})
        })
        .collect();
    let api_listen = format!("127.0.0.1:{}", free_port());
    let mut thresholds = DaemonConfig::thresholds();
    thresholds["max_restarts"] = json!(10);
    let mut config = json!({
        "supervisor": {
            "url": sup.url(),
            "user": USER,
            "password_file": "supervisor.password",
            "timeout": "5s",
            "wait_timeout": "30s",
        },
        "node_defaults": {
            "chain": "nodeos",
            "node_dir": "nodes",
            "startsecs": 1,
            "stopwaitsecs": 5,
        },
        "nodes": nodes,
        "thresholds": thresholds,
        "restart_log": {"path": "restarts.csv"},
        "api": {"listen": api_listen},
    });
    if leadership {
        config["leadership"] = json!({
            "enabled": true,
            "producer": OURS,
            "slot_window": TURN,
            "state_file": "leader-state.json",
        });
    }
    let path = dir.join("nodekeeper.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).expect("write config");
    DaemonConfig {
        restart_log: dir.join("restarts.csv"),
        dir,
        path,
        api_listen,
    }
}

/// Merges `patch` into the daemon's configuration file (objects key by key).
fn patch_config(config: &DaemonConfig, patch: Value) {
    fn merge(base: &mut Value, patch: &Value) {
        match (base, patch) {
            (Value::Object(base), Value::Object(patch)) => {
                for (key, value) in patch {
                    merge(base.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
            (base, patch) => *base = patch.clone(),
        }
    }
    let text = std::fs::read_to_string(&config.path).expect("read the config");
    let mut value: Value = serde_json::from_str(&text).expect("the config is JSON");
    merge(&mut value, &patch);
    std::fs::write(&config.path, serde_json::to_string_pretty(&value).unwrap())
        .expect("write the config");
}

/// Waits until every sim of `pool` says it is in sync.
async fn all_in_sync(pool: &Pool) {
    wait_until("every node in sync", Duration::from_secs(15), || async {
        let states = pool.states().await;
        states
            .values()
            .all(|s| s.as_ref().is_some_and(|s| s["state"] == "in-sync"))
            .then_some(())
    })
    .await;
}

/// Whether a restart-log reason is the expected one.
type ReasonCheck = fn(&str) -> bool;

fn show(rows: &[RestartRow]) -> String {
    rows.iter()
        .map(|row| format!("{} {:?} {:?}", row.node, row.action, row.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every block number made twice in the events file, with the nodes that made it.
fn doubles(made: &[Made]) -> Vec<(u64, Vec<String>)> {
    let mut by_block: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for block in made {
        by_block
            .entry(block.block_num)
            .or_default()
            .push(block.node.clone());
    }
    by_block
        .into_iter()
        .filter(|(_, nodes)| nodes.len() > 1)
        .collect()
}

/// A crashed, a stuck, a lagging and a hung node are each restarted (stop and start, or a start
/// for the crash), with the reason the restart log gives; the fifth node stays healthy as the
/// reference height.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodeos_faulty_nodes_are_restarted_with_their_reason() {
    let pool = Pool::start(5, true).await;
    let daemon = pool.config.start(&[]).await;
    // Every node followed and in sync before the faults.
    wait_until("every node in sync", Duration::from_secs(15), || async {
        let states = pool.states().await;
        states
            .values()
            .all(|s| s.as_ref().is_some_and(|s| s["state"] == "in-sync"))
            .then_some(())
    })
    .await;
    let pids = pool.sup.pids().await;
    pool.bp("bp1").fault(json!({"fault": "crash"})).await;
    pool.bp("bp2").fault(json!({"fault": "stuck"})).await;
    pool.bp("bp3")
        .fault(json!({"fault": "lag", "blocks": 20}))
        .await;
    pool.bp("bp4").fault(json!({"fault": "hang"})).await;

    let expect: [(&str, ReasonCheck); 4] = [
        ("bp1", |r| r == "crashed (EXITED)"),
        ("bp2", |r| r.starts_with("stale tip (no new block for ")),
        ("bp3", |r| r.starts_with("lag (height ")),
        ("bp4", |r| r.starts_with("hung (no answer for ")),
    ];
    let rows = wait_until(
        "a restart of each faulty node",
        Duration::from_secs(30),
        || {
            let rows = pool.config.rows();
            async move {
                expect
                    .iter()
                    .all(|(node, _)| {
                        rows.iter()
                            .any(|r| r.node == *node && r.action == RestartAction::Start)
                    })
                    .then_some(rows)
            }
        },
    )
    .await;
    for (node, reason_ok) in expect {
        let mine: Vec<&RestartRow> = rows.iter().filter(|r| r.node == node).collect();
        let first = mine[0];
        assert!(
            reason_ok(&first.reason),
            "{node}: unexpected reason {:?}\n{}\n{}",
            first.reason,
            show(&rows),
            daemon.log_text()
        );
        if node == "bp1" {
            // A crashed program is only started.
            assert_eq!(first.action, RestartAction::Start, "{}", show(&rows));
        } else {
            assert_eq!(first.action, RestartAction::Stop, "{}", show(&rows));
            assert!(
                mine.iter().any(|r| r.action == RestartAction::Start),
                "{}",
                show(&rows)
            );
        }
    }
    assert!(
        rows.iter().all(|r| r.node != "bp5"),
        "the healthy node was touched:\n{}",
        show(&rows)
    );
    // Each restarted node runs a new process and answers again.
    wait_until(
        "the restarted nodes back",
        Duration::from_secs(15),
        || async {
            let now = pool.sup.pids().await;
            let mut back = true;
            for node in ["bp1", "bp2", "bp3", "bp4"] {
                back &= now[node] != 0 && now[node] != pids[node];
                back &= pool
                    .bp(node)
                    .state()
                    .await
                    .is_some_and(|s| s["fault"] == "none");
            }
            back.then_some(())
        },
    )
    .await;
}

/// A node whose database is dirty (nodeos exits with status 2, and every start does the same
/// until it is replayed or restored) is held with that reason at once: never started in a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodeos_a_dirty_database_is_reported_and_held_not_started_again() {
    let pool = Pool::start(2, false).await;
    let daemon = pool.config.start(&[]).await;
    wait_until("both nodes answering", Duration::from_secs(15), || async {
        let states = pool.states().await;
        states.values().all(Option::is_some).then_some(())
    })
    .await;
    pool.bp("bp2").fault(json!({"fault": "dirty-db"})).await;
    wait_logged(
        &daemon,
        "bp2 held for its dirty database",
        Duration::from_secs(15),
        || async {
            daemon
                .log_text()
                .lines()
                .any(|line| {
                    line.contains("holding the node: dirty database") && line.contains("bp2")
                })
                .then_some(())
        },
    )
    .await;
    let status = pool.config.node_status("bp2").await;
    assert!(
        status.to_string().contains("dirty database"),
        "{status}\n{}",
        daemon.log_text()
    );
    // Held: no start of bp2 while the daemon goes on ticking (every 200 ms here).
    let rows_then = pool.config.rows().len();
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rows = pool.config.rows();
        assert!(
            rows.iter().all(|r| r.node != "bp2"),
            "bp2 was acted on:\n{}",
            show(&rows)
        );
    }
    assert_eq!(pool.config.rows().len(), rows_then);
    assert_eq!(pool.sup.pids().await["bp2"], 0, "bp2 runs again");
}

/// With `backup.auto_restore`, a dirty database (exit 2, the dirty flag message in the log tail)
/// is restored from the node's newest archive at once instead of held, and the node runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodeos_a_dirty_database_is_restored_from_its_newest_archive_with_auto_restore() {
    let pool = Pool::start(2, false).await;
    let backups = pool.dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&pool.config.path).unwrap()).unwrap();
    for node in config["nodes"].as_array_mut().unwrap() {
        let name = node["name"].as_str().unwrap().to_string();
        node["data_dir"] = json!(pool.dir.path().join(format!("data-{name}")));
    }
    config["backup"] = json!({"dir": backups, "auto_restore": true, "keep_old_for": "1s"});
    std::fs::write(&pool.config.path, config.to_string()).unwrap();
    let daemon = pool.config.start(&[]).await;
    wait_until("both nodes answering", Duration::from_secs(15), || async {
        let states = pool.states().await;
        states.values().all(Option::is_some).then_some(())
    })
    .await;
    // A backup of bp2 once both are in sync (bp1 must stay in sync meanwhile: min_in_sync = 1).
    let api = pool.config.api();
    let view = wait_logged(
        &daemon,
        "bp2 backed up",
        Duration::from_secs(30),
        || async {
            match api
                .archive_action(
                    "bp2",
                    nodekeeper::status::NodeAction::Backup,
                    None,
                    None,
                    true,
                )
                .await
            {
                Ok(view) => Some(view),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    None
                }
            }
        },
    )
    .await;
    assert!(
        matches!(view.state, nodekeeper::status::ActionState::Done { .. }),
        "{view:?}\n{}",
        daemon.log_text()
    );
    let pid = wait_logged(
        &daemon,
        "bp2 running again",
        Duration::from_secs(15),
        || async { Some(pool.sup.pids().await["bp2"]).filter(|pid| *pid != 0) },
    )
    .await;

    pool.bp("bp2").fault(json!({"fault": "dirty-db"})).await;
    wait_logged(
        &daemon,
        "bp2 restored by itself",
        Duration::from_secs(30),
        || async {
            pool.config
                .rows()
                .iter()
                .any(|r| {
                    r.node == "bp2"
                        && r.action == RestartAction::Restore
                        && r.reason
                            .starts_with("automatic restore (corrupt database: dirty database")
                })
                .then_some(())
        },
    )
    .await;
    wait_logged(
        &daemon,
        "bp2 running from the restored data",
        Duration::from_secs(20),
        || async {
            let now = pool.sup.pids().await["bp2"];
            (now != 0 && now != pid && pool.bp("bp2").state().await.is_some()).then_some(())
        },
    )
    .await;
    assert!(
        !pool.dir.path().join("data-bp2/state/sim-dirty-db").exists(),
        "the dirty marker went with the old directory"
    );
    let status = pool.config.node_status("bp2").await;
    assert!(status["held"].is_null(), "{status}");
    let rows = pool.config.rows();
    let bp2: Vec<RestartAction> = rows
        .iter()
        .filter(|r| r.node == "bp2")
        .map(|r| r.action)
        .collect();
    assert_eq!(
        bp2,
        [
            RestartAction::Stop,
            RestartAction::Backup,
            RestartAction::Start,
            RestartAction::Stop,
            RestartAction::Restore,
            RestartAction::Start,
        ],
        "{}",
        show(&rows)
    );
}

/// Three nodes boot paused: the daemon resumes exactly one, and our producer's blocks are made by
/// that one node only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodeos_one_of_three_paused_nodes_is_resumed() {
    let pool = Pool::start(3, true).await;
    // Nothing produces before the daemon runs.
    assert_eq!(pool.unpaused().await, Some(vec![]));
    let daemon = pool.config.start(&[]).await;
    let producer = pool.sole_producer(Duration::from_secs(45)).await;
    // It makes our producer's blocks (its next turn), and no other node does.
    let made = wait_until(
        "blocks of our producer",
        Duration::from_secs(45),
        || async {
            let made = pool.made();
            (made.len() >= 3).then_some(made)
        },
    )
    .await;
    let makers: BTreeSet<&str> = made.iter().map(|m| m.node.as_str()).collect();
    assert_eq!(
        makers,
        BTreeSet::from([producer.as_str()]),
        "{}",
        daemon.log_text()
    );
    assert!(made.iter().all(|m| m.producer == OURS));
    assert_eq!(pool.unpaused().await, Some(vec![producer.clone()]));
    let state = pool.bp(&producer).state().await.expect("its state");
    assert_eq!(state["paused"], false, "{state}");
    assert!(doubles(&made).is_empty(), "{:?}", doubles(&made));
    // `/v1/status` in nodeos's words: the chain and our producer, the producing node, every
    // node's head and LIB, and our producer's next turn (the first block of one of its turns).
    let api = pool.config.api();
    let (status, next) = wait_logged(
        &daemon,
        "the producer and its next turn in /v1/status",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            async move {
                let status = api.status().await.ok()?;
                let next = status.leadership.as_ref()?.next_slot_number?;
                Some((status, next))
            }
        },
    )
    .await;
    let chain = status.chain.as_ref().expect("the chain in /v1/status");
    assert_eq!(
        (
            chain.name.as_str(),
            chain.producer.as_deref(),
            chain.role.as_str()
        ),
        ("nodeos", Some(OURS), "producer"),
        "{status:?}"
    );
    let producing: Vec<&str> = status
        .nodes
        .iter()
        .filter(|node| node.leader && node.role.as_deref() == Some("producer"))
        .map(|node| node.name.as_str())
        .collect();
    assert_eq!(producing, [producer.as_str()], "{status:?}");
    for node in &status.nodes {
        let (head, lib) = (node.height.unwrap(), node.irreversible_height.unwrap());
        assert!(lib <= head, "{node:?}");
    }
    let leadership = status.leadership.as_ref().unwrap();
    assert_eq!(leadership.leader.as_deref(), Some(producer.as_str()));
    // Ours is the second of six turns of 12 blocks (on the simulator's chain, turns follow block
    // numbers): block `next` starts one.
    let round = TURN * 6;
    assert_eq!((next % round / TURN, next % TURN), (1, 0), "{status:?}");
    let head = status.nodes.iter().filter_map(|node| node.height).max();
    assert!(head.is_some_and(|head| next >= head), "{status:?}");
}

/// The same pool run by a command the adapter cannot read as nodeos's (a wrapper): whether the
/// nodes boot paused is unknown until a boot shows it, yet exactly one node is resumed and our
/// blocks are made by that node only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodeos_behind_a_wrapper_one_node_is_resumed() {
    let pool = Pool::start_as(3, true, false).await;
    let daemon = pool.config.start(&[]).await;
    let producer = pool.sole_producer(Duration::from_secs(45)).await;
    let made = wait_logged(
        &daemon,
        "blocks of our producer",
        Duration::from_secs(45),
        || {
            let made = pool.made();
            async move { (made.len() >= 3).then_some(made) }
        },
    )
    .await;
    assert!(
        made.iter().all(|m| m.node == producer),
        "{made:?}\n{}",
        daemon.log_text()
    );
    assert_eq!(pool.unpaused().await, Some(vec![producer]));
    assert!(
        daemon
            .log_text()
            .contains("may boot holding the key (its supervisord command runs")
            && daemon.log_text().contains("not nodeos itself"),
        "{}",
        daemon.log_text()
    );
}

/// Starts a pool of three with the daemon, waits for the sole producer and its first blocks.
async fn producing_pool() -> (Pool, Daemon, String) {
    let pool = Pool::start(3, true).await;
    let daemon = pool.config.start(&[]).await;
    let first = pool.sole_producer(Duration::from_secs(45)).await;
    wait_logged(
        &daemon,
        "the first producer's blocks",
        Duration::from_secs(45),
        || async { pool.made().iter().any(|m| m.node == first).then_some(()) },
    )
    .await;
    (pool, daemon, first)
}

/// Someone resumes a standby by hand (`POST /v1/producer/resume`) while another node produces:
/// the daemon finds two unpaused nodes and pauses the one that is not its producer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodeos_a_standby_resumed_by_hand_is_paused_again() {
    let (pool, daemon, first) = producing_pool().await;
    let standby = pool
        .bps
        .iter()
        .map(|bp| bp.name.clone())
        .find(|name| *name != first)
        .unwrap();
    let resumed = http()
        .post(format!("{}/v1/producer/resume", pool.bp(&standby).url))
        .send()
        .await
        .expect("resume by hand");
    assert!(resumed.status().is_success(), "{resumed:?}");
    wait_logged(
        &daemon,
        "the standby paused again",
        Duration::from_secs(20),
        || async {
            let state = pool.bp(&standby).state().await?;
            (state["paused"] == json!(true)).then_some(())
        },
    )
    .await;
    assert_eq!(
        pool.sole_producer(Duration::from_secs(5)).await,
        first,
        "{}",
        daemon.log_text()
    );
}

/// The producing node hangs once (its `/v1` API stops answering and it makes no block): the
/// daemon restarts it (a hung node cannot be paused; it boots paused), one node produces again,
/// production resumes at the start of a turn, and no block is made twice over the whole run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodeos_a_hung_producer_is_restarted_and_production_resumes_at_a_turn() {
    let (pool, daemon, first) = producing_pool().await;
    pool.bp(&first).fault(json!({"fault": "hang"})).await;
    let made_before = pool.made().len();
    let rows = wait_logged(
        &daemon,
        "the hung producer restarted",
        Duration::from_secs(20),
        || {
            let rows = pool.config.rows();
            let first = first.clone();
            async move {
                rows.iter()
                    .any(|r| r.node == first && r.action == RestartAction::Start)
                    .then_some(rows)
            }
        },
    )
    .await;
    let row = rows.iter().find(|r| r.node == first).unwrap();
    assert_eq!(row.action, RestartAction::Stop, "{}", show(&rows));
    assert!(
        row.reason.starts_with("hung (no answer for "),
        "{}",
        show(&rows)
    );
    // Blocks of ours again, from one node.
    let made = wait_logged(&daemon, "our blocks again", Duration::from_secs(60), || {
        let made = pool.made();
        async move { (made.len() >= made_before + 3).then_some(made) }
    })
    .await;
    let resumed = &made[made_before];
    assert_eq!(
        resumed.block_num % TURN,
        0,
        "production resumed inside a turn at block {}\n{}",
        resumed.block_num,
        daemon.log_text()
    );
    assert!(
        doubles(&made).is_empty(),
        "blocks made twice: {:?}",
        doubles(&made)
    );
    assert!(made.iter().all(|m| m.producer == OURS));
    let producer = pool.sole_producer(Duration::from_secs(5)).await;
    assert!(
        made[made_before..].iter().all(|m| m.node == producer),
        "{made:?}"
    );
}

/// The producing node hangs for good (through its control file, so that it hangs again after
/// every restart): the daemon must move the producer to another node, never inside our turn, and
/// no block may be made twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodeos_a_producer_hung_for_good_is_replaced_outside_our_turn() {
    let (pool, daemon, first) = producing_pool().await;
    pool.control(&first, "hang");
    // Another node produces, and makes our producer's blocks.
    let second = wait_logged(
        &daemon,
        "another node producing",
        Duration::from_secs(60),
        || {
            let first = first.clone();
            let pool = &pool;
            async move {
                let made = pool.made();
                made.iter()
                    .find(|m| m.node != first)
                    .map(|m| m.node.clone())
            }
        },
    )
    .await;
    let made = pool.made();
    let rows = pool.config.rows();
    assert!(
        doubles(&made).is_empty(),
        "blocks made twice: {:?}\n{}\n{}",
        doubles(&made),
        show(&rows),
        daemon.log_text()
    );
    let first_new = made.iter().find(|m| m.node == second).unwrap();
    assert_eq!(
        first_new.block_num % TURN,
        0,
        "the new producer's first block {} is inside a turn\n{}",
        first_new.block_num,
        daemon.log_text()
    );
    let last_old = made.iter().rev().find(|m| m.node == first).unwrap();
    assert!(last_old.block_num < first_new.block_num);
    assert!(made.iter().all(|m| m.producer == OURS));
    // The hung node was restarted and came back paused; one producer only.
    wait_until(
        "the hung node restarted",
        Duration::from_secs(30),
        || async {
            let rows = pool.config.rows();
            rows.iter()
                .any(|r| r.node == first && r.action == RestartAction::Start)
                .then_some(())
        },
    )
    .await;
    // One producer among the nodes that answer; the hung node, restarted again and again until
    // storm protection holds it, may not answer at any given moment (it boots paused).
    let producing = wait_until(
        "the nodes but the hung one answering",
        Duration::from_secs(10),
        || async {
            let states = pool.states().await;
            states
                .iter()
                .all(|(name, state)| state.is_some() || *name == first)
                .then(|| {
                    states
                        .into_iter()
                        .filter(|(_, state)| {
                            state.as_ref().is_some_and(|s| s["paused"] == json!(false))
                        })
                        .map(|(name, _)| name)
                        .collect::<Vec<_>>()
                })
        },
    )
    .await;
    assert_eq!(producing, vec![second], "{}", daemon.log_text());
}

/// The producing node gets stuck (its head freezes, it makes no block, its API still answers):
/// the daemon pauses it, verifies the pause, and resumes another node, which makes our blocks from
/// the start of a turn; no block is made twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodeos_a_stuck_producer_is_paused_and_replaced() {
    let (pool, daemon, first) = producing_pool().await;
    let made_before = pool.made().len();
    pool.control(&first, "stuck");
    let second = wait_logged(
        &daemon,
        "another node producing",
        Duration::from_secs(60),
        || {
            let first = first.clone();
            let pool = &pool;
            async move {
                pool.made()
                    .iter()
                    .find(|m| m.node != first)
                    .map(|m| m.node.clone())
            }
        },
    )
    .await;
    let made = pool.made();
    assert!(
        doubles(&made).is_empty(),
        "blocks made twice: {:?}\n{}",
        doubles(&made),
        daemon.log_text()
    );
    let resumed = &made[made_before];
    assert_eq!(resumed.node, second, "{made:?}");
    assert_eq!(
        resumed.block_num % TURN,
        0,
        "production moved inside a turn at block {}\n{}",
        resumed.block_num,
        daemon.log_text()
    );
    assert_eq!(pool.unpaused().await, Some(vec![second.clone()]));
}

/// One node alone kept 20 blocks behind the chain (`lag 20`): its height grows and it has no
/// sibling or reference to lag behind, so only its head's age (10 s, over the 3 s tip_timeout)
/// tells: it is restarted as a stale tip, and runs a new process in sync again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodeos_a_node_alone_with_an_old_head_is_restarted_as_stale() {
    let pool = Pool::start(1, false).await;
    all_in_sync(&pool).await;
    let daemon = pool.config.start(&[]).await;
    let pids = pool.sup.pids().await;
    pool.bp("bp1")
        .fault(json!({"fault": "lag", "blocks": 20}))
        .await;
    let rows = wait_logged(
        &daemon,
        "a stale-tip restart of bp1",
        Duration::from_secs(20),
        || {
            let rows = pool.config.rows();
            async move {
                rows.iter()
                    .any(|r| r.node == "bp1" && r.action == RestartAction::Start)
                    .then_some(rows)
            }
        },
    )
    .await;
    let stop = rows
        .iter()
        .find(|r| r.node == "bp1" && r.action == RestartAction::Stop)
        .unwrap_or_else(|| panic!("no stop row:\n{}", show(&rows)));
    assert!(
        stop.reason.starts_with("stale tip (no new block for "),
        "{}",
        show(&rows)
    );
    wait_until("bp1 back in sync", Duration::from_secs(15), || async {
        let now = pool.sup.pids().await;
        let state = pool.bp("bp1").state().await?;
        (now["bp1"] != pids["bp1"] && state["state"] == "in-sync").then_some(())
    })
    .await;
}

/// A second sim, outside the pool, is the reference (`reference_url`): the pool's only node kept
/// 40 blocks behind lags behind it by more than 20 blocks and is restarted for lag, which it could
/// not be without the reference (its head's age, 20 s, is under a 60 s tip_timeout here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodeos_a_reference_node_shows_a_lone_node_lagging() {
    let pool = Pool::start(2, false).await;
    all_in_sync(&pool).await;
    // The daemon manages bp1 only; bp2 runs beside it as the reference node.
    let config = write_config(&pool.sup, &pool.bps[..1], false);
    patch_config(
        &config,
        json!({
            "reference_url": pool.bp("bp2").url,
            "thresholds": {"tip_timeout": "60s", "tip_diff_threshold": 20},
        }),
    );
    let daemon = config.start(&[]).await;
    pool.bp("bp1")
        .fault(json!({"fault": "lag", "blocks": 40}))
        .await;
    let rows = wait_logged(
        &daemon,
        "a lag restart of bp1",
        Duration::from_secs(25),
        || {
            let rows = config.rows();
            async move {
                rows.iter()
                    .any(|r| r.node == "bp1" && r.action == RestartAction::Stop)
                    .then_some(rows)
            }
        },
    )
    .await;
    let stop = rows
        .iter()
        .find(|r| r.node == "bp1" && r.action == RestartAction::Stop)
        .unwrap();
    assert!(stop.reason.starts_with("lag (height "), "{}", show(&rows));
    assert!(rows.iter().all(|r| r.node == "bp1"), "{}", show(&rows));
}
