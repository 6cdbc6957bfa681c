//! Integration tests of `nodekeeper-sim --chain cardano` over real HTTP and real signals: the built binary,
//! started on `127.0.0.1:0` with 100 ms slots and a 0.3 s replay. Every wait polls a condition against a deadline;
//! dropping a [`Sim`] kills its process, so a failing test leaves nothing behind. The node's stdout (its
//! cardano-style log lines) is collected, so tests can check what it said on SIGHUP.

// Real processes, real time.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

const SIM: &str = env!("CARGO_BIN_EXE_nodekeeper-sim");
/// Deadline of a single wait.
const WAIT: Duration = Duration::from_secs(10);
const ENABLING: &str = "Performing block forging reconfiguration: Enabling block forging.";
const DISABLING: &str = "Performing block forging reconfiguration: Disabling block forging,";
const NOT_EFFECTIVE: &str = "Changing block forging is not effective until consensus has started.";
const ENVELOPE: &str = "{\n    \"type\": \"KesSigningKey_ed25519_kes_2^6\",\n    \"description\": \"KES Signing Key\",\n    \"cborHex\": \"5900c0\"\n}\n";

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after `timeout`.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The three credential files in a directory; `place` writes them, `remove_kes` takes one away.
struct Keys {
    kes: PathBuf,
    vrf: PathBuf,
    opcert: PathBuf,
}

impl Keys {
    fn new(dir: &Path) -> Keys {
        Keys {
            kes: dir.join("kes.skey"),
            vrf: dir.join("vrf.skey"),
            opcert: dir.join("node.cert"),
        }
    }

    fn place(&self) {
        for path in [&self.kes, &self.vrf, &self.opcert] {
            std::fs::write(path, ENVELOPE).expect("write credential");
        }
    }

    fn remove_kes(&self) {
        std::fs::remove_file(&self.kes).expect("remove kes key");
    }

    fn flags(&self) -> Vec<String> {
        vec![
            "--shelley-kes-key".into(),
            self.kes.display().to_string(),
            "--shelley-vrf-key".into(),
            self.vrf.display().to_string(),
            "--shelley-operational-certificate".into(),
            self.opcert.display().to_string(),
        ]
    }
}

