//! The cardano-node adapter against `nodekeeper-sim --chain cardano` under a real supervisord (so
//! SIGHUP goes through `signalProcess`): probe shapes and failures, the schedule from the genesis
//! and leadership-schedule files, promotion, demotion and a hand-over between two block producers
//! started `--start-as-non-producing-node`, counted in the simulators' shared events file, and a
//! node that ignores SIGHUP failing its demotion's verification; a pool file missing fails the
//! promotion and leaves nothing at the node's paths.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nodekeeper::chain::cardano::{
    Credentials, MetricsProbe, Node, Pool, PoolFiles, Settings, genesis::parse_schedule,
};
use nodekeeper::chain::{ChainNode, Holding, NodeState, ProbeError};
use nodekeeper::slots::SlotClock;
use nodekeeper::supervisor::Supervisor;
use reqwest::Url;
use serde_json::{Value, json};

use crate::support::{Program, SimNode, Supervisord, free_port, http, sim_binary, wait_until};

/// The simulated chain: 100 ms slots, a 5-minute epoch, the pool leads one slot in five.
const CHAIN: &[&str] = &[
    "--slot-length-ms",
    "100",
    "--epoch-length",
    "3000",
    "--leader-rate",
    "0.2",
    "--seed",
    "5",
];
const WAIT: Duration = Duration::from_secs(20);
const TIMEOUT: Duration = Duration::from_secs(2);
const ENVELOPE: &str = "{\"type\": \"KesSigningKey_ed25519_kes_2^6\", \"cborHex\": \"5900c0\"}\n";

struct Producer {
    sim: SimNode,
    paths: Credentials,
    node: Node,
}

struct Fixture {
    _dir: tempfile::TempDir,
    supervisord: Supervisord,
    pool: Pool,
    events: PathBuf,
    producers: Vec<Producer>,
}

fn run_sim(args: &[&str]) {
    let output = std::process::Command::new(sim_binary())
        .args(["--chain", "cardano"])
        .args(CHAIN)
        .args(args)
        .output()
        .expect("run the simulator");
    assert!(output.status.success(), "{args:?}: {output:?}");
}

/// The pool's files and one supervisord program per name, each a simulator started
/// `--start-as-non-producing-node` with its own credential paths (none there yet).
async fn fixture(names: &[&str]) -> Fixture {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_path_buf();
    let genesis_file = dir.join("genesis.json");
    let schedule_file = dir.join("schedule.json");
    run_sim(&["--write-genesis", genesis_file.to_str().unwrap()]);
    run_sim(&["--write-schedule", schedule_file.to_str().unwrap()]);
    let credentials_dir = dir.join("pool");
    std::fs::create_dir_all(&credentials_dir).unwrap();
    for name in ["kes.skey", "vrf.skey", "node.opcert"] {
        std::fs::write(credentials_dir.join(name), ENVELOPE).unwrap();
    }
    let events = dir.join("events.jsonl");
    let mut builder = Supervisord::builder();
    let mut planned = Vec::new();
    for name in names {
        let node_dir = dir.join(name);
        std::fs::create_dir_all(&node_dir).unwrap();
        let paths = Credentials {
            kes: node_dir.join("kes.skey"),
            vrf: node_dir.join("vrf.skey"),
            opcert: node_dir.join("node.cert"),
        };
        let listen = format!("127.0.0.1:{}", free_port());
        let command = format!(
            "{} --chain cardano --name {name} --listen {listen} {} --bootstrap-secs 0.3 \
             --events {} --shelley-kes-key {} --shelley-vrf-key {} \
             --shelley-operational-certificate {} --start-as-non-producing-node",
            sim_binary(),
            CHAIN.join(" "),
            events.display(),
            paths.kes.display(),
            paths.vrf.display(),
            paths.opcert.display(),
        );
        builder = builder.program(Program::new(name, &command));
        planned.push((
            SimNode {
                name: name.to_string(),
                listen,
                data_dir: None,
            },
            paths,
        ));
    }
    let supervisord = builder.start().await;
    let pool = Pool {
        credentials_dir,
        schedule_file,
        genesis_file,
    };
    let files = Arc::new(PoolFiles::new(&pool));
    let supervisor: Arc<dyn Supervisor> = Arc::new(supervisord.client());
    let probe = MetricsProbe::new();
    let producers = planned
        .into_iter()
        .map(|(sim, paths)| {
            let settings = Settings {
                metrics_url: Url::parse(&format!("http://{}/metrics", sim.listen)).unwrap(),
                credentials: Some(paths.clone()),
                pool: None,
                genesis_file: None,
            };
            let node = Node::new(
                settings,
                Some(files.clone()),
                supervisor.clone(),
                sim.name.clone(),
                &probe,
            );
            Producer { sim, paths, node }
        })
        .collect();
    let fixture = Fixture {
        _dir: temp,
        supervisord,
        pool,
        events,
        producers,
    };
    for producer in &fixture.producers {
        running(&producer.node).await;
    }
    fixture
}

