//! `nodekeeper run` on a cardano pool: a real supervisord running simulated cardano-node block
//! producers (`nodekeeper-sim --chain cardano`, 100 ms slots), each started with its own
//! credential paths and `--start-as-non-producing-node`, all writing one forge-events file, and
//! a daemon configured with `chain = "cardano"`, the nodes' `metrics_url` and `credentials`, and
//! the pool's `credentials_dir`, `schedule_file` and `genesis_file`.
//!
//! The simulator is not named `cardano-node`, so the adapter's boot verdict from the supervisord
//! command is "unknown" (a wrapper): the daemon takes every node as "may boot with the key" until
//! the node's first boot shows it came up without the pool's files at its paths.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::support::{
    DaemonConfig, Program, SimNode, Supervisord, USER, free_port, sim_binary, wait_until,
};

/// Slot length of the simulated chain.
const SLOT_MS: u64 = 100;
/// Slots per epoch (10 minutes: the genesis is placed so that no rollover falls in a test).
const EPOCH_LENGTH: u64 = 6000;
/// The pool leads one slot in 40 on average (one every 4 s).
const LEADER_RATE: &str = "0.025";
/// `[leadership] slot_window` in slots.
const SLOT_WINDOW: u64 = 5;
const WAIT: Duration = Duration::from_secs(30);
const ENVELOPE: &str = "{\"type\": \"KesSigningKey_ed25519_kes_2^6\", \"cborHex\": \"5900c0\"}\n";
const POOL_FILES: [&str; 3] = ["kes.skey", "vrf.skey", "node.opcert"];

/// A node's credential paths (where it was started to look).
#[derive(Clone, Debug)]
struct Paths {
    kes: PathBuf,
    vrf: PathBuf,
    opcert: PathBuf,
}

impl Paths {
    fn all(&self) -> [&Path; 3] {
        [&self.kes, &self.vrf, &self.opcert]
    }

    fn any_present(&self) -> bool {
        self.all().iter().any(|path| path.exists())
    }
}

struct Pool {
    supervisord: Supervisord,
    _dir: tempfile::TempDir,
    dir: PathBuf,
    system_start: i64,
    credentials_dir: PathBuf,
    schedule_file: PathBuf,
    genesis_file: PathBuf,
    events: PathBuf,
    paths: BTreeMap<String, Paths>,
}

fn chain_args(system_start: i64) -> Vec<String> {
    [
        "--system-start",
        &system_start.to_string(),
        "--slot-length-ms",
        &SLOT_MS.to_string(),
        "--epoch-length",
        &EPOCH_LENGTH.to_string(),
        "--leader-rate",
        LEADER_RATE,
        "--seed",
        "11",
    ]
    .map(str::to_string)
    .to_vec()
}

