//! The nodeos adapter (`nodekeeper::chain::nodeos`) against the nodeos simulator over real HTTP:
//! probe shapes and times, the error taxonomy (hang, nothing listening, no producer API), leader
//! control (pause, resume, paused; a node that refuses to pause), the pool's slots against the
//! blocks a sim actually made, and a hand-over between two sims sharing an events file that never
//! makes a block twice. Sims start on `127.0.0.1:0` with no boot time and short blocks; every wait
//! polls against a deadline; dropping a [`Sim`] kills its process.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use nodekeeper::chain::nodeos::{Node, NodeosApi, Settings, turns, wire};
use nodekeeper::chain::{ChainNode, Holding, NodeState, ProbeError};
use reqwest::Url;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{http, sim_binary, wait_until};

/// The timeout of one adapter call.
const CALL: Duration = Duration::from_secs(2);
/// The simulator's default genesis (Unix seconds): block `n` is at `GENESIS + n x interval`.
const GENESIS: u64 = 1_700_000_000;
/// The simulator's default producer account.
const OURS: &str = "nodekeeper";

/// One running simulator process, killed when dropped.
struct Sim {
    _child: tokio::process::Child,
    url: Url,
    interval: Duration,
}

impl Sim {
    /// `nodekeeper-sim --chain nodeos --name NAME` with no boot time, `interval_ms` blocks and
    /// `extra` flags; waits for its `listening on` line.
    async fn start(name: &str, interval_ms: u64, extra: &[&str]) -> Sim {
        let mut child = tokio::process::Command::new(sim_binary())
            .args(["--chain", "nodeos", "--name", name])
            .args(["--listen", "127.0.0.1:0", "--bootstrap-secs", "0"])
            .args(["--block-interval-ms", &interval_ms.to_string()])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nodekeeper-sim");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            BufReader::new(stdout).read_line(&mut first),
        )
        .await
        .expect("the sim printed its address in time")
        .expect("read the sim's stdout");
        let address = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("sim {name}: unexpected first line {first:?}"));
        Sim {
            _child: child,
            url: Url::parse(&format!("http://{address}")).unwrap(),
            interval: Duration::from_millis(interval_ms),
        }
    }

    /// The adapter's node for this sim, producing for `producer`.
    fn node(&self, producer: Option<&str>) -> Node {
        let settings = Settings {
            block_interval: self.interval,
            ..Settings::new(self.url.clone(), producer.map(str::to_string))
        };
        Node::new(settings, &NodeosApi::new())
    }

    async fn fault(&self, fault: Value) {
        let response = http()
            .post(self.url.join("sim/fault").unwrap())
            .header("content-type", "application/json")
            .body(fault.to_string())
            .send()
            .await
            .expect("POST /sim/fault");
        assert!(response.status().is_success(), "{fault}: {response:?}");
    }

    async fn state(&self) -> Value {
        let body = http()
            .get(self.url.join("sim/state").unwrap())
            .send()
            .await
            .expect("GET /sim/state")
            .bytes()
            .await
            .expect("the sim's state");
        serde_json::from_slice(&body).expect("the sim's state is JSON")
    }
}

/// One line of the shared events file: a block a sim made.
#[derive(Clone, Debug, serde::Deserialize)]
struct Made {
    node: String,
    producer: String,
    block_num: u64,
    time: String,
}

fn events(path: &Path) -> Vec<Made> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

fn at_block(n: u64, interval: Duration) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(GENESIS) + interval * u32::try_from(n).unwrap()
}

/// The wall clock: these tests compare the chain with real time.
#[allow(clippy::disallowed_methods)]
fn now() -> SystemTime {
    SystemTime::now()
}

async fn height(node: &Node) -> u64 {
    node.probe(CALL)
        .await
        .expect("probe")
        .height
        .expect("a height")
}

#[tokio::test]
async fn nodeos_adapter_probe_reads_the_head_with_its_utc_time() {
    let sim = Sim::start("probe", 50, &[]).await;
    let node = sim.node(Some(OURS));
    let status = node.probe(CALL).await.expect("probe");
    assert_eq!(status.state, NodeState::Running);
    assert_eq!(status.version, "v1.2.2");
    let head = status.height.expect("a height");
    // head_block_time has no zone: read as UTC, it is exactly the block's time.
    assert_eq!(status.last_block_time, Some(at_block(head, sim.interval)));
    let age = now()
        .duration_since(status.last_block_time.unwrap())
        .expect("the head is not in the future");
    assert!(age < Duration::from_secs(2), "head {age:?} old");
    // The block id starts with its number (Antelope ids do).
    let id = status.tip_hash.expect("the head's id");
    assert!(id.starts_with(&format!("{head:08x}")), "{id} of {head}");
    // The height follows the chain.
    wait_until("the head to move on", Duration::from_secs(5), || async {
        (height(&node).await > head).then_some(())
    })
    .await;
    assert!(sim.state().await["head_block_num"].as_u64().unwrap() > head);
    // Without a producer account there is no leader control and no schedule.
    let probe_only = sim.node(None);
    assert!(probe_only.leader().is_none() && probe_only.schedule().is_none());
    assert!(node.leader().is_some() && node.schedule().is_some());
    assert!(node.config_file(Default::default()).is_none());
}

