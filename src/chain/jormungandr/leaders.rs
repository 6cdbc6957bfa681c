//! A Jormungandr node's leader endpoints over REST API v0: the enclave's leader ids
//! (`GET`/`POST /api/v0/leaders`, `DELETE /api/v0/leaders/{id}`), the leadership logs
//! (`GET /api/v0/leaders/logs`) and the chain's time parameters (`GET /api/v0/settings`).
//!
//! Owns those HTTP exchanges (each under one timeout around the whole exchange, bodies read under a
//! size limit, errors in the probe's `ProbeError` taxonomy) and the pure decoding of the answers
//! (`parse_*`) into the types of `crate::slots`. It decides nothing about who should lead.
//!
//! The node secret posted to `/leaders` is the one thing here that must never leak: it is only ever
//! the request body. No error carries it (transport errors name the URL and the innermost cause, a
//! non-2xx answer is only its status, the detail of a malformed answer to a promotion quotes nothing).
//!
//! Wire facts (see `jormungandr-rest-v0.md` §2–4): leader ids are JSON numbers (u32); a log entry's
//! `status` is `"Pending"`, `{"Rejected":{"reason":…}}` or `{"Block":{…}}` and `finished_at_time` is
//! null while pending; `slotDuration` is whole seconds; every `/leaders*` route errors (503 on the
//! simulator) until the node is `Running`.

use std::time::Duration;

use reqwest::Url;
use serde_json::{Map, Value};

use super::probe::{api_url, classify, client, get_error, json_kind, time, too_large};
use super::secret::LeaderSecret;
use crate::chain::ProbeError;
use crate::describe;
use crate::http::{BodyError, get_json, read_limited};
use crate::slots::{LeaderLog, LogStatus, SlotClock, SlotDate};

/// The largest `GET /leaders` answer read (a handful of ids).
pub const MAX_LEADERS_BYTES: usize = 64 * 1024;
/// The largest answer to a promotion or a demotion read (one number, or nothing).
pub const MAX_ID_BYTES: usize = 4 * 1024;
/// The largest `GET /leaders/logs` answer read: a few hundred KB at most in practice (one entry is
/// about 400 bytes, the ring buffer holds `leadership.logs_capacity` entries).
pub const MAX_LOGS_BYTES: usize = 4 * 1024 * 1024;
/// The largest `GET /settings` answer read (about 1 KB).
pub const MAX_SETTINGS_BYTES: usize = 256 * 1024;
/// The longest slot believed, in seconds (Jormungandr's `slotDuration` is a u8).
pub const MAX_SLOT_SECS: u64 = 3_600;

/// Talks to one node's leader endpoints (Jormungandr REST v0). No idle connection reuse.
#[derive(Clone, Debug)]
pub struct LeaderApi {
    http: reqwest::Client,
}

impl Default for LeaderApi {
    fn default() -> Self {
        LeaderApi::new()
    }
}

impl LeaderApi {
    /// A client like the probe's: no proxy, no redirects, no idle connections kept (a node
    /// restarted by supervisord drops its connections).
    pub fn new() -> LeaderApi {
        LeaderApi { http: client() }
    }

    /// GET {api}/v0/leaders → ids (empty = passive).
    pub async fn leaders(&self, api: &Url, timeout: Duration) -> Result<Vec<u32>, ProbeError> {
        let body = self
            .get(api, &["v0", "leaders"], MAX_LEADERS_BYTES, timeout)
            .await?;
        parse_leaders(&body)
    }

    /// POST {api}/v0/leaders with the secret's JSON body → the enclave id. Any 2xx answer is
    /// accepted; the same pool id posted again gets its existing id back (enclave rules).
    pub async fn promote(
        &self,
        api: &Url,
        secret: &LeaderSecret,
        timeout: Duration,
    ) -> Result<u32, ProbeError> {
        let request = self
            .http
            .post(api_url(api, &["v0", "leaders"])?)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(secret.to_json_body());
        let body = within(timeout, send(request, MAX_ID_BYTES)).await?;
        parse_leader_id(&body)
    }

