//! The daemon's operator API and metrics over real HTTP, against a daemon driving a real
//! supervisord with simulated nodes: every endpoint, the auth failures, 404, 400, 413, 409,
//! 202/200/500 with `?wait=true`, `/metrics` parsed as Prometheus text, `ctl restart` through
//! the API (and around it when the daemon is down), and the API keys from the environment on
//! jmanager's files.

use std::path::Path;
use std::time::Duration;

use nodekeeper::supervisor::ProcessState;
use serde_json::{Value, json};

use crate::support::{DaemonConfig, Program, Supervisord, free_port, http, run, wait_until};

const WAIT: Duration = Duration::from_secs(20);

/// One answer: status and body (JSON when it parses, else the text as a JSON string).
async fn call(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    fn new(listen: &str, token: &str) -> Api {
        Api {
            base: format!("http://{listen}"),
            token: token.to_string(),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        call(self.client.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        call(
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token),
        )
        .await
    }

    async fn post_body(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        call(
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .body(body),
        )
        .await
    }

    async fn metrics(&self) -> prometheus_parse::Scrape {
        let response = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_string())))
            .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"))
    }

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

async fn action_done(api: &Api, id: &str) -> Value {
    wait_until("the action to end", WAIT, || async {
        let (status, body) = api.get(&format!("/v1/actions/{id}")).await;
        assert_eq!(status, 200, "{body}");
        (body["state"] != "running").then_some(body)
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
        let (status, body) = api.get("/healthz").await;
        (status == 200).then_some(body)
    })
    .await;
    assert!(
        body.as_str()
            .unwrap()
            .starts_with("ok: 2 of 3 nodes in sync"),
        "{body}"
    );

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
        sample(&scrape, "nodekeeper_node_program_state", &one),
        Some(20.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "nodekeeper_node_program_state",
            &[("node", "broken")]
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
    let url = format!("{}/v1/nodes/node1/restart", api.base);
    let missing = call(api.client.post(&url)).await;
    let wrong = call(api.client.post(&url).bearer_auth("not-the-token")).await;
    let basic = call(api.client.post(&url).basic_auth("keeper", Some(&token))).await;
    assert_eq!(missing.0, 401);
    assert_eq!(missing, wrong);
    assert_eq!(missing, basic);
    assert_eq!(missing.1, json!({"error": "unauthorized"}));
    let leader_unauthorized = call(api.client.post(format!("{}/v1/leader/node1", api.base))).await;
    assert_eq!(leader_unauthorized, missing);

    // Unknown nodes, actions and routes: 404.
    assert_eq!(api.post("/v1/nodes/node9/restart").await.0, 404);
    assert_eq!(api.post("/v1/nodes/node1/dance").await.0, 404);
    assert_eq!(api.post("/v1/leader/node9").await.0, 404);
    assert_eq!(api.get("/v1/restarts?node=node9").await.0, 404);
    assert_eq!(api.get("/v1/actions/nope").await.0, 404);
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
    let (status, body) = api.post("/v1/leader/node1").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("leadership is not enabled"),
        "{body}"
    );

    // Nothing above touched a node.
    assert!(config.rows().is_empty(), "{:?}", config.rows());

    // A restart: 202 at once with an id; a second one while it runs: 409.
    let pid = supervisord.pids().await["node1"];
    let (status, accepted) = api
        .post_body(
            "/v1/nodes/node1/restart",
            r#"{"reason": "testing the API"}"#,
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["node"], "node1");
    assert_eq!(accepted["action"], "restart");
    assert_eq!(accepted["state"], "running");
    assert_eq!(accepted["note"], "testing the API");
    let id = accepted["id"].as_str().unwrap().to_string();
    let (status, body) = api.post("/v1/nodes/node1/restart").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(api.post("/v1/nodes/node1/stop").await.0, 409);
    let done = action_done(&api, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["message"], "node1: restarted", "{done}");
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
    let (status, body) = api.post("/v1/nodes/node2/restart?wait=true").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "done", "{body}");
    assert_ne!(supervisord.pids().await["node2"], pid);

    // ... 500 with the reason when it failed (the program cannot start).
    let (status, body) = api.post("/v1/nodes/broken/restart?wait=true").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["state"], "failed", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("start failed"),
        "{body}"
    );

    // Stop: held, left stopped, health goes when no node is in sync; start: released, back.
    for node in ["node1", "node2"] {
        let (status, body) = api.post(&format!("/v1/nodes/{node}/stop?wait=true")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message"], format!("{node}: stopped"));
    }
    let body = wait_until("/healthz 503", WAIT, || async {
        let (status, body) = api.get("/healthz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(body.as_str().unwrap().contains("no node in sync"), "{body}");
    assert_eq!(api.node("node2").await["is_held"], true);
    supervisord
        .wait_for_state("node2", ProcessState::Stopped, Duration::from_secs(1))
        .await;
    for node in ["node1", "node2"] {
        let (status, body) = api.post(&format!("/v1/nodes/{node}/start?wait=true")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message"], format!("{node}: started"));
    }
    assert_eq!(api.node("node2").await["is_held"], false);
    wait_until("/healthz 200 again", WAIT, || async {
        (api.get("/healthz").await.0 == 200).then_some(())
    })
    .await;

    // Hold and release answer at once.
    let (status, body) = api.post("/v1/nodes/node2/hold").await;
    assert_eq!(
        (status, body["message"].clone()),
        (200, json!("node2: held"))
    );
    let (status, body) = api.post("/v1/nodes/node2/release").await;
    assert_eq!(
        (status, body["message"].clone()),
        (200, json!("node2: released"))
    );

    // The restart log: every row, one node, since a time.
    let (status, body) = api.get("/v1/restarts").await;
    assert_eq!(status, 200, "{body}");
    let rows = body["rows"].as_array().unwrap();
    assert!(rows.len() >= 8, "{body}");
    assert!(
        rows.iter().all(|row| row["reason"] == "operator request"),
        "{body}"
    );
    assert_eq!(rows[0]["node"], "node1");
    assert_eq!(rows[0]["action"], "stop");
    let since = chrono::DateTime::<chrono::Utc>::from(started).to_rfc3339();
    let (status, body) = api
        .get(&format!(
            "/v1/restarts?node=node2&since={}",
            since.replace('+', "%2B")
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let rows = body["rows"].as_array().unwrap();
    assert!(
        !rows.is_empty() && rows.iter().all(|row| row["node"] == "node2"),
        "{body}"
    );
    let (_, body) = api.get("/v1/restarts?since=2999-01-01T00:00:00Z").await;
    assert_eq!(body["rows"], json!([]));

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
            let url = format!("{}/v1/status", api.base);
            async move {
                let response = http().get(url).send().await.ok()?;
                let body: Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
                (!body["nodes"].as_array()?.is_empty()).then_some(body)
            }
        },
    )
    .await;
    assert_eq!(status["nodes"][0]["name"], "node_one", "{status}");
    assert_eq!(
        status["nodes"][0]["program_state"], "UNREACHABLE",
        "{status}"
    );

    // The token from the environment opens the mutating endpoints; no other does.
    let (status, body) = api.post("/v1/nodes/node_one/hold").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "node_one: held");
    let wrong = call(
        api.client
            .post(format!("{}/v1/nodes/node_one/release", api.base))
            .bearer_auth("env-token"),
    )
    .await;
    assert_eq!(wrong.0, 401);
    assert!(
        !dir.join("api.token").exists(),
        "no token file is made when one is configured"
    );
    let (_, healthz) = api.get("/healthz").await;
    assert!(
        healthz.as_str().unwrap().contains("no node in sync"),
        "{healthz}"
    );
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    assert!(!log.contains(token), "{log}");
    let _ = child.start_kill();
}