#[tokio::test]
async fn nodeos_adapter_hang_times_out_and_nothing_listening_is_refused() {
    let sim = Sim::start("hang", 50, &[]).await;
    let node = sim.node(Some(OURS));
    sim.fault(json!({"fault": "hang"})).await;
    let short = Duration::from_millis(300);
    assert_eq!(node.probe(short).await, Err(ProbeError::Timeout(short)));
    let leader = node.leader().unwrap();
    assert_eq!(leader.holding(short).await, Err(ProbeError::Timeout(short)));
    let failures = leader.demote(&Holding(vec![1]), short).await.unwrap_err();
    assert_eq!(failures[0].error, ProbeError::Timeout(short));
    sim.fault(json!({"fault": "none"})).await;
    assert!(node.probe(CALL).await.is_ok());

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let gone = Node::new(
        Settings::new(
            Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            Some(OURS.into()),
        ),
        &NodeosApi::new(),
    );
    assert_eq!(gone.probe(CALL).await, Err(ProbeError::Refused));
    assert_eq!(
        gone.leader().unwrap().holding(CALL).await,
        Err(ProbeError::Refused)
    );
}

#[tokio::test]
async fn nodeos_adapter_without_the_producer_api_holding_is_an_error() {
    let sim = Sim::start("noapi", 50, &["--no-producer-api"]).await;
    let node = sim.node(Some(OURS));
    assert!(node.probe(CALL).await.is_ok());
    let leader = node.leader().unwrap();
    // Never "passive": the node may well be producing.
    assert_eq!(leader.holding(CALL).await, Err(ProbeError::Status(404)));
    assert_eq!(leader.promote(CALL).await, Err(ProbeError::Status(404)));
    let failures = leader.demote(&Holding(vec![1]), CALL).await.unwrap_err();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].error, ProbeError::Status(404));
}

#[tokio::test]
async fn nodeos_adapter_demotes_and_promotes_a_producing_and_a_paused_node() {
    let producing = Sim::start("producing", 50, &[]).await;
    let paused = Sim::start("paused", 50, &["--pause-on-startup"]).await;
    for (sim, holds) in [(&producing, true), (&paused, false)] {
        let node = sim.node(Some(OURS));
        let leader = node.leader().unwrap();
        let now = leader.holding(CALL).await.expect("holding");
        assert_eq!(now.holds(), holds);
        assert_eq!(sim.state().await["paused"], json!(!holds));
        if holds {
            assert_eq!(now, Holding(vec![1]));
            leader.demote(&now, CALL).await.expect("demote");
            assert_eq!(leader.holding(CALL).await, Ok(Holding::passive()));
            assert_eq!(sim.state().await["paused"], json!(true));
        }
        let promoted = leader.promote(CALL).await.expect("promote");
        assert_eq!(promoted, Holding(vec![1]));
        let confirmed = leader.holding(CALL).await.expect("holding");
        assert!(confirmed.includes(&promoted));
        assert_eq!(sim.state().await["paused"], json!(false));
        leader.demote(&confirmed, CALL).await.expect("demote");
        assert_eq!(leader.holding(CALL).await, Ok(Holding::passive()));
    }
}

#[tokio::test]
async fn nodeos_adapter_a_node_that_refuses_to_pause_is_not_demoted() {
    let sim = Sim::start("stubborn", 50, &[]).await;
    sim.fault(json!({"fault": "refuse-pause"})).await;
    let node = sim.node(Some(OURS));
    let leader = node.leader().unwrap();
    let failures = leader
        .demote(&Holding(vec![1]), CALL)
        .await
        .expect_err("a refused pause is a failure");
    assert_eq!(failures.len(), 1);
    assert!(
        matches!(&failures[0].error, ProbeError::Malformed(why) if why.contains("still produces")),
        "{failures:?}"
    );
    assert_eq!(leader.holding(CALL).await, Ok(Holding(vec![1])));
}

