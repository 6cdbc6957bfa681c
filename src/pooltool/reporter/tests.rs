use std::collections::VecDeque;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::*;
use crate::chain::NodeState;
use crate::pooltool::fixtures::{
    BASE_KEYS, GENESIS, POOL, TIMEOUT, TIP_HASH, USER, clock, fake_block, full_tip_query, keys,
    log, logs, mode_of, owned, pairs, t,
};
use crate::pooltool::keys::key_file;
use crate::pooltool::wire::{sha256_hex, slots_json};
use crate::slots::LogStatus;

#[test]
fn a_disabled_or_incomplete_reporter_is_inactive() {
    let mut settings = settings("http://127.0.0.1:9", SlotsVerification::None, None);
    settings.enabled = false;
    let mut reporter = Reporter::new(
        &settings,
        PathBuf::from("/nonexistent"),
        TIMEOUT,
        no_blocks(),
    );
    // No runtime needed: nothing is spawned.
    reporter.poll(t(0), None, None);
    assert_eq!(reporter.status(), ReporterStatus::default());
    settings.enabled = true;
    settings.user_id = Some(crate::secret::Secret::new("  "));
    assert!(
        !Reporter::new(&settings, PathBuf::new(), TIMEOUT, no_blocks())
            .status()
            .active
    );
    settings.user_id = Some(crate::secret::Secret::new(USER));
    settings.tip_url = "not a url".into();
    assert!(
        !Reporter::new(&settings, PathBuf::new(), TIMEOUT, no_blocks())
            .status()
            .active
    );
}

// ---- over HTTP ----

/// A request the fake PoolTool received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    raw_query: String,
    query: Vec<(String, String)>,
    accept: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// The fake PoolTool: every request is recorded and answered from `answers` (then
/// `{"success":true}`).
#[derive(Default)]
struct Fake {
    seen: Vec<Seen>,
    answers: VecDeque<(u16, String)>,
}

type Shared = Arc<Mutex<Fake>>;

async fn handle(State(shared): State<Shared>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default()
        .to_vec();
    let mut fake = shared.lock().unwrap();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let query = pairs(&Url::parse(&format!("http://x/?{raw_query}")).unwrap());
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    let seen = Seen {
        method: parts.method.to_string(),
        path,
        raw_query,
        query,
        accept: header("accept"),
        content_type: header("content-type"),
        body,
    };
    fake.seen.push(seen);
    let (status, answer) = fake
        .answers
        .pop_front()
        .unwrap_or((200, r#"{"success":true}"#.into()));
    (StatusCode::from_u16(status).unwrap(), answer).into_response()
}

/// The fake node's blocks, in memory: `block` cut to the length asked (an HTTP 404 when `None`),
/// or no answer at all while `hung`; each request's REST base and hash is recorded.
#[derive(Debug, Default)]
struct FakeBlocks {
    block: Mutex<Option<Vec<u8>>>,
    hung: bool,
    requests: Mutex<Vec<(Url, String)>>,
}

impl FakeBlocks {
    fn serving(block: Option<Vec<u8>>) -> Arc<FakeBlocks> {
        Arc::new(FakeBlocks {
            block: Mutex::new(block),
            ..FakeBlocks::default()
        })
    }

    fn requests(&self) -> Vec<(Url, String)> {
        self.requests.lock().unwrap().clone()
    }
}

impl TipHeaders for FakeBlocks {
    fn header_bytes<'a>(&'a self, rest: &'a Url, hash: &'a str, len: usize) -> HeaderFuture<'a> {
        self.requests
            .lock()
            .unwrap()
            .push((rest.clone(), hash.to_string()));
        if self.hung {
            return Box::pin(std::future::pending());
        }
        let answer = match &*self.block.lock().unwrap() {
            Some(block) => Ok(block[..len.min(block.len())].to_vec()),
            None => Err(ProbeError::Status(404)),
        };
        Box::pin(async move { answer })
    }
}

/// A node that has no block to give.
fn no_blocks() -> Arc<FakeBlocks> {
    FakeBlocks::serving(None)
}

async fn server() -> (String, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shared = Shared::default();
    let router = axum::Router::new()
        .fallback(handle)
        .with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}"), shared)
}

fn settings(base: &str, mode: SlotsVerification, gpg: Option<PathBuf>) -> PoolToolSettings {
    PoolToolSettings {
        enabled: true,
        tip_url: format!("{base}/v0/sharemytip"),
        slots_url: format!("{base}/v0/sendlogs"),
        slots_verification: mode,
        gpg,
        user_id: Some(crate::secret::Secret::new(USER)),
        pool_id: Some(POOL.into()),
        genesis_hash: Some(GENESIS.into()),
        ..PoolToolSettings::default()
    }
}

