//! Integration tests of the node simulator over real HTTP: the built `nodekeeper-sim` binary, started on
//! `127.0.0.1:0`, with 1 s slots and a 0.3 s boot. Every wait polls a condition against a deadline; dropping a
//! [`Sim`] kills its process, so a failing test leaves nothing behind.
//!
//! The simulator's single integration-test binary (`cargo test -p nodekeeper-sim`); building it
//! also builds the `nodekeeper-sim` binary that nodekeeper's own integration tests spawn.

// Real processes, real time: some waits here are measured with the std clock.
#![allow(clippy::disallowed_types)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

const SIM: &str = env!("CARGO_BIN_EXE_nodekeeper-sim");
const SECRET_YAML: &str = "genesis:\n  sig_key: kes25519-12-sk1test\n  vrf_key: vrf_sk1test\n  node_id: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
/// Deadline of a single wait.
const WAIT: Duration = Duration::from_secs(8);

/// One running simulator process.
struct Sim {
    name: String,
    child: Child,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
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

impl Sim {
    /// Starts a simulator called `name` with `extra` flags; waits for its `listening on` line.
    async fn start(name: &str, extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr log");
        let mut args = vec!["--name", name, "--listen", "127.0.0.1:0"];
        if !extra.contains(&"--bootstrap-secs") {
            args.extend(["--bootstrap-secs", "0.3"]);
        }
        let mut child = Command::new(SIM)
            .args(args)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
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
            _dir: dir,
        }
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> reqwest::Result<(u16, String)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    /// `GET path` → (status, body); panics on transport errors.
    async fn get(&self, path: &str) -> (u16, String) {
        self.request(reqwest::Method::GET, path, None)
            .await
            .unwrap_or_else(|error| panic!("GET {path} on {}: {error}", self.name))
    }

    async fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {path}: {error}: {body}"))
    }

    async fn post(&self, path: &str, body: &str) -> (u16, String) {
        self.request(reqwest::Method::POST, path, Some(body.to_string()))
            .await
            .unwrap_or_else(|error| panic!("POST {path} on {}: {error}", self.name))
    }

    async fn delete(&self, path: &str) -> (u16, String) {
        self.request(reqwest::Method::DELETE, path, None)
            .await
            .unwrap_or_else(|error| panic!("DELETE {path} on {}: {error}", self.name))
    }

    async fn fault(&self, fault: Value) {
        let (status, body) = self.post("/sim/fault", &fault.to_string()).await;
        assert_eq!(status, 200, "POST /sim/fault {fault}: {body}");
    }

    async fn state(&self) -> Value {
        self.get_json("/sim/state").await
    }

    async fn stats(&self) -> Value {
        self.get_json("/api/v0/node/stats").await
    }

    /// Waits until the node is `Running` and returns its stats.
    async fn running(&self) -> Value {
        poll("Running", WAIT, || async {
            let stats = self.stats().await;
            (stats["state"] == "Running").then_some(stats)
        })
        .await
    }