    /// DELETE {api}/v0/leaders/{id} → Ok(true) removed, Ok(false) 404 (no such id).
    pub async fn demote(&self, api: &Url, id: u32, timeout: Duration) -> Result<bool, ProbeError> {
        let request = self
            .http
            .delete(api_url(api, &["v0", "leaders", &id.to_string()])?);
        match within(timeout, send(request, MAX_ID_BYTES)).await {
            Ok(_) => Ok(true),
            Err(ProbeError::Status(404)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// GET {api}/v0/leaders/logs → typed entries, in the node's order. A malformed entry makes the
    /// whole answer `ProbeError::Malformed` with a short detail naming the entry.
    pub async fn logs(&self, api: &Url, timeout: Duration) -> Result<Vec<LeaderLog>, ProbeError> {
        let body = self
            .get(api, &["v0", "leaders", "logs"], MAX_LOGS_BYTES, timeout)
            .await?;
        parse_logs(&body)
    }

    /// GET {api}/v0/settings → the chain's clock from `block0Time` (RFC 3339), `slotDuration` (s)
    /// and `slotsPerEpoch`.
    pub async fn settings(&self, api: &Url, timeout: Duration) -> Result<SlotClock, ProbeError> {
        let body = self
            .get(api, &["v0", "settings"], MAX_SETTINGS_BYTES, timeout)
            .await?;
        parse_settings(&body)
    }

    /// A JSON GET of `{api}/{segments}` (200 only), at most `limit` bytes, within `timeout`.
    async fn get(
        &self,
        api: &Url,
        segments: &[&str],
        limit: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, ProbeError> {
        let url = api_url(api, segments)?;
        within(timeout, async {
            get_json(&self.http, url, limit)
                .await
                .map_err(|e| get_error(e, limit))
        })
        .await
    }
}

/// Runs `exchange` under `timeout`: a hung node accepts and never answers.
async fn within<T>(
    timeout: Duration,
    exchange: impl Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_elapsed) => Err(ProbeError::Timeout(timeout)),
    }
}

/// Sends `request`; the body of a 2xx answer, at most `limit` bytes of it. Any other status is
/// `Status` and its body is not read (it could echo the request).
async fn send(request: reqwest::RequestBuilder, limit: usize) -> Result<Vec<u8>, ProbeError> {
    let response = request.send().await.map_err(|e| classify(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ProbeError::Status(status.as_u16()));
    }
    read_limited(response, limit).await.map_err(|e| match e {
        BodyError::TooLarge => too_large(limit),
        BodyError::Transport(e) => classify(&e),
    })
}

fn malformed(detail: String) -> ProbeError {
    ProbeError::Malformed(detail)
}

fn json(body: &[u8]) -> Result<Value, ProbeError> {
    serde_json::from_slice(body)
        .map_err(|e| malformed(format!("not JSON ({e}; {} bytes)", body.len())))
}

/// A leader id: a JSON number in u32 range.
fn leader_id(value: &Value) -> Result<u32, String> {
    match value {
        Value::Number(number) => number
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("is not a leader id: {number}")),
        other => Err(format!("is {}, not a leader id", json_kind(other))),
    }
}

/// Decodes a `GET /api/v0/leaders` body: a JSON array of leader ids, as sent. Pure; never panics.
pub fn parse_leaders(body: &[u8]) -> Result<Vec<u32>, ProbeError> {
    let Value::Array(items) = json(body)? else {
        return Err(malformed("not a JSON array of leader ids".into()));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| leader_id(item).map_err(|why| malformed(format!("[{index}] {why}"))))
        .collect()
}

/// Decodes the answer to `POST /api/v0/leaders`: one leader id. Pure; never panics. The detail
/// never quotes the answer (a broken node could echo the secret it was sent).
pub fn parse_leader_id(body: &[u8]) -> Result<u32, ProbeError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| malformed(format!("not JSON ({} bytes)", body.len())))?;
    match &value {
        Value::Number(number) => number
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| malformed("a number out of the leader id range".into())),
        other => Err(malformed(format!(
            "{} instead of a leader id",
            json_kind(other)
        ))),
    }
}