fn tip(base: &str, height: u64) -> Option<TipInput> {
    Some(TipInput {
        rest_url: Url::parse(&format!("{base}/api")).unwrap(),
        status: NodeStatus {
            state: NodeState::Running,
            version: "jormungandr 0.9.0".into(),
            height: Some(height),
            irreversible_height: None,
            tip_hash: Some(TIP_HASH.into()),
            tip_date: None,
            last_block_time: None,
            tip_time: None,
            uptime_secs: None,
        },
    })
}

fn slots(logs: Vec<LeaderLog>) -> Option<SlotsInput> {
    Some(SlotsInput {
        clock: clock(),
        logs,
    })
}

/// Polls (without new inputs) until every send has been collected.
async fn settle(reporter: &mut Reporter, now: SystemTime) {
    for _ in 0..4000 {
        if reporter.tip_flight.is_none() && reporter.slots_flight.is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        reporter.poll(now, None, None);
    }
    panic!("the sends did not finish");
}

/// Polls with these inputs, then until every send has been collected.
async fn step(
    reporter: &mut Reporter,
    now: SystemTime,
    tip: Option<TipInput>,
    slots: Option<SlotsInput>,
) {
    reporter.poll(now, tip, slots);
    settle(reporter, now).await;
}

fn seen(shared: &Shared) -> Vec<Seen> {
    shared.lock().unwrap().seen.clone()
}

#[tokio::test]
async fn reports_the_tip_with_its_header() {
    let (base, shared) = server().await;
    let blocks = FakeBlocks::serving(Some(fake_block(762, 176, 4242, [0xab; 32], [0xcd; 32])));
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&base, SlotsVerification::Hash, None);
    let mut reporter = Reporter::new(&settings, dir.path().join("keys"), TIMEOUT, blocks.clone());
    step(&mut reporter, t(0), tip(&base, 405_672), None).await;
    let requests = seen(&shared);
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("GET", "/v0/sharemytip")
    );
    assert_eq!(request.query, full_tip_query("jormungandr 0.9.0"));
    assert!(
        request.raw_query.contains("jormver=jormungandr%200.9.0&"),
        "{}",
        request.raw_query
    );
    let node = Url::parse(&format!("{base}/api")).unwrap();
    assert_eq!(blocks.requests(), [(node, TIP_HASH.to_string())]);
    let status = reporter.status();
    assert!(status.active);
    assert_eq!(
        status.last_tip,
        Some(TipSent {
            at: t(0),
            height: 405_672
        })
    );
    assert_eq!(status.tip_failures, 0);
    // A new height waits for the interval; the same height is not re-sent.
    reporter.poll(t(14), tip(&base, 405_673), None);
    step(&mut reporter, t(15), tip(&base, 405_672), None).await;
    assert_eq!(seen(&shared).len(), 1);
    step(&mut reporter, t(15), tip(&base, 405_673), None).await;
    let requests = seen(&shared);
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1]
            .query
            .contains(&("mytip".into(), "405673".into()))
    );
    assert_eq!(
        reporter.status().last_tip,
        Some(TipSent {
            at: t(15),
            height: 405_673
        })
    );
    // No tip input, or a node without a height: nothing.
    let mut booting = tip(&base, 1).unwrap();
    booting.status.height = None;
    reporter.poll(t(100), Some(booting), None);
    step(&mut reporter, t(100), None, None).await;
    assert_eq!(seen(&shared).len(), 2);
}

/// The query of a tip report without the header: the core parameters only.
fn core(height: &str) -> Vec<(String, String)> {
    owned(&[
        ("poolid", POOL),
        ("userid", USER),
        ("genesispref", "8e4d2a3"),
        ("mytip", height),
        ("lasthash", TIP_HASH),
    ])
}

#[tokio::test]
async fn without_the_block_only_the_core_is_reported() {
    let (base, shared) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&base, SlotsVerification::None, None);
    let blocks = no_blocks();
    let mut reporter = Reporter::new(&settings, dir.path().to_path_buf(), TIMEOUT, blocks.clone());
    // 404 from the node.
    step(&mut reporter, t(0), tip(&base, 10), None).await;
    // A block too short for the header.
    *blocks.block.lock().unwrap() = Some(fake_block(762, 1, 2, [1; 32], [2; 32])[..100].to_vec());
    step(&mut reporter, t(15), tip(&base, 11), None).await;
    let requests = seen(&shared);
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].query, core("10"));
    assert_eq!(requests[1].query, core("11"));
    assert_eq!(blocks.requests().len(), 2);
}

