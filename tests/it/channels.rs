//! Alert channels beyond email against local HTTP sinks: an axum app on a loopback port (one over
//! TLS, its certificate signed by a private CA given as the channel's `tls_ca_file`) that records
//! every request and answers with the status it is told. `nodekeeper alert test --channel` for
//! each kind's message shape and the webhook's signature; the daemon delivering a crash to a sink
//! that fails and then recovers (retried, delivered once), filters keeping it from another
//! channel; and an undelivered alert kept in the channel's outbox across a restart.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::{Value, json};

use crate::alert::pki;
use crate::support::{DaemonConfig, NODEKEEPER, Supervisord, wait_until};

/// One request a sink received.
#[derive(Clone, Debug)]
struct Request {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    /// The status the sink answered.
    status: u16,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }
}

#[derive(Default)]
struct Recorded {
    requests: Mutex<Vec<Request>>,
    /// The status answered to the next request.
    status: AtomicU16,
}

/// A recording HTTP sink on a loopback port.
struct Sink {
    base: String,
    recorded: Arc<Recorded>,
    _task: tokio::task::JoinHandle<()>,
}

async fn record(
    State(recorded): State<Arc<Recorded>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let status = recorded.status.load(Ordering::SeqCst);
    recorded.requests.lock().expect("lock").push(Request {
        path: uri.path().to_string(),
        headers,
        body,
        status,
    });
    StatusCode::from_u16(status).expect("a status")
}

impl Sink {
    /// A plain-HTTP sink answering 200.
    async fn start() -> Sink {
        Sink::start_on(None).await
    }

