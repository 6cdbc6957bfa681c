//! Probing Jormungandr nodes over REST API v0 (`GET /api/v0/node/stats`): the HTTP exchange with its
//! timeout and size limit, and the pure decoding of the answer (`parse_stats`) into `NodeStatus`.
//!
//! This module owns what a Jormungandr answer means; it must not decide anything about the node
//! (stuck, lagging, to restart): that is the policy's job. Nothing here panics on any bytes a node
//! sends.
//!
//! Wire facts (see `jormungandr-rest-v0.md`): `lastBlockHeight` is a JSON *string* in 0.8.x/0.9.x
//! (a number is accepted too); `nodeId` exists in 0.8.x only; while the node is not `Running` the
//! answer is only `{"state": …, "version": …}`.
//!
//! It also holds what every exchange with a Jormungandr node shares (the client, `api_url`, the
//! error classification), which the leader API (`leaders`) reuses.

use std::io;
use std::time::{Duration, SystemTime};

use reqwest::Url;

use crate::describe;
use serde_json::{Map, Value};

use crate::chain::{NodeState, NodeStatus, ProbeError};

/// The largest answer read; a stats answer is under 1 KB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The largest height or uptime believed: no chain is 10^12 blocks long (31,000 years at one block
/// per second), so a larger value is a broken answer, not a tip.
pub const MAX_PLAUSIBLE: u64 = 1_000_000_000_000;

/// Probes Jormungandr nodes over REST API v0. One client serves every node.
#[derive(Clone, Debug)]
pub struct JormungandrProbe {
    http: reqwest::Client,
}

impl JormungandrProbe {
    /// A probe with its own HTTP client: no proxy, no redirects, no idle connections kept.
    ///
    /// There is no separate connect timeout: the probe's `timeout` bounds connect, request and body
    /// together, so the connect timeout is exactly the probe timeout.
    pub fn new() -> Self {
        JormungandrProbe { http: client() }
    }

    /// Sends the request and reads the body, at most `MAX_BODY_BYTES` of it.
    async fn fetch(&self, url: Url) -> Result<Vec<u8>, ProbeError> {
        crate::http::get_json(&self.http, url, MAX_BODY_BYTES)
            .await
            .map_err(|e| get_error(e, MAX_BODY_BYTES))
    }
}

/// The HTTP client of every exchange with a Jormungandr node: no proxy, no redirects, no idle
/// connections kept.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        // A node restarted by supervisord drops its connections; a pooled one would fail the
        // next exchange spuriously, and a fresh loopback connection costs a fraction of a
        // millisecond. Each exchange therefore opens its own connection.
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("nodekeeper/", env!("CARGO_PKG_VERSION")))
        .build()
        // Building fails only for TLS or proxy setup, neither of which is used here.
        .unwrap_or_default()
}

/// A failed JSON GET (`http::get_json` with `limit`) in the probe's taxonomy.
pub(crate) fn get_error(error: crate::http::GetError, limit: usize) -> ProbeError {
    match error {
        crate::http::GetError::Transport(e) => classify(&e),
        crate::http::GetError::Status(code) => ProbeError::Status(code),
        crate::http::GetError::TooLarge => too_large(limit),
    }
}

/// An answer over `limit` bytes.
pub(crate) fn too_large(limit: usize) -> ProbeError {
    ProbeError::Malformed(format!("answer larger than {limit} bytes"))
}

impl Default for JormungandrProbe {
    fn default() -> Self {
        JormungandrProbe::new()
    }
}

impl JormungandrProbe {
    /// `GET {api}/v0/node/stats` of the node whose API base is `api` (e.g.
    /// `http://127.0.0.1:3101/api`), within `timeout`.
    pub async fn probe(&self, api: &Url, timeout: Duration) -> Result<NodeStatus, ProbeError> {
        let url = stats_url(api)?;
        let body = match tokio::time::timeout(timeout, self.fetch(url)).await {
            Ok(result) => result?,
            Err(_elapsed) => return Err(ProbeError::Timeout(timeout)),
        };
        parse_stats(&body)
    }
}

/// `{api}/v0/node/stats` for an API base like `http://127.0.0.1:3101/api` (a trailing slash is
/// allowed).
pub fn stats_url(api: &Url) -> Result<Url, ProbeError> {
    api_url(api, &["v0", "node", "stats"])
}