fn now_ms() -> u64 {
    let now = nodekeeper::time::Clock::now(&nodekeeper::time::SystemClock);
    u64::try_from(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// `n` simulated block producers `bp1..bpN`, every one non-producing at boot, and the pool's files.
async fn pool(n: usize) -> Pool {
    pool_as(n, false).await
}

/// [`pool`], the simulator run as `DIR/cardano-node` (a symlink) when `as_cardano_node`: the
/// adapter then reads each command as cardano-node's own, started non-producing, instead of a
/// wrapper's.
async fn pool_as(n: usize, as_cardano_node: bool) -> Pool {
    let temp = tempfile::Builder::new()
        .prefix("nk-cardano-")
        .tempdir()
        .unwrap();
    let dir = temp.path().to_path_buf();
    // The epoch began a minute ago: no rollover during a test.
    let system_start = i64::try_from(now_ms() / 1000).unwrap() - 60;
    let chain = chain_args(system_start);
    let genesis_file = dir.join("shelley-genesis.json");
    let schedule_file = dir.join("leadership-schedule.json");
    for (flag, path) in [
        ("--write-genesis", &genesis_file),
        ("--write-schedule", &schedule_file),
    ] {
        let output = std::process::Command::new(sim_binary())
            .args(["--chain", "cardano"])
            .args(&chain)
            .args([flag, path.to_str().unwrap()])
            .output()
            .expect("run the simulator");
        assert!(output.status.success(), "{flag}: {output:?}");
    }
    let credentials_dir = dir.join("pool");
    std::fs::create_dir_all(&credentials_dir).unwrap();
    for name in POOL_FILES {
        let path = credentials_dir.join(name);
        std::fs::write(&path, ENVELOPE).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let events = dir.join("forged.jsonl");
    let program = if as_cardano_node {
        let link = dir.join("cardano-node");
        std::os::unix::fs::symlink(sim_binary(), &link).expect("symlink cardano-node -> the sim");
        link.display().to_string()
    } else {
        sim_binary().to_string()
    };
    let mut builder = Supervisord::builder();
    let mut sims = Vec::new();
    let mut paths = BTreeMap::new();
    for index in 1..=n {
        let name = format!("bp{index}");
        let node_dir = dir.join(&name);
        std::fs::create_dir_all(&node_dir).unwrap();
        let node_paths = Paths {
            kes: node_dir.join("kes.skey"),
            vrf: node_dir.join("vrf.skey"),
            opcert: node_dir.join("node.opcert"),
        };
        let listen = format!("127.0.0.1:{}", free_port());
        let command = format!(
            "{} --chain cardano --name {name} --listen {listen} {} --bootstrap-secs 0.5 \
             --events {} --shelley-kes-key {} --shelley-vrf-key {} \
             --shelley-operational-certificate {} --start-as-non-producing-node",
            program,
            chain.join(" "),
            events.display(),
            node_paths.kes.display(),
            node_paths.vrf.display(),
            node_paths.opcert.display(),
        );
        builder = builder.program(Program::new(&name, &command));
        sims.push(SimNode {
            name: name.clone(),
            listen,
            data_dir: None,
        });
        paths.insert(name, node_paths);
    }
    let mut supervisord = builder.start().await;
    supervisord.sims = sims;
    Pool {
        supervisord,
        _dir: temp,
        dir,
        system_start,
        credentials_dir,
        schedule_file,
        genesis_file,
        events,
        paths,
    }
}

impl Pool {
    fn sim(&self, name: &str) -> &SimNode {
        self.supervisord
            .sims
            .iter()
            .find(|sim| sim.name == name)
            .unwrap()
    }

    /// The daemon's configuration: `chain = "cardano"`, every node's metrics URL and credential
    /// paths, tight thresholds, leadership with the pool's files.
    fn config(&self) -> DaemonConfig {
        let dir = self.supervisord.dir().join("nk");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("supervisor.password"),
            format!("{}\n", self.supervisord.password),
        )
        .unwrap();
        let nodes: Vec<Value> = self
            .supervisord
            .sims
            .iter()
            .map(|sim| {
                let paths = &self.paths[&sim.name];
                json!({
                    "name": sim.name,
                    "metrics_url": format!("http://{}/metrics", sim.listen),
                    "credentials": {"kes": paths.kes, "vrf": paths.vrf, "opcert": paths.opcert},
                })
            })
            .collect();
        let mut thresholds = DaemonConfig::thresholds();
        // A block every 20 slots (2 s), up to 4 s apart: a tip unchanged for 6 s is stuck.
        thresholds["tip_timeout"] = json!("6s");
        thresholds["max_restarts"] = json!(10);
        let api_listen = format!("127.0.0.1:{}", free_port());
        let config = json!({
            "supervisor": {
                "url": self.supervisord.url(),
                "user": USER,
                "password_file": "supervisor.password",
                "timeout": "5s",
                "wait_timeout": "30s",
            },
            "node_defaults": {
                "chain": "cardano",
                "node_dir": self.dir.display().to_string(),
                "startsecs": 1,
                "stopwaitsecs": 5,
            },
            "nodes": nodes,
            "thresholds": thresholds,
            "restart_log": {"path": "restarts.csv"},
            "api": {"listen": api_listen},
            "leadership": {
                "enabled": true,
                "credentials_dir": self.credentials_dir,
                "schedule_file": self.schedule_file,
                "genesis_file": self.genesis_file,
                "slot_window": SLOT_WINDOW,
                "state_file": "leader-state.json",
            },
        });
        let path = dir.join("nodekeeper.json");
        std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        DaemonConfig {
            restart_log: dir.join("restarts.csv"),
            dir,
            path,
            api_listen,
        }
    }

    /// `(node, slot)` of every forged block, in file order.
    fn forged(&self) -> Vec<(String, u64)> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let event: Value = serde_json::from_str(line).expect("an events line is JSON");
                (
                    event["node"].as_str().unwrap().to_string(),
                    event["slot"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// The nodes whose credential paths hold a file.
    fn holders(&self) -> Vec<String> {
        self.paths
            .iter()
            .filter(|(_, paths)| paths.any_present())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The nodes forging, as the simulators say (`None` while one does not answer).
    async fn forging(&self) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for sim in &self.supervisord.sims {
            let state = sim.state().await?;
            if state["forging"] == true {
                out.push(sim.name.clone());
            }
        }
        Some(out)
    }

    /// The one node forging and holding the files, once it is so.
    async fn sole_forger(&self) -> Option<String> {
        let forging = self.forging().await?;
        (forging.len() == 1 && self.holders() == forging).then(|| forging[0].clone())
    }

    async fn wait_sole_forger(&self, daemon: &crate::support::Daemon) -> String {
        self.wait_sole_forger_but(daemon, "").await
    }

    /// Waits until one node other than `not` forges alone, and holds the files alone.
    async fn wait_sole_forger_but(&self, daemon: &crate::support::Daemon, not: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(name) = self.sole_forger().await.filter(|name| name != not) {
                return name;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no sole forging node within {WAIT:?}: forging {:?}, files at {:?}; the daemon's log:\n{}",
                self.forging().await,
                self.holders(),
                daemon.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The absolute slot at `ms` (Unix milliseconds).
    fn slot_at(&self, ms: u64) -> u64 {
        (ms - u64::try_from(self.system_start).unwrap() * 1000) / SLOT_MS
    }

    /// The pool's scheduled slots (the schedule file: this epoch's).
    fn pool_slots(&self) -> Vec<u64> {
        let text = std::fs::read_to_string(&self.schedule_file).unwrap();
        nodekeeper::chain::cardano::genesis::parse_schedule(&text).unwrap()
    }

    /// Every forging change a simulator logged on SIGHUP: (node, Unix ms, enabled).
    fn reconfigurations(&self) -> Vec<(String, u64, bool)> {
        let mut out = Vec::new();
        for sim in &self.supervisord.sims {
            let log = self
                .supervisord
                .dir()
                .join("logs")
                .join(format!("{}.log", sim.name));
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            for (at, line) in lines.iter().enumerate() {
                // A SIGHUP's reconfiguration is followed by the topology update; a process's boot
                // line (started non-producing: "Disabling") is not.
                let reloaded = lines
                    .get(at + 1)
                    .is_some_and(|next| next.contains("Performing topology configuration update"));
                if !reloaded {
                    continue;
                }
                let enabled = if line.contains("Enabling block forging") {
                    true
                } else if line.contains("Disabling block forging") {
                    false
                } else {
                    continue;
                };
                // [bp1:cardano.node.…:Info:5] [2026-12-06 21:40:00.12 UTC] Performing …
                let stamp = line
                    .split("] [")
                    .nth(1)
                    .and_then(|rest| rest.split(" UTC]").next())
                    .unwrap_or_else(|| panic!("no time in {line:?}"));
                let at = chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.f")
                    .unwrap_or_else(|e| panic!("{stamp:?}: {e}"))
                    .and_utc()
                    .timestamp_millis();
                out.push((sim.name.clone(), u64::try_from(at).unwrap(), enabled));
            }
        }
        out.sort_by_key(|(_, at, _)| *at);
        out
    }

    /// Asserts that no slot was forged twice and that every forged slot is one of the pool's.
    fn assert_forged_once(&self, log: &str) -> Vec<(String, u64)> {
        let forged = self.forged();
        let mut seen = BTreeMap::new();
        for (node, slot) in &forged {
            if let Some(first) = seen.insert(*slot, node.clone()) {
                panic!("slot {slot} forged by {first} and {node}: {forged:?}\n{log}");
            }
        }
        let schedule: BTreeSet<u64> = self.pool_slots().into_iter().collect();
        for slot in seen.keys() {
            assert!(schedule.contains(slot), "{slot} is not a pool slot");
        }
        forged
    }
}

/// Waits for a restart-log row of `node` whose reason starts with `reason`, and returns it.
async fn wait_row(
    config: &DaemonConfig,
    daemon: &crate::support::Daemon,
    node: &str,
    reason: &str,
) -> nodekeeper::restart_log::RestartRow {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(row) = config
            .rows()
            .into_iter()
            .find(|row| row.node == node && row.reason.starts_with(reason))
        {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no restart of {node} for {reason:?} within {WAIT:?}: rows {:?}; the daemon's log:\n{}",
            config.rows(),
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the simulator `sim` answers as a new process (another pid than `old`).
async fn restarted(sim: &SimNode, old: u64) {
    wait_until(
        &format!("{} to run again as a new process", sim.name),
        WAIT,
        || async move {
            let state = sim.state().await?;
            (state["pid"].as_u64() != Some(old) && state["state"] == "running").then_some(())
        },
    )
    .await;
}

async fn pid(sim: &SimNode) -> u64 {
    sim.state().await.expect("/sim/state")["pid"]
        .as_u64()
        .unwrap()
}

/// Restarts: a crashed and a hung node, then a stuck and a lagging one, are each restarted with
/// the reason in the restart log; the forging node is left alone and the pool never forges a slot
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_hung_stuck_and_lagging_nodes_are_restarted() {
    let pool = pool(3).await;
    let config = pool.config();
    let daemon = config.start(&[]).await;
    let leader = pool.wait_sole_forger(&daemon).await;
    let passive: Vec<SimNode> = pool
        .supervisord
        .sims
        .iter()
        .filter(|sim| sim.name != leader)
        .cloned()
        .collect();
    let leader_pid = pid(pool.sim(&leader)).await;

    // A crash and a hang at once.
    let (crashing, hanging) = (&passive[0], &passive[1]);
    let hung_pid = pid(hanging).await;
    crashing.fault(json!({"fault": "crash"})).await;
    hanging.fault(json!({"fault": "hang"})).await;
    let row = wait_row(&config, &daemon, &crashing.name, "crashed").await;
    assert_eq!(row.reason, "crashed (EXITED)");
    assert_eq!(row.exit_status, Some(1), "the crash fault exits with 1");
    let row = wait_row(&config, &daemon, &hanging.name, "hung (no answer for ").await;
    assert!(row.reason.ends_with(" s)"), "{}", row.reason);
    restarted(hanging, hung_pid).await;
    wait_until("the crashed node to run again", WAIT, || async {
        crashing.state().await.filter(|s| s["state"] == "running")
    })
    .await;

    // A stuck tip and a lagging view.
    let (stuck, lagging) = (&passive[0], &passive[1]);
    stuck.fault(json!({"fault": "stuck"})).await;
    lagging.fault(json!({"fault": "lag", "slots": 400})).await;
    let row = wait_row(
        &config,
        &daemon,
        &stuck.name,
        "stale tip (no new block for ",
    )
    .await;
    assert!(row.reason.ends_with(" s)"), "{}", row.reason);
    let row = wait_row(&config, &daemon, &lagging.name, "lag (height ").await;
    assert!(row.reason.contains("behind"), "{}", row.reason);

    // The forging node was never touched, and forged alone.
    assert_eq!(
        pid(pool.sim(&leader)).await,
        leader_pid,
        "{}",
        daemon.log_text()
    );
    assert!(
        config.rows().iter().all(|row| row.node != leader),
        "{:?}",
        config.rows()
    );
    let forged = pool.assert_forged_once(&daemon.log_text());
    assert!(
        forged.iter().all(|(node, _)| *node == leader),
        "{forged:?}\n{}",
        daemon.log_text()
    );
}

/// Three nodes booted non-producing: exactly one is made to forge, its credential files 0600 and
/// the pool's, the events only from it, the pool's copies untouched. The boot verdict of the
/// simulator's command is "unknown" (a wrapper), so every node is first taken as one that may
/// boot with the key, until its boot shows it came up without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_three_non_producing_nodes_forges() {
    let pool = pool(3).await;
    let before: Vec<(String, u32, i64, i64)> = POOL_FILES
        .iter()
        .map(|name| {
            let path = pool.credentials_dir.join(name);
            let meta = std::fs::metadata(&path).unwrap();
            (
                std::fs::read_to_string(&path).unwrap(),
                meta.permissions().mode() & 0o777,
                meta.mtime(),
                meta.mtime_nsec(),
            )
        })
        .collect();
    let config = pool.config();
    let daemon = config.start(&[]).await;
    let leader = pool.wait_sole_forger(&daemon).await;
    // Its files: the pool's, 0600.
    for path in pool.paths[&leader].all() {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
        assert_eq!(std::fs::read_to_string(path).unwrap(), ENVELOPE);
    }
    // It forges, alone, for a while (at least three of the pool's slots).
    wait_until("three blocks forged", WAIT, || async {
        (pool.forged().len() >= 3).then_some(())
    })
    .await;
    assert_eq!(pool.sole_forger().await, Some(leader.clone()));
    let forged = pool.assert_forged_once(&daemon.log_text());
    assert!(
        forged.iter().all(|(node, _)| *node == leader),
        "{forged:?}\n{}",
        daemon.log_text()
    );
    // `/v1/status` in cardano's words: the forging node, and the pool's next slot, one of the
    // schedule file's, as an absolute slot.
    let api = config.api();
    let (status, next) = wait_until(
        "the forging node and the next slot in /v1/status",
        WAIT,
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
            chain.role.as_str(),
            chain.holder.as_str()
        ),
        ("cardano", "forging", "forging node"),
        "{status:?}"
    );
    let forging: Vec<&str> = status
        .nodes
        .iter()
        .filter(|node| node.leader && node.role.as_deref() == Some("forging"))
        .map(|node| node.name.as_str())
        .collect();
    assert_eq!(forging, [leader.as_str()], "{status:?}");
    let slots = pool.pool_slots();
    assert!(
        slots.contains(&next),
        "next slot {next} is not one of {slots:?}"
    );
    let leadership = status.leadership.as_ref().unwrap();
    assert!(leadership.next_slot_in_secs.is_some(), "{status:?}");
    let table = crate::support::run(&mut config.nodekeeper(&["status"])).await;
    assert!(
        table.stdout.starts_with("chain: cardano\n")
            && table
                .stdout
                .contains(&format!("forging node: {leader}; epoch")),
        "{}",
        table.stdout
    );
    for sim in &pool.supervisord.sims {
        let state = sim.state().await.unwrap();
        let expected = u64::from(sim.name == leader);
        // A node that was never given the files never reloaded into forging.
        assert_eq!(state["forging"], sim.name == leader, "{state}");
        assert!(
            state["sighups"].as_u64().unwrap() <= expected,
            "{}: {state}",
            sim.name
        );
    }
    // The pool's copies are untouched.
    let after: Vec<(String, u32, i64, i64)> = POOL_FILES
        .iter()
        .map(|name| {
            let path = pool.credentials_dir.join(name);
            let meta = std::fs::metadata(&path).unwrap();
            (
                std::fs::read_to_string(&path).unwrap(),
                meta.permissions().mode() & 0o777,
                meta.mtime(),
                meta.mtime_nsec(),
            )
        })
        .collect();
    assert_eq!(before, after);
    // The boot verdict: the simulator is a wrapper for all the adapter knows, so each node may
    // boot with the key; the nodes ran before the daemon, so no boot has shown otherwise yet.
    let log = daemon.log_text();
    for sim in &pool.supervisord.sims {
        assert!(
            log.contains(&format!(
                "may boot holding the key (its supervisord command runs \"nodekeeper-sim\", not \
                 cardano-node itself: a wrapper may pass the credential flags; until a boot shows \
                 otherwise it may): its starts are guarded near a pool slot node={}",
                sim.name
            )),
            "{log}"
        );
    }
    assert!(!log.contains("boots without the key"), "{log}");
    assert!(config.rows().is_empty(), "{:?}", config.rows());

    // A passive node crashes and is started again: its boot shows it came up without the key.
    let passive = pool
        .supervisord
        .sims
        .iter()
        .find(|sim| sim.name != leader)
        .unwrap();
    passive.fault(json!({"fault": "crash"})).await;
    wait_row(&config, &daemon, &passive.name, "crashed").await;
    daemon
        .wait_for_log(
            &format!(
                "boots without the key (its supervisord command runs \"nodekeeper-sim\", not \
                 cardano-node itself: a wrapper may pass the credential flags; its last boot came \
                 up without the key) node={}",
                passive.name
            ),
            WAIT,
        )
        .await;
    assert!(!passive.name.is_empty());
    assert_eq!(pool.sole_forger().await, Some(leader.clone()));
    let forged = pool.assert_forged_once(&daemon.log_text());
    assert!(forged.iter().all(|(node, _)| *node == leader), "{forged:?}");
    assert_eq!(pool.holders(), vec![leader]);
}

impl Pool {
    /// Over the whole run: no slot forged twice, at least `promotions` starts of forging, and no
    /// node started or stopped forging within `slot_window` slots of one of the pool's slots.
    fn assert_hand_overs_away_from_slots(&self, promotions: usize, log: &str) {
        self.assert_forged_once(log);
        let slots = self.pool_slots();
        let changes = self.reconfigurations();
        assert!(
            changes.iter().filter(|(_, _, enabled)| *enabled).count() >= promotions,
            "{changes:?}"
        );
        // The daemon's guard: `slot_window` slot lengths either side of a pool slot's start.
        let half = SLOT_WINDOW * SLOT_MS;
        let start_ms = u64::try_from(self.system_start).unwrap() * 1000;
        for (node, at, enabled) in &changes {
            // The simulators stamp their lines to the 10 ms: up to 10 ms early.
            let near: Vec<&u64> = slots
                .iter()
                .filter(|s| (start_ms + *s * SLOT_MS).abs_diff(*at) + 10 < half)
                .collect();
            assert!(
                near.is_empty(),
                "{node} {} forging in slot {} ({at} ms), within {SLOT_WINDOW} slots of the pool's \
                 {near:?}; every change: {changes:?}\n{log}",
                if *enabled { "started" } else { "stopped" },
                self.slot_at(*at),
            );
        }
    }

    /// Waits until `leader` has forged a block after the `count`th event.
    async fn forges_after(&self, leader: &str, count: usize) {
        wait_until(&format!("a block forged by {leader}"), WAIT, || async {
            self.forged()[count..]
                .iter()
                .any(|(node, _)| node == leader)
                .then_some(())
        })
        .await;
    }
}

/// The forging node lags, then the next one's tip sticks: each time the key moves first to a node
/// in sync (demoted, verified, promoted), then the laggard is restarted; over the whole run no slot
/// is forged twice, and no node starts or stops forging within `slot_window` slots of one of the
/// pool's slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_or_stuck_forging_node_hands_over_away_from_the_pools_slots() {
    let pool = pool(3).await;
    let config = pool.config();
    let daemon = config.start(&[]).await;
    let first = pool.wait_sole_forger(&daemon).await;
    pool.forges_after(&first, 0).await;

    // The forging node lags: the key moves, then it is restarted.
    let count = pool.forged().len();
    pool.sim(&first)
        .fault(json!({"fault": "lag", "slots": 400}))
        .await;
    let second = pool.wait_sole_forger_but(&daemon, &first).await;
    wait_row(&config, &daemon, &first, "lag (height ").await;
    pool.forges_after(&second, count).await;

    // The new forging node's tip sticks: the key moves, then it is restarted.
    let count = pool.forged().len();
    pool.sim(&second).fault(json!({"fault": "stuck"})).await;
    let third = pool.wait_sole_forger_but(&daemon, &second).await;
    wait_row(&config, &daemon, &second, "stale tip (no new block for ").await;
    pool.forges_after(&third, count).await;

    let log = daemon.log_text();
    assert!(log.matches("hand the leader key to").count() >= 3, "{log}");
    pool.assert_hand_overs_away_from_slots(3, &log);
}

/// The forging node hangs: it is restarted (non-producing, the pool's files still at its paths:
/// the adapter removes them as stale) and the key moves to a node in sync, or back to it. Over
/// the whole run no slot is forged twice, and no node starts or stops forging within
/// `slot_window` slots of one of the pool's slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_forging_node_hands_over_away_from_the_pools_slots() {
    let pool = pool_as(3, true).await;
    let config = pool.config();
    let daemon = config.start(&[]).await;
    let first = pool.wait_sole_forger(&daemon).await;
    pool.forges_after(&first, 0).await;

    let first_pid = pid(pool.sim(&first)).await;
    pool.sim(&first).fault(json!({"fault": "hang"})).await;
    wait_row(&config, &daemon, &first, "hung (no answer for ").await;
    restarted(pool.sim(&first), first_pid).await;
    let count = pool.forged().len();
    let second = pool.wait_sole_forger_but(&daemon, "").await;
    pool.forges_after(&second, count).await;
    let log = daemon.log_text();
    assert!(
        log.contains(&format!(
            "removed the pool's files left at its credential paths: they predate its process, \
             which exports no forge or KES metric (it did not load them) node={first}"
        )),
        "{log}"
    );
    pool.assert_hand_overs_away_from_slots(2, &log);
}

/// The forging node crashes: it is started again (the pool's files left at its paths are removed
/// as stale) and the key moves to a node in sync, or back to it. Over the whole run no slot is
/// forged twice, and no node starts or stops forging within `slot_window` slots of one of the
/// pool's slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_forging_node_hands_over_away_from_the_pools_slots() {
    let pool = pool_as(3, true).await;
    let config = pool.config();
    let daemon = config.start(&[]).await;
    let first = pool.wait_sole_forger(&daemon).await;
    pool.forges_after(&first, 0).await;

    let count = pool.forged().len();
    pool.sim(&first).fault(json!({"fault": "crash"})).await;
    wait_row(&config, &daemon, &first, "crashed").await;
    let second = pool.wait_sole_forger_but(&daemon, "").await;
    pool.forges_after(&second, count).await;
    let log = daemon.log_text();
    assert!(
        log.contains("removed the pool's files left at its credential paths"),
        "{log}"
    );
    pool.assert_hand_overs_away_from_slots(2, &log);
}

/// A lagging forging node: the key moves first (demote, verify, promote), and only then is the
/// laggard restarted, so the hand-over succeeds at the first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_forging_node_is_restarted_only_after_its_hand_over() {
    let pool = pool(3).await;
    let config = pool.config();
    let daemon = config.start(&[]).await;
    let first = pool.wait_sole_forger(&daemon).await;
    pool.sim(&first)
        .fault(json!({"fault": "lag", "slots": 400}))
        .await;
    let second = pool.wait_sole_forger_but(&daemon, &first).await;
    wait_row(&config, &daemon, &first, "lag (height ").await;
    let log = daemon.log_text();
    assert!(!log.contains("is not promoted"), "{log}");
    let promoted = log
        .find(&format!(
            "{second} promoted (leader id 1) after {first} was demoted"
        ))
        .unwrap_or_else(|| panic!("no hand-over from {first} to {second}:\n{log}"));
    let restarting = log
        .find(&format!("restarting {first}: lag"))
        .unwrap_or_else(|| panic!("no restart of {first}:\n{log}"));
    assert!(promoted < restarting, "{log}");
}

/// `nodekeeper_kes_periods_remaining{node}` in the daemon's `/metrics`, parsed as Prometheus text
/// (the exposition must stay valid).
async fn kes_gauge(daemon: &crate::support::Daemon, node: &str) -> Option<f64> {
    let text = daemon.config.api().metrics().await.ok()?;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_string())))
        .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"));
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "nodekeeper_kes_periods_remaining" && s.labels.get("node") == Some(node)
        })
        .and_then(|s| match s.value {
            prometheus_parse::Value::Gauge(value) | prometheus_parse::Value::Untyped(value) => {
                Some(value)
            }
            _ => None,
        })
}