    /// A sink, over TLS with the certificate and key of `tls` when given.
    async fn start_on(tls: Option<(&Path, &Path)>) -> Sink {
        let recorded = Arc::new(Recorded::default());
        recorded.status.store(200, Ordering::SeqCst);
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&recorded));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (base, task) = match tls {
            None => (
                format!("http://127.0.0.1:{port}"),
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                }),
            ),
            Some((cert, key)) => {
                let acceptor = tls_acceptor(cert, key);
                let task = tokio::spawn(async move {
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else {
                            return;
                        };
                        let acceptor = acceptor.clone();
                        let app = app.clone();
                        tokio::spawn(async move {
                            let Ok(stream) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let service = hyper_util::service::TowerToHyperService::new(app);
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
                (format!("https://localhost:{port}"), task)
            }
        };
        Sink {
            base,
            recorded,
            _task: task,
        }
    }

    fn answer(&self, status: u16) {
        self.recorded.status.store(status, Ordering::SeqCst);
    }

    fn requests(&self) -> Vec<Request> {
        self.recorded.requests.lock().expect("lock").clone()
    }

    async fn wait_for(&self, n: usize, what: &str) -> Vec<Request> {
        wait_until(what, Duration::from_secs(40), || async {
            let requests = self.requests();
            (requests.len() >= n).then_some(requests)
        })
        .await
    }
}

fn tls_acceptor(cert: &Path, key: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .expect("certificate file")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(key).expect("key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A minimal valid configuration with `channels`, in a temporary directory, with the secret
/// files the channels read.
fn config_dir(channels: Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("template.json"),
        json!({"rest": {"listen": "127.0.0.1:3100"}}).to_string(),
    )
    .expect("write template");
    write_secrets(dir.path());
    let config = json!({
        "node_defaults": {"template": "template.json", "node_dir": "."},
        "nodes": [{"name": "node1", "overrides": {"rest": {"listen": "127.0.0.1:3101"}}}],
        "alerts": {"channels": channels},
    });
    std::fs::write(
        dir.path().join("nodekeeper.json"),
        serde_json::to_string_pretty(&config).expect("json"),
    )
    .expect("write config");
    dir
}

const HMAC_SECRET: &str = "hmac-hunter2";
const BOT_TOKEN: &str = "123:bot-hunter2";

fn write_secrets(dir: &Path) {
    std::fs::write(dir.join("hmac.key"), format!("{HMAC_SECRET}\n")).expect("write");
    std::fs::write(dir.join("bot.token"), format!("{BOT_TOKEN}\n")).expect("write");
}

async fn alert_test(dir: &Path, channel: &str) -> std::process::Output {
    tokio::process::Command::new(NODEKEEPER)
        .args(["alert", "test", "--channel", channel, "-c"])
        .arg(dir.join("nodekeeper.json"))
        .env_clear()
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run nodekeeper")
}

#[tokio::test]
async fn alert_test_sends_each_kinds_shape_and_signs_the_webhook_over_tls() {
    let certs = tempfile::tempdir().expect("tempdir");
    let pki = pki(certs.path());
    let secure = Sink::start_on(Some((&pki.cert, &pki.key))).await;
    let plain = Sink::start().await;
    let dir = config_dir(json!([
        {"name": "hook", "kind": "webhook", "url": format!("{}/in", secure.base),
         "hmac_secret_file": "hmac.key", "tls_ca_file": pki.ca},
        {"name": "slack", "kind": "slack", "url": format!("{}/services/T0/B0/X", plain.base)},
        {"name": "discord", "kind": "discord", "url": format!("{}/api/webhooks/1/t", plain.base)},
        {"name": "tg", "kind": "telegram", "url": plain.base, "bot_token_file": "bot.token",
         "chat_id": "@pool"},
        {"name": "push", "kind": "ntfy", "url": plain.base, "topic": "pool-alerts",
         "min_severity": "critical"},
    ]));

    let output = alert_test(dir.path(), "hook").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "test alert sent to channel hook (webhook)");
    let hook = secure.wait_for(1, "the webhook").await;
    assert_eq!(hook[0].path, "/in");
    let body = hook[0].json();
    assert_eq!(body["event"], "test");
    assert_eq!(body["severity"], "info");
    assert!(
        body["node"].is_null() && body.get("instance").is_none(),
        "{body}"
    );
    assert!(
        body["text"].as_str().is_some_and(|t| t.contains("test")),
        "{body}"
    );
    chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().expect("timestamp"))
        .expect("an RFC 3339 timestamp");
    assert_eq!(
        hook[0].header("x-nodekeeper-signature"),
        Some(nodekeeper::alert::channel::signature(
            HMAC_SECRET.as_bytes(),
            &hook[0].body
        ))
    );
    assert_eq!(
        hook[0].header("content-type").as_deref(),
        Some("application/json")
    );

    for channel in ["slack", "discord", "tg", "push"] {
        let output = alert_test(dir.path(), channel).await;
        assert!(
            output.status.success(),
            "{channel}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let received = plain.wait_for(4, "the four channels").await;
    let keys = |request: &Request| {
        request
            .json()
            .as_object()
            .map(|object| object.keys().cloned().collect::<Vec<_>>())
    };
    assert_eq!(received[0].path, "/services/T0/B0/X");
    assert_eq!(keys(&received[0]), Some(vec!["text".to_string()]));
    assert_eq!(received[1].path, "/api/webhooks/1/t");
    assert_eq!(keys(&received[1]), Some(vec!["content".to_string()]));
    assert_eq!(received[2].path, format!("/bot{BOT_TOKEN}/sendMessage"));
    assert_eq!(received[2].json()["chat_id"], "@pool");
    assert!(received[2].json()["text"].is_string());
    // The test alert reaches ntfy whatever its filters.
    assert_eq!(received[3].path, "/pool-alerts");
    assert_eq!(received[3].header("priority").as_deref(), Some("3"));
    assert_eq!(received[3].header("tags").as_deref(), Some("info,test"));
    assert!(
        received[3]
            .header("title")
            .is_some_and(|t| t.starts_with("[nodekeeper]"))
    );

    // A refusal is a runtime failure naming the channel, never its URL or token.
    plain.answer(404);
    let output = alert_test(dir.path(), "tg").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("channel tg (telegram)") && stderr.contains("404"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let output = alert_test(dir.path(), "nope").await;
    assert_eq!(output.status.code(), Some(2));
}

fn webhook(name: &str, sink: &Sink, extra: Value) -> Value {
    let mut channel = json!({"name": name, "kind": "webhook", "url": format!("{}/hook", sink.base),
                             "hmac_secret_file": "hmac.key"});
    if let (Some(channel), Value::Object(extra)) = (channel.as_object_mut(), extra) {
        channel.extend(extra);
    }
    channel
}

fn delivered(sink: &Sink) -> Vec<Value> {
    sink.requests()
        .iter()
        .filter(|request| request.status == 200)
        .map(Request::json)
        .collect()
}

#[tokio::test]
async fn a_failing_sink_gets_the_crash_once_it_recovers_and_filters_keep_it_from_others() {
    let failing = Sink::start().await;
    failing.answer(503);
    let critical_only = Sink::start().await;
    let supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(
        &supervisord,
        json!({"alerts": {"channels": [
            webhook("ops", &failing, json!({"events": ["node_restarted"]})),
            webhook("pager", &critical_only, json!({"min_severity": "critical"})),
        ]}}),
    );
    write_secrets(&config.dir);
    let daemon = config.start(&[]).await;

    supervisord.sims[1].fault(json!({"fault": "crash"})).await;
    failing.wait_for(1, "the first, failed attempt").await;
    failing.answer(200);
    // Retried after the backoff's first delay (10 s), and delivered once.
    let received = wait_until("the delivery", Duration::from_secs(40), || async {
        let delivered = delivered(&failing);
        (!delivered.is_empty()).then_some(delivered)
    })
    .await;
    assert_eq!(received.len(), 1, "{}", daemon.log_text());
    assert_eq!(received[0]["event"], "node_restarted");
    assert_eq!(received[0]["node"], "node2");
    assert_eq!(received[0]["reason"], "crashed");
    assert_eq!(received[0]["severity"], "warning");
    let attempts = failing.requests();
    assert_eq!(attempts[0].body, attempts[attempts.len() - 1].body);
    wait_until("an empty outbox", Duration::from_secs(10), || async {
        outbox_mails(&config.dir.join("alert-outbox-ops.json"))
            .is_empty()
            .then_some(())
    })
    .await;
    // A warning is below the pager's min_severity.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(delivered(&failing).len(), 1);
    assert!(
        critical_only.requests().is_empty(),
        "{:?}",
        critical_only.requests()
    );
}

fn outbox_mails(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|outbox| outbox["mails"].as_array().cloned())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_undelivered_alert_survives_a_restart_in_the_channels_outbox() {
    let sink = Sink::start().await;
    sink.answer(503);
    let supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(
        &supervisord,
        json!({"alerts": {"channels": [webhook("ops", &sink, json!({}))]}}),
    );
    write_secrets(&config.dir);
    let outbox = config.dir.join("alert-outbox-ops.json");
    let mut daemon = config.start(&[]).await;

    supervisord.sims[1].fault(json!({"fault": "crash"})).await;
    let kept = wait_until(
        "the alert in the outbox",
        Duration::from_secs(30),
        || async {
            let mails = outbox_mails(&outbox);
            (!mails.is_empty()).then_some(mails)
        },
    )
    .await;
    sink.wait_for(1, "a failed attempt").await;
    assert_eq!(daemon.terminate().await, Some(0), "{}", daemon.log_text());
    assert_eq!(outbox_mails(&outbox), kept);
    assert_eq!(kept[0]["meta"]["event"], "node_restarted", "{kept:?}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&outbox)
        .expect("outbox")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let failed_attempts = sink.requests().len();
    drop(daemon);

    // The sink recovers; the next run delivers the kept alert first, once.
    sink.answer(200);
    let daemon = config.start(&[]).await;
    let received = wait_until("the delivery", Duration::from_secs(30), || async {
        let delivered = delivered(&sink);
        (!delivered.is_empty()).then_some(delivered)
    })
    .await;
    assert_eq!(received[0]["node"], "node2", "{}", daemon.log_text());
    assert!(sink.requests().len() > failed_attempts);
    wait_until("an empty outbox", Duration::from_secs(10), || async {
        outbox_mails(&outbox).is_empty().then_some(())
    })
    .await;
    let node2_alerts = delivered(&sink)
        .into_iter()
        .filter(|alert| alert["node"] == "node2" && alert["event"] == "node_restarted")
        .count();
    assert_eq!(node2_alerts, 1, "{}", daemon.log_text());
}

#[tokio::test]
async fn a_reload_points_a_channel_elsewhere_and_names_a_channel_it_cannot_add() {
    let before = Sink::start().await;
    let after = Sink::start().await;
    let supervisord = Supervisord::builder().sims(2).start().await;
    let config = DaemonConfig::write(
        &supervisord,
        json!({"alerts": {"channels": [webhook("ops", &before, json!({"events": ["node_restarted"]}))]}}),
    );
    write_secrets(&config.dir);
    let daemon = config.start(&[]).await;

    // The operator points `ops` at another URL and adds a channel, then reloads.
    let mut file: Value =
        serde_json::from_str(&std::fs::read_to_string(&config.path).expect("the config"))
            .expect("JSON");
    file["alerts"]["channels"] = json!([
        webhook("ops", &after, json!({"events": ["node_restarted"]})),
        webhook("late", &after, json!({})),
    ]);
    std::fs::write(&config.path, file.to_string()).expect("rewrite the config");
    daemon.signal("HUP");
    daemon
        .wait_for_log("configuration reloaded", Duration::from_secs(10))
        .await;
    daemon
        .wait_for_log(
            "channel late was added; it starts with nodekeeper's next start",
            Duration::from_secs(5),
        )
        .await;

    supervisord.sims[1].fault(json!({"fault": "crash"})).await;
    let received = wait_until(
        "the alert at the new URL",
        Duration::from_secs(30),
        || async {
            let delivered = delivered(&after);
            (!delivered.is_empty()).then_some(delivered)
        },
    )
    .await;
    assert_eq!(
        received[0]["event"],
        "node_restarted",
        "{}",
        daemon.log_text()
    );
    assert_eq!(received[0]["node"], "node2");
    assert!(
        before.requests().is_empty(),
        "the old URL still got {:?}",
        before.requests()
    );
}