#[tokio::test]
async fn nodeos_adapter_pool_slots_agree_with_the_blocks_the_sim_made() {
    let dir = tempfile::tempdir().unwrap();
    let events_path = dir.path().join("events.jsonl");
    let events_arg = events_path.to_string_lossy().into_owned();
    let sim = Sim::start("slots", 50, &["--events", &events_arg]).await;
    let node = sim.node(Some(OURS));
    let schedule = node.schedule().unwrap();
    let before = height(&node).await;
    let clock = schedule.chain_time(CALL).await.expect("chain time");
    let logs = schedule.pool_slots(CALL).await.expect("pool slots");
    // One slot per block, one epoch per round of 4 x 12 blocks, slot numbers = block numbers.
    assert_eq!(clock.slot_duration, sim.interval);
    assert_eq!(clock.slots_per_epoch, 48);
    assert_eq!(clock.abs_slot_at(at_block(before, sim.interval)), before);
    // Our turn in the head's round and in the next: 24 blocks.
    assert_eq!(logs.len(), 24, "{logs:?}");
    let predicted: BTreeMap<u64, SystemTime> = logs
        .iter()
        .map(|log| (clock.abs_slot_of(log.date), log.scheduled_at))
        .filter(|(n, _)| *n > before)
        .collect();
    let last = *predicted.keys().last().expect("slots ahead");
    assert!(predicted.len() >= 12, "{predicted:?}");
    // Once the chain is past the last predicted block, the sim made exactly those blocks.
    wait_until(
        "the chain to pass the slots",
        Duration::from_secs(15),
        || async { (height(&node).await > last).then_some(()) },
    )
    .await;
    let made: BTreeMap<u64, SystemTime> = events(&events_path)
        .into_iter()
        .filter(|made| made.block_num > before && made.block_num <= last)
        .map(|made| {
            assert_eq!(made.producer, OURS);
            (made.block_num, wire::block_time(&made.time).unwrap())
        })
        .collect();
    assert_eq!(made, predicted);
}

#[tokio::test]
async fn nodeos_adapter_hands_the_producer_over_without_a_double_block() {
    let dir = tempfile::tempdir().unwrap();
    let events_path = dir.path().join("events.jsonl");
    let events_arg = events_path.to_string_lossy().into_owned();
    // Six producers, 50 ms blocks: a turn is 0.6 s, a round 3.6 s; three turns of six allow a
    // hand-over (not ours, nor the one after it, nor the one before it).
    let producers = "alpha,nodekeeper,bravo,charlie,delta,echo";
    let shared = ["--producers", producers, "--events", &events_arg];
    let old = Sim::start("old", 50, &shared).await;
    let new = Sim::start("new", 50, &[&shared[..], &["--pause-on-startup"]].concat()).await;
    let (old_node, new_node) = (old.node(Some(OURS)), new.node(Some(OURS)));
    let (old_leader, new_leader) = (old_node.leader().unwrap(), new_node.leader().unwrap());
    assert_eq!(old_leader.holding(CALL).await, Ok(Holding(vec![1])));
    assert_eq!(new_leader.holding(CALL).await, Ok(Holding::passive()));
    wait_until(
        "the old node to make a block",
        Duration::from_secs(15),
        || async {
            events(&events_path)
                .iter()
                .any(|made| made.node == "old")
                .then_some(())
        },
    )
    .await;

    // Wait for a moment the manageos rule allows, then pause, verify, resume.
    wait_until("a moment to hand over", Duration::from_secs(15), || async {
        match old_node.handover_allowed(1, now(), CALL).await {
            Ok(Ok(())) => Some(()),
            Ok(Err(_not_now)) => None,
            Err(error) => panic!("handover_allowed: {error}"),
        }
    })
    .await;
    let holding = old_leader.holding(CALL).await.expect("holding");
    old_leader.demote(&holding, CALL).await.expect("demote");
    assert_eq!(old_leader.holding(CALL).await, Ok(Holding::passive()));
    let switched_at = height(&old_node).await;
    let promoted = new_leader.promote(CALL).await.expect("promote");
    assert!(
        new_leader
            .holding(CALL)
            .await
            .expect("holding")
            .includes(&promoted)
    );

    // Two whole turns of ours later, the new node made them all and the old one none.
    let made = wait_until(
        "two turns by the new node",
        Duration::from_secs(20),
        || async {
            let made = events(&events_path);
            (made.iter().filter(|m| m.node == "new").count() >= 24).then_some(made)
        },
    )
    .await;
    let mut seen = BTreeMap::new();
    for m in &made {
        assert_eq!(m.producer, OURS);
        if let Some(other) = seen.insert(m.block_num, m.node.clone()) {
            panic!(
                "block {} made twice, by {other} and {}",
                m.block_num, m.node
            );
        }
        if m.block_num > switched_at {
            assert_eq!(m.node, "new", "block {} after the hand-over", m.block_num);
        } else {
            assert_eq!(m.node, "old", "block {} before the hand-over", m.block_num);
        }
    }
    // No turn of ours was lost: the new node's blocks are whole turns of 12 in a row.
    let new_blocks: Vec<u64> = made
        .iter()
        .filter(|m| m.node == "new")
        .map(|m| m.block_num)
        .collect();
    for turn in new_blocks.chunks(12).take(2) {
        assert_eq!(turn.len(), 12);
        assert_eq!(turn[0] % 12, 0, "{turn:?}");
        assert_eq!(turn[11], turn[0] + 11, "{turn:?}");
    }
    // The first of them is our first turn after the hand-over.
    let round = turns::round_len(6);
    let first_turn = (switched_at / round) * round + 12;
    let first_turn = if first_turn > switched_at {
        first_turn
    } else {
        first_turn + round
    };
    assert_eq!(new_blocks[0], first_turn, "switched at {switched_at}");
}