/// One running simulator process.
struct Sim {
    name: String,
    child: Child,
    base: String,
    http: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Sim {
    /// Starts `--chain cardano --name NAME` with 100 ms slots, a 0.3 s replay and `extra` flags.
    async fn start(name: &str, extra: &[String]) -> Sim {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr log");
        let mut args: Vec<String> = [
            "--chain",
            "cardano",
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
        ]
        .map(String::from)
        .to_vec();
        if !extra.iter().any(|arg| arg == "--slot-length-ms") {
            args.extend(["--slot-length-ms".into(), "100".into()]);
        }
        if !extra.iter().any(|arg| arg == "--bootstrap-secs") {
            args.extend(["--bootstrap-secs".into(), "0.3".into()]);
        }
        args.extend(extra.iter().cloned());
        let mut child = Command::new(SIM)
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nodekeeper-sim");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("sim printed no address in time")
            .expect("read sim stdout")
            .unwrap_or_default();
        let Some(address) = first.strip_prefix("listening on ").map(str::to_string) else {
            let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            panic!("sim {name}: unexpected first line {first:?}; stderr: {stderr}");
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Sim {
            name: name.to_string(),
            child,
            base: format!("http://{address}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .expect("http client"),
            log,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Result<(u16, String)> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    async fn state(&self) -> Value {
        let (status, body) = self
            .get("/sim/state")
            .await
            .unwrap_or_else(|error| panic!("GET /sim/state on {}: {error}", self.name));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("state JSON")
    }

    async fn fault(&self, fault: Value) {
        let response = self
            .http
            .post(format!("{}/sim/fault", self.base))
            .header("content-type", "application/json")
            .body(fault.to_string())
            .send()
            .await
            .expect("POST /sim/fault");
        assert_eq!(response.status().as_u16(), 200, "POST /sim/fault {fault}");
    }

    /// `GET /metrics` parsed into name → value (comment lines skipped).
    async fn metrics(&self) -> BTreeMap<String, f64> {
        let (status, body) = self
            .get("/metrics")
            .await
            .unwrap_or_else(|error| panic!("GET /metrics on {}: {error}", self.name));
        assert_eq!(status, 200, "{body}");
        parse_metrics(&body)
    }

    /// Waits until the node has replayed and reports a slot; returns its metrics.
    async fn synced(&self) -> BTreeMap<String, f64> {
        poll("slotNum > 0", WAIT, || async {
            let metrics = self.metrics().await;
            (metrics
                .get("cardano_node_metrics_slotNum_int")
                .copied()
                .unwrap_or(0.0)
                > 0.0)
                .then_some(metrics)
        })
        .await
    }

    /// Waits until `slots` more wall-clock slots have passed.
    async fn wait_slots(&self, slots: u64) {
        let start = as_u64(&self.state().await["wall_slot"]);
        poll("wall-clock slots to pass", WAIT, || async {
            (as_u64(&self.state().await["wall_slot"]) >= start + slots).then_some(())
        })
        .await;
    }

    fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`, and returns how many lines contain it.
    async fn logged(&self, needle: &str) -> usize {
        poll(&format!("log line {needle:?}"), WAIT, || async {
            let count = self
                .log_lines()
                .iter()
                .filter(|line| line.contains(needle))
                .count();
            (count > 0).then_some(count)
        })
        .await
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("sim still running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    async fn exit_status(&mut self, timeout: Duration) -> ExitStatus {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit in time", self.name))
            .expect("wait for the sim")
    }
}

/// Kills the process and reaps it, so neither a running sim nor a zombie outlives the test.
impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (name, value) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad metrics line {line:?}"));
            let value = value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad metrics value {line:?}"));
            (name.to_string(), value)
        })
        .collect()
}

fn metric(metrics: &BTreeMap<String, f64>, name: &str) -> u64 {
    let value = metrics
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {metrics:?}"));
    *value as u64
}

fn as_u64(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a u64: {value}"))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

fn read_events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("bad event line {line:?}: {error}"))
        })
        .collect()
}

/// Runs the binary to completion (for the `--write-*` modes and start-up errors).
fn run_to_exit(args: &[&str]) -> std::process::Output {
    std::process::Command::new(SIM)
        .args(["--chain", "cardano"])
        .args(args)
        .output()
        .expect("run nodekeeper-sim")
}

/// The pool's leader slots of the epochs of `slots`, from the simulator's `--write-schedule`.
fn scheduled_slots(dir: &Path, extra: &[&str], epochs: &BTreeSet<u64>) -> BTreeSet<u64> {
    let mut slots = BTreeSet::new();
    for epoch in epochs {
        let path = dir.join(format!("schedule-{epoch}.json"));
        let epoch = epoch.to_string();
        let mut args = vec![
            "--write-schedule",
            path.to_str().unwrap(),
            "--epoch",
            &epoch,
        ];
        args.extend_from_slice(extra);
        let output = run_to_exit(&args);
        assert!(output.status.success(), "{output:?}");
        let schedule: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for entry in schedule.as_array().unwrap() {
            slots.insert(as_u64(&entry["slotNumber"]));
        }
    }
    slots
}

#[tokio::test]
async fn metrics_have_the_real_names_in_both_suffixes() {
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = Keys::new(keys_dir.path());
    keys.place();
    let mut flags = keys.flags();
    flags.extend(strings(&[
        "--bootstrap-secs",
        "1.5",
        "--leader-rate",
        "0.3",
    ]));
    let sim = Sim::start("bp-int", &flags).await;

    // Replaying: slotNum 0.
    let replay = sim.metrics().await;
    assert_eq!(metric(&replay, "cardano_node_metrics_slotNum_int"), 0);
    assert_eq!(metric(&replay, "cardano_node_metrics_blockNum_int"), 0);

    let metrics = sim.synced().await;
    let slot = metric(&metrics, "cardano_node_metrics_slotNum_int");
    assert_eq!(
        metric(&metrics, "cardano_node_metrics_epoch_int"),
        slot / 600
    );
    assert_eq!(
        metric(&metrics, "cardano_node_metrics_slotInEpoch_int"),
        slot % 600
    );
    assert!(metric(&metrics, "cardano_node_metrics_blockNum_int") > 0);
    let density = metrics["cardano_node_metrics_density_real"];
    assert!((0.02..0.1).contains(&density), "{density}");
    for name in [
        "cardano_node_metrics_forks_int",
        "cardano_node_metrics_Forge_forged_int",
        "cardano_node_metrics_Forge_adopted_int",
        "cardano_node_metrics_Forge_node_is_leader_int",
        "cardano_node_metrics_slotsMissedNum_int",
        "cardano_node_metrics_currentKESPeriod_int",
        "cardano_node_metrics_remainingKESPeriods_int",
        "cardano_node_metrics_connectionManager_incomingConns",
        "cardano_node_metrics_connectionManager_outgoingConns",
        "cardano_node_metrics_peerSelection_cold",
        "cardano_node_metrics_peerSelection_warm",
        "cardano_node_metrics_peerSelection_hot",
    ] {
        assert!(metrics.contains_key(name), "{name} missing: {metrics:?}");
    }
    assert!(!metrics.keys().any(|name| name.ends_with("_counter")));
    // The forge counters move.
    poll("Forge_forged > 0", WAIT, || async {
        (metric(
            &sim.metrics().await,
            "cardano_node_metrics_Forge_forged_int",
        ) > 0)
            .then_some(())
    })
    .await;

    let mut flags = keys.flags();
    flags.extend(strings(&[
        "--metrics-suffix",
        "counter",
        "--leader-rate",
        "0.3",
    ]));
    let counter = Sim::start("bp-counter", &flags).await;
    let metrics = counter.synced().await;
    for name in [
        "cardano_node_metrics_forks_counter",
        "cardano_node_metrics_Forge_forged_counter",
        "cardano_node_metrics_Forge_adopted_counter",
        "cardano_node_metrics_Forge_node_is_leader_counter",
        "cardano_node_metrics_slotsMissedNum_counter",
        "cardano_node_metrics_blockNum_int",
        "cardano_node_metrics_slotNum_int",
        "cardano_node_metrics_remainingKESPeriods_int",
    ] {
        assert!(metrics.contains_key(name), "{name} missing: {metrics:?}");
    }
    assert!(!metrics.contains_key("cardano_node_metrics_Forge_forged_int"));
    let (_, text) = counter.get("/metrics").await.unwrap();
    assert!(text.contains("# TYPE cardano_node_metrics_Forge_forged_counter counter\n"));
}

#[tokio::test]
async fn two_sims_started_apart_agree_on_slot_and_block() {
    let first = Sim::start("apart-1", &strings(&["--slot-length-ms", "200"])).await;
    first.synced().await;
    first.wait_slots(5).await;
    let second = Sim::start("apart-2", &strings(&["--slot-length-ms", "200"])).await;
    second.synced().await;
    // A block every ~20 slots (4 s): both reads fall between two blocks almost always; poll for it.
    let (slot, block) = poll("both sims to report the same tip", WAIT, || async {
        let a = first.metrics().await;
        let b = second.metrics().await;
        let tip = |m: &BTreeMap<String, f64>| {
            (
                metric(m, "cardano_node_metrics_slotNum_int"),
                metric(m, "cardano_node_metrics_blockNum_int"),
                metric(m, "cardano_node_metrics_epoch_int"),
            )
        };
        let (ta, tb) = (tip(&a), tip(&b));
        (ta == tb).then_some((ta.0, ta.1))
    })
    .await;
    // The tip trails the wall clock by less than two block windows, and the chain is the shared one.
    let state = second.state().await;
    let wall = as_u64(&state["wall_slot"]);
    assert!(slot <= wall && wall - slot < 40, "tip {slot}, wall {wall}");
    assert!(block > 0);
    // A different seed is a different chain.
    let other = Sim::start(
        "apart-seed",
        &strings(&["--slot-length-ms", "200", "--seed", "9"]),
    )
    .await;
    other.synced().await;
    poll(
        "a different seed to give other block slots",
        WAIT,
        || async {
            let a = metric(&first.metrics().await, "cardano_node_metrics_slotNum_int");
            let c = metric(&other.metrics().await, "cardano_node_metrics_slotNum_int");
            (a != c).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn writes_genesis_and_leadership_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = dir.path().join("shelley-genesis.json");
    let schedule = dir.path().join("schedule.json");
    let output = run_to_exit(&[
        "--write-genesis",
        genesis.to_str().unwrap(),
        "--write-schedule",
        schedule.to_str().unwrap(),
        "--epoch",
        "7",
        "--slot-length-ms",
        "100",
        "--leader-rate",
        "0.1",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty(), "writes only: no server");
    let g: Value = serde_json::from_str(&std::fs::read_to_string(&genesis).unwrap()).unwrap();
    assert_eq!(g["systemStart"], "2023-11-14T22:13:20Z");
    assert_eq!(g["slotLength"], json!(0.1));
    assert_eq!(g["epochLength"], 600);
    assert_eq!(g["slotsPerKESPeriod"], 129_600);
    assert_eq!(g["maxKESEvolutions"], 62);
    assert_eq!(g["activeSlotsCoeff"], 0.05);

    let s: Value = serde_json::from_str(&std::fs::read_to_string(&schedule).unwrap()).unwrap();
    let entries = s.as_array().unwrap();
    assert!((20..=110).contains(&entries.len()), "{}", entries.len());
    let mut last = 0;
    for entry in entries {
        assert_eq!(entry.as_object().unwrap().len(), 2, "{entry}");
        let slot = as_u64(&entry["slotNumber"]);
        assert!((4200..4800).contains(&slot), "{slot} not in epoch 7");
        assert!(slot > last);
        last = slot;
        let time =
            chrono::DateTime::parse_from_rfc3339(entry["slotTime"].as_str().unwrap()).unwrap();
        assert_eq!(
            time.timestamp_millis(),
            1_700_000_000_000 + i64::try_from(slot).unwrap() * 100
        );
        assert!(entry["slotTime"].as_str().unwrap().ends_with('Z'));
    }

    // A running sim with the same parameters serves the same schedule.
    let sim = Sim::start("sched", &strings(&["--leader-rate", "0.1"])).await;
    let (status, body) = sim.get("/sim/schedule?epoch=7").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), s);

    // Start-up errors exit 2.
    let output = run_to_exit(&["--name", "x", "--shelley-kes-key", "/tmp/kes"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let output = run_to_exit(&["--name", "x", "--slot-length-ms", "0"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[tokio::test]
async fn a_node_started_non_producing_forges_nothing() {
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = Keys::new(keys_dir.path());
    keys.place();
    let events = keys_dir.path().join("events.jsonl");
    let mut flags = keys.flags();
    flags.extend(strings(&[
        "--start-as-non-producing-node",
        "--leader-rate",
        "0.5",
        "--events",
        events.to_str().unwrap(),
    ]));
    let sim = Sim::start("standby", &flags).await;
    sim.logged(DISABLING).await;
    sim.synced().await;
    sim.wait_slots(20).await;
    assert!(read_events(&events).is_empty());
    let metrics = sim.metrics().await;
    assert!(
        !metrics.keys().any(|name| name.contains("Forge_")),
        "{metrics:?}"
    );
    let state = sim.state().await;
    assert_eq!(state["forging"], false);
    assert_eq!(state["counters"]["forged"], 0);
}

#[tokio::test]
async fn sighup_starts_then_stops_forging_on_the_schedule() {
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = Keys::new(keys_dir.path());
    let events = keys_dir.path().join("events.jsonl");
    let mut flags = keys.flags();
    flags.extend(strings(&[
        "--start-as-non-producing-node",
        "--leader-rate",
        "0.3",
        "--bootstrap-secs",
        "1.5",
        "--events",
        events.to_str().unwrap(),
    ]));
    let sim = Sim::start("hot-spare", &flags).await;
    assert_eq!(sim.logged(DISABLING).await, 1, "the boot line");

    // While replaying, SIGHUP is not effective.
    keys.place();
    sim.signal("-HUP");
    sim.logged(NOT_EFFECTIVE).await;
    assert_eq!(sim.state().await["forging"], false);

    sim.synced().await;
    let before = as_u64(&sim.state().await["wall_slot"]);
    sim.signal("-HUP");
    sim.logged(ENABLING).await;
    sim.logged("Performing topology configuration update").await;
    let line = sim
        .log_lines()
        .into_iter()
        .find(|line| line.contains(ENABLING))
        .unwrap();
    assert!(
        line.starts_with("[hot-spare:cardano.node.startup:Info:5] [") && line.contains(" UTC] "),
        "{line}"
    );
    poll("forging", WAIT, || async {
        (sim.state().await["forging"] == true).then_some(())
    })
    .await;
    poll("three forged blocks", WAIT, || async {
        (read_events(&events).len() >= 3).then_some(())
    })
    .await;

    // Every event is one of the pool's leader slots, after the SIGHUP, from this node.
    let forged = read_events(&events);
    let epochs: BTreeSet<u64> = forged.iter().map(|e| as_u64(&e["epoch"])).collect();
    let schedule = scheduled_slots(
        keys_dir.path(),
        &["--leader-rate", "0.3", "--slot-length-ms", "100"],
        &epochs,
    );
    let mut slots = BTreeSet::new();
    for event in &forged {
        let slot = as_u64(&event["slot"]);
        assert!(schedule.contains(&slot), "{event} is not a leader slot");
        assert!(slot >= before, "{event} before the SIGHUP (slot {before})");
        assert_eq!(event["node"], "hot-spare");
        assert_eq!(as_u64(&event["epoch"]), slot / 600);
        assert!(as_u64(&event["block"]) > 0);
        assert!(slots.insert(slot), "one event per slot: {event}");
    }
    // The counters agree with the file.
    poll("Forge_forged to match the events", WAIT, || async {
        let metrics = sim.metrics().await;
        (metric(&metrics, "cardano_node_metrics_Forge_forged_int") as usize
            == read_events(&events).len())
        .then_some(())
    })
    .await;

    // Files removed + SIGHUP: forging stops.
    keys.remove_kes();
    sim.signal("-HUP");
    poll("the second Disabling line", WAIT, || async {
        (sim.log_lines()
            .iter()
            .filter(|line| line.contains(DISABLING))
            .count()
            == 2)
            .then_some(())
    })
    .await;
    poll("forging to stop", WAIT, || async {
        (sim.state().await["forging"] == false).then_some(())
    })
    .await;
    let stopped_at = read_events(&events).len();
    sim.wait_slots(30).await;
    assert_eq!(
        read_events(&events).len(),
        stopped_at,
        "forged after forging stopped"
    );
    let state = sim.state().await;
    assert_eq!(state["last_reload"], "disabled");
    assert_eq!(as_u64(&state["sighups"]), 3);
}

#[tokio::test]
async fn two_forging_sims_forge_the_same_slots() {
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = Keys::new(keys_dir.path());
    keys.place();
    let events = keys_dir.path().join("events.jsonl");
    let mut flags = keys.flags();
    flags.extend(strings(&[
        "--leader-rate",
        "0.3",
        "--events",
        events.to_str().unwrap(),
    ]));
    let a = Sim::start("bp-a", &flags).await;
    let b = Sim::start("bp-b", &flags).await;
    a.logged(ENABLING).await;
    b.logged(ENABLING).await;
    let (slot, nodes) = poll("two nodes to forge one slot", WAIT, || async {
        let mut by_slot: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
        for event in read_events(&events) {
            by_slot
                .entry(as_u64(&event["slot"]))
                .or_default()
                .insert(event["node"].as_str().unwrap().to_string());
        }
        by_slot.into_iter().find(|(_, nodes)| nodes.len() == 2)
    })
    .await;
    assert_eq!(
        nodes,
        BTreeSet::from(["bp-a".to_string(), "bp-b".to_string()]),
        "slot {slot}"
    );
}

#[tokio::test]
async fn ignore_sighup_keeps_forging() {
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = Keys::new(keys_dir.path());
    keys.place();
    let events = keys_dir.path().join("events.jsonl");
    let control = keys_dir.path().join("control");
    std::fs::write(&control, "ignore-sighup\n").unwrap();
    let mut flags = keys.flags();
    flags.extend(strings(&[
        "--leader-rate",
        "0.3",
        "--events",
        events.to_str().unwrap(),
        "--control",
        control.to_str().unwrap(),
    ]));
    let sim = Sim::start("deaf", &flags).await;
    sim.synced().await;
    assert_eq!(sim.state().await["fault"], "ignore-sighup");
    keys.remove_kes();
    sim.signal("-HUP");
    poll("the SIGHUP to arrive", WAIT, || async {
        (as_u64(&sim.state().await["sighups"]) == 1).then_some(())
    })
    .await;
    assert_eq!(sim.state().await["forging"], true);
    let count = read_events(&events).len();
    poll("more blocks after the ignored SIGHUP", WAIT, || async {
        (read_events(&events).len() >= count + 2).then_some(())
    })
    .await;
    assert_eq!(
        sim.log_lines()
            .iter()
            .filter(|line| line.contains("block forging reconfiguration"))
            .count(),
        1,
        "only the boot line: {:?}",
        sim.log_lines()
    );
    // Cleared, the next SIGHUP works.
    std::fs::write(&control, "none\n").unwrap();
    poll("the fault to clear", WAIT, || async {
        (sim.state().await["fault"] == "none").then_some(())
    })
    .await;
    sim.signal("-HUP");
    sim.logged(DISABLING).await;
    assert_eq!(sim.state().await["forging"], false);
}

#[tokio::test]
async fn hang_and_slow_leave_sim_answering() {
    let sim = Sim::start("hung", &[]).await;
    sim.synced().await;
    sim.fault(json!({"fault": "hang"})).await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let hung = quick.get(format!("{}/metrics", sim.base)).send().await;
    assert!(
        hung.is_err_and(|error| error.is_timeout()),
        "metrics answered under hang"
    );
    let state = sim.state().await;
    assert_eq!(state["fault"], "hang");

    sim.fault(json!({"fault": "slow", "delay_ms": 400})).await;
    let started = Instant::now();
    let metrics = sim.metrics().await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(metrics.contains_key("cardano_node_metrics_slotNum_int"));
    let started = Instant::now();
    sim.state().await;
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "/sim is never slowed"
    );

    sim.fault(json!({"fault": "none"})).await;
    let started = Instant::now();
    sim.metrics().await;
    assert!(started.elapsed() < Duration::from_millis(400));
}

#[tokio::test]
async fn stuck_lag_bootstrap_crash_and_sigterm() {
    let mut sim = Sim::start("faulty", &[]).await;
    sim.synced().await;

    sim.fault(json!({"fault": "stuck"})).await;
    let frozen = metric(&sim.metrics().await, "cardano_node_metrics_slotNum_int");
    sim.wait_slots(45).await;
    assert_eq!(
        metric(&sim.metrics().await, "cardano_node_metrics_slotNum_int"),
        frozen
    );

    sim.fault(json!({"fault": "lag", "slots": 200})).await;
    let metrics = sim.metrics().await;
    let wall = as_u64(&sim.state().await["wall_slot"]);
    let slot = metric(&metrics, "cardano_node_metrics_slotNum_int");
    assert!(
        slot + 200 <= wall && wall - slot < 245,
        "slot {slot}, wall {wall}"
    );

    sim.fault(json!({"fault": "bootstrap"})).await;
    assert_eq!(
        metric(&sim.metrics().await, "cardano_node_metrics_slotNum_int"),
        0
    );
    assert_eq!(sim.state().await["state"], "replaying");

    sim.fault(json!({"fault": "none"})).await;
    let wall = as_u64(&sim.state().await["wall_slot"]);
    let slot = metric(&sim.metrics().await, "cardano_node_metrics_slotNum_int");
    assert!(
        slot <= wall + 1 && wall - slot < 45,
        "recovered: slot {slot}, wall {wall}"
    );

    sim.fault(json!({"fault": "crash"})).await;
    assert_eq!(sim.exit_status(WAIT).await.code(), Some(1));

    let mut sim = Sim::start("terminated", &[]).await;
    sim.synced().await;
    sim.fault(json!({"fault": "hang"})).await;
    // A hung request must not hold up shutdown.
    let base = sim.base.clone();
    tokio::spawn(async move {
        let _ = reqwest::get(format!("{base}/metrics")).await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    sim.signal("-TERM");
    assert_eq!(
        sim.exit_status(Duration::from_secs(2)).await.code(),
        Some(0)
    );

    let mut sim = Sim::start("interrupted", &[]).await;
    sim.signal("-INT");
    assert_eq!(
        sim.exit_status(Duration::from_secs(2)).await.code(),
        Some(0)
    );
}

#[tokio::test]
async fn kes_metrics_follow_the_certificate() {
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = Keys::new(keys_dir.path());
    keys.place();
    // 50 slots (5 s) per KES period, 3 evolutions.
    let kes = ["--slots-per-kes-period", "50", "--max-kes-evolutions", "3"];
    let mut flags = keys.flags();
    flags.extend(strings(&kes));
    let fresh = Sim::start("kes-fresh", &flags).await;
    let metrics = fresh.synced().await;
    let start = metric(
        &metrics,
        "cardano_node_metrics_operationalCertificateStartKESPeriod_int",
    );
    let current = metric(&metrics, "cardano_node_metrics_currentKESPeriod_int");
    assert_eq!(
        metric(
            &metrics,
            "cardano_node_metrics_operationalCertificateExpiryKESPeriod_int"
        ),
        start + 3
    );
    assert_eq!(
        metric(&metrics, "cardano_node_metrics_remainingKESPeriods_int"),
        start + 3 - current
    );
    assert!((start..=start + 1).contains(&current));
    let wall = as_u64(&fresh.state().await["wall_slot"]);
    assert!(wall / 50 >= current && wall / 50 <= current + 1);

    // A certificate whose periods are over: remaining 0, and the node cannot forge.
    let events = keys_dir.path().join("events.jsonl");
    let expired_at = (current.saturating_sub(3)).to_string();
    let mut flags = keys.flags();
    flags.extend(strings(&kes));
    flags.extend(strings(&[
        "--opcert-kes-period",
        &expired_at,
        "--leader-rate",
        "0.5",
        "--events",
        events.to_str().unwrap(),
    ]));
    let expired = Sim::start("kes-expired", &flags).await;
    let metrics = expired.synced().await;
    assert_eq!(
        metric(&metrics, "cardano_node_metrics_remainingKESPeriods_int"),
        0
    );
    poll("missed leader slots", WAIT, || async {
        (metric(
            &expired.metrics().await,
            "cardano_node_metrics_slotsMissedNum_int",
        ) >= 3)
            .then_some(())
    })
    .await;
    assert!(read_events(&events).is_empty());
    assert_eq!(
        metric(
            &expired.metrics().await,
            "cardano_node_metrics_Forge_forged_int"
        ),
        0
    );
}