#[tokio::test]
async fn a_node_that_never_gives_the_block_delays_the_report_by_the_timeout_only() {
    let (base, shared) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&base, SlotsVerification::None, None);
    let blocks = Arc::new(FakeBlocks {
        hung: true,
        ..FakeBlocks::default()
    });
    let timeout = Duration::from_millis(300);
    let mut reporter = Reporter::new(&settings, dir.path().to_path_buf(), timeout, blocks.clone());
    step(&mut reporter, t(0), tip(&base, 10), None).await;
    let requests = seen(&shared);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].query, core("10"));
    assert_eq!(blocks.requests().len(), 1);
    assert_eq!(reporter.status().tip_failures, 0);
}

#[tokio::test]
async fn failed_tip_reports_back_off_and_retry() {
    let (base, shared) = server().await;
    shared.lock().unwrap().answers = VecDeque::from([
        (500, "oops".to_string()),
        (
            200,
            r#"{"success":false,"error":"unknown user"}"#.to_string(),
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&base, SlotsVerification::None, None);
    let mut reporter = Reporter::new(&settings, dir.path().to_path_buf(), TIMEOUT, no_blocks());
    step(&mut reporter, t(0), tip(&base, 10), None).await;
    assert_eq!(reporter.status().tip_failures, 1);
    assert_eq!(reporter.status().last_tip, None);
    // Wait 30 s after one failure, 60 s after two.
    step(&mut reporter, t(29), tip(&base, 10), None).await;
    assert_eq!(seen(&shared).len(), 1);
    step(&mut reporter, t(30), tip(&base, 10), None).await;
    assert_eq!(seen(&shared).len(), 2);
    assert_eq!(reporter.status().tip_failures, 2);
    step(&mut reporter, t(89), tip(&base, 10), None).await;
    assert_eq!(seen(&shared).len(), 2);
    step(&mut reporter, t(90), tip(&base, 10), None).await;
    assert_eq!(seen(&shared).len(), 3);
    let status = reporter.status();
    assert_eq!(status.tip_failures, 0);
    assert_eq!(
        status.last_tip,
        Some(TipSent {
            at: t(90),
            height: 10
        })
    );
}

#[tokio::test]
async fn tip_reports_to_nowhere_fail_quietly() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&base, SlotsVerification::None, None);
    let mut reporter = Reporter::new(&settings, dir.path().to_path_buf(), TIMEOUT, no_blocks());
    step(&mut reporter, t(0), tip(&base, 10), None).await;
    assert_eq!(reporter.status().tip_failures, 1);
}

fn assert_slots_request(request: &Seen) {
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v0/sendlogs")
    );
    assert_eq!(request.accept.as_deref(), Some("application/json"));
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn sends_the_slot_count_without_verification() {
    let (base, shared) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let settings = settings(&base, SlotsVerification::None, None);
    let mut reporter = Reporter::new(&settings, keys.clone(), TIMEOUT, no_blocks());
    // Before the window: nothing.
    step(&mut reporter, t(5179), None, slots(logs())).await;
    assert!(seen(&shared).is_empty());
    step(&mut reporter, t(5180), None, slots(logs())).await;
    let requests = seen(&shared);
    assert_eq!(requests.len(), 1);
    assert_slots_request(&requests[0]);
    let body = requests[0].json();
    assert_eq!(keys_of(&body), BASE_KEYS);
    assert_eq!(
        body,
        json!({"currentepoch": "5", "poolid": POOL, "genesispref": "8e4d2a3",
               "userid": USER, "assigned_slots": "3"})
    );
    assert_eq!(reporter.status().last_slots_epoch, Some(5));
    assert!(!keys.exists());
    // Once per epoch.
    step(&mut reporter, t(5200), None, slots(logs())).await;
    assert_eq!(seen(&shared).len(), 1);
}

fn keys_of(body: &Value) -> Vec<String> {
    keys(body).into_iter().map(str::to_string).collect()
}

