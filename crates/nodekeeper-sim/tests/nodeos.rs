//! Integration tests of the nodeos simulator over real HTTP: the built `nodekeeper-sim --chain nodeos` binary,
//! started on `127.0.0.1:0` with a 0.3 s boot. Every wait polls a condition against a deadline; dropping a [`Sim`]
//! kills its process, so a failing test leaves nothing behind.

// Real processes, real time: some waits here are measured with the std clock.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

const SIM: &str = env!("CARGO_BIN_EXE_nodekeeper-sim");
/// Deadline of a single wait.
const WAIT: Duration = Duration::from_secs(10);
const DIRTY: &str = "database dirty flag set (likely due to unclean shutdown): replay required";

/// One running simulator process.
struct Sim {
    name: String,
    child: Child,
    base: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

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

/// The sim's command line: `--chain nodeos --name NAME --listen 127.0.0.1:0` (+ a 0.3 s boot unless given).
fn command(name: &str, extra: &[&str]) -> Command {
    let mut args = vec![
        "--chain",
        "nodeos",
        "--name",
        name,
        "--listen",
        "127.0.0.1:0",
    ];
    if !extra.contains(&"--bootstrap-secs") {
        args.extend(["--bootstrap-secs", "0.3"]);
    }
    let mut command = Command::new(SIM);
    command
        .args(args)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

impl Sim {
    /// Starts a simulator called `name` with `extra` flags; waits for its `listening on` line.
    async fn start(name: &str, extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr log");
        let mut child = command(name, extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn nodekeeper-sim");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        tokio::time::timeout(WAIT, BufReader::new(stdout).read_line(&mut first))
            .await
            .expect("sim printed no address in time")
            .expect("read sim stdout");
        let address = match first.trim().strip_prefix("listening on ") {
            Some(address) => address.to_string(),
            None => {
                let stderr =
                    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
                panic!("sim {name}: unexpected first line {first:?}; stderr: {stderr}");
            }
        };
        Sim {
            name: name.to_string(),
            child,
            base: format!("http://{address}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .expect("http client"),
            dir,
        }
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> reqwest::Result<(u16, String)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        self.request(reqwest::Method::GET, path, None)
            .await
            .unwrap_or_else(|error| panic!("GET {path} on {}: {error}", self.name))
    }

    async fn post(&self, path: &str, body: &str) -> (u16, String) {
        self.request(reqwest::Method::POST, path, Some(body))
            .await
            .unwrap_or_else(|error| panic!("POST {path} on {}: {error}", self.name))
    }

    async fn post_json(&self, path: &str) -> Value {
        let (status, body) = self.post(path, "").await;
        assert_eq!(status, 200, "POST {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("POST {path}: {error}: {body}"))
    }

    async fn info(&self) -> Value {
        self.post_json("/v1/chain/get_info").await
    }

    async fn state(&self) -> Value {
        let (status, body) = self.get("/sim/state").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("state json")
    }

    async fn fault(&self, fault: Value) {
        let (status, body) = self.post("/sim/fault", &fault.to_string()).await;
        assert_eq!(status, 200, "POST /sim/fault {fault}: {body}");
    }

    /// Waits until the node is in sync; returns its state.
    async fn in_sync(&self) -> Value {
        poll("in sync", WAIT, || async {
            let state = self.state().await;
            (state["state"] == "in-sync").then_some(state)
        })
        .await
    }

    /// `POST /v1/producer/{call}`: must be 201.
    async fn producer(&self, call: &str) -> String {
        let (status, body) = self.post(&format!("/v1/producer/{call}"), "").await;
        assert_eq!(status, 201, "/v1/producer/{call}: {body}");
        body
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    async fn exit_status(&mut self, timeout: Duration) -> ExitStatus {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit in time", self.name))
            .expect("wait for the sim")
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("sim still running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success());
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

fn as_u64(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a u64: {value}"))
}

/// Parses a nodeos time (`2019-02-22T03:01:04.500`, UTC, no zone), checking the exact format.
fn parse_nodeos_time(text: &str) -> chrono::DateTime<chrono::Utc> {
    assert_eq!(text.len(), 23, "{text}");
    assert!(!text.ends_with('Z') && !text.contains('+'), "{text}");
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.3f")
        .unwrap_or_else(|error| panic!("{text}: {error}"))
        .and_utc()
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

fn events_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("events.jsonl")
}

#[tokio::test]
async fn get_info_has_the_nodeos_shapes_and_time_format() {
    let sim = Sim::start("info", &["--bootstrap-secs", "3"]).await;

    // Syncing: answering, but the head is far behind the clock.
    let info = sim.info().await;
    let drift = chrono::Utc::now() - parse_nodeos_time(info["head_block_time"].as_str().unwrap());
    assert!(drift > chrono::TimeDelta::minutes(10), "{info}");
    assert_eq!(sim.state().await["state"], "syncing");

    sim.in_sync().await;
    let info = sim.info().await;
    let head = as_u64(&info["head_block_num"]);
    let lib = as_u64(&info["last_irreversible_block_num"]);
    assert_eq!(head - lib, 3, "{info}");
    assert_eq!(as_u64(&info["fork_db_head_block_num"]), head);
    let head_time = parse_nodeos_time(info["head_block_time"].as_str().unwrap());
    let drift = chrono::Utc::now() - head_time;
    assert!(
        drift >= chrono::TimeDelta::zero() && drift < chrono::TimeDelta::seconds(3),
        "drift {drift} {info}"
    );
    // Block n's time is genesis + n x 0.5 s.
    assert_eq!(
        head_time.timestamp_millis(),
        1_700_000_000_000 + 500 * i64::try_from(head).unwrap()
    );
    parse_nodeos_time(info["last_irreversible_block_time"].as_str().unwrap());
    for (id, num) in [("head_block_id", head), ("last_irreversible_block_id", lib)] {
        let id = info[id].as_str().unwrap();
        assert_eq!(id.len(), 64, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(&id[..8], format!("{num:08x}"), "{id}");
    }
    assert_eq!(info["fork_db_head_block_id"], info["head_block_id"]);
    assert_eq!(info["chain_id"].as_str().unwrap().len(), 64);
    assert_eq!(info["server_version"].as_str().unwrap().len(), 8);
    assert_eq!(info["server_version_string"], "v1.2.2");
    let commit = info["server_version"].as_str().unwrap();
    let full = info["server_full_version_string"].as_str().unwrap();
    assert_eq!(full.len(), "v1.2.2-".len() + 40, "{full}");
    assert!(full.starts_with(&format!("v1.2.2-{commit}")), "{full}");
    for field in [
        "virtual_block_cpu_limit",
        "virtual_block_net_limit",
        "block_cpu_limit",
        "block_net_limit",
        "earliest_available_block_num",
    ] {
        assert!(info[field].is_u64(), "{field}: {info}");
    }
    // 4 default producers x 12 blocks.
    let producers = ["eosnationftw", "nodekeeper", "eosphereiobp", "teamgreymass"];
    assert_eq!(
        info["head_block_producer"],
        producers[usize::try_from((head / 12) % 4).unwrap()]
    );

    // GET works too, and a parameter on a call without parameters is nodeos's 400.
    let (status, body) = sim.get("/v1/chain/get_info").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = sim.post("/v1/chain/get_info", r#"{"x":1}"#).await;
    assert_eq!(status, 400, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["code"], 400);
    assert_eq!(
        error["error"]["details"][0]["message"],
        "no parameter should be given"
    );
    assert_eq!(error["message"], "Invalid Request");
    assert_eq!(error["error"]["name"], "invalid_http_request");
    let (status, body) = sim.post("/v1/chain/get_info", "{ }").await;
    assert_eq!(status, 200, "{body}");

    let schedule = sim.post_json("/v1/chain/get_producer_schedule").await;
    assert!(schedule["pending"].is_null() && schedule["proposed"].is_null());
    assert!(schedule["active"]["version"].is_u64());
    let active = schedule["active"]["producers"].as_array().unwrap();
    let names: Vec<&str> = active
        .iter()
        .map(|p| p["producer_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, producers);
    let authority = &active[0]["authority"];
    assert_eq!(authority[0], 0, "{authority}");
    assert_eq!(authority[1]["threshold"], 1);
    assert_eq!(authority[1]["keys"][0]["weight"], 1);
    assert!(
        authority[1]["keys"][0]["key"]
            .as_str()
            .unwrap()
            .starts_with("EOS")
    );

    let (status, body) = sim.post("/v1/chain/no_such_call", "").await;
    assert_eq!(status, 404);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["code"], 404);
    assert_eq!(error["message"], "Not Found");
    assert_eq!(error["error"]["name"], "exception");
    assert_eq!(error["error"]["details"][0]["message"], "Unknown Endpoint");
}

#[tokio::test]
async fn sims_started_apart_agree_on_head_and_producer() {
    let first = Sim::start("agree-a", &["--seed", "7"]).await;
    first.in_sync().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = Sim::start("agree-b", &["--seed", "7"]).await;
    second.in_sync().await;
    let other = Sim::start("agree-c", &["--seed", "8"]).await;
    // Poll until both answer within the same block (a boundary may fall between the two requests).
    let (a, b) = poll("one block", WAIT, || async {
        let (a, b) = tokio::join!(first.info(), second.info());
        (a["head_block_num"] == b["head_block_num"]).then_some((a, b))
    })
    .await;
    for field in [
        "chain_id",
        "head_block_id",
        "head_block_time",
        "head_block_producer",
        "last_irreversible_block_id",
    ] {
        assert_eq!(a[field], b[field], "{field}: {a} vs {b}");
    }
    assert_ne!(other.info().await["chain_id"], a["chain_id"]);
}

#[tokio::test]
async fn pause_resume_and_paused_answer_like_producer_api_plugin() {
    let standby = Sim::start("standby", &["--pause-on-startup"]).await;
    assert_eq!(standby.producer("paused").await, "true");
    // GET and POST alike.
    assert_eq!(
        standby.get("/v1/producer/paused").await,
        (201, "true".to_string())
    );
    assert_eq!(standby.producer("resume").await, r#"{"result":"ok"}"#);
    assert_eq!(standby.producer("paused").await, "false");
    assert_eq!(standby.state().await["paused"], false);
    assert_eq!(standby.producer("pause").await, r#"{"result":"ok"}"#);
    assert_eq!(standby.producer("paused").await, "true");
    let (status, _) = standby.post("/v1/producer/pause", r#"{"x":1}"#).await;
    assert_eq!(status, 400);

    let active = Sim::start("active", &[]).await;
    assert_eq!(active.producer("paused").await, "false");
}

/// Fast blocks and a two-producer schedule: our turn is 12 of every 24 blocks (0.6 s of each 1.2 s).
const FAST: [&str; 6] = [
    "--block-interval-ms",
    "50",
    "--producers",
    "nodekeeper,someoneelse",
    "--producer",
    "nodekeeper",
];

fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(extra).copied().collect()
}

#[tokio::test]
async fn an_unpaused_node_records_only_its_producers_blocks_and_a_paused_one_none() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (
        dir.path().join("ours.jsonl"),
        dir.path().join("paused.jsonl"),
    );
    let producing = Sim::start(
        "producing",
        &with(&FAST, &["--events", ours.to_str().unwrap()]),
    )
    .await;
    let paused = Sim::start(
        "paused",
        &with(
            &FAST,
            &["--events", theirs.to_str().unwrap(), "--pause-on-startup"],
        ),
    )
    .await;
    let start = as_u64(&paused.in_sync().await["chain_head_block_num"]);
    let events = poll("two turns of events", WAIT, || async {
        let events = read_events(&ours);
        (events.len() >= 24).then_some(events)
    })
    .await;
    let mut previous = 0;
    for event in &events {
        let n = as_u64(&event["block_num"]);
        assert_eq!((n / 12) % 2, 0, "block {n} is not our turn: {event}");
        assert!(n > previous, "{event}");
        previous = n;
        assert_eq!(event["producer"], "nodekeeper");
        assert_eq!(event["node"], "producing");
        assert_eq!(as_u64(&event["round"]), n / 24);
        let time = parse_nodeos_time(event["time"].as_str().unwrap());
        assert_eq!(
            time.timestamp_millis(),
            1_700_000_000_000 + 50 * i64::try_from(n).unwrap()
        );
    }
    assert!(as_u64(&producing.state().await["blocks_made"]) >= 24);
    // A full round has passed since the paused node was in sync: it made none.
    let state = paused.state().await;
    assert!(
        as_u64(&state["chain_head_block_num"]) >= start + 24,
        "{state}"
    );
    assert_eq!(state["blocks_made"], 0);
    assert!(read_events(&theirs).is_empty());
}

#[tokio::test]
async fn two_unpaused_nodes_produce_the_same_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let events = events_path(&dir);
    let extra = with(&FAST, &["--events", events.to_str().unwrap()]);
    let (a, b) = tokio::join!(Sim::start("twin-a", &extra), Sim::start("twin-b", &extra));
    tokio::join!(a.in_sync(), b.in_sync());
    let duplicated = poll("a block produced twice", WAIT, || async {
        let mut by_block: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for event in read_events(&events) {
            by_block
                .entry(as_u64(&event["block_num"]))
                .or_default()
                .push(event["node"].as_str().unwrap().to_string());
        }
        by_block.into_iter().find(|(_, nodes)| nodes.len() == 2)
    })
    .await;
    let (block, mut nodes) = duplicated;
    nodes.sort();
    assert_eq!(nodes, ["twin-a", "twin-b"], "block {block}");
}

#[tokio::test]
async fn refuse_pause_answers_ok_but_keeps_producing() {
    let dir = tempfile::tempdir().unwrap();
    let events = events_path(&dir);
    let sim = Sim::start(
        "refuser",
        &with(&FAST, &["--events", events.to_str().unwrap()]),
    )
    .await;
    sim.in_sync().await;
    sim.fault(json!({"fault": "refuse-pause"})).await;
    assert_eq!(sim.producer("pause").await, r#"{"result":"ok"}"#);
    assert_eq!(sim.producer("paused").await, "false");
    let after = read_events(&events).len();
    poll("production after a refused pause", WAIT, || async {
        (read_events(&events).len() > after).then_some(())
    })
    .await;

    // Once the fault is gone, pause works and production stops.
    sim.fault(json!({"fault": "none"})).await;
    assert_eq!(sim.producer("pause").await, r#"{"result":"ok"}"#);
    assert_eq!(sim.producer("paused").await, "true");
    let stopped = read_events(&events).len();
    let head = as_u64(&sim.state().await["chain_head_block_num"]);
    poll("a full round", WAIT, || async {
        (as_u64(&sim.state().await["chain_head_block_num"]) >= head + 25).then_some(())
    })
    .await;
    assert_eq!(read_events(&events).len(), stopped);
}

#[tokio::test]
async fn dirty_db_exits_2_and_stays_dirty_until_the_marker_is_removed() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let mut sim = Sim::start("dirty", &["--data-dir", data_dir]).await;
    sim.fault(json!({"fault": "dirty-db"})).await;
    assert_eq!(sim.exit_status(WAIT).await.code(), Some(2));
    assert!(sim.stderr().contains(DIRTY), "{}", sim.stderr());

    // Every later start exits 2 with the message, before listening.
    for _ in 0..2 {
        let output = tokio::time::timeout(
            WAIT,
            command("dirty", &["--data-dir", data_dir])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output(),
        )
        .await
        .expect("a dirty start exits at once")
        .expect("run the sim");
        assert_eq!(output.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&output.stderr).contains(DIRTY));
        assert!(output.stdout.is_empty());
    }

    // Restored: the marker is gone and the node starts.
    std::fs::remove_dir_all(data.path().join("state")).unwrap();
    let sim = Sim::start("dirty", &["--data-dir", data_dir]).await;
    sim.info().await;

    // Without a data directory, the exit happens but nothing persists.
    let mut bare = Sim::start("bare", &[]).await;
    bare.fault(json!({"fault": "dirty-db"})).await;
    assert_eq!(bare.exit_status(WAIT).await.code(), Some(2));
    Sim::start("bare", &[]).await.info().await;
}

#[tokio::test]
async fn hang_leaves_sim_answering_and_sigterm_still_exits_0() {
    let mut sim = Sim::start("hung", &[]).await;
    sim.in_sync().await;
    sim.fault(json!({"fault": "hang"})).await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    for path in ["/v1/chain/get_info", "/v1/producer/paused", "/v1/nope"] {
        let result = quick.post(format!("{}{path}", sim.base)).send().await;
        assert!(result.is_err_and(|e| e.is_timeout()), "{path} answered");
    }
    assert_eq!(sim.state().await["fault"], "hang");
    sim.fault(json!({"fault": "none"})).await;
    sim.info().await;

    // A request hanging at the moment of SIGTERM does not hold the exit up.
    sim.fault(json!({"fault": "hang"})).await;
    let pending = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{}/v1/chain/get_info", sim.base))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    sim.signal("-TERM");
    assert_eq!(
        sim.exit_status(Duration::from_secs(3)).await.code(),
        Some(0)
    );
    pending.abort();
}

#[tokio::test]
async fn without_the_producer_api_its_routes_are_404() {
    let sim = Sim::start("noapi", &["--no-producer-api"]).await;
    for call in ["pause", "resume", "paused"] {
        let (status, body) = sim.post(&format!("/v1/producer/{call}"), "").await;
        assert_eq!(status, 404, "{call}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["details"][0]["message"], "Unknown Endpoint");
    }
    sim.info().await;
    assert_eq!(sim.state().await["producer_api"], false);
}

#[tokio::test]
async fn faults_shape_the_head_and_crash_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control");
    let mut sim = Sim::start("faulty", &["--control", control.to_str().unwrap()]).await;
    sim.in_sync().await;

    std::fs::write(&control, "lag 5\n").unwrap();
    let state = poll("lag from the control file", WAIT, || async {
        let state = sim.state().await;
        (state["fault"] == "lag 5").then_some(state)
    })
    .await;
    assert_eq!(
        as_u64(&state["head_block_num"]) + 5,
        as_u64(&state["chain_head_block_num"])
    );

    sim.fault(json!({"fault": "stuck"})).await;
    let frozen = as_u64(&sim.info().await["head_block_num"]);
    poll("three blocks", WAIT, || async {
        (as_u64(&sim.state().await["chain_head_block_num"]) >= frozen + 3).then_some(())
    })
    .await;
    assert_eq!(as_u64(&sim.info().await["head_block_num"]), frozen);

    sim.fault(json!({"fault": "bootstrap"})).await;
    assert_eq!(sim.state().await["state"], "syncing");
    sim.fault(json!({"fault": "none"})).await;
    sim.in_sync().await;

    let started = Instant::now();
    sim.fault(json!({"fault": "slow", "delay_ms": 400})).await;
    sim.info().await;
    assert!(started.elapsed() >= Duration::from_millis(400));

    sim.fault(json!({"fault": "crash"})).await;
    assert_eq!(sim.exit_status(WAIT).await.code(), Some(1));
}

#[tokio::test]
async fn bad_flags_exit_2() {
    for extra in [
        &["--producers", "Not-A-Name"][..],
        &["--block-interval-ms", "0"],
        &["--chain-id", "xyz"],
    ] {
        let output = command("bad", extra).output().await.expect("run the sim");
        assert_eq!(output.status.code(), Some(2), "{extra:?}");
    }
}
