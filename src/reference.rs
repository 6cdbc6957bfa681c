//! The reference tip: PoolTool's majority max (`stats.json`, key `majoritymax`), the height reported
//! by the largest number of pools. This module owns fetching it (`PoolToolSource`), decoding it
//! (`parse_majority_max`, pure) and the refresh policy (`ReferenceTracker`, pure: `now` is passed in).
//!
//! A broken reference never produces a value: garbage is an error, and a reference older than the
//! tracker's `max_age` is not current. It must not decide anything about nodes.
//!
//! Unlike jmanager (§1.4), a non-numeric `majoritymax` is an error of this source only, never a
//! crash of the loop, and there is no "0 when unavailable": unavailable is `None`.

use std::io;
use std::time::{Duration, SystemTime};

use reqwest::Url;

use crate::describe;
use serde_json::Value;

/// The largest answer read; `stats.json` is a few KB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The largest `majoritymax` believed: no chain is 10^12 blocks long.
pub const MAX_PLAUSIBLE: u64 = 1_000_000_000_000;

/// The back-off multiplier's ceiling: after repeated failures, attempts are `8 × refresh` apart.
pub const MAX_BACKOFF_FACTOR: u32 = 8;

/// A reference tip height and when it was fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Reference {
    /// The majority max height.
    pub height: u64,
    /// When it was fetched (the `now` passed to `PoolToolSource::fetch`).
    pub fetched_at: SystemTime,
}

/// Why no reference came out of a fetch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub enum ReferenceError {
    /// The connection failed (refused, DNS, reset, unsupported scheme, ...).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// An HTTP status other than 200.
    #[error("HTTP {0}")]
    Status(u16),
    /// The body was larger than `MAX_BODY_BYTES`.
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    /// The body was not JSON (the detail is short, never the body).
    #[error("not JSON: {0}")]
    NotJson(String),
    /// The JSON has no `majoritymax` (or is not an object).
    #[error("no majoritymax in the answer")]
    MissingMajorityMax,
    /// `majoritymax` is present but not a plausible non-negative integer.
    #[error("majoritymax is not a non-negative integer: {0}")]
    BadMajorityMax(String),
}

impl ReferenceError {
    /// A short stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ReferenceError::Unreachable(_) => "unreachable",
            ReferenceError::Timeout(_) => "timeout",
            ReferenceError::Status(_) => "http_status",
            ReferenceError::TooLarge(_) => "too_large",
            ReferenceError::NotJson(_) => "not_json",
            ReferenceError::MissingMajorityMax => "missing",
            ReferenceError::BadMajorityMax(_) => "bad_value",
        }
    }
}

/// Decodes `majoritymax` from a `stats.json` body. Pure; never panics.
///
/// Accepted, as clients accept them: a JSON integer, an integral JSON float (`405672.0`), or a
/// string of decimal digits (surrounding whitespace allowed, as Python's `int()` allows). Refused:
/// fractions, negatives, booleans, null, other types and values above `MAX_PLAUSIBLE`.
pub fn parse_majority_max(body: &[u8]) -> Result<u64, ReferenceError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ReferenceError::NotJson(format!("{e} ({} bytes)", body.len())))?;
    let Some(field) = value.get("majoritymax") else {
        return Err(ReferenceError::MissingMajorityMax);
    };
    let bad = |why: String| ReferenceError::BadMajorityMax(why);
    let height = match field {
        Value::Number(number) => {
            if let Some(height) = number.as_u64() {
                height
            } else if let Some(float) = number.as_f64()
                && float.is_finite()
                && float >= 0.0
                && float.fract() == 0.0
                && float <= MAX_PLAUSIBLE as f64
            {
                // Exact: an integral float at most 10^12 converts without loss.
                float as u64
            } else {
                return Err(bad(number.to_string()));
            }
        }
        Value::String(text) => {
            let digits = text.trim();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(describe::excerpt(text, 40)));
            }
            digits
                .parse::<u64>()
                .map_err(|_| bad(describe::excerpt(text, 40)))?
        }
        Value::Null => return Err(bad("null".into())),
        Value::Bool(flag) => return Err(bad(flag.to_string())),
        Value::Array(_) => return Err(bad("an array".into())),
        Value::Object(_) => return Err(bad("an object".into())),
    };
    if height > MAX_PLAUSIBLE {
        return Err(bad(format!("{height} is implausibly large")));
    }
    Ok(height)
}

/// Fetches PoolTool's `stats.json`.
///
/// Every request carries `now=<milliseconds since the epoch>` (from the `now` passed in, so no
/// clock is read here), as PoolTool's own clients do: any cache between us and the object (a proxy,
/// a CDN in front of a mirror) would otherwise serve an old tip that looks fresh, because
/// `fetched_at` is our time, not the object's. S3 ignores the parameter.
#[derive(Clone, Debug)]
pub struct PoolToolSource {
    http: reqwest::Client,
    url: Url,
    timeout: Duration,
}

impl PoolToolSource {
    /// A source for `url` (the `stats.json` address) with a timeout over each whole fetch.
    pub fn new(url: Url, timeout: Duration) -> PoolToolSource {
        let http = reqwest::Client::builder()
            .no_proxy()
            .user_agent(concat!("nodekeeper/", env!("CARGO_PKG_VERSION")))
            .build()
            // Building fails only for TLS or proxy setup, which are not configured here.
            .unwrap_or_default();
        PoolToolSource { http, url, timeout }
    }

    /// The configured address (without the cache-buster).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The address actually requested at `now`: the configured one plus `now=<ms>`.
    pub fn request_url(&self, now: SystemTime) -> Url {
        let millis = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair("now", &millis.to_string());
        url
    }