#[tokio::test]
async fn hash_mode_commits_then_reveals() {
    let (base, shared) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("pooltool-keys");
    let settings = settings(&base, SlotsVerification::Hash, None);
    let mut reporter = Reporter::new(&settings, keys.clone(), TIMEOUT, no_blocks());
    // Epoch 4: its one slot committed; nothing known of epoch 3.
    step(&mut reporter, t(4200), None, slots(logs())).await;
    // Epoch 5: three slots committed, epoch 4's list revealed.
    step(&mut reporter, t(5230), None, slots(logs())).await;
    let requests = seen(&shared);
    assert_eq!(requests.len(), 2);
    let (four, five) = (requests[0].json(), requests[1].json());
    assert_slots_request(&requests[1]);
    let mut expected_keys = BASE_KEYS.to_vec();
    expected_keys.extend(["this_epoch_hash", "last_epoch_slots"]);
    assert_eq!(keys_of(&five), expected_keys);
    assert_eq!(four["currentepoch"], "4");
    assert_eq!(four["assigned_slots"], "1");
    assert_eq!(four["last_epoch_slots"], "");
    assert_eq!(five["currentepoch"], "5");
    assert_eq!(five["assigned_slots"], "3");
    // The hash is the file's, and is the sha256 of the file's list.
    let list = std::fs::read_to_string(key_file(&keys, "leader_slots", 5)).unwrap();
    assert_eq!(list, slots_json(&logs(), 5));
    let hash = std::fs::read_to_string(key_file(&keys, "hash", 5)).unwrap();
    assert_eq!(five["this_epoch_hash"], hash.as_str());
    assert_eq!(hash, sha256_hex(list.as_bytes()));
    // The reveal is epoch 4's list exactly, and it matches epoch 4's commitment.
    let revealed = five["last_epoch_slots"].as_str().unwrap();
    assert_eq!(revealed, slots_json(&logs(), 4));
    assert_eq!(
        four["this_epoch_hash"],
        sha256_hex(revealed.as_bytes()).as_str()
    );
    assert_eq!(mode_of(&keys), 0o700);
    for kind in ["leader_slots", "hash"] {
        assert_eq!(mode_of(&key_file(&keys, kind, 5)), 0o600);
    }
    assert_eq!(reporter.status().last_slots_epoch, Some(5));
}

