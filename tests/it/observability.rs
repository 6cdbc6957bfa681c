//! The observability pack (configs/prometheus, configs/grafana) checked with the real tools:
//! `promtool check rules` and `promtool test rules` on the rules, `promtool check metrics` on a
//! live scrape of `nodekeeper run`, a real Prometheus scraping the daemon with the rules loaded,
//! and the Grafana dashboard's queries against the live scrape. `promtool` and `prometheus` come
//! from `NODEKEEPER_PROMTOOL` / `NODEKEEPER_PROMETHEUS`, else PATH (scripts/test.sh installs
//! Debian's `prometheus` package).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{DaemonConfig, Supervisord, free_port, http, wait_until};

const WAIT: Duration = Duration::from_secs(30);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn tool(variable: &str, name: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| PathBuf::from(name), PathBuf::from)
}

/// Runs `promtool ARGS` (with `stdin` piped in when given): exit code, stdout + stderr.
fn promtool(args: &[&str], stdin: Option<&str>) -> (i32, String) {
    let binary = tool("NODEKEEPER_PROMTOOL", "promtool");
    let mut child = Command::new(&binary)
        .args(args)
        .current_dir(repo("configs/prometheus"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (install Debian's prometheus package or set NODEKEEPER_PROMTOOL)",
                binary.display()
            )
        });
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("promtool's stdin");
        pipe.write_all(text.as_bytes())
            .expect("write promtool's stdin");
    }
    let output = child.wait_with_output().expect("promtool ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// A real Prometheus on loopback with its data in a temporary directory; killed on drop.
struct Prometheus {
    child: Child,
    listen: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` every second as job `nodekeeper`, evaluating `rules` every second.
    fn start(target: &str, rules: &Path) -> Prometheus {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files: [\"{}\"]\n\
                 scrape_configs:\n  - job_name: nodekeeper\n    \
                 static_configs:\n      - targets: [\"{target}\"]\n",
                rules.display()
            ),
        )
        .expect("write prometheus.yml");
        let listen = format!("127.0.0.1:{}", free_port());
        let binary = tool("NODEKEEPER_PROMETHEUS", "prometheus");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (install Debian's prometheus package or set NODEKEEPER_PROMETHEUS)",
                    binary.display()
                )
            });
        Prometheus {
            child,
            listen,
            _dir: dir,
        }
    }

    /// `GET /api/v1/PATH` as JSON, `None` until it answers with `"status": "success"`.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let url = reqwest::Url::parse_with_params(
            &format!("http://{}/api/v1/{path}", self.listen),
            query,
        )
        .ok()?;
        let response = http().get(url).send().await.ok()?;
        let body: Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
        (body["status"] == "success").then_some(body["data"].clone())
    }

    /// The value of an instant query that returns one sample, `None` while it returns none.
    async fn scalar(&self, query: &str) -> Option<f64> {
        let data = self.api("query", &[("query", query)]).await?;
        let samples = data["result"].as_array()?;
        match samples.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every `nodekeeper_*` metric name in a PromQL expression (recording rules' `level:name:op`
/// names excluded).
fn metric_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut names = Vec::new();
    let mut at = 0;
    while let Some(found) = expr[at..].find("nodekeeper_") {
        let start = at + found;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let before = start.checked_sub(1).map(|i| bytes[i]);
        let part_of_another =
            before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
        if !part_of_another && bytes.get(end) != Some(&b':') {
            names.push(expr[start..end].to_string());
        }
        at = end;
    }
    names
}

/// Whether the scrape declares `name` (a histogram's `_bucket`, `_sum` and `_count` count as
/// their histogram), also while it has no sample (a chain's or `[cluster]`'s metric).
fn declared(scrape: &str, name: &str) -> bool {
    if scrape.contains(&format!("# TYPE {name} ")) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|base| scrape.contains(&format!("# TYPE {base} histogram")))
    })
}

/// Every query of the dashboard, its annotations' included.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                queries.push(expr.to_string());
            }
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = annotation["expr"].as_str() {
            queries.push(expr.to_string());
        }
    }
    queries
}

/// The text of a `Metrics` that has seen everything a live jormungandr pool without
/// leadership never shows: a cardano node's KES periods, a next slot, restarts, probe errors,
/// backups and restores, and `[cluster]`.
fn every_metric() -> String {
    use nodekeeper::metrics::{Metrics, NodeSample, TickSample};
    let metrics = Metrics::new();
    let now = nodekeeper::time::Clock::now(&nodekeeper::time::SystemClock);
    metrics.record_tick(&TickSample {
        now,
        duration: Duration::from_millis(3),
        interval: Duration::from_secs(1),
        nodes: vec![NodeSample {
            node: "bp1".into(),
            program_state: "RUNNING",
            height: Some(10),
            irreversible_height: Some(8),
            lag: Some(0),
            last_block_time: Some(now),
            probe_error: Some("timeout"),
            leader: true,
            in_sync: true,
            kes_periods: Some(20),
            ..NodeSample::default()
        }],
        supervisors: vec![("default".into(), true)],
        reference: Some(10),
        external_reference: Some((10, now)),
        chain: "cardano".into(),
        next_slot: Some((100, now + Duration::from_secs(20))),
        leadership: true,
    });
    metrics.count_restart("bp1", "crashed");
    metrics.record_backup("bp1", true, 123_000_000, now);
    metrics.record_backup("bp1", false, 0, now);
    metrics.record_restore("bp1", false, true);
    metrics.record_cluster(&nodekeeper::status::ClusterLine {
        instance: "host-a".into(),
        election: "elected".into(),
        instances: vec!["host-a".into()],
        ..Default::default()
    });
    metrics.encode()
}

fn dashboard() -> Value {
    let path = repo("configs/grafana/nodekeeper.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_rules_pass_promtool_check_and_their_unit_tests() {
    let (code, text) = promtool(&["check", "rules", "nodekeeper.rules.yml"], None);
    assert_eq!(code, 0, "promtool check rules:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
    let (code, text) = promtool(&["test", "rules", "tests.yml"], None);
    assert_eq!(code, 0, "promtool test rules:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_grafana_dashboard_queries_through_a_prometheus_datasource_variable() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "nodekeeper");
    assert!(dashboard["schemaVersion"].as_u64().is_some());
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    assert!(
        variables.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "{variables:?}"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{panel}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{panel}");
    }
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() > 20, "{queries:?}");
    assert!(
        queries.iter().all(|q| !metric_names(q).is_empty()),
        "{queries:?}"
    );
}

#[tokio::test]
async fn a_live_scrape_passes_promtool_and_a_real_prometheus_evaluates_the_rules() {
    let mut supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(&supervisord, serde_json::json!({}));
    let _daemon = config.start(&[]).await;
    let url = format!("http://{}/metrics", config.api_listen);
    let scrape = wait_until("both nodes in sync in /metrics", WAIT, || async {
        let text = http().get(&url).send().await.ok()?.text().await.ok()?;
        text.contains("nodekeeper_nodes_in_sync 2").then_some(text)
    })
    .await;

    // The scrape as Prometheus's own linter sees it: parsed, and no naming problem.
    let (code, text) = promtool(&["check", "metrics"], Some(&scrape));
    assert_eq!(
        code, 0,
        "promtool check metrics:\n{text}\nthe scrape:\n{scrape}"
    );
    assert!(text.trim().is_empty(), "{text}");
    assert!(
        scrape.contains("nodekeeper_build_info{version=\""),
        "{scrape}"
    );

    // The metrics such a pool does not show (cardano's, leadership's, [cluster]'s, counters
    // before their first count) pass the linter too.
    let everything = every_metric();
    let (code, text) = promtool(&["check", "metrics"], Some(&everything));
    assert_eq!(
        code, 0,
        "promtool check metrics:\n{text}\nthe text:\n{everything}"
    );
    assert!(text.trim().is_empty(), "{text}");

    // Every metric the dashboard queries exists: in the live scrape, or (exactly these) in a
    // daemon that has seen them.
    let mut not_live = std::collections::BTreeSet::new();
    for query in dashboard_queries(&dashboard()) {
        for name in metric_names(&query) {
            if !declared(&scrape, &name) {
                assert!(
                    declared(&everything, &name),
                    "{name} (in {query}) is no metric:\n{everything}"
                );
                not_live.insert(name);
            }
        }
    }
    assert_eq!(
        not_live.into_iter().collect::<Vec<_>>(),
        [
            "nodekeeper_cluster_elected",
            "nodekeeper_cluster_etcd_up",
            "nodekeeper_cluster_instances",
            "nodekeeper_kes_periods_remaining",
            "nodekeeper_next_slot_seconds",
            "nodekeeper_probe_errors_total",
            "nodekeeper_restarts_total",
        ]
    );

    // A real Prometheus scraping the daemon evaluates the recording rules over it ...
    let prometheus = Prometheus::start(
        &config.api_listen,
        &repo("configs/prometheus/nodekeeper.rules.yml"),
    );
    wait_until(
        "the recording rules over the daemon's metrics",
        WAIT,
        || async {
            let in_sync = prometheus
                .scalar("job:nodekeeper_nodes_in_sync:sum{job=\"nodekeeper\"}")
                .await?;
            let running = prometheus
                .scalar("job:nodekeeper_nodes_running:sum")
                .await?;
            let producers = prometheus.scalar("job:nodekeeper_producers:sum").await?;
            (in_sync == 2.0 && running == 2.0 && producers == 0.0).then_some(())
        },
    )
    .await;
    // ... every rule without an evaluation error ...
    let groups = prometheus.api("rules", &[]).await.expect("/api/v1/rules");
    let rules: Vec<&Value> = groups["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(rules.len(), 22, "{groups}");
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule}\n{}", prometheus.log());
    }

    // ... and an alert: supervisord gone, its alert becomes pending (it fires after 2 minutes).
    let alert = "ALERTS{alertname=\"NodekeeperSupervisorUnreachable\",supervisor=\"default\"}";
    assert_eq!(prometheus.scalar(alert).await, None);
    supervisord.shutdown();
    wait_until("the supervisord alert pending", WAIT, || async {
        let data = prometheus.api("query", &[("query", alert)]).await?;
        let samples = data["result"].as_array()?;
        samples
            .iter()
            .any(|s| s["metric"]["alertstate"] == "pending")
            .then_some(())
    })
    .await;
}