/// `{api}/{segments joined by /}` for an API base like `http://127.0.0.1:3101/api` (a trailing
/// slash is allowed). A plain `Url::join` would replace the last segment `api`, hence segment
/// pushing (which also percent-encodes each segment).
pub fn api_url(api: &Url, segments: &[&str]) -> Result<Url, ProbeError> {
    let mut url = api.clone();
    match url.path_segments_mut() {
        Ok(mut path) => {
            path.pop_if_empty().extend(segments);
        }
        Err(()) => return Err(ProbeError::Connect(format!("unusable API address {api}"))),
    }
    Ok(url)
}

/// Turns a reqwest error into the taxonomy: connection refused anywhere in the cause chain is
/// `Refused`; anything else is `Connect` with the innermost cause (short, no body).
pub(crate) fn classify(error: &reqwest::Error) -> ProbeError {
    if describe::io_error_kind(error) == Some(io::ErrorKind::ConnectionRefused) {
        return ProbeError::Refused;
    }
    ProbeError::Connect(describe::innermost(error))
}

/// Decodes a `/api/v0/node/stats` body. Pure; never panics.
///
/// `state` and `version` are required. Every stats field is optional (absent or `null` is `None`,
/// which is normal while not `Running`), but a field that is present with the wrong type or an
/// unusable value makes the whole answer `Malformed`: a half-understood answer is not trusted.
pub fn parse_stats(body: &[u8]) -> Result<NodeStatus, ProbeError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("not JSON ({e}; {} bytes)", body.len())))?;
    let Value::Object(fields) = value else {
        return Err(malformed(format!(
            "{} instead of a JSON object",
            json_kind(&value)
        )));
    };
    let state = required_str(&fields, "state")?;
    let version = required_str(&fields, "version")?;
    Ok(NodeStatus {
        state: node_state(state),
        version: version.to_string(),
        height: optional(&fields, "lastBlockHeight", integer)?,
        tip_hash: optional(&fields, "lastBlockHash", string)?,
        tip_date: optional(&fields, "lastBlockDate", string)?,
        last_block_time: optional(&fields, "lastBlockTime", time)?,
        uptime_secs: optional(&fields, "uptime", integer)?,
    })
}

/// Jormungandr's state names: `Running` follows the chain; every other name (`StartingRestServer`,
/// `PreparingStorage`, `PreparingBlock0`, `Bootstrapping`, `StartingWorkers`, or one a later
/// version adds) is a phase before it, kept as sent.
fn node_state(name: &str) -> NodeState {
    match name {
        "Running" => NodeState::Running,
        phase => NodeState::Booting(phase.to_string()),
    }
}

fn malformed(detail: String) -> ProbeError {
    ProbeError::Malformed(detail)
}

fn required_str<'a>(fields: &'a Map<String, Value>, key: &str) -> Result<&'a str, ProbeError> {
    match fields.get(key) {
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(malformed(format!(
            "{key} is {}, not a string",
            json_kind(other)
        ))),
        None => Err(malformed(format!("no {key}"))),
    }
}

/// Applies `convert` to `fields[key]`; absent or `null` is `None`.
fn optional<'a, T>(
    fields: &'a Map<String, Value>,
    key: &str,
    convert: fn(&'a Value) -> Result<T, String>,
) -> Result<Option<T>, ProbeError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => convert(value)
            .map(Some)
            .map_err(|why| malformed(format!("{key} {why}"))),
    }
}

/// A non-negative integer up to `MAX_PLAUSIBLE`, sent as a decimal string (Jormungandr's heights)
/// or a JSON number.
fn integer(value: &Value) -> Result<u64, String> {
    let number = match value {
        Value::String(text) => {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "is not a non-negative integer: {}",
                    describe::excerpt(text, 40)
                ));
            }
            text.parse::<u64>()
                .map_err(|_| format!("is out of range: {}", describe::excerpt(text, 40)))?
        }
        Value::Number(number) => number
            .as_u64()
            .ok_or_else(|| format!("is not a non-negative integer: {number}"))?,
        other => return Err(format!("is {}, not an integer", json_kind(other))),
    };
    if number > MAX_PLAUSIBLE {
        return Err(format!("is out of range: {number}"));
    }
    Ok(number)
}

fn string(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        other => Err(format!("is {}, not a string", json_kind(other))),
    }
}