#[tokio::test]
async fn refused_sends_are_retried_within_the_window() {
    let (base, shared) = server().await;
    shared.lock().unwrap().answers = VecDeque::from([
        (500, "Internal Server Error".to_string()),
        (
            200,
            r#"{"success":false,"message":{"error":"We were unable to parse the decrypted json data."}}"#
                .to_string(),
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let settings = settings(&base, SlotsVerification::Hash, None);
    let mut reporter = Reporter::new(&settings, keys.clone(), TIMEOUT, no_blocks());
    step(&mut reporter, t(5180), None, slots(logs())).await;
    let status = reporter.status();
    assert_eq!((status.last_slots_epoch, status.slots_failures), (None, 1));
    // Not before 10 s; then a `success: false` is a failure too.
    step(&mut reporter, t(5189), None, slots(logs())).await;
    assert_eq!(seen(&shared).len(), 1);
    // The node's list changed meanwhile: the commitment does not.
    let mut changed = logs();
    changed.push(log(5, 499, LogStatus::Pending));
    step(&mut reporter, t(5190), None, slots(changed.clone())).await;
    let status = reporter.status();
    assert_eq!((status.last_slots_epoch, status.slots_failures), (None, 2));
    step(&mut reporter, t(5200), None, slots(changed.clone())).await;
    let status = reporter.status();
    assert_eq!(
        (status.last_slots_epoch, status.slots_failures),
        (Some(5), 0)
    );
    let requests = seen(&shared);
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(requests[0].body, requests[2].body);
    assert_eq!(requests[2].json()["assigned_slots"], "3");
    // A restarted daemon in the same window sends the same commitment.
    let mut restarted = Reporter::new(&settings, keys, TIMEOUT, no_blocks());
    step(&mut restarted, t(5210), None, slots(changed)).await;
    let requests = seen(&shared);
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[3].body, requests[0].body);
}

#[tokio::test]
async fn outside_the_window_the_epoch_is_skipped() {
    let (base, shared) = server().await;
    shared.lock().unwrap().answers = VecDeque::from([(503, String::new())]);
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&base, SlotsVerification::None, None);
    let mut reporter = Reporter::new(&settings, dir.path().to_path_buf(), TIMEOUT, no_blocks());
    for at in [5240, 5241, 5900] {
        reporter.poll(t(at), None, slots(logs()));
        settle(&mut reporter, t(at)).await;
    }
    assert!(seen(&shared).is_empty());
    assert_eq!(reporter.status().last_slots_epoch, None);
    // A failure at the window's last second is not retried after it.
    step(&mut reporter, t(6239), None, slots(logs())).await;
    step(&mut reporter, t(6250), None, slots(logs())).await;
    assert_eq!(seen(&shared).len(), 1);
    assert_eq!(reporter.status().last_slots_epoch, None);
    // The next epoch goes out in its window.
    step(&mut reporter, t(7180), None, slots(logs())).await;
    assert_eq!(seen(&shared).len(), 2);
    assert_eq!(seen(&shared)[1].json()["currentepoch"], "7");
    assert_eq!(reporter.status().last_slots_epoch, Some(7));
}

fn found(program: &str) -> bool {
    std::process::Command::new("which")
        .arg(program)
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Runs `gpg --homedir home` with `args`, `stdin` on its standard input; its standard output.
fn gpg_run(home: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn gpg_mode_encrypts_with_the_epochs_passphrase() {
    if !found("gpg") {
        println!("skipped: no gpg");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A private gpg home, through a wrapper given as the configured binary.
    let home = dir.path().join("gnupg");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&home)
        .unwrap();
    let wrapper = dir.path().join("gpg-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec gpg --homedir '{}' \"$@\"\n",
            home.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::write(key_file(&keys, "passphrase", 4), "last-epochs-key\n").unwrap();

    let (base, shared) = server().await;
    let settings = settings(&base, SlotsVerification::Gpg, Some(wrapper));
    let mut reporter = Reporter::new(
        &settings,
        keys.clone(),
        Duration::from_secs(30),
        no_blocks(),
    );
    step(&mut reporter, t(5180), None, slots(logs())).await;
    let requests = seen(&shared);
    let result = || {
        assert_eq!(requests.len(), 1, "{:?}", reporter.status());
        assert_slots_request(&requests[0]);
        let body = requests[0].json();
        let mut expected_keys = BASE_KEYS.to_vec();
        expected_keys.extend(["previous_epoch_key", "encrypted_slots"]);
        assert_eq!(keys_of(&body), expected_keys);
        assert_eq!(body["assigned_slots"], "3");
        assert_eq!(body["previous_epoch_key"], "last-epochs-key");
        let armored = body["encrypted_slots"].as_str().unwrap();
        assert!(
            armored.starts_with("-----BEGIN PGP MESSAGE-----"),
            "{armored}"
        );
        assert!(armored.ends_with("-----END PGP MESSAGE-----"), "{armored}");
        let passphrase = std::fs::read_to_string(key_file(&keys, "passphrase", 5)).unwrap();
        assert_eq!(mode_of(&key_file(&keys, "passphrase", 5)), 0o600);
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&passphrase)
                .unwrap()
                .len(),
            32
        );
        assert!(!String::from_utf8_lossy(&requests[0].body).contains(&passphrase));
        // The passphrase file decrypts the message back to the committed list.
        let message = dir.path().join("message.asc");
        std::fs::write(&message, armored).unwrap();
        let plain = gpg_run(
            &home,
            &[
                "--batch",
                "--quiet",
                "--decrypt",
                "--passphrase-fd",
                "0",
                message.to_str().unwrap(),
            ],
            passphrase.as_bytes(),
        );
        let list = std::fs::read_to_string(key_file(&keys, "leader_slots", 5)).unwrap();
        assert_eq!(String::from_utf8(plain).unwrap(), format!("{list}\n"));
        assert_eq!(list, slots_json(&logs(), 5));
        assert_eq!(reporter.status().last_slots_epoch, Some(5));
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(result));
    // End the agent gpg started for this home.
    let _ = std::process::Command::new("gpgconf")
        .arg("--homedir")
        .arg(&home)
        .args(["--kill", "gpg-agent"])
        .output();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn a_missing_gpg_fails_the_send() {
    let (base, shared) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(
        &base,
        SlotsVerification::Gpg,
        Some(dir.path().join("no-such-gpg")),
    );
    let mut reporter = Reporter::new(&settings, dir.path().join("keys"), TIMEOUT, no_blocks());
    step(&mut reporter, t(5180), None, slots(logs())).await;
    assert!(seen(&shared).is_empty());
    assert_eq!(reporter.status().slots_failures, 1);
    let error = gpg_encrypt(&dir.path().join("no-such-gpg"), "p", "[]", TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ReportError::Gpg(ref why) if why.contains("cannot run")),
        "{error}"
    );
}