/// Decodes a `GET /api/v0/leaders/logs` body. Pure; never panics.
///
/// Per entry: `scheduled_at_date` (`"E.S"`), `scheduled_at_time` (RFC 3339), `status` and
/// `enclave_leader_id` are required; `finished_at_time` absent or null means unfinished, otherwise
/// it must be an RFC 3339 date. Other fields are not read. Any bad entry fails the whole answer.
pub fn parse_logs(body: &[u8]) -> Result<Vec<LeaderLog>, ProbeError> {
    let Value::Array(items) = json(body)? else {
        return Err(malformed("not a JSON array of log entries".into()));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| log_entry(item).map_err(|why| malformed(format!("[{index}] {why}"))))
        .collect()
}

fn log_entry(item: &Value) -> Result<LeaderLog, String> {
    let Value::Object(fields) = item else {
        return Err(format!("is {}, not a log entry", json_kind(item)));
    };
    let date = match required(fields, "scheduled_at_date")? {
        Value::String(text) => SlotDate::parse(text).ok_or_else(|| {
            format!(
                "scheduled_at_date is not an epoch.slot date: {}",
                describe::excerpt(text, 40)
            )
        })?,
        other => return Err(format!("scheduled_at_date is {}", json_kind(other))),
    };
    let scheduled_at = time(required(fields, "scheduled_at_time")?)
        .map_err(|why| format!("scheduled_at_time {why}"))?;
    let finished = match fields.get("finished_at_time") {
        None | Some(Value::Null) => false,
        Some(value) => {
            time(value).map_err(|why| format!("finished_at_time {why}"))?;
            true
        }
    };
    let status = log_status(required(fields, "status")?).map_err(|why| format!("status {why}"))?;
    let enclave_leader_id = leader_id(required(fields, "enclave_leader_id")?)
        .map_err(|why| format!("enclave_leader_id {why}"))?;
    Ok(LeaderLog {
        date,
        scheduled_at,
        finished,
        status,
        enclave_leader_id,
    })
}

fn required<'a>(fields: &'a Map<String, Value>, key: &str) -> Result<&'a Value, String> {
    fields.get(key).ok_or_else(|| format!("has no {key}"))
}

/// `"Pending"`, `{"Rejected":{"reason":…}}` or `{"Block":{…}}` (also `InABlock`, the name one
/// place of the OpenAPI text uses).
fn log_status(value: &Value) -> Result<LogStatus, String> {
    match value {
        Value::String(text) if text == "Pending" => Ok(LogStatus::Pending),
        Value::Object(variant) if variant.len() == 1 => {
            let (name, inner) = variant.iter().next().ok_or("is an empty object")?;
            match (name.as_str(), inner) {
                ("Block" | "InABlock", Value::Object(_)) => Ok(LogStatus::Block),
                ("Rejected", Value::Object(rejected)) => match rejected.get("reason") {
                    Some(Value::String(reason)) => Ok(LogStatus::Rejected(reason.clone())),
                    Some(other) => Err(format!("reason is {}", json_kind(other))),
                    None => Err("Rejected has no reason".into()),
                },
                (name, other) => Err(format!(
                    "{} is {}, not a known outcome",
                    describe::excerpt(name, 20),
                    json_kind(other)
                )),
            }
        }
        Value::String(text) => Err(format!(
            "is not a known outcome: {}",
            describe::excerpt(text, 20)
        )),
        other => Err(format!("is {}, not an outcome", json_kind(other))),
    }
}