/// The mails about KES (the daemon also mails promotions and the pool's slots).
fn kes_mails(sink: &crate::alert::SmtpSink) -> Vec<crate::alert::Received> {
    sink.received()
        .into_iter()
        .filter(|mail| mail.subject().contains(" KES key "))
        .collect()
}

/// Waits for `n` mails about KES; returns them.
async fn wait_kes(sink: &crate::alert::SmtpSink, n: usize) -> Vec<crate::alert::Received> {
    wait_until(&format!("{n} KES mail(s)"), WAIT, || async {
        let mails = kes_mails(sink);
        (mails.len() >= n).then_some(mails)
    })
    .await
}

/// The forging node's operational certificate runs low (the simulator's `kes N` fault): one mail
/// to a real SMTP server naming the node, the periods and roughly the time left (3 × 129,600
/// slots of 100 ms: about 11 hours), none more while the count stands, another a period less,
/// and one when the node reports a new certificate; the gauge follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forging_node_low_on_kes_periods_is_mailed_about_until_renewed() {
    use crate::alert::{Mode, SMTP_PASSWORD, SmtpSink, email_section};
    let sink = SmtpSink::start(Mode::Plain, None, 0).await;
    let pool = pool(1).await;
    let config = pool.config();
    let mut file: Value =
        serde_json::from_str(&std::fs::read_to_string(&config.path).unwrap()).unwrap();
    file["email"] = email_section(Mode::Plain, sink.port, json!({"dedupe_window": "100ms"}));
    std::fs::write(&config.path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    std::fs::write(
        config.dir.join("smtp.password"),
        format!("{SMTP_PASSWORD}\n"),
    )
    .unwrap();
    let daemon = config.start(&[]).await;
    let forger = pool.wait_sole_forger(&daemon).await;
    assert_eq!(forger, "bp1");
    let sim = pool.sim("bp1");
    // A fresh certificate: 62 periods, no mail.
    wait_until("the gauge at 62", WAIT, || async {
        (kes_gauge(&daemon, "bp1").await == Some(62.0)).then_some(())
    })
    .await;

    assert!(kes_mails(&sink).is_empty());
    sim.fault(json!({"fault": "kes", "remaining": 3})).await;
    let mails = wait_kes(&sink, 1).await;
    let subject = mails[0].subject();
    assert!(
        subject.starts_with("[nodekeeper] bp1: KES key expires in 3 periods (about 11 hours) ("),
        "{subject}\n{}",
        daemon.log_text()
    );
    assert!(
        mails[0]
            .body()
            .contains("fewer than the 14 of leadership.kes_alert_periods"),
        "{}",
        mails[0].body()
    );
    assert_eq!(kes_gauge(&daemon, "bp1").await, Some(3.0));
    // The same count: no more mail (the dedupe window is 100 ms: only the policy holds it back).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(kes_mails(&sink).len(), 1, "{}", daemon.log_text());

    // A period less: said again.
    sim.fault(json!({"fault": "kes", "remaining": 2})).await;
    let mails = wait_kes(&sink, 2).await;
    assert!(
        mails[1]
            .subject()
            .starts_with("[nodekeeper] bp1: KES key expires in 2 periods ("),
        "{}",
        mails[1].subject()
    );

    // A new certificate: the renewal, once.
    sim.fault(json!({"fault": "none"})).await;
    let mails = wait_kes(&sink, 3).await;
    assert!(
        mails[2]
            .subject()
            .starts_with("[nodekeeper] bp1: KES key renewed, 62 periods left ("),
        "{}",
        mails[2].subject()
    );
    assert_eq!(kes_gauge(&daemon, "bp1").await, Some(62.0));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(kes_mails(&sink).len(), 3, "{}", daemon.log_text());
}