    /// Fetches and decodes the majority max; `fetched_at` is `now`.
    pub async fn fetch(&self, now: SystemTime) -> Result<Reference, ReferenceError> {
        let url = self.request_url(now);
        let body = match tokio::time::timeout(self.timeout, self.exchange(url)).await {
            Ok(result) => result?,
            Err(_elapsed) => return Err(ReferenceError::Timeout(self.timeout)),
        };
        let height = parse_majority_max(&body)?;
        Ok(Reference {
            height,
            fetched_at: now,
        })
    }

    async fn exchange(&self, url: Url) -> Result<Vec<u8>, ReferenceError> {
        crate::http::get_json(&self.http, url, MAX_BODY_BYTES)
            .await
            .map_err(|e| match e {
                crate::http::GetError::Transport(e) => unreachable(&e),
                crate::http::GetError::Status(code) => ReferenceError::Status(code),
                crate::http::GetError::TooLarge => ReferenceError::TooLarge(MAX_BODY_BYTES),
            })
    }
}

/// A transport failure, with "connection refused" spelled the same whatever layer reported it.
fn unreachable(error: &reqwest::Error) -> ReferenceError {
    if describe::io_error_kind(error) == Some(io::ErrorKind::ConnectionRefused) {
        return ReferenceError::Unreachable("connection refused".into());
    }
    ReferenceError::Unreachable(describe::innermost(error))
}

/// The refresh policy for the control loop. Pure: no I/O, no clock reads.
///
/// - `due`: never fetched, or the last *attempt* is at least one interval old. The interval is
///   `refresh` while fetches succeed and after a single failure (one blip retries at the normal
///   rate), then doubles with each further consecutive failure up to `8 × refresh`
///   (failures 0–1: 1×, 2: 2×, 3: 4×, 4 and more: 8×).
/// - `current`: the last good reference while `now - fetched_at <= max_age`; a failed attempt
///   does not discard it, it just ages out.
/// - A wall clock that stepped back (an attempt or a fetch "in the future") makes a fetch due and
///   the reference not current: its age is unknown, and unknown is treated as stale.
#[derive(Clone, Debug)]
pub struct ReferenceTracker {
    refresh: Duration,
    max_age: Duration,
    last_attempt: Option<SystemTime>,
    last_good: Option<Reference>,
    last_error: Option<ReferenceError>,
    consecutive_failures: u32,
}

impl ReferenceTracker {
    /// A tracker that has never fetched.
    pub fn new(refresh: Duration, max_age: Duration) -> Self {
        ReferenceTracker {
            refresh,
            max_age,
            last_attempt: None,
            last_good: None,
            last_error: None,
            consecutive_failures: 0,
        }
    }

    /// The wait between the last attempt and the next one, given the failures so far.
    pub fn interval(&self) -> Duration {
        let doublings = self.consecutive_failures.saturating_sub(1).min(3);
        let factor = (1u32 << doublings).min(MAX_BACKOFF_FACTOR);
        self.refresh.saturating_mul(factor)
    }

    /// Whether a fetch should be attempted at `now`.
    pub fn due(&self, now: SystemTime) -> bool {
        match self.last_attempt {
            None => true,
            Some(attempt) => match now.duration_since(attempt) {
                Ok(elapsed) => elapsed >= self.interval(),
                // The clock stepped back: how long it has been is unknown.
                Err(_) => true,
            },
        }
    }

    /// When the next attempt is due (`None`: now, nothing was attempted yet).
    pub fn next_attempt_at(&self) -> Option<SystemTime> {
        self.last_attempt
            .and_then(|attempt| attempt.checked_add(self.interval()))
    }

    /// Records the outcome of an attempt made at `now`. A success replaces the reference (also by a
    /// lower height: the majority can move back after a rollback) and clears the error; a failure
    /// keeps the last good reference, remembers the error and counts it.
    pub fn record(&mut self, now: SystemTime, result: Result<Reference, ReferenceError>) {
        self.last_attempt = Some(now);
        match result {
            Ok(reference) => {
                self.last_good = Some(reference);
                self.last_error = None;
                self.consecutive_failures = 0;
            }
            Err(error) => {
                self.last_error = Some(error);
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            }
        }
    }

    /// The last good reference, only while it is at most `max_age` old at `now`.
    pub fn current(&self, now: SystemTime) -> Option<Reference> {
        let reference = self.last_good?;
        let age = now.duration_since(reference.fetched_at).ok()?;
        (age <= self.max_age).then_some(reference)
    }

    /// The error of the last attempt, if it failed (cleared by a success).
    pub fn last_error(&self) -> Option<&ReferenceError> {
        self.last_error.as_ref()
    }

    /// Failed attempts since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The last good reference however old, for status display (never for decisions).
    pub fn last_good(&self) -> Option<Reference> {
        self.last_good
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

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
        Err(ReferenceError::Status(503))
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
        tracker.record(t(60), Err(ReferenceError::Timeout(Duration::from_secs(5))));
        assert_eq!(
            tracker.last_error(),
            Some(&ReferenceError::Timeout(Duration::from_secs(5)))
        );
        assert_eq!(tracker.next_attempt_at(), Some(t(180)));
        tracker.record(t(180), good(7, 180));
        assert_eq!(tracker.last_error(), None);
        assert_eq!(tracker.last_good().map(|r| r.height), Some(7));
    }

    #[test]
    fn tracker_survives_extreme_durations() {
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
                ReferenceError::Status(503),
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
            ("hung", Vec::new(), ReferenceError::Timeout(TIMEOUT)),
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
            matches!(got, Err(ReferenceError::Unreachable(_))),
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
            Err(ReferenceError::Unreachable("connection refused".into()))
        );
    }
}
