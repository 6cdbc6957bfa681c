//! The daemon's operator API and metrics over real HTTP, against a daemon driving a real
//! supervisord with simulated nodes: every endpoint, the auth failures, 404, 400, 413, 409,
//! 202/200/500 with `?wait=true`, `/metrics` parsed as Prometheus text, `ctl restart` through
//! the API (and around it when the daemon is down), and the API keys from the environment on
//! jmanager's files.

use std::path::Path;
use std::time::Duration;

use nodekeeper::api::wire::RestartsQuery;
use nodekeeper::api::{ApiClient, ApiClientError};
use nodekeeper::restart_log::RestartAction;
use nodekeeper::status::{ActionState, ActionView, NodeAction};
use nodekeeper::supervisor::ProcessState;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{DaemonConfig, Program, Supervisord, free_port, run, wait_until};

const WAIT: Duration = Duration::from_secs(20);

/// One raw answer: status and body (JSON when it parses, else the text as a JSON string).
fn call(reply: Result<nodekeeper::api::client::Reply, ApiClientError>) -> (u16, Value) {
    let reply = reply.expect("the API answers");
    let text = reply.text();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (reply.status, body)
}

/// The HTTP status of a call the daemon refused (with its message, for failures).
#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, ApiClientError>) -> (u16, String) {
    match result {
        Err(ApiClientError::Status { status, message }) => (status, message),
        other => panic!("expected an error status, got {other:?}"),
    }
}

/// The daemon's API: the typed client, and raw requests for the answers whose exact bodies and
/// statuses are the point (malformed requests, the shape of `/v1/status`).
struct Api {
    client: ApiClient,
}

impl Api {
    fn new(listen: &str, token: &str) -> Api {
        Api {
            client: ApiClient::new(listen, Duration::from_secs(60))
                .unwrap()
                .with_token(token),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        call(self.client.send(Method::GET, path, None).await)
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        call(self.client.send(Method::POST, path, None).await)
    }

    async fn post_body(&self, path: &str, body: impl Into<String>) -> (u16, Value) {
        call(
            self.client
                .send(Method::POST, path, Some(body.into()))
                .await,
        )
    }

    async fn metrics(&self) -> prometheus_parse::Scrape {
        // The client answers `Ok` for a 200 only.
        let text = self.client.metrics().await.expect("/metrics answers 200");
        prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_string())))
            .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"))
    }

    /// A node's line of `/v1/status` as JSON: the API adds `is_held`, which the snapshot type
    /// does not have.
    async fn node(&self, node: &str) -> Value {
        let (status, body) = self.get("/v1/status").await;
        assert_eq!(status, 200, "{body}");
        body["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|line| line["name"] == node)
            .cloned()
            .unwrap_or_else(|| panic!("no {node} in {body}"))
    }

    /// `POST /v1/nodes/NODE/ACTION`; the client checks that the status matches the state (200
    /// done, 202 running, 500 failed).
    async fn act(&self, node: &str, action: NodeAction, wait: bool) -> ActionView {
        self.client
            .node_action(node, action, None, wait)
            .await
            .unwrap_or_else(|e| panic!("{} {node}: {e}", action.as_str()))
    }
}

/// `Done` with this message.
fn done(message: &str) -> ActionState {
    ActionState::Done {
        message: message.to_string(),
    }
}

/// The value of the sample `name{labels}`, if present (any scalar type).
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// Two simulated nodes that take 2 s to stop (so a restart stays in flight long enough to be
/// refused a second time), and `broken`, a program that cannot start, held from the start so the
/// daemon leaves it alone.
async fn pool() -> (Supervisord, DaemonConfig) {
    let supervisord = Supervisord::builder()
        .sims(2)
        .sim_stop_delay(2)
        .program(Program::new("broken", "/bin/sh -c \"exit 3\"").manual())
        .start()
        .await;
    let mut nodes: Vec<Value> = supervisord
        .sims
        .iter()
        .map(|sim| json!({"name": sim.name, "overrides": {"rest": {"listen": sim.listen}}}))
        .collect();
    nodes.push(json!({
        "name": "broken",
        "overrides": {"rest": {"listen": format!("127.0.0.1:{}", free_port())}},
    }));
    let config = DaemonConfig::write(&supervisord, json!({"nodes": nodes}));
    std::fs::create_dir_all(config.dir.join("nodes/broken")).unwrap();
    std::fs::write(
        config.dir.join("nodekeeper-state.json"),
        json!({"holds": {"broken": {
            "reason": {"kind": "operator"},
            "since": {"secs_since_epoch": 1_700_000_000u64, "nanos_since_epoch": 0},
        }}})
        .to_string(),
    )
    .unwrap();
    (supervisord, config)
}

