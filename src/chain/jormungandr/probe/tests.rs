//! Node stats: the real shapes decoded, broken answers refused with a short detail, and the probe
//! over HTTP against scripted servers (hung, non-JSON, one hung node not blocking another).

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

const BOOTSTRAPPING: &str = r#"{"version":"jormungandr 0.8.19-1f7f4f4d","state":"Bootstrapping"}"#;

fn at(secs: u64, nanos: u32) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
}

fn status(state: NodeState, version: &str) -> NodeStatus {
    NodeStatus {
        state,
        version: version.into(),
        height: None,
        irreversible_height: None,
        tip_hash: None,
        tip_date: None,
        last_block_time: None,
        tip_time: None,
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
                irreversible_height: None,
                tip_hash: Some(
                    "b9597b45a402451540e6aabb58f2ee4d65c67953b338e04c52c00aa0886bd1f0".into(),
                ),
                tip_date: Some("146.29711".into()),
                last_block_time: Some(at(1_588_938_239, 0)),
                tip_time: None,
                uptime_secs: Some(20_032),
                ..status(NodeState::Running, "jormungandr 0.8.19-1f7f4f4d")
            },
        ),
        (
            "running 0.9, fractional time, null uptime",
            RUNNING_09,
            NodeStatus {
                height: Some(7),
                irreversible_height: None,
                tip_hash: Some("00ff".into()),
                tip_date: Some("0.12".into()),
                last_block_time: Some(at(1_589_224_417, 417_263_555)),
                tip_time: None,
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
                irreversible_height: None,
                ..status(NodeState::Running, "v")
            },
        ),
        (
            "height at the plausibility bound",
            r#"{"state":"Running","version":"v","lastBlockHeight":"1000000000000"}"#,
            NodeStatus {
                height: Some(MAX_PLAUSIBLE),
                irreversible_height: None,
                ..status(NodeState::Running, "v")
            },
        ),
        (
            "unknown state kept, non-UTC offset converted",
            r#"{"state":"Dreaming","version":"v","lastBlockTime":"2020-05-08T13:43:59+02:00"}"#,
            NodeStatus {
                last_block_time: Some(at(1_588_938_239, 0)),
                tip_time: None,
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
    let cases: Vec<(&str, &[u8], &str)> = vec![
        ("empty", b"", "not JSON"),
        (
            "html",
            b"<html><body>502 Bad Gateway</body></html>",
            "not JSON",
        ),
        ("truncated", b"{\"state\":\"Running\",\"ver", "not JSON"),
        ("not utf-8", b"{\"state\":\"\xff\"}", "not JSON"),
        ("array", b"[1,2]", "an array instead of a JSON object"),
        ("no state", br#"{"version":"v"}"#, "no state"),
        ("no version", br#"{"state":"Running"}"#, "no version"),
        (
            "numeric state",
            br#"{"state":3,"version":"v"}"#,
            "state is a number",
        ),
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
