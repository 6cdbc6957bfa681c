use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

#[test]
fn parses_majority_max() {
    let bad = |s: &str| Err(ReferenceError::BadMajorityMax(s.into()));
    let cases: Vec<(&str, &str, Result<u64, ReferenceError>)> = vec![
        (
            "number",
            r#"{"majoritymax": 405672, "max": 405680}"#,
            Ok(405_672),
        ),
        ("zero", r#"{"majoritymax": 0}"#, Ok(0)),
        ("string", r#"{"majoritymax": "405672"}"#, Ok(405_672)),
        (
            "padded string",
            r#"{"majoritymax": " 405672\n"}"#,
            Ok(405_672),
        ),
        (
            "integral float",
            r#"{"majoritymax": 405672.0}"#,
            Ok(405_672),
        ),
        ("exponent", r#"{"majoritymax": 4.05672e5}"#, Ok(405_672)),
        (
            "at the bound",
            r#"{"majoritymax": 1000000000000}"#,
            Ok(MAX_PLAUSIBLE),
        ),
        ("fraction", r#"{"majoritymax": 405672.5}"#, bad("405672.5")),
        ("negative", r#"{"majoritymax": -1}"#, bad("-1")),
        ("negative float", r#"{"majoritymax": -1.0}"#, bad("-1.0")),
        ("negative string", r#"{"majoritymax": "-1"}"#, bad("\"-1\"")),
        (
            "float string",
            r#"{"majoritymax": "405672.0"}"#,
            bad("\"405672.0\""),
        ),
        ("empty string", r#"{"majoritymax": ""}"#, bad("\"\"")),
        ("word", r#"{"majoritymax": "n/a"}"#, bad("\"n/a\"")),
        ("boolean", r#"{"majoritymax": true}"#, bad("true")),
        ("null", r#"{"majoritymax": null}"#, bad("null")),
        ("array", r#"{"majoritymax": [1]}"#, bad("an array")),
        ("object", r#"{"majoritymax": {"h": 1}}"#, bad("an object")),
        (
            "absurd",
            r#"{"majoritymax": 1000000000001}"#,
            bad("1000000000001 is implausibly large"),
        ),
        (
            "absurd string",
            r#"{"majoritymax": "99999999999999"}"#,
            bad("99999999999999 is implausibly large"),
        ),
        (
            "beyond u64",
            r#"{"majoritymax": "99999999999999999999"}"#,
            bad("\"99999999999999999999\""),
        ),
        ("huge float", r#"{"majoritymax": 1e300}"#, bad("1e+300")),
        (
            "missing",
            r#"{"max": 405680}"#,
            Err(ReferenceError::MissingMajorityMax),
        ),
        (
            "not an object",
            r#"[405672]"#,
            Err(ReferenceError::MissingMajorityMax),
        ),
        (
            "bare number",
            r#"405672"#,
            Err(ReferenceError::MissingMajorityMax),
        ),
    ];
    for (name, body, expected) in cases {
        assert_eq!(parse_majority_max(body.as_bytes()), expected, "{name}");
    }
}

#[test]
fn garbage_is_not_json_with_a_short_detail() {
    let long = format!("<html>{}</html>", "x".repeat(100_000));
    for body in [
        &b""[..],
        b"<html>503</html>",
        b"{\"majoritymax\": 4",
        b"\xff\xfe",
        long.as_bytes(),
    ] {
        match parse_majority_max(body) {
            Err(ReferenceError::NotJson(detail)) => assert!(detail.len() < 100, "{detail}"),
            other => panic!("{body:?}: {other:?}"),
        }
    }
}

#[test]
fn bad_values_are_cut_in_the_message() {
    let body = format!(r#"{{"majoritymax": "{}"}}"#, "z".repeat(5_000));
    let error = parse_majority_max(body.as_bytes()).unwrap_err();
    assert!(error.to_string().len() < 120, "{error}");
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
}

fn good(height: u64, at: u64) -> Result<Reference, ReferenceError> {
    Ok(Reference {
        height,
        fetched_at: t(at),
    })
}

fn failed() -> Result<Reference, ReferenceError> {
    Err(ExchangeError::Status(503).into())
}

/// One step of a tracker scenario: record an attempt, or check the tracker at a time.
enum Step {
    Record(u64, Result<Reference, ReferenceError>),
    /// At `t`: (due, current height, consecutive failures).
    Check(u64, bool, Option<u64>, u32),
}

#[track_caller]
fn check(steps: Vec<Step>) {
    // refresh 60 s, max age 180 s: the defaults.
    let mut tracker = ReferenceTracker::new(Duration::from_secs(60), Duration::from_secs(180));
    for (index, step) in steps.into_iter().enumerate() {
        match step {
            Step::Record(at, result) => tracker.record(t(at), result),
            Step::Check(at, due, height, failures) => {
                let got = (
                    tracker.due(t(at)),
                    tracker.current(t(at)).map(|r| r.height),
                    tracker.consecutive_failures(),
                );
                assert_eq!(got, (due, height, failures), "step {index} at t={at}");
            }
        }
    }
}

#[test]
fn tracker_scenarios() {
    use Step::{Check, Record};
    // Never fetched: due, nothing current.
    check(vec![Check(0, true, None, 0)]);
    // Success: not due until refresh, current until max_age (inclusive), then stale.
    check(vec![
        Record(0, good(100, 0)),
        Check(59, false, Some(100), 0),
        Check(60, true, Some(100), 0),
        Check(180, true, Some(100), 0),
        Check(181, true, None, 0),
    ]);
    // Failures back off 1×, 2×, 4×, 8×, 8× and keep the last good value until it ages out.
    check(vec![
        Record(0, good(100, 0)),
        Record(60, failed()),
        Check(119, false, Some(100), 1),
        Check(120, true, Some(100), 1),
        Record(120, failed()),
        Check(180, false, Some(100), 2),
        Check(239, false, None, 2),
        Check(240, true, None, 2),
        Record(240, failed()),
        Check(479, false, None, 3),
        Check(480, true, None, 3),
        Record(480, failed()),
        Check(959, false, None, 4),
        Check(960, true, None, 4),
        Record(960, failed()),
        Check(1439, false, None, 5),
        Check(1440, true, None, 5),
        // Recovery resets the back-off and replaces the value.
        Record(1440, good(200, 1440)),
        Check(1499, false, Some(200), 0),
        Check(1500, true, Some(200), 0),
    ]);
    // A lower height replaces a higher one (rollback of the majority).
    check(vec![
        Record(0, good(100, 0)),
        Record(60, good(98, 60)),
        Check(61, false, Some(98), 0),
    ]);
    // The clock stepped back: due at once, and the "future" reference is not current.
    check(vec![Record(100, good(100, 100)), Check(50, true, None, 0)]);
    // A failure before any success: nothing current.
    check(vec![
        Record(0, failed()),
        Check(30, false, None, 1),
        Check(60, true, None, 1),
    ]);
}

#[test]
fn tracker_reports_the_last_error_until_a_success() {
    let mut tracker = ReferenceTracker::new(Duration::from_secs(60), Duration::from_secs(180));
    assert_eq!(tracker.last_error(), None);
    assert_eq!(tracker.next_attempt_at(), None);
    tracker.record(t(0), Err(ReferenceError::MissingMajorityMax));
    tracker.record(
        t(60),
        Err(ReferenceError::Exchange(ExchangeError::Timeout(
            Duration::from_secs(5),
        ))),
    );
    assert_eq!(
        tracker.last_error(),
        Some(&ReferenceError::Exchange(ExchangeError::Timeout(
            Duration::from_secs(5)
        )))
    );
    assert_eq!(tracker.next_attempt_at(), Some(t(180)));
    tracker.record(t(180), good(7, 180));
    assert_eq!(tracker.last_error(), None);
    assert_eq!(tracker.last_good().map(|r| r.height), Some(7));
}

#[test]
fn tracker_survives_extreme_durations() {
    // A zero refresh (refused by the configuration) retries at once, failures or not.
    let mut tracker = ReferenceTracker::new(Duration::ZERO, Duration::ZERO);
    tracker.record(t(0), failed());
    tracker.record(t(0), failed());
    assert_eq!(tracker.interval(), Duration::ZERO);
    assert!(tracker.due(t(0)));
    let tracker = ReferenceTracker::new(Duration::MAX, Duration::MAX);
    assert!(tracker.due(t(0)));
    let mut tracker = ReferenceTracker::new(Duration::MAX, Duration::ZERO);
    for at in 0..10 {
        tracker.record(t(at), failed());
    }
    assert_eq!(tracker.interval(), Duration::MAX);
    assert!(!tracker.due(t(20)));
    assert_eq!(tracker.next_attempt_at(), None);
}

/// A loopback server answering every connection with `answer`; the request lines are sent to
/// the returned channel.
async fn serve(answer: Vec<u8>) -> (Url, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let line = String::from_utf8_lossy(&request)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let _ = sender.send(line);
            if answer.is_empty() {
                // Hang: keep the connection open without answering.
                tokio::time::sleep(Duration::from_secs(30)).await;
            } else {
                let _ = socket.write_all(&answer).await;
                let _ = socket.shutdown().await;
            }
        }
    });
    let url = Url::parse(&format!("http://{address}/stats/stats.json")).unwrap();
    (url, receiver)
}

fn http(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const TIMEOUT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn fetches_with_a_cache_buster() {
    let (url, mut requests) = serve(http("200 OK", r#"{"majoritymax":"405672"}"#)).await;
    let source = PoolToolSource::new(url, TIMEOUT);
    let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_589_224_417_123);
    let reference = source.fetch(now).await.unwrap();
    assert_eq!(
        reference,
        Reference {
            height: 405_672,
            fetched_at: now
        }
    );
    assert_eq!(
        requests.recv().await.unwrap(),
        "GET /stats/stats.json?now=1589224417123 HTTP/1.1"
    );
}

#[tokio::test]
async fn fetch_failures_are_typed() {
    let cases: Vec<(&str, Vec<u8>, ReferenceError)> = vec![
        (
            "503",
            http("503 Service Unavailable", "slow down"),
            ExchangeError::Status(503).into(),
        ),
        (
            "garbage",
            http("200 OK", "<html>"),
            ReferenceError::NotJson(String::new()),
        ),
        (
            "missing",
            http("200 OK", "{}"),
            ReferenceError::MissingMajorityMax,
        ),
        ("hung", Vec::new(), ExchangeError::Timeout(TIMEOUT).into()),
        (
            "too large",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n".to_vec(),
            ReferenceError::TooLarge(MAX_BODY_BYTES),
        ),
    ];
    for (name, answer, expected) in cases {
        let (url, _requests) = serve(answer).await;
        let got = PoolToolSource::new(url, TIMEOUT)
            .fetch(t(0))
            .await
            .unwrap_err();
        match (&got, &expected) {
            (ReferenceError::NotJson(_), ReferenceError::NotJson(_)) => {}
            _ => assert_eq!(got, expected, "{name}"),
        }
    }
}

#[tokio::test]
async fn https_without_tls_says_so() {
    let url = Url::parse("https://127.0.0.1:9/stats/stats.json").unwrap();
    let got = PoolToolSource::new(url, TIMEOUT).fetch(t(0)).await;
    // With a TLS backend this becomes a connection failure to port 9 instead.
    assert!(
        matches!(
            got,
            Err(ReferenceError::Exchange(ExchangeError::Unreachable(_)))
        ),
        "{got:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let url = Url::parse(&format!("http://{address}/stats.json")).unwrap();
    let got = PoolToolSource::new(url, TIMEOUT).fetch(t(0)).await;
    assert_eq!(
        got,
        Err(ExchangeError::Unreachable("connection refused".into()).into())
    );
}
