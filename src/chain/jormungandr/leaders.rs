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
        LeaderApi::with_client(client())
    }

    /// The endpoints reached with `http` (a client made like the probe's, shared).
    pub fn with_client(http: reqwest::Client) -> LeaderApi {
        LeaderApi { http }
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
mod tests;