/// Decodes a `GET /api/v0/settings` body into the chain's clock. Pure; never panics.
///
/// `block0Time` (RFC 3339), `slotDuration` (whole seconds, 1 to `MAX_SLOT_SECS`) and
/// `slotsPerEpoch` (1 to u32::MAX) are required; every other field is ignored.
pub fn parse_settings(body: &[u8]) -> Result<SlotClock, ProbeError> {
    let value = json(body)?;
    let Value::Object(fields) = value else {
        return Err(malformed(format!(
            "{} instead of a JSON object",
            json_kind(&value)
        )));
    };
    let block0 = match fields.get("block0Time") {
        Some(value) => time(value).map_err(|why| malformed(format!("block0Time {why}")))?,
        None => return Err(malformed("no block0Time".into())),
    };
    let slot_secs = bounded(&fields, "slotDuration", MAX_SLOT_SECS)?;
    let slots_per_epoch = bounded(&fields, "slotsPerEpoch", u64::from(u32::MAX))?;
    SlotClock::new(block0, Duration::from_secs(slot_secs), slots_per_epoch)
        .ok_or_else(|| malformed("slotDuration or slotsPerEpoch is 0".into()))
}

/// `fields[key]`: a JSON integer in `1..=max`.
fn bounded(fields: &Map<String, Value>, key: &str, max: u64) -> Result<u64, ProbeError> {
    match fields.get(key) {
        Some(Value::Number(number)) => match number.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(malformed(format!(
                "{key} is out of range 1..={max}: {number}"
            ))),
        },
        Some(other) => Err(malformed(format!(
            "{key} is {}, not an integer",
            json_kind(other)
        ))),
        None => Err(malformed(format!("no {key}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use tokio::net::TcpListener;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn detail(result: Result<impl std::fmt::Debug, ProbeError>) -> String {
        match result {
            Err(ProbeError::Malformed(detail)) => {
                assert!(detail.len() < 120, "detail too long: {detail}");
                detail
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn leader_ids_decode() {
        assert_eq!(parse_leaders(b"[1]"), Ok(vec![1]));
        assert_eq!(parse_leaders(b"[]"), Ok(vec![]));
        assert_eq!(parse_leaders(b" [2, 1] "), Ok(vec![2, 1]));
        assert_eq!(parse_leaders(b"[4294967295]"), Ok(vec![u32::MAX]));
        let cases: [(&[u8], &str); 6] = [
            (b"", "not JSON"),
            (b"{\"leaders\":[1]}", "not a JSON array"),
            (b"[-1]", "[0] is not a leader id: -1"),
            (b"[1,\"2\"]", "[1] is a string, not a leader id"),
            (b"[4294967296]", "[0] is not a leader id: 4294967296"),
            (b"[1.5]", "[0] is not a leader id"),
        ];
        for (body, expected) in cases {
            let got = detail(parse_leaders(body));
            assert!(got.starts_with(expected), "{got}");
        }
    }

    #[test]
    fn a_promotion_answer_is_one_id_and_never_quoted() {
        assert_eq!(parse_leader_id(b"1"), Ok(1));
        assert_eq!(parse_leader_id(b"7\n"), Ok(7));
        for (body, expected) in [
            ("", "not JSON (0 bytes)"),
            ("\"1\"", "a string instead of a leader id"),
            ("-1", "a number out of the leader id range"),
            ("[1]", "an array instead of a leader id"),
            (
                r#"{"genesis":{"sig_key":"kes25519-12-sk1LEAK"}}"#,
                "an object instead of a leader id",
            ),
            (r#"{"genesis":{"sig_key":"kes25519-12-sk1LEAK""#, "not JSON"),
        ] {
            let got = detail(parse_leader_id(body.as_bytes()));
            assert!(got.starts_with(expected), "{got}");
            assert!(!got.contains("LEAK"), "{got}");
        }
    }

    /// The reference's example, with the elided values of its third entry filled in.
    const LOGS: &str = r#"[{"created_at_time":"2020-05-08T19:13:40.417263555+00:00","scheduled_at_time":"2020-05-08T23:18:35+00:00",
  "scheduled_at_date":"147.7349","wake_at_time":null,"finished_at_time":null,"status":"Pending","enclave_leader_id":1},
 {"created_at_time":"2020-05-08T19:13:40.417263555+00:00","scheduled_at_time":"2020-05-08T20:01:17+00:00",
  "scheduled_at_date":"147.1430","wake_at_time":"2020-05-08T20:01:17.001254555+00:00",
  "finished_at_time":"2020-05-08T20:01:17.410113333+00:00","enclave_leader_id":1,
  "status":{"Block":{"block":"d9040ca5…4174","parent":"cc72d4ca…4832","chain_length":406012}}},
 {"created_at_time":"2020-05-08T19:13:40.417263555+00:00","scheduled_at_time":"2020-05-08T20:20:17+00:00",
  "scheduled_at_date":"147.2000","wake_at_time":"2020-05-08T20:20:17.002+00:00",
  "finished_at_time":"2020-05-08T20:20:17.3+00:00","enclave_leader_id":2,
  "status":{"Rejected":{"reason":"Missed the deadline to compute the schedule"}}}]"#;

    #[test]
    fn logs_decode_the_reference_shapes() {
        let logs = parse_logs(LOGS.as_bytes()).unwrap();
        assert_eq!(
            logs,
            vec![
                LeaderLog {
                    date: SlotDate {
                        epoch: 147,
                        slot: 7349
                    },
                    scheduled_at: at(1_588_979_915),
                    finished: false,
                    status: LogStatus::Pending,
                    enclave_leader_id: 1,
                },
                LeaderLog {
                    date: SlotDate {
                        epoch: 147,
                        slot: 1430
                    },
                    scheduled_at: at(1_588_968_077),
                    finished: true,
                    status: LogStatus::Block,
                    enclave_leader_id: 1,
                },
                LeaderLog {
                    date: SlotDate {
                        epoch: 147,
                        slot: 2000
                    },
                    scheduled_at: at(1_588_969_217),
                    finished: true,
                    status: LogStatus::Rejected(
                        "Missed the deadline to compute the schedule".into()
                    ),
                    enclave_leader_id: 2,
                },
            ]
        );
        // The ITN clock puts each scheduled time on its date.
        let itn = SlotClock::new(at(1_576_264_417), Duration::from_secs(2), 43_200).unwrap();
        for log in &logs {
            assert_eq!(itn.date_time(log.date), log.scheduled_at, "{:?}", log.date);
        }
        assert_eq!(parse_logs(b"[]"), Ok(vec![]));
        let in_a_block = r#"[{"scheduled_at_time":"2020-05-08T20:01:17+00:00","scheduled_at_date":"147.1430",
            "status":{"InABlock":{"block":"aa","chain_length":1}},"enclave_leader_id":3}]"#;
        let log = &parse_logs(in_a_block.as_bytes()).unwrap()[0];
        assert_eq!(
            (log.status.clone(), log.finished),
            (LogStatus::Block, false)
        );
    }

    #[test]
    fn a_bad_log_entry_fails_the_whole_answer() {
        let entry = |date: &str, time: &str, finished: &str, status: &str, id: &str| {
            format!(
                r#"[{{"scheduled_at_time":"2020-05-08T20:01:17+00:00","scheduled_at_date":"147.1","status":"Pending","enclave_leader_id":1}},
                {{"scheduled_at_date":{date},"scheduled_at_time":{time},"finished_at_time":{finished},"status":{status},"enclave_leader_id":{id}}}]"#
            )
        };
        let good = (
            r#""147.2""#,
            r#""2020-05-08T20:01:19+00:00""#,
            "null",
            r#""Pending""#,
            "1",
        );
        assert_eq!(
            parse_logs(entry(good.0, good.1, good.2, good.3, good.4).as_bytes())
                .map(|logs| logs.len()),
            Ok(2)
        );
        let long = format!("\"{}\"", "x".repeat(5_000));
        let cases = [
            (
                entry(r#""147""#, good.1, good.2, good.3, good.4),
                "[1] scheduled_at_date is not an epoch.slot date: \"147\"",
            ),
            (
                entry("147.2", good.1, good.2, good.3, good.4),
                "[1] scheduled_at_date is a number",
            ),
            (
                entry(&long, good.1, good.2, good.3, good.4),
                "[1] scheduled_at_date is not an epoch.slot date",
            ),
            (
                entry(good.0, r#""tomorrow""#, good.2, good.3, good.4),
                "[1] scheduled_at_time is not an RFC 3339 date",
            ),
            (
                entry(good.0, "null", good.2, good.3, good.4),
                "[1] scheduled_at_time is null, not a date",
            ),
            (
                entry(good.0, good.1, "17", good.3, good.4),
                "[1] finished_at_time is a number, not a date",
            ),
            (
                entry(good.0, good.1, good.2, r#""Done""#, good.4),
                "[1] status is not a known outcome: \"Done\"",
            ),
            (
                entry(good.0, good.1, good.2, r#"{"Rejected":{}}"#, good.4),
                "[1] status Rejected has no reason",
            ),
            (
                entry(
                    good.0,
                    good.1,
                    good.2,
                    r#"{"Rejected":{"reason":3}}"#,
                    good.4,
                ),
                "[1] status reason is a number",
            ),
            (
                entry(good.0, good.1, good.2, r#"{"Block":null}"#, good.4),
                "[1] status \"Block\" is null, not a known outcome",
            ),
            (
                entry(
                    good.0,
                    good.1,
                    good.2,
                    r#"{"Block":{},"Pending":{}}"#,
                    good.4,
                ),
                "[1] status is an object, not an outcome",
            ),
            (
                entry(good.0, good.1, good.2, "null", good.4),
                "[1] status is null, not an outcome",
            ),
            (
                entry(good.0, good.1, good.2, good.3, r#""1""#),
                "[1] enclave_leader_id is a string, not a leader id",
            ),
            (
                entry(good.0, good.1, good.2, good.3, "-3"),
                "[1] enclave_leader_id is not a leader id: -3",
            ),
            (
                r#"[{"scheduled_at_date":"1.1"}]"#.to_string(),
                "[0] has no scheduled_at_time",
            ),
            ("[3]".to_string(), "[0] is a number, not a log entry"),
            ("{}".to_string(), "not a JSON array of log entries"),
            ("<html>".to_string(), "not JSON"),
        ];
        for (body, expected) in cases {
            let got = detail(parse_logs(body.as_bytes()));
            assert!(got.starts_with(expected), "{expected}: {got}");
        }
    }

    const ITN_SETTINGS: &str = r#"{"block0Hash":"8e4d2a343f3dcf9330ad9035b3e8d168e6728904262f2c434a4f8f934ec7b676",
 "block0Time":"2019-12-13T19:13:37+00:00","currSlotStartTime":"2020-05-08T11:44:01+00:00",
 "consensusVersion":"genesis","slotDuration":2,"slotsPerEpoch":43200,"epochStabilityDepth":10,
 "blockContentMaxSize":102400,
 "fees":{"constant":200000,"coefficient":100000,"certificate":400000},
 "treasuryTax":{"fixed":0,"ratio":{"numerator":1,"denominator":10}},
 "rewardParams":{"initialValue":3835616440000,"compoundingRatio":{"numerator":0,"denominator":1},
   "compoundingType":"Linear","epochRate":1,"epochStart":1,"rewardDrawingLimitMax":"None",
   "poolParticipationCapping":null}}"#;

    #[test]
    fn settings_decode_into_the_chain_clock() {
        let clock = parse_settings(ITN_SETTINGS.as_bytes()).unwrap();
        assert_eq!(
            clock,
            SlotClock::new(at(1_576_264_417), Duration::from_secs(2), 43_200).unwrap()
        );
        // 2020-05-08T23:18:35Z is ITN's 147.7349 (the reference's log example).
        assert_eq!(
            clock.date_at(at(1_588_979_915)),
            SlotDate {
                epoch: 147,
                slot: 7349
            }
        );
        let with = |key: &str, value: &str| {
            let mut settings: Value = serde_json::from_str(ITN_SETTINGS).unwrap();
            let fields = settings.as_object_mut().unwrap();
            if value.is_empty() {
                fields.remove(key);
            } else {
                fields.insert(key.into(), serde_json::from_str(value).unwrap());
            }
            settings.to_string()
        };
        let cases = [
            (with("block0Time", ""), "no block0Time"),
            (
                with("block0Time", r#""2019-12-13 19:13:37""#),
                "block0Time is not an RFC 3339 date",
            ),
            (with("slotDuration", "0"), "slotDuration is out of range"),
            (with("slotDuration", "2.5"), "slotDuration is out of range"),
            (
                with("slotDuration", "86400"),
                "slotDuration is out of range",
            ),
            (with("slotDuration", r#""2""#), "slotDuration is a string"),
            (with("slotsPerEpoch", ""), "no slotsPerEpoch"),
            (with("slotsPerEpoch", "0"), "slotsPerEpoch is out of range"),
            (
                with("slotsPerEpoch", "4294967296"),
                "slotsPerEpoch is out of range",
            ),
            ("[]".to_string(), "an array instead of a JSON object"),
            ("{".to_string(), "not JSON"),
        ];
        for (body, expected) in cases {
            let got = detail(parse_settings(body.as_bytes()));
            assert!(got.starts_with(expected), "{expected}: {got}");
        }
    }

    #[test]
    fn urls_append_segments_to_the_api_base() {
        let api = Url::parse("http://127.0.0.1:3101/api/").unwrap();
        assert_eq!(
            api_url(&api, &["v0", "leaders", "7"]).unwrap().as_str(),
            "http://127.0.0.1:3101/api/v0/leaders/7"
        );
        assert_eq!(
            api_url(&api, &["v0", "leaders", "logs"]).unwrap().as_str(),
            "http://127.0.0.1:3101/api/v0/leaders/logs"
        );
    }

    // Over real HTTP. The client against the simulator (promotion, demotion, a node not running,
    // logs and settings) is tested in tests/it/leader_api.rs: this library cannot use the simulator.

    const FAST: Duration = Duration::from_secs(2);

    fn secret(node_id: &str) -> LeaderSecret {
        LeaderSecret::Genesis {
            sig_key: "kes25519-12-sk1SECRETSECRET".into(),
            vrf_key: "vrf_sk1SECRETSECRET".into(),
            node_id: node_id.into(),
        }
    }

    #[tokio::test]
    async fn a_hung_node_times_out_within_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // Accepts every connection and keeps it open without a word.
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let url = Url::parse(&format!("http://{address}/api")).unwrap();
        let api = LeaderApi::new();
        let timeout = Duration::from_millis(200);
        let pool = secret("pool");
        let started = tokio::time::Instant::now();
        let (leaders, promote, demote, logs, settings) = tokio::join!(
            api.leaders(&url, timeout),
            api.promote(&url, &pool, timeout),
            api.demote(&url, 1, timeout),
            api.logs(&url, timeout),
            api.settings(&url, timeout),
        );
        assert!(started.elapsed() < Duration::from_millis(600));
        let hung = Some(ProbeError::Timeout(timeout));
        assert_eq!(leaders.err(), hung);
        assert_eq!(promote.err(), hung);
        assert_eq!(demote.err(), hung);
        assert_eq!(logs.err(), hung);
        assert_eq!(settings.err(), hung);
    }

    #[tokio::test]
    async fn nothing_listening_is_refused_and_the_secret_stays_out_of_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let url = Url::parse(&format!("http://{address}/api")).unwrap();
        let error = LeaderApi::new()
            .promote(&url, &secret("pool"), FAST)
            .await
            .unwrap_err();
        assert_eq!(error, ProbeError::Refused);
        let odd = Url::parse("mailto:node@example.org").unwrap();
        let error = LeaderApi::new()
            .promote(&odd, &secret("pool"), FAST)
            .await
            .unwrap_err();
        assert!(matches!(error, ProbeError::Connect(_)), "{error:?}");
        assert!(!format!("{error} {error:?}").contains("SECRET"));
    }
}