    /// The node's height and the chain's height, from one `/sim/state` answer.
    async fn heights(&self) -> (u64, u64) {
        let state = self.state().await;
        (as_u64(&state["height"]), as_u64(&state["chain_height"]))
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

/// The `lastBlockHeight` of Running stats, which must be a string.
fn stats_height(stats: &Value) -> u64 {
    let text = stats["lastBlockHeight"]
        .as_str()
        .unwrap_or_else(|| panic!("lastBlockHeight is not a string: {stats}"));
    text.parse()
        .unwrap_or_else(|_| panic!("lastBlockHeight not a number: {text}"))
}

fn write_secret(dir: &Path) -> PathBuf {
    let path = dir.join("secret.yaml");
    std::fs::write(&path, SECRET_YAML).expect("write secret");
    path
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

#[tokio::test]
async fn boots_then_runs_with_the_reference_shapes() {
    let sim = Sim::start("boot", &["--bootstrap-secs", "1.5"]).await;

    // While booting: only state and version, and the full-context routes refuse.
    let boot = sim.stats().await;
    let state = boot["state"].as_str().expect("state string");
    assert_ne!(state, "Running", "{boot}");
    assert_eq!(boot.as_object().map(|o| o.len()), Some(2), "{boot}");
    assert_eq!(boot["version"], "jormungandr 0.9.0-sim");
    assert_eq!(sim.get("/api/v0/leaders").await.0, 503);

    let stats = sim.running().await;
    let height = stats_height(&stats);
    let date = stats["lastBlockDate"].as_str().expect("date string");
    let (epoch, slot) = date.split_once('.').expect("E.S date");
    assert_eq!(
        epoch.parse::<u64>().unwrap() * 60 + slot.parse::<u64>().unwrap(),
        height
    );
    let hash = stats["lastBlockHash"].as_str().expect("hash string");
    assert_eq!(hash.len(), 64);
    assert!(stats["lastBlockTime"].as_str().unwrap().ends_with("+00:00"));
    assert!(stats.get("nodeId").is_none());
    assert!(stats["uptime"].is_u64());

    let settings = sim.get_json("/api/v0/settings").await;
    assert_eq!(settings["slotDuration"], 1);
    assert_eq!(settings["slotsPerEpoch"], 60);
    assert_eq!(settings["consensusVersion"], "genesis");
    assert_eq!(settings["block0Time"], "2023-11-14T22:13:20+00:00");

    // The tip block carries the header layout PoolTool clients read.
    let (status, tip) = sim.get("/api/v0/tip").await;
    assert_eq!(status, 200);
    let response = sim
        .http
        .get(format!("{}/api/v0/block/{tip}", sim.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let bytes = response.bytes().await.unwrap();
    let be32 = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    let tip_height = u64::from(be32(16));
    assert!(tip_height >= height);
    assert_eq!(u64::from(be32(8)) * 60 + u64::from(be32(12)), tip_height);
    assert_eq!(
        sim.get(&format!("/api/v0/block/{}", "ab".repeat(32)))
            .await
            .0,
        404
    );

    let peers = sim.get_json("/api/v0/network/stats").await;
    assert!(
        peers
            .as_array()
            .is_some_and(|p| !p.is_empty() && p[0]["nodeId"].is_string())
    );
    assert_eq!(sim.get("/api/v0/no/such/route").await.0, 404);
}

#[tokio::test]
async fn sims_started_apart_agree_and_faults_shape_heights() {
    let first = Sim::start("agree-a", &[]).await;
    first.running().await;
    let second = Sim::start("agree-b", &[]).await;
    second.running().await;
    let (a, b) = tokio::join!(first.stats(), second.stats());
    assert!(
        stats_height(&a).abs_diff(stats_height(&b)) <= 1,
        "{a} vs {b}"
    );

    // Three more sims with one fault each, observed concurrently.
    let (stuck, lagging, forked) = tokio::join!(
        Sim::start("stuck", &[]),
        Sim::start("lag", &[]),
        Sim::start("fork", &[])
    );
    tokio::join!(stuck.running(), lagging.running(), forked.running());
    tokio::join!(
        stuck.fault(json!({"fault": "stuck"})),
        lagging.fault(json!({"fault": "lag", "blocks": 5})),
        forked.fault(json!({"fault": "fork"}))
    );
    let frozen = stats_height(&stuck.stats().await);
    let (lag_height, chain) = lagging.heights().await;
    assert_eq!(lag_height + 5, chain);

    let stuck_check = async {
        // More than two slots pass and the height does not move.
        poll("three slots", WAIT, || async {
            (stuck.heights().await.1 >= frozen + 3).then_some(())
        })
        .await;
        let stats = stuck.stats().await;
        assert_eq!(stats_height(&stats), frozen);
        assert_eq!(stats["state"], "Running");
        stuck.fault(json!({"fault": "none"})).await;
        let (height, chain) = stuck.heights().await;
        assert_eq!(height, chain);
    };
    let fork_check = async {
        // The fork falls behind, and its tip is a block of its own, which the healthy node does not know.
        poll(
            "the fork to fall 2 blocks behind on its own branch",
            WAIT,
            || async {
                let (forked_stats, healthy_stats) = tokio::join!(forked.stats(), first.stats());
                let (f, h) = (stats_height(&forked_stats), stats_height(&healthy_stats));
                let hash = forked_stats["lastBlockHash"].as_str().unwrap();
                let known = first.get(&format!("/api/v0/block/{hash}")).await.0 == 200;
                (h >= f + 2 && !known).then_some(())
            },
        )
        .await;
        let hash = forked.get("/api/v0/tip").await.1;
        assert_eq!(forked.get(&format!("/api/v0/block/{hash}")).await.0, 200);
    };
    tokio::join!(stuck_check, fork_check);
    let lag_stats = lagging.stats().await;
    let (_, chain) = lagging.heights().await;
    assert!(chain - stats_height(&lag_stats) >= 4, "{lag_stats}");
}

#[tokio::test]
async fn hang_slow_bootstrap_and_crash_are_observable() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control");
    let boot_args = ["--control", control.to_str().unwrap()];
    let (hang, slow, boot, mut crash) = tokio::join!(
        Sim::start("hang", &[]),
        Sim::start("slow", &[]),
        Sim::start("bootstrap", &boot_args),
        Sim::start("crash", &[])
    );
    tokio::join!(
        hang.running(),
        slow.running(),
        boot.running(),
        crash.running()
    );

    let hang_check = async {
        hang.fault(json!({"fault": "hang"})).await;
        let quick = reqwest::Client::builder()
            .timeout(Duration::from_millis(700))
            .build()
            .unwrap();
        let error = quick
            .get(format!("{}/api/v0/node/stats", hang.base))
            .send()
            .await
            .expect_err("a hung node must not answer");
        assert!(error.is_timeout(), "{error}");
        assert_eq!(hang.state().await["fault"], "hang");
        hang.fault(json!({"fault": "none"})).await;
        assert_eq!(hang.stats().await["state"], "Running");
    };
    let slow_check = async {
        slow.fault(json!({"fault": "slow", "delay_ms": 600})).await;
        let started = Instant::now();
        slow.stats().await;
        assert!(started.elapsed() >= Duration::from_millis(600));
        let started = Instant::now();
        slow.state().await;
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "/sim is never slowed"
        );
    };
    let bootstrap_check = async {
        std::fs::write(&control, "bootstrap\n").unwrap();
        let stats = poll("Bootstrapping", WAIT, || async {
            let stats = boot.stats().await;
            (stats["state"] == "Bootstrapping").then_some(stats)
        })
        .await;
        assert_eq!(stats.as_object().map(|o| o.len()), Some(2), "{stats}");
        assert_eq!(boot.get("/api/v0/leaders/logs").await.0, 503);
        // Garbage in the control file is ignored: the fault stays.
        std::fs::write(&control, "explode 3\n").unwrap();
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(boot.state().await["fault"], "bootstrap");
        std::fs::remove_file(&control).unwrap();
        boot.running().await;
    };
    let crash_check = async {
        crash.fault(json!({"fault": "crash"})).await;
        let status = crash.exit_status(WAIT).await;
        assert_eq!(status.code(), Some(1));
    };
    tokio::join!(hang_check, slow_check, bootstrap_check, crash_check);
}

/// `--data-dir`: created, its `blocks.log` grows with the chain; `corrupt-db` (by the control file or over
/// HTTP) exits 1 leaving the marker, and every later start exits 1 with the database's error line until the
/// marker is gone.
#[tokio::test]
async fn the_data_dir_grows_and_a_corrupt_database_will_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let control = dir.path().join("control");
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--control",
        control.to_str().unwrap(),
    ];
    let mut sim = Sim::start("data", &args).await;
    sim.running().await;
    let log = data.join("blocks.log");
    let size = || std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let first = poll("a block record", WAIT, || async { (size() > 0).then(size) }).await;
    poll("the block log to grow", WAIT, || async {
        (size() > first).then_some(())
    })
    .await;

    std::fs::write(&control, "corrupt-db\n").unwrap();
    assert_eq!(sim.exit_status(WAIT).await.code(), Some(1));
    assert!(data.join("sim-corrupt-db").exists());

    // Every later start refuses, with the error line.
    let output = Command::new(SIM)
        .args(["--name", "data", "--listen", "127.0.0.1:0"])
        .args(["--data-dir", data.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("database corrupted"), "{stderr}");

    // A replaced data directory (a restore) opens; the fault over HTTP does the same.
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::remove_file(&control).unwrap();
    let mut sim = Sim::start("data", &args[..2]).await;
    sim.running().await;
    sim.fault(json!({"fault": "corrupt-db"})).await;
    assert_eq!(sim.exit_status(WAIT).await.code(), Some(1));
    assert!(data.join("sim-corrupt-db").exists());
}

/// Runs `future` and returns its output with how long it took.
async fn timed<T>(future: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let output = future.await;
    (output, started.elapsed())
}

/// A `POST /api/v0/leaders` body for a genesis leader with `node_id`.
fn leader_secret(node_id: &str) -> String {
    json!({"genesis": {"sig_key": "kes", "vrf_key": "vrf", "node_id": node_id}}).to_string()
}

#[tokio::test]
async fn leader_faults_spare_the_rest_of_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control");
    let refuse_args = ["--control", control.to_str().unwrap()];
    let (slow, refuse) = tokio::join!(
        Sim::start("slow-leaders", &[]),
        Sim::start("refuse-promotion", &refuse_args)
    );
    tokio::join!(slow.running(), refuse.running());
    let fast = Duration::from_millis(500);
    let delay = Duration::from_millis(1500);

    let slow_check = async {
        slow.fault(json!({"fault": "slow-leaders", "delay_ms": 1500}))
            .await;
        assert_eq!(slow.state().await["fault"], "slow-leaders 1500");
        // Every leader route is late, and meanwhile the node probe and the rest answer promptly.
        let (leaders, logs, demote, stats, settings) = tokio::join!(
            timed(slow.get("/api/v0/leaders")),
            timed(slow.get("/api/v0/leaders/logs")),
            timed(slow.delete("/api/v0/leaders/9")),
            timed(slow.stats()),
            timed(slow.get("/api/v0/settings")),
        );
        assert_eq!(leaders.0, (200, "[]".to_string()));
        assert!(leaders.1 >= delay, "GET /leaders took {:?}", leaders.1);
        assert_eq!(logs.0.0, 200, "{}", logs.0.1);
        assert!(logs.1 >= delay, "GET /leaders/logs took {:?}", logs.1);
        assert_eq!(demote.0.0, 404, "{}", demote.0.1);
        assert!(demote.1 >= delay, "DELETE /leaders/9 took {:?}", demote.1);
        assert_eq!(stats.0["state"], "Running");
        assert!(stats.1 < fast, "GET /node/stats took {:?}", stats.1);
        assert_eq!(settings.0.0, 200);
        assert!(settings.1 < fast, "GET /settings took {:?}", settings.1);
        let (promote, took) = timed(slow.post("/api/v0/leaders", &leader_secret("aa"))).await;
        assert_eq!(promote, (200, "1".to_string()));
        assert!(took >= delay, "POST /leaders took {took:?}");

        slow.fault(json!({"fault": "none"})).await;
        assert_eq!(slow.state().await["fault"], "none");
        let (leaders, took) = timed(slow.get("/api/v0/leaders")).await;
        assert_eq!(leaders, (200, "[1]".to_string()));
        assert!(took < fast, "GET /leaders took {took:?} after clearing");
    };

    let refuse_check = async {
        refuse.fault(json!({"fault": "refuse-promotion"})).await;
        assert_eq!(refuse.state().await["fault"], "refuse-promotion");
        let (status, body) = refuse.post("/api/v0/leaders", &leader_secret("aa")).await;
        assert_eq!(status, 500, "{body}");
        assert!(!body.is_empty() && body.len() < 200, "{body:?}");
        assert_eq!(refuse.get_json("/api/v0/leaders").await, json!([]));
        // A malformed body is still the client's error, not a refusal.
        assert_eq!(refuse.post("/api/v0/leaders", "{not json").await.0, 400);
        assert_eq!(refuse.get("/api/v0/leaders/logs").await.0, 200);
        assert_eq!(refuse.stats().await["state"], "Running");

        refuse.fault(json!({"fault": "none"})).await;
        assert_eq!(
            refuse.post("/api/v0/leaders", &leader_secret("aa")).await,
            (200, "1".to_string())
        );

        // The same through the control file; demoting still works while promotion is refused.
        std::fs::write(&control, "refuse-promotion\n").unwrap();
        poll("refuse-promotion from the control file", WAIT, || async {
            (refuse.state().await["fault"] == "refuse-promotion").then_some(())
        })
        .await;
        assert_eq!(
            refuse.post("/api/v0/leaders", &leader_secret("bb")).await.0,
            500
        );
        assert_eq!(refuse.get_json("/api/v0/leaders").await, json!([1]));
        assert_eq!(
            refuse.delete("/api/v0/leaders/1").await,
            (200, String::new())
        );
        assert_eq!(refuse.get_json("/api/v0/leaders").await, json!([]));
        std::fs::remove_file(&control).unwrap();
        poll("the control file's fault to clear", WAIT, || async {
            (refuse.state().await["fault"] == "none").then_some(())
        })
        .await;
        assert_eq!(
            refuse.post("/api/v0/leaders", &leader_secret("bb")).await,
            (200, "1".to_string())
        );
        assert_eq!(refuse.get_json("/api/v0/leaders").await, json!([1]));
    };
    tokio::join!(slow_check, refuse_check);
}

#[tokio::test]
async fn leaders_follow_the_enclave_rules() {
    let mut sim = Sim::start("leaders", &[]).await;
    sim.running().await;
    let secret = |node_id: &str| {
        json!({"genesis": {"sig_key": "kes", "vrf_key": "vrf", "node_id": node_id}}).to_string()
    };
    assert_eq!(sim.get_json("/api/v0/leaders").await, json!([]));
    assert_eq!(
        sim.post("/api/v0/leaders", &secret("aa")).await,
        (200, "1".to_string())
    );
    assert_eq!(
        sim.post("/api/v0/leaders", &secret("bb")).await,
        (200, "2".to_string())
    );
    assert_eq!(
        sim.post("/api/v0/leaders", &secret("aa")).await,
        (200, "1".to_string())
    );
    assert_eq!(sim.post("/api/v0/leaders", "{not json").await.0, 400);
    assert_eq!(
        sim.post("/api/v0/leaders", r#"{"genesis":{"sig_key":"k"}}"#)
            .await
            .0,
        400
    );
    assert_eq!(sim.delete("/api/v0/leaders/1").await, (200, String::new()));
    assert_eq!(sim.delete("/api/v0/leaders/1").await.0, 404);
    assert_eq!(sim.delete("/api/v0/leaders/xyz").await.0, 400);
    assert_eq!(sim.get_json("/api/v0/leaders").await, json!([2]));
    assert_eq!(
        sim.post("/api/v0/leaders", &secret("cc")).await,
        (200, "3".to_string())
    );
    // Promoted mid-epoch: no schedule for the current epoch (the node computes it at the next boundary).
    let stats = sim.stats().await;
    let slot: u64 = stats["lastBlockDate"]
        .as_str()
        .unwrap()
        .split_once('.')
        .unwrap()
        .1
        .parse()
        .unwrap();
    if slot < 58 {
        let logs = sim.get_json("/api/v0/leaders/logs").await;
        assert_eq!(logs, json!([]));
    }
    let (status, body) = sim.post("/sim/fault", r#"{"fault":"lag"}"#).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(sim.post("/sim/fault", "[").await.0, 400);

    // GET /api/v0/shutdown answers, then the process exits 0.
    assert_eq!(sim.get("/api/v0/shutdown").await, (200, String::new()));
    assert_eq!(sim.exit_status(WAIT).await.code(), Some(0));
}

#[tokio::test]
async fn a_secret_boots_a_leader_that_records_events() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret(dir.path());
    let events = dir.path().join("events.jsonl");
    let args = [
        "--secret",
        secret.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
        // Every slot is the pool's, so both leaders lead every slot: an adversarial fork.
        "--pool-slots-per-epoch",
        "60",
    ];
    let (mut one, two) = tokio::join!(Sim::start("leader-1", &args), Sim::start("leader-2", &args));
    tokio::join!(one.running(), two.running());
    assert_eq!(one.get_json("/api/v0/leaders").await, json!([1]));

    // Booted in the last slot of an epoch, the node has nothing left to schedule until the next boundary.
    let logs = poll("a schedule", WAIT, || async {
        let logs = one.get_json("/api/v0/leaders/logs").await;
        logs.as_array()
            .is_some_and(|logs| !logs.is_empty())
            .then_some(logs)
    })
    .await;
    let first = &logs[0];
    assert_eq!(first["enclave_leader_id"], 1);
    assert!(first["scheduled_at_date"].as_str().unwrap().contains('.'));

    // Both nodes led the same slot: two lines with the same (epoch, slot) from different nodes.
    let fork = poll("a slot led by both nodes", WAIT, || async {
        let lines = read_events(&events);
        lines.iter().find_map(|a| {
            lines
                .iter()
                .find(|b| {
                    a["epoch"] == b["epoch"] && a["slot"] == b["slot"] && a["node"] != b["node"]
                })
                .map(|b| (a.clone(), b.clone()))
        })
    })
    .await;
    assert_eq!(fork.0["height"], fork.1["height"]);
    assert!(fork.0["time"].as_str().unwrap().ends_with("+00:00"));

    // Demoting stops events; led slots show up as blocks in the logs.
    let logs = one.get_json("/api/v0/leaders/logs").await;
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .any(|log| log["status"].get("Block").is_some()),
        "{logs}"
    );
    assert_eq!(two.delete("/api/v0/leaders/1").await.0, 200);
    let count = |node: &str| {
        read_events(&events)
            .iter()
            .filter(|l| l["node"] == node)
            .count()
    };
    let (before_one, before_two) = (count("leader-1"), count("leader-2"));
    poll("two more events of leader-1", WAIT, || async {
        (count("leader-1") >= before_one + 2).then_some(())
    })
    .await;
    // A slot settled while the DELETE was in flight may still count.
    assert!(count("leader-2") <= before_two + 1);

    // SIGTERM: prompt exit 0.
    one.signal("-TERM");
    assert_eq!(
        one.exit_status(Duration::from_secs(3)).await.code(),
        Some(0)
    );
}

#[tokio::test]
async fn a_missing_secret_is_a_startup_error() {
    let status = Command::new(SIM)
        .args(["--name", "bad", "--secret", "/nonexistent/secret.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("run nodekeeper-sim");
    assert_eq!(status.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(
        stderr.contains("cannot read the secret file /nonexistent/secret.yaml"),
        "{stderr}"
    );
}