/// An RFC 3339 date (`2020-05-08T11:43:59+00:00`).
pub(crate) fn time(value: &Value) -> Result<SystemTime, String> {
    let Value::String(text) = value else {
        return Err(format!("is {}, not a date", json_kind(value)));
    };
    let date = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|_| format!("is not an RFC 3339 date: {}", describe::excerpt(text, 40)))?;
    crate::time::from_unix(date.timestamp(), date.timestamp_subsec_nanos())
        .ok_or_else(|| format!("is out of range: {}", describe::excerpt(text, 40)))
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const RUNNING_08: &str = r#"{"version":"jormungandr 0.8.19-1f7f4f4d","state":"Running",
 "blockRecvCnt":1102,"lastBlockContentSize":484,"lastBlockDate":"146.29711",
 "lastBlockFees":534,"lastBlockHash":"b9597b45a402451540e6aabb58f2ee4d65c67953b338e04c52c00aa0886bd1f0",
 "lastBlockHeight":"405672","lastBlockSum":51604,"lastBlockTime":"2020-05-08T11:43:59+00:00","lastBlockTx":2,
 "lastReceivedBlockTime":"2020-05-08T11:44:00+00:00","nodeId":"ad24537cb009bedaebae3d247fecee9e14c57fe942e9bb0d",
 "peerAvailableCnt":321,"peerConnectedCnt":40,"peerQuarantinedCnt":123,"peerTotalCnt":449,"peerUnreachableCnt":5,
 "txRecvCnt":5440,"uptime":20032}"#;

    const RUNNING_09: &str = r#"{"version":"jormungandr 0.9.0","state":"Running","blockRecvCnt":3,
 "lastBlockContentSize":0,"lastBlockDate":"0.12","lastBlockFees":0,"lastBlockHash":"00ff",
 "lastBlockHeight":"7","lastBlockSum":0,"lastBlockTime":"2020-05-11T19:13:37.417263555+00:00",
 "lastBlockTx":0,"lastReceivedBlockTime":null,"peerAvailableCnt":42,"peerConnectedCnt":8,
 "peerQuarantinedCnt":3,"peerTotalCnt":53,"peerUnreachableCnt":0,"txRecvCnt":6,"uptime":null}"#;

    const BOOTSTRAPPING: &str =
        r#"{"version":"jormungandr 0.8.19-1f7f4f4d","state":"Bootstrapping"}"#;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn status(state: NodeState, version: &str) -> NodeStatus {
        NodeStatus {
            state,
            version: version.into(),
            height: None,
            tip_hash: None,
            tip_date: None,
            last_block_time: None,
            uptime_secs: None,
        }
    }

    #[test]
    fn decodes_the_real_shapes() {
        let cases: Vec<(&str, &str, NodeStatus)> = vec![
            (
                "running 0.8 with nodeId",
                RUNNING_08,
                NodeStatus {
                    height: Some(405_672),
                    tip_hash: Some(
                        "b9597b45a402451540e6aabb58f2ee4d65c67953b338e04c52c00aa0886bd1f0".into(),
                    ),
                    tip_date: Some("146.29711".into()),
                    last_block_time: Some(at(1_588_938_239, 0)),
                    uptime_secs: Some(20_032),
                    ..status(NodeState::Running, "jormungandr 0.8.19-1f7f4f4d")
                },
            ),
            (
                "running 0.9, fractional time, null uptime",
                RUNNING_09,
                NodeStatus {
                    height: Some(7),
                    tip_hash: Some("00ff".into()),
                    tip_date: Some("0.12".into()),
                    last_block_time: Some(at(1_589_224_417, 417_263_555)),
                    ..status(NodeState::Running, "jormungandr 0.9.0")
                },
            ),
            (
                "bootstrapping: state and version only",
                BOOTSTRAPPING,
                status(
                    NodeState::Booting("Bootstrapping".into()),
                    "jormungandr 0.8.19-1f7f4f4d",
                ),
            ),
            (
                "height as a JSON number",
                r#"{"state":"Running","version":"v","lastBlockHeight":12}"#,
                NodeStatus {
                    height: Some(12),
                    ..status(NodeState::Running, "v")
                },
            ),
            (
                "height at the plausibility bound",
                r#"{"state":"Running","version":"v","lastBlockHeight":"1000000000000"}"#,
                NodeStatus {
                    height: Some(MAX_PLAUSIBLE),
                    ..status(NodeState::Running, "v")
                },
            ),
            (
                "unknown state kept, non-UTC offset converted",
                r#"{"state":"Dreaming","version":"v","lastBlockTime":"2020-05-08T13:43:59+02:00"}"#,
                NodeStatus {
                    last_block_time: Some(at(1_588_938_239, 0)),
                    ..status(NodeState::Booting("Dreaming".into()), "v")
                },
            ),
        ];
        for (name, body, expected) in cases {
            assert_eq!(parse_stats(body.as_bytes()), Ok(expected), "{name}");
        }
    }

    #[test]
    fn refuses_broken_answers_with_a_short_detail() {
        let cases: Vec<(&str, &[u8], &str)> =
            vec![
            ("empty", b"", "not JSON"),
            ("html", b"<html><body>502 Bad Gateway</body></html>", "not JSON"),
            ("truncated", b"{\"state\":\"Running\",\"ver", "not JSON"),
            ("not utf-8", b"{\"state\":\"\xff\"}", "not JSON"),
            ("array", b"[1,2]", "an array instead of a JSON object"),
            ("no state", br#"{"version":"v"}"#, "no state"),
            ("no version", br#"{"state":"Running"}"#, "no version"),
            ("numeric state", br#"{"state":3,"version":"v"}"#, "state is a number"),
            (
                "non-numeric height",
                br#"{"state":"Running","version":"v","lastBlockHeight":"abc"}"#,
                "lastBlockHeight is not a non-negative integer: \"abc\"",
            ),
            (
                "empty height",
                br#"{"state":"Running","version":"v","lastBlockHeight":""}"#,
                "lastBlockHeight is not a non-negative integer",
            ),
            (
                "signed height",
                br#"{"state":"Running","version":"v","lastBlockHeight":"+5"}"#,
                "lastBlockHeight is not a non-negative integer",
            ),
            (
                "negative height string",
                br#"{"state":"Running","version":"v","lastBlockHeight":"-5"}"#,
                "lastBlockHeight is not a non-negative integer",
            ),
            (
                "negative height number",
                br#"{"state":"Running","version":"v","lastBlockHeight":-5}"#,
                "lastBlockHeight is not a non-negative integer: -5",
            ),
            (
                "fractional height",
                br#"{"state":"Running","version":"v","lastBlockHeight":5.5}"#,
                "lastBlockHeight is not a non-negative integer",
            ),
            (
                "height beyond u64",
                br#"{"state":"Running","version":"v","lastBlockHeight":"99999999999999999999999"}"#,
                "lastBlockHeight is out of range",
            ),
            (
                "huge number height",
                br#"{"state":"Running","version":"v","lastBlockHeight":1e30}"#,
                "lastBlockHeight is not a non-negative integer",
            ),
            (
                "implausible height",
                br#"{"state":"Running","version":"v","lastBlockHeight":"1000000000001"}"#,
                "lastBlockHeight is out of range",
            ),
            (
                "boolean height",
                br#"{"state":"Running","version":"v","lastBlockHeight":true}"#,
                "lastBlockHeight is a boolean, not an integer",
            ),
            (
                "hash as a number",
                br#"{"state":"Running","version":"v","lastBlockHash":12}"#,
                "lastBlockHash is a number, not a string",
            ),
            (
                "bad date",
                br#"{"state":"Running","version":"v","lastBlockTime":"yesterday"}"#,
                "lastBlockTime is not an RFC 3339 date",
            ),
            (
                "negative uptime",
                br#"{"state":"Running","version":"v","uptime":-1}"#,
                "uptime is not a non-negative integer",
            ),
        ];
        for (name, body, expected) in cases {
            match parse_stats(body) {
                Err(ProbeError::Malformed(detail)) => {
                    assert!(detail.starts_with(expected), "{name}: {detail}");
                    assert!(detail.len() < 120, "{name}: detail too long: {detail}");
                }
                other => panic!("{name}: expected Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_long_bad_value_is_cut_in_the_detail() {
        let body = format!(
            r#"{{"state":"Running","version":"v","lastBlockHeight":"{}"}}"#,
            "x".repeat(10_000)
        );
        let Err(ProbeError::Malformed(detail)) = parse_stats(body.as_bytes()) else {
            panic!("expected Malformed");
        };
        assert!(detail.len() < 100, "{detail}");
    }

    #[test]
    fn stats_url_appends_segments() {
        let cases = [
            (
                "http://127.0.0.1:3101/api",
                "http://127.0.0.1:3101/api/v0/node/stats",
            ),
            (
                "http://127.0.0.1:3101/api/",
                "http://127.0.0.1:3101/api/v0/node/stats",
            ),
            (
                "http://127.0.0.1:3101",
                "http://127.0.0.1:3101/v0/node/stats",
            ),
            (
                "http://node:80/a/b/api",
                "http://node/a/b/api/v0/node/stats",
            ),
        ];
        for (api, expected) in cases {
            let url = stats_url(&Url::parse(api).unwrap()).unwrap();
            assert_eq!(url.as_str(), expected, "{api}");
        }
        let odd = Url::parse("mailto:node@example.org").unwrap();
        assert!(matches!(stats_url(&odd), Err(ProbeError::Connect(_))));
    }

    /// What the scripted server does with each connection.
    #[derive(Clone)]
    enum Script {
        /// Reads the request, then writes these bytes and closes.
        Answer(Vec<u8>),
        /// Reads the request and never answers.
        Hang,
    }

    /// A loopback server that follows `script` for every connection; returns the API base URL.
    async fn serve(script: Script) -> Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let script = script.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    match script {
                        Script::Answer(bytes) => {
                            let _ = socket.write_all(&bytes).await;
                            let _ = socket.shutdown().await;
                        }
                        Script::Hang => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            drop(socket);
                        }
                    }
                });
            }
        });
        Url::parse(&format!("http://{address}/api")).unwrap()
    }

    fn http(status: &str, body: &[u8]) -> Vec<u8> {
        let mut bytes = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    const FAST: Duration = Duration::from_millis(800);

    #[tokio::test]
    async fn probes_over_http() {
        let probe = JormungandrProbe::new();
        let cases: Vec<(&str, Vec<u8>, Result<NodeStatus, ProbeError>)> = vec![
            (
                "valid",
                http("200 OK", BOOTSTRAPPING.as_bytes()),
                Ok(status(
                    NodeState::Booting("Bootstrapping".into()),
                    "jormungandr 0.8.19-1f7f4f4d",
                )),
            ),
            (
                "500",
                http("500 Internal Server Error", b"oops"),
                Err(ProbeError::Status(500)),
            ),
            (
                "redirect is not followed",
                b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n"
                    .to_vec(),
                Err(ProbeError::Status(302)),
            ),
            (
                "declared too large",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n{".to_vec(),
                Err(ProbeError::Malformed(format!(
                    "answer larger than {MAX_BODY_BYTES} bytes"
                ))),
            ),
            (
                "streamed too large",
                [
                    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".as_slice(),
                    &vec![b' '; MAX_BODY_BYTES + 1],
                ]
                .concat(),
                Err(ProbeError::Malformed(format!(
                    "answer larger than {MAX_BODY_BYTES} bytes"
                ))),
            ),
            (
                "closed without an answer",
                Vec::new(),
                Err(ProbeError::Connect(String::new())),
            ),
        ];
        for (name, answer, expected) in cases {
            let api = serve(Script::Answer(answer)).await;
            let got = probe.probe(&api, FAST).await;
            match (&got, &expected) {
                // The text of a connection failure is hyper's; only the variant is pinned.
                (Err(ProbeError::Connect(text)), Err(ProbeError::Connect(_))) => {
                    assert!(!text.is_empty(), "{name}")
                }
                _ => assert_eq!(got, expected, "{name}"),
            }
        }
    }

    #[tokio::test]
    async fn non_json_over_http_is_malformed() {
        let api = serve(Script::Answer(http("200 OK", b"<html>hello</html>"))).await;
        let got = JormungandrProbe::new().probe(&api, FAST).await;
        assert!(
            matches!(&got, Err(ProbeError::Malformed(d)) if d.starts_with("not JSON")),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_hung_node_times_out_within_the_timeout() {
        let api = serve(Script::Hang).await;
        let timeout = Duration::from_millis(200);
        let started = tokio::time::Instant::now();
        let got = JormungandrProbe::new().probe(&api, timeout).await;
        assert_eq!(got, Err(ProbeError::Timeout(timeout)));
        assert!(started.elapsed() < Duration::from_millis(600));
    }

    #[tokio::test]
    async fn a_hung_node_does_not_block_another() {
        let probe = JormungandrProbe::new();
        let hung = serve(Script::Hang).await;
        let healthy = serve(Script::Answer(http("200 OK", RUNNING_09.as_bytes()))).await;
        let (hung_result, healthy_result) =
            tokio::join!(probe.probe(&hung, Duration::from_millis(300)), async {
                let started = tokio::time::Instant::now();
                let result = probe.probe(&healthy, FAST).await;
                (result, started.elapsed())
            });
        assert!(matches!(hung_result, Err(ProbeError::Timeout(_))));
        assert_eq!(healthy_result.0.unwrap().height, Some(7));
        assert!(healthy_result.1 < Duration::from_millis(250));
    }

    #[tokio::test]
    async fn nothing_listening_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let api = Url::parse(&format!("http://{address}/api")).unwrap();
        let got = JormungandrProbe::new().probe(&api, FAST).await;
        assert_eq!(got, Err(ProbeError::Refused));
    }
}