async fn action_done(api: &Api, id: &str) -> ActionView {
    wait_until("the action to end", WAIT, || async {
        // The client answers `Ok` for a 200 only.
        let view = api
            .client
            .action(id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (view.state != ActionState::Running).then_some(view)
    })
    .await
}

#[tokio::test]
async fn every_endpoint_over_http_with_auth_errors_conflicts_and_metrics() {
    let (supervisord, config) = pool().await;
    let daemon = config.start(&[]).await;
    let token = std::fs::read_to_string(config.dir.join("api.token"))
        .unwrap()
        .trim()
        .to_string();
    let api = Api::new(&config.api_listen, &token);
    let started = nodekeeper::time::Clock::now(&nodekeeper::time::SystemClock);

    // Health: the loop ticks and the nodes are in sync.
    let body = wait_until("/healthz 200", WAIT, || async {
        api.client.healthz().await.ok()
    })
    .await;
    assert!(body.starts_with("ok: 2 of 3 nodes in sync"), "{body}");

    // Status: every node's program state, node state, height, lag, leader, hold, last restart.
    let node1 = api.node("node1").await;
    assert_eq!(node1["program_state"], "RUNNING", "{node1}");
    assert_eq!(node1["node_state"], "Running", "{node1}");
    assert!(node1["height"].as_u64().unwrap() > 0, "{node1}");
    assert_eq!(node1["lag"], 0, "{node1}");
    assert_eq!(node1["leader"], false, "{node1}");
    assert_eq!(node1["is_held"], false, "{node1}");
    assert!(node1.get("last_restart").is_some(), "{node1}");
    let broken = api.node("broken").await;
    assert_eq!(broken["is_held"], true, "{broken}");
    assert_eq!(broken["held"], "held by an operator", "{broken}");

    // Metrics, parsed as Prometheus text.
    let scrape = api.metrics().await;
    let one = [("node", "node1")];
    assert!(sample(&scrape, "nodekeeper_node_height", &one).unwrap() > 0.0);
    assert_eq!(
        sample(&scrape, "nodekeeper_node_lag_blocks", &one),
        Some(0.0)
    );
    assert!(sample(&scrape, "nodekeeper_node_last_block_age_seconds", &one).unwrap() < 60.0);
    assert_eq!(
        sample(
            &scrape,
            "nodekeeper_node_program_state",
            &[("node", "node1"), ("state", "RUNNING")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "nodekeeper_node_program_state",
            &[("node", "broken"), ("state", "STOPPED")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "nodekeeper_node_program_state",
            &[("node", "broken"), ("state", "RUNNING")]
        ),
        Some(0.0)
    );
    assert_eq!(sample(&scrape, "nodekeeper_node_leader", &one), Some(0.0));
    assert_eq!(sample(&scrape, "nodekeeper_node_held", &one), Some(0.0));
    assert_eq!(
        sample(&scrape, "nodekeeper_node_held", &[("node", "broken")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "nodekeeper_supervisor_up",
            &[("supervisor", "default")]
        ),
        Some(1.0)
    );
    assert!(sample(&scrape, "nodekeeper_reference_height", &[]).unwrap() > 0.0);
    assert_eq!(sample(&scrape, "nodekeeper_nodes_in_sync", &[]), Some(2.0));
    assert!(sample(&scrape, "nodekeeper_tick_duration_seconds_count", &[]).unwrap() >= 1.0);
    assert_eq!(
        sample(
            &scrape,
            "nodekeeper_restarts_total",
            &[("node", "node1"), ("reason", "operator")]
        ),
        None
    );

    // Auth: missing and wrong tokens get the same 401, and nothing happens.
    let anonymous = Api {
        client: ApiClient::new(&config.api_listen, Duration::from_secs(60)).unwrap(),
    };
    let wrong_token = Api::new(&config.api_listen, "not-the-token");
    let missing = anonymous.post("/v1/nodes/node1/restart").await;
    let wrong = wrong_token.post("/v1/nodes/node1/restart").await;
    // Basic auth is not the client's: a raw request.
    let basic = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/v1/nodes/node1/restart", api.client.base()))
        .basic_auth("keeper", Some(&token))
        .send()
        .await
        .unwrap();
    let basic = (
        basic.status().as_u16(),
        serde_json::from_slice::<Value>(&basic.bytes().await.unwrap()).unwrap(),
    );
    assert_eq!(missing.0, 401);
    assert_eq!(missing, wrong);
    assert_eq!(missing, basic);
    assert_eq!(missing.1, json!({"error": "unauthorized"}));
    let leader_unauthorized = anonymous.post("/v1/leader/node1").await;
    assert_eq!(leader_unauthorized, missing);
    let typed = anonymous.client.leader("node1", false).await;
    assert_eq!(refused(typed), (401, "unauthorized".to_string()));

    // Unknown nodes, actions and routes: 404.
    let restart = api
        .client
        .node_action("node9", NodeAction::Restart, None, false);
    assert_eq!(refused(restart.await).0, 404);
    assert_eq!(api.post("/v1/nodes/node1/dance").await.0, 404);
    assert_eq!(refused(api.client.leader("node9", false).await).0, 404);
    let node9 = RestartsQuery {
        node: Some("node9".into()),
        ..RestartsQuery::default()
    };
    assert_eq!(refused(api.client.restarts(&node9).await).0, 404);
    assert_eq!(refused(api.client.action("nope").await).0, 404);
    assert_eq!(api.get("/v2/anything").await.0, 404);

    // Malformed: 400; oversized: 413.
    for body in ["not json", "{\"reason\": 5}", "{\"why\": \"x\"}", "[1]"] {
        let (status, answer) = api.post_body("/v1/nodes/node1/hold", body).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    assert_eq!(api.post("/v1/nodes/node1/restart?wait=maybe").await.0, 400);
    assert_eq!(api.get("/v1/restarts?since=yesterday").await.0, 400);
    assert_eq!(api.get("/v1/restarts?colour=blue").await.0, 400);
    let huge = json!({"reason": "x".repeat(17 * 1024)}).to_string();
    assert_eq!(api.post_body("/v1/nodes/node1/restart", huge).await.0, 413);

    // Leadership hand-over: refused, and said why, while leadership is not enabled (the
    // hand-over itself is tested in `leadership`).
    let (status, message) = refused(api.client.leader("node1", false).await);
    assert_eq!(status, 503, "{message}");
    assert!(message.contains("leadership is not enabled"), "{message}");

    // Nothing above touched a node.
    assert!(config.rows().is_empty(), "{:?}", config.rows());

    // A restart: 202 at once with an id; a second one while it runs: 409.
    let pid = supervisord.pids().await["node1"];
    let accepted = api
        .client
        .node_action("node1", NodeAction::Restart, Some("testing the API"), false)
        .await
        .unwrap();
    // Running: the client has checked that the status is 202.
    assert_eq!(accepted.state, ActionState::Running, "{accepted:?}");
    assert_eq!(accepted.node, "node1");
    assert_eq!(accepted.action, NodeAction::Restart);
    assert_eq!(accepted.note.as_deref(), Some("testing the API"));
    let again = api
        .client
        .node_action("node1", NodeAction::Restart, None, false);
    let (status, message) = refused(again.await);
    assert_eq!(status, 409, "{message}");
    let stop = api
        .client
        .node_action("node1", NodeAction::Stop, None, false);
    assert_eq!(refused(stop.await).0, 409);
    let finished = action_done(&api, &accepted.id).await;
    assert_eq!(finished.state, done("node1: restarted"), "{finished:?}");
    assert_ne!(supervisord.pids().await["node1"], pid);
    let scrape = api.metrics().await;
    assert_eq!(
        sample(
            &scrape,
            "nodekeeper_restarts_total",
            &[("node", "node1"), ("reason", "operator")]
        ),
        Some(1.0)
    );

    // ?wait=true: 200 when done...
    let pid = supervisord.pids().await["node2"];
    // Done: the client has checked that the status is 200.
    let body = api.act("node2", NodeAction::Restart, true).await;
    assert!(matches!(body.state, ActionState::Done { .. }), "{body:?}");
    assert_ne!(supervisord.pids().await["node2"], pid);

    // ... 500 with the reason when it failed (the program cannot start).
    // Failed: the client has checked that the status is 500.
    let body = api.act("broken", NodeAction::Restart, true).await;
    match &body.state {
        ActionState::Failed { error } => assert!(error.contains("start failed"), "{body:?}"),
        other => panic!("expected a failure: {other:?}"),
    }

    // Stop: held, left stopped, health goes when no node is in sync; start: released, back.
    for node in ["node1", "node2"] {
        let body = api.act(node, NodeAction::Stop, true).await;
        assert_eq!(body.state, done(&format!("{node}: stopped")));
    }
    let body = wait_until("/healthz 503", WAIT, || async {
        match api.client.healthz().await {
            Err(ApiClientError::Status {
                status: 503,
                message,
            }) => Some(message),
            _ => None,
        }
    })
    .await;
    assert!(body.contains("no node in sync"), "{body}");
    assert_eq!(api.node("node2").await["is_held"], true);
    supervisord
        .wait_for_state("node2", ProcessState::Stopped, Duration::from_secs(1))
        .await;
    for node in ["node1", "node2"] {
        let body = api.act(node, NodeAction::Start, true).await;
        assert_eq!(body.state, done(&format!("{node}: started")));
    }
    assert_eq!(api.node("node2").await["is_held"], false);
    wait_until("/healthz 200 again", WAIT, || async {
        api.client.healthz().await.ok()
    })
    .await;

    // Hold and release answer at once.
    // Done: the client has checked that the status is 200.
    let body = api.act("node2", NodeAction::Hold, false).await;
    assert_eq!(body.state, done("node2: held"));
    let body = api.act("node2", NodeAction::Release, false).await;
    assert_eq!(body.state, done("node2: released"));

    // The restart log: every row, one node, since a time.
    // The client answers `Ok` for a 200 only.
    let body = api
        .client
        .restarts(&RestartsQuery::default())
        .await
        .unwrap();
    let rows = &body.rows;
    assert!(rows.len() >= 8, "{body:?}");
    assert!(
        rows.iter().all(|row| row.reason == "operator request"),
        "{body:?}"
    );
    assert_eq!(rows[0].node, "node1");
    assert_eq!(rows[0].action, RestartAction::Stop);
    let since = chrono::DateTime::<chrono::Utc>::from(started).to_rfc3339();
    let query = RestartsQuery {
        node: Some("node2".into()),
        since: Some(since),
        limit: None,
    };
    let body = api.client.restarts(&query).await.unwrap();
    let rows = &body.rows;
    assert!(
        !rows.is_empty() && rows.iter().all(|row| row.node == "node2"),
        "{body:?}"
    );
    let future = RestartsQuery {
        since: Some("2999-01-01T00:00:00Z".into()),
        ..RestartsQuery::default()
    };
    assert_eq!(api.client.restarts(&future).await.unwrap().rows, []);

    // `nodekeeper ctl restart` goes through the API: the daemon logs and counts it.
    let pid = supervisord.pids().await["node1"];
    let rows_before = config.rows().len();
    let output = run(supervisord
        .ctl()
        .args(["restart", "node1", "-c"])
        .arg(&config.path))
    .await;
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(output.stdout.trim(), "node1: restarted", "{output:?}");
    assert_ne!(supervisord.pids().await["node1"], pid);
    let rows = config.rows();
    assert_eq!(rows.len(), rows_before + 2);
    assert_eq!(rows.last().unwrap().reason, "operator request");
    let scrape = api.metrics().await;
    assert_eq!(
        sample(
            &scrape,
            "nodekeeper_restarts_total",
            &[("node", "node1"), ("reason", "operator")]
        ),
        Some(3.0)
    );

    // The token never shows up in an answer or in the log.
    assert!(!daemon.log_text().contains(&token));
    drop(daemon);

    // Without a daemon, `ctl restart -c` uses supervisord directly.
    let pid = supervisord.pids().await["node1"];
    let output = run(supervisord
        .ctl()
        .args(["restart", "node1", "-c"])
        .arg(&config.path))
    .await;
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(output.stdout.trim(), "node1: started", "{output:?}");
    assert!(output.stderr.contains("does not answer"), "{output:?}");
    assert_ne!(supervisord.pids().await["node1"], pid);
    assert_eq!(
        config.rows().len(),
        rows_before + 2,
        "no row without the daemon"
    );
}

/// jmanager's example files in `dir`, with its paths moved there.
fn jmanager_files(dir: &Path) {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/jmanager");
    let text = std::fs::read_to_string(configs.join("jmanager_config.json")).unwrap();
    let text = text.replace("/home/pool/jormungandr", dir.to_str().unwrap());
    std::fs::write(dir.join("jmanager_config.json"), text).unwrap();
    std::fs::copy(
        configs.join("config_template.json"),
        dir.join("config_template.json"),
    )
    .unwrap();
    for node in ["node_one", "node_two"] {
        std::fs::create_dir(dir.join(node)).unwrap();
    }
    std::fs::write(dir.join("stake_pool_id"), "0011223344556677\n").unwrap();
    std::fs::write(
        dir.join("genesis_hash"),
        "8e4d2a343f3dcf9330ad9035b3e8d168e6728904262f2c434a4f8f934ec7b676\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("node_secret.yaml"),
        "genesis:\n  sig_key: kes25519-12-sk1x\n  vrf_key: vrf_sk1x\n  node_id: 0011223344556677\n",
    )
    .unwrap();
}

#[tokio::test]
async fn on_jmanager_files_the_api_listen_and_token_come_from_the_environment() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    jmanager_files(dir);
    let listen = format!("127.0.0.1:{}", free_port());
    let token = "env-token-0123456789abcdef";
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    // Nothing listens at the supervisord URL: the daemon runs anyway and acts on nothing.
    let mut child = tokio::process::Command::new(crate::support::NODEKEEPER)
        .arg("run")
        .arg("--jmanager-config")
        .arg(dir.join("jmanager_config.json"))
        .arg("--config-template")
        .arg(dir.join("config_template.json"))
        .current_dir(dir)
        .env_clear()
        .env("RUST_LOG", "info")
        .env(
            "NODEKEEPER_SUPERVISOR_URL",
            format!("http://127.0.0.1:{}/RPC2", free_port()),
        )
        .env("NODEKEEPER__API__LISTEN", &listen)
        .env("NODEKEEPER__API__TOKEN", token)
        .env("NODEKEEPER__EMAIL__ENABLED", "false")
        .env("NODEKEEPER__POOLTOOL__ENABLED", "false")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let api = Api::new(&listen, token);
    let status = wait_until(
        "the daemon's API on the listen address from the environment",
        WAIT,
        || {
            if let Ok(Some(exit)) = child.try_wait() {
                panic!(
                    "the daemon exited ({exit}): {}",
                    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
                );
            }
            let api = &api;
            async move {
                let status = api.client.status().await.ok()?;
                (!status.nodes.is_empty()).then_some(status)
            }
        },
    )
    .await;
    assert_eq!(status.nodes[0].name, "node_one", "{status:?}");
    assert_eq!(status.nodes[0].program_state, "UNREACHABLE", "{status:?}");

    // The token from the environment opens the mutating endpoints; no other does.
    // Done: the client has checked that the status is 200.
    let body = api.act("node_one", NodeAction::Hold, false).await;
    assert_eq!(body.state, done("node_one: held"));
    let wrong = Api::new(&listen, "env-token");
    let release = wrong
        .client
        .node_action("node_one", NodeAction::Release, None, false);
    assert_eq!(refused(release.await).0, 401);
    assert!(
        !dir.join("api.token").exists(),
        "no token file is made when one is configured"
    );
    let (_, healthz) = refused(api.client.healthz().await);
    assert!(healthz.contains("no node in sync"), "{healthz}");
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    assert!(!log.contains(token), "{log}");
    let _ = child.start_kill();
}

#[tokio::test]
async fn no_client_can_hold_the_api_open() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let supervisord = Supervisord::builder().sims(1).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let _daemon = config.start(&[]).await;
    let started = std::time::Instant::now();
    // Half a header, then nothing: the daemon closes it within its 10 s header timeout.
    let mut half = tokio::net::TcpStream::connect(&config.api_listen)
        .await
        .unwrap();
    half.write_all(b"GET /v1/status HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // More connections than the cap (256), each sending nothing.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(
            tokio::net::TcpStream::connect(&config.api_listen)
                .await
                .unwrap(),
        );
    }
    // The API still answers: once the silent connections time out, at the latest.
    let api = ApiClient::new(&config.api_listen, Duration::from_secs(30)).unwrap();
    let status = api.status().await.expect("the API answers /v1/status");
    assert_eq!(status.nodes.len(), 1);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), half.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "a half-sent header held the connection for 15 s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}
