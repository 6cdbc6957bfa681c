//! The dashboard over a real socket: the page's headers, the live feed, its cap, the history and
//! the chart.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::*;
use crate::metrics::Metrics;
use crate::status::NodeLine;

fn snapshot(taken_at: &str, height: u64) -> Snapshot {
    Snapshot {
        taken_at: taken_at.into(),
        nodes: vec![NodeLine {
            name: "node1".into(),
            program: "node1".into(),
            program_state: "RUNNING".into(),
            height: Some(height),
            ..NodeLine::default()
        }],
        ..Snapshot::default()
    }
}

struct Served {
    base: String,
    snapshot: Arc<RwLock<Snapshot>>,
    stop: watch::Sender<bool>,
    restart_log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The API (with its sampler) on a free loopback port, `max_streams` event streams at most.
async fn serve(max_streams: usize) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = Arc::new(RwLock::new(snapshot("2026-11-22T01:02:03Z", 10)));
    let (requests, _) = mpsc::channel(1);
    let restart_log = dir.path().join("restarts.csv");
    let state = ApiState {
        snapshot: Arc::clone(&snapshot),
        requests,
        token: Arc::new(RwLock::new("t".into())),
        metrics: Arc::new(Metrics::new()),
        restart_log: restart_log.clone(),
        wait_limit: Duration::from_secs(1),
        live: Live::new(max_streams, History::default()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(super::super::serve(listener, state, async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    Served {
        base,
        snapshot,
        stop,
        restart_log,
        _dir: dir,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Reads the event stream until a `status` event arrives (5 s at most): its data.
async fn next_status(response: &mut reqwest::Response, buffer: &mut String) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.lines().any(|line| line == "event: status") {
                let data: String = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .collect();
                return serde_json::from_str(&data).unwrap();
            }
            continue;
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .expect("the stream is open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn the_page_and_its_files_have_their_types_a_strict_policy_and_nothing_from_elsewhere() {
    let served = serve(4).await;
    let page = http()
        .get(format!("{}/", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self';"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = page.text().await.unwrap();
    // No inline script: every script element loads a file of this host.
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=\"/app.js\" defer></script>")
            .count(),
        "{html}"
    );
    for (path, content_type) in [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
    ] {
        let answer = http()
            .get(format!("{}{path}", served.base))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        assert_eq!(
            answer.headers()[header::CONTENT_TYPE],
            content_type,
            "{path}"
        );
        assert_eq!(answer.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    // Nothing names another host: no absolute URL anywhere in the page's files (the SVG
    // namespace is a name, never fetched).
    for (name, text) in [
        ("index.html", INDEX_HTML),
        ("app.js", APP_JS),
        ("style.css", STYLE_CSS),
    ] {
        let text = text.replace("\"http://www.w3.org/2000/svg\"", "");
        assert!(!text.contains("://"), "{name} names a URL");
        assert!(!text.contains("//cdn"), "{name} names a CDN");
    }
    // The token never goes into a URL: the script sends it as a header only.
    assert!(APP_JS.contains("Authorization"));
    assert!(!APP_JS.contains("token="));
}

#[tokio::test]
async fn the_feed_sends_the_status_now_and_at_each_change_and_ends_at_shutdown() {
    let served = serve(4).await;
    let mut events = http()
        .get(format!("{}/v1/events", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut buffer = String::new();
    let first = next_status(&mut events, &mut buffer).await;
    assert_eq!(first["nodes"][0]["height"], 10);
    assert_eq!(
        first["nodes"][0]["is_held"], false,
        "the JSON of /v1/status"
    );

    *served.snapshot.write().unwrap() = snapshot("2026-11-22T01:02:13Z", 11);
    let second = next_status(&mut events, &mut buffer).await;
    assert_eq!(second["nodes"][0]["height"], 11);

    let history = http()
        .get(format!("{}/v1/history", served.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let history: serde_json::Value = serde_json::from_slice(&history).unwrap();
    assert_eq!(
        history["nodes"]["node1"],
        serde_json::json!([[1_795_309_323i64, 10], [1_795_309_333i64, 11]])
    );

    served.stop.send(true).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        while let Ok(Some(_)) = events.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream stayed open after the shutdown");
}

#[tokio::test]
async fn streams_beyond_the_cap_get_503_until_a_place_is_free() {
    let served = serve(1).await;
    let url = format!("{}/v1/events", served.base);
    let open = http().get(&url).send().await.unwrap();
    assert_eq!(open.status(), 200);
    let refused = http().get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    drop(open);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let again = http().get(&url).send().await.unwrap();
        if again.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was not given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_chart_is_the_plot_of_the_restart_log() {
    let served = serve(1).await;
    let url = format!("{}/v1/restarts.svg", served.base);
    let empty = http().get(&url).send().await.unwrap();
    assert_eq!(empty.status(), 200);
    assert_eq!(empty.headers()[header::CONTENT_TYPE], "image/svg+xml");
    assert!(empty.text().await.unwrap().contains("no restarts"));

    let (mut log, _) = crate::restart_log::RestartLog::open(&served.restart_log).unwrap();
    log.append(&crate::restart_log::RestartRow {
        node: "node1".into(),
        timestamp: std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_309_323),
        action: crate::restart_log::RestartAction::Start,
        uptime_secs: Some(7),
        reason: "stale tip".into(),
        program: "node1".into(),
        height: Some(10),
        reference_height: None,
        supervisor_state: "RUNNING".into(),
        exit_status: None,
    })
    .unwrap();
    let svg = http().get(&url).send().await.unwrap().text().await.unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(!svg.contains("no restarts"), "{svg}");
    assert!(svg.contains("2026-11-22"), "{svg}");
}

#[tokio::test]
async fn a_stream_outlives_the_header_timeout_of_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (requests, _) = mpsc::channel(1);
    let state = ApiState {
        snapshot: Arc::new(RwLock::new(snapshot("2026-11-22T01:02:03Z", 10))),
        requests,
        token: Arc::new(RwLock::new("t".into())),
        metrics: Arc::new(Metrics::new()),
        restart_log: dir.path().join("restarts.csv"),
        wait_limit: Duration::from_secs(1),
        live: Live::default(),
    };
    let header = Duration::from_millis(200);
    let limits = crate::api::server::Limits {
        header_timeout: header,
        body_timeout: header,
        request_timeout: header,
        max_connections: 4,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = crate::api::router(state);
    tokio::spawn(crate::api::server::serve(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    let mut events = http()
        .get(format!("{base}/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    // Open for many header (and request) timeouts: nothing closes it.
    let open = tokio::time::timeout(header * 8, async {
        while let Ok(Some(_)) = events.chunk().await {}
    })
    .await;
    assert!(open.is_err(), "the stream was closed");
}