async fn running(node: &Node) {
    wait_until("the node to follow the chain", WAIT, || async {
        node.probe(TIMEOUT)
            .await
            .ok()
            .filter(|status| status.state == NodeState::Running)
    })
    .await;
}

/// `(node, slot)` of every forged block, in file order.
fn forged(events: &Path) -> Vec<(String, u64)> {
    std::fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).expect("an events line is JSON");
            (
                event["node"].as_str().unwrap().to_string(),
                event["slot"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn wait_forged_by(events: &Path, name: &str, count: usize) {
    wait_until(
        &format!("{count} blocks forged by {name}"),
        WAIT,
        || async {
            (forged(events)
                .iter()
                .filter(|(node, _)| node == name)
                .count()
                >= count)
                .then_some(())
        },
    )
    .await;
}

/// The pool's leader slots of the epochs of `slots`, as the simulator schedules them.
async fn scheduled(sim: &SimNode, slots: &BTreeSet<u64>) -> BTreeSet<u64> {
    let mut all = BTreeSet::new();
    for epoch in slots
        .iter()
        .map(|slot| slot / 3000)
        .collect::<BTreeSet<_>>()
    {
        let body = http()
            .get(format!("http://{}/sim/schedule?epoch={epoch}", sim.listen))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        all.extend(parse_schedule(&body).unwrap());
    }
    all
}

async fn wall_slot(sim: &SimNode) -> u64 {
    sim.state().await.expect("/sim/state")["wall_slot"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn probe_schedule_and_failures() {
    let fixture = fixture(&["bp1"]).await;
    let Producer { sim, node, .. } = &fixture.producers[0];
    let status = node.probe(TIMEOUT).await.unwrap();
    assert_eq!(status.state, NodeState::Running);
    assert_eq!(status.version, "cardano-node");
    assert!(status.height.is_some_and(|height| height > 0), "{status:?}");
    let date = status.tip_date.clone().unwrap();
    assert!(
        nodekeeper::slots::SlotDate::parse(&date).is_some(),
        "{date}"
    );
    // Never forged: no KES metrics yet.
    assert_eq!(node.remaining_kes_periods(), None);

    // Replaying (slotNum 0) is a node still starting.
    sim.fault(json!({"fault": "bootstrap"})).await;
    let status = node.probe(TIMEOUT).await.unwrap();
    assert_eq!(status.state, NodeState::Booting("Starting".into()));
    assert_eq!(status.height, None);
    // No promotion while it replays: the SIGHUP would not take effect.
    let leader = node.leader().expect("leader control");
    assert_eq!(leader.promote(TIMEOUT).await, Err(ProbeError::Status(503)));
    assert_eq!(leader.holding(TIMEOUT).await.unwrap(), Holding::passive());
    sim.fault(json!({"fault": "none"})).await;
    running(node).await;

    // A hung node is a timeout, on time.
    sim.fault(json!({"fault": "hang"})).await;
    let started = tokio::time::Instant::now();
    let short = Duration::from_millis(400);
    assert_eq!(node.probe(short).await, Err(ProbeError::Timeout(short)));
    assert!(started.elapsed() < Duration::from_secs(2));
    sim.fault(json!({"fault": "none"})).await;
    running(node).await;

    // Nothing listening, another status, garbage.
    let probe = MetricsProbe::new();
    let elsewhere = |url: String| Url::parse(&url).unwrap();
    let refused = elsewhere(format!("http://127.0.0.1:{}/metrics", free_port()));
    assert_eq!(
        probe.metrics(&refused, TIMEOUT).await,
        Err(ProbeError::Refused)
    );
    let missing = elsewhere(format!("http://{}/nope", sim.listen));
    assert_eq!(
        probe.metrics(&missing, TIMEOUT).await,
        Err(ProbeError::Status(404))
    );
    let json_state = elsewhere(format!("http://{}/sim/state", sim.listen));
    assert!(matches!(
        probe.metrics(&json_state, TIMEOUT).await,
        Err(ProbeError::Malformed(_))
    ));

    // The boot verdict of the command supervisord really runs.
    let configs = fixture
        .supervisord
        .client()
        .get_all_config_info()
        .await
        .unwrap();
    let command = &configs.iter().find(|c| c.name == "bp1").unwrap().command;
    // The simulator is not cardano-node by name: a wrapper, for all the adapter knows.
    let verdict = node.boots_producing(Some(command));
    assert_eq!(verdict.with_key, None, "{}", verdict.why);
    assert!(verdict.why.contains("nodekeeper-sim"), "{}", verdict.why);
    let as_cardano = command.replacen(sim_binary(), "/usr/local/bin/cardano-node", 1);
    assert_eq!(
        node.boots_producing(Some(&as_cardano)).with_key,
        Some(false)
    );
    assert_eq!(
        nodekeeper::chain::cardano::credential_paths(command).as_ref(),
        Some(&fixture.producers[0].paths)
    );

    // The chain's time is the genesis'.
    let schedule = node.schedule().expect("schedule");
    let clock = schedule.chain_time(TIMEOUT).await.unwrap();
    assert_eq!(
        clock,
        SlotClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            Duration::from_millis(100),
            3000
        )
        .unwrap()
    );
    // The pool's slots are the schedule file's.
    let file_slots = |path: &Path| parse_schedule(&std::fs::read_to_string(path).unwrap()).unwrap();
    let to_slots = |logs: &[nodekeeper::slots::LeaderLog]| -> Vec<u64> {
        logs.iter().map(|log| clock.abs_slot_of(log.date)).collect()
    };
    let logs = schedule.pool_slots(TIMEOUT).await.unwrap();
    let expected = file_slots(&fixture.pool.schedule_file);
    assert!(!expected.is_empty());
    assert_eq!(to_slots(&logs), expected);
    for log in &logs {
        let exact = clock.block0 + Duration::from_millis(100 * clock.abs_slot_of(log.date));
        assert_eq!(log.scheduled_at, exact);
        assert_eq!(log.enclave_leader_id, 1);
    }
    // A new schedule (the next epoch's) is read again.
    let epoch = logs[0].date.epoch + 1;
    run_sim(&[
        "--write-schedule",
        fixture.pool.schedule_file.to_str().unwrap(),
        "--epoch",
        &epoch.to_string(),
    ]);
    let next = schedule.pool_slots(TIMEOUT).await.unwrap();
    assert_eq!(to_slots(&next), file_slots(&fixture.pool.schedule_file));
    assert!(
        next.iter()
            .all(|log| log.date.epoch == epoch && !log.finished)
    );

    // A broken genesis names the file and the key.
    std::fs::write(&fixture.pool.genesis_file, "{\"systemStart\": 5}").unwrap();
    match schedule.chain_time(TIMEOUT).await {
        Err(ProbeError::Malformed(why)) => {
            assert!(
                why.contains("genesis.json") && why.contains("systemStart"),
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn hand_over_forges_each_leader_slot_once() {
    let fixture = fixture(&["bp1", "bp2"]).await;
    let [one, two] = &fixture.producers[..] else {
        unreachable!()
    };
    let (leader1, leader2) = (one.node.leader().unwrap(), two.node.leader().unwrap());
    assert_eq!(leader1.holding(TIMEOUT).await.unwrap(), Holding::passive());
    assert_eq!(leader2.holding(TIMEOUT).await.unwrap(), Holding::passive());
    one.sim.state().await.unwrap();
    assert!(
        forged(&fixture.events).is_empty(),
        "forged before any promotion"
    );

    // Promote bp1: the pool's files at its paths, 0600, the pool's copies kept.
    let promoted_at = wall_slot(&one.sim).await;
    assert_eq!(leader1.promote(TIMEOUT).await.unwrap(), Holding(vec![1]));
    assert!(
        leader1
            .holding(TIMEOUT)
            .await
            .unwrap()
            .includes(&Holding(vec![1]))
    );
    for path in one.paths.paths() {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
        assert_eq!(std::fs::read_to_string(path).unwrap(), ENVELOPE);
    }
    for name in ["kes.skey", "vrf.skey", "node.opcert"] {
        assert!(fixture.pool.credentials_dir.join(name).exists());
    }
    wait_forged_by(&fixture.events, "bp1", 3).await;
    // Forging, it reports its certificate's KES periods.
    one.node.probe(TIMEOUT).await.unwrap();
    let remaining = one
        .node
        .remaining_kes_periods()
        .expect("remainingKESPeriods");
    assert!(remaining > 14 && remaining <= 62, "{remaining}");
    // With the KES period's length from the pool's genesis, for the time left in an alert.
    let expiry = one.node.key_expiry().expect("a key expiry");
    assert_eq!(expiry.periods, remaining);
    assert!(expiry.period.is_some_and(|p| !p.is_zero()), "{expiry:?}");

    // Hand over: demote bp1 (verified), then promote bp2.
    leader1.demote(&Holding(vec![1]), TIMEOUT).await.unwrap();
    assert_eq!(leader1.holding(TIMEOUT).await.unwrap(), Holding::passive());
    for path in one.paths.paths() {
        assert!(!path.exists(), "{} left", path.display());
    }
    assert_eq!(one.sim.state().await.unwrap()["forging"], false);
    let demoted_at = wall_slot(&one.sim).await;
    assert_eq!(leader2.promote(TIMEOUT).await.unwrap(), Holding(vec![1]));
    wait_forged_by(&fixture.events, "bp2", 3).await;
    leader2.demote(&Holding(vec![1]), TIMEOUT).await.unwrap();

    let events = forged(&fixture.events);
    let mut seen = BTreeSet::new();
    for (node, slot) in &events {
        assert!(seen.insert(*slot), "slot {slot} forged twice: {events:?}");
        assert!(
            *slot >= promoted_at,
            "{node} forged {slot} before the promotion"
        );
    }
    let last_of_one = events
        .iter()
        .filter(|(n, _)| n == "bp1")
        .map(|(_, s)| *s)
        .max()
        .unwrap();
    let first_of_two = events
        .iter()
        .filter(|(n, _)| n == "bp2")
        .map(|(_, s)| *s)
        .min()
        .unwrap();
    assert!(
        last_of_one < demoted_at,
        "bp1 forged {last_of_one} after its demotion at {demoted_at}"
    );
    assert!(last_of_one < first_of_two, "{events:?}");
    // Only on the pool's leader slots.
    let schedule = scheduled(&one.sim, &seen).await;
    assert!(
        seen.is_subset(&schedule),
        "{seen:?} not all in the schedule"
    );
}

#[tokio::test]
async fn a_node_ignoring_sighup_fails_its_demotion() {
    let fixture = fixture(&["bp1"]).await;
    let Producer { sim, paths, node } = &fixture.producers[0];
    let leader = node.leader().unwrap();
    assert_eq!(leader.promote(TIMEOUT).await.unwrap(), Holding(vec![1]));
    wait_forged_by(&fixture.events, "bp1", 1).await;

    sim.fault(json!({"fault": "ignore-sighup"})).await;
    let failures = leader
        .demote(&Holding(vec![1]), TIMEOUT)
        .await
        .expect_err("the node still forges");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].what, "block forging after SIGHUP");
    match &failures[0].error {
        ProbeError::Malformed(why) => {
            assert!(
                why.contains("Forge_forge_about_to_lead still moves"),
                "{why}"
            );
            assert!(why.contains("still forges"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // The files are gone, yet the node forges on.
    assert_eq!(leader.holding(TIMEOUT).await.unwrap(), Holding::passive());
    assert!(paths.paths().iter().all(|path| !path.exists()));
    assert_eq!(sim.state().await.unwrap()["forging"], true);
    let before = forged(&fixture.events).len();
    wait_until("a block forged after the failed demotion", WAIT, || async {
        (forged(&fixture.events).len() > before).then_some(())
    })
    .await;
}

/// A pool file missing from `credentials_dir` (an operator's mistake): the promotion fails naming
/// the file, leaves none of the three at the node's paths, sends no SIGHUP, and the node does not
/// forge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_pool_file_fails_the_promotion_and_leaves_nothing() {
    let fixture = fixture(&["bp1"]).await;
    let Producer { sim, paths, node } = &fixture.producers[0];
    std::fs::remove_file(fixture.pool.credentials_dir.join("vrf.skey")).unwrap();
    let leader = node.leader().unwrap();
    let error = leader
        .promote(TIMEOUT)
        .await
        .expect_err("a pool file is missing");
    assert!(error.to_string().contains("vrf.skey"), "{error}");
    assert!(paths.paths().iter().all(|path| !path.exists()));
    assert_eq!(leader.holding(TIMEOUT).await.unwrap(), Holding::passive());
    assert_eq!(sim.state().await.unwrap()["forging"], false);
}
