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
        JormungandrProbe::with_client(client())
    }

    /// A probe using `http` (a client made by `client()`, shared with other users).
    pub fn with_client(http: reqwest::Client) -> Self {
        JormungandrProbe { http }
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
    crate::http::client_builder()
        // A node restarted by supervisord drops its connections; a pooled one would fail the
        // next exchange spuriously, and a fresh loopback connection costs a fraction of a
        // millisecond. Each exchange therefore opens its own connection.
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
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
    if describe::is_local_exhaustion(error) {
        return ProbeError::Local(describe::innermost(error));
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
        irreversible_height: None,
        tip_hash: optional(&fields, "lastBlockHash", string)?,
        tip_date: optional(&fields, "lastBlockDate", string)?,
        last_block_time: optional(&fields, "lastBlockTime", time)?,
        tip_time: None,
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
mod tests;
