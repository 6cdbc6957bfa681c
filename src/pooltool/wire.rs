//! PoolTool's wire, pure but for the one HTTP exchange: who reports (`Identity`), the tip block's
//! header fields (`decode_header`), the `sharemytip` address (`tip_request_url`), the slot list as
//! committed (`slots_json`), the `sendlogs` body per mode (`slots_body`), and judging PoolTool's
//! answer (`check_answer`, `exchange`). `ExchangeError` is what the reports and the reference
//! fetch share: no connection, no answer in time, or an HTTP error status.

use std::io;
use std::time::{Duration, SystemTime};

use reqwest::Url;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::describe;
use crate::secret::Secret;
use crate::slots::{LeaderLog, SlotDate};

/// The `platform` parameter of `sharemytip`.
pub const PLATFORM: &str = "nodekeeper";

/// Block bytes needed for the tip fields: the u16 length prefix, then the header up to the end of
/// the leader (pool) id.
pub const HEADER_PREFIX_LEN: usize = 116;

/// The shortest header (length prefix excluded) that carries a leader id: BFT and Genesis-Praos
/// headers do, block0's (82 bytes) does not.
pub const MIN_LEADER_HEADER_LEN: u16 = 114;

/// Characters of the genesis hash sent as `genesispref` (PoolTool reads no more).
pub const GENESIS_PREFIX_CHARS: usize = 7;

/// The largest PoolTool answer read (they are a few hundred bytes).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Who reports: the pool and the PoolTool account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The pool id, hex.
    pub pool_id: String,
    /// The PoolTool user id (UUID), the account's key: never in `Debug`.
    pub user_id: Secret,
    /// The genesis hash (only its first 7 characters are sent).
    pub genesis_hash: String,
}

impl Identity {
    /// `genesispref`: the first 7 characters of the genesis hash (all of it when shorter).
    pub fn genesis_prefix(&self) -> &str {
        let hash = self.genesis_hash.trim();
        match hash.char_indices().nth(GENESIS_PREFIX_CHARS) {
            Some((end, _)) => &hash[..end],
            None => hash,
        }
    }
}

/// The tip block's header fields that `sharemytip` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TipHeader {
    /// The block's epoch (`lastepoch`).
    pub epoch: u32,
    /// The block's slot within the epoch (`lastslot`).
    pub slot: u32,
    /// The parent block's hash, hex (`lastparent`).
    pub parent: String,
    /// The leader's (pool's) id, hex (`lastpool`).
    pub pool_id: String,
}

/// Decodes the tip fields from a block's first bytes (the whole block or a prefix of it). Pure.
///
/// Layout, big-endian: u16 header length, then the header: u16 version, u32 content size, u32
/// epoch, u32 slot, u32 chain length, 32-byte content hash, 32-byte parent hash, 32-byte leader id,
/// …. Hence epoch at byte 8, slot 12, parent 52, leader id 84 (jmanager's hex `[16:24]`,
/// `[24:32]`, `[104:168]`, `[168:232]`). `None` when shorter than `HEADER_PREFIX_LEN` or when the
/// declared header is too short to hold a leader id (block0, garbage).
pub fn decode_header(block: &[u8]) -> Option<TipHeader> {
    let prefix = block.get(..HEADER_PREFIX_LEN)?;
    let header_len = u16::from_be_bytes([prefix[0], prefix[1]]);
    if header_len < MIN_LEADER_HEADER_LEN {
        return None;
    }
    let u32_at = |at: usize| {
        u32::from_be_bytes([prefix[at], prefix[at + 1], prefix[at + 2], prefix[at + 3]])
    };
    Some(TipHeader {
        epoch: u32_at(8),
        slot: u32_at(12),
        parent: hex(&prefix[52..84]),
        pool_id: hex(&prefix[84..116]),
    })
}

/// What one tip report says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TipReport {
    /// The tip height (`mytip`).
    pub height: u64,
    /// The tip block's hash (`lasthash`).
    pub hash: String,
    /// The node's version text (`jormver`).
    pub version: String,
    /// The tip block's header, when it could be fetched.
    pub header: Option<TipHeader>,
}

/// The `sharemytip` address for `report`: `base` plus, in this order, `poolid`, `userid`,
/// `genesispref`, `mytip`, `lasthash` and, when the header is known, `lastpool`, `lastparent`,
/// `lastslot`, `lastepoch`, `jormver`, `platform`. A query already in `base` is kept. Spaces are
/// sent as `%20`, which every decoder reads as a space (API gateways do not all read `+` so). Pure.
pub fn tip_request_url(base: &Url, identity: &Identity, report: &TipReport) -> Url {
    let height = report.height.to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("poolid", identity.pool_id.trim()),
        ("userid", identity.user_id.expose().trim()),
        ("genesispref", identity.genesis_prefix()),
        ("mytip", &height),
        ("lasthash", &report.hash),
    ];
    let (slot, epoch);
    if let Some(header) = &report.header {
        slot = header.slot.to_string();
        epoch = header.epoch.to_string();
        pairs.extend([
            ("lastpool", header.pool_id.as_str()),
            ("lastparent", header.parent.as_str()),
            ("lastslot", &slot),
            ("lastepoch", &epoch),
            ("jormver", report.version.as_str()),
            ("platform", PLATFORM),
        ]);
    }
    let mut scratch = base.clone();
    scratch.set_query(None);
    scratch.query_pairs_mut().extend_pairs(pairs);
    // The form encoder writes a literal `+` as `%2B`, so every `+` left is a space.
    let added = scratch.query().unwrap_or_default().replace('+', "%20");
    let query = match base.query() {
        Some(existing) if !existing.is_empty() => format!("{existing}&{added}"),
        _ => added,
    };
    let mut url = base.clone();
    url.set_query(Some(&query));
    url
}

/// `epoch`'s slots in `logs` (exact epoch, any status), sorted by slot, duplicates removed.
pub fn epoch_slots(logs: &[LeaderLog], epoch: u64) -> Vec<(SlotDate, SystemTime)> {
    let mut slots: Vec<(SlotDate, SystemTime)> = logs
        .iter()
        .filter(|log| log.date.epoch == epoch)
        .map(|log| (log.date, log.scheduled_at))
        .collect();
    slots.sort();
    slots.dedup();
    slots
}

/// The slot list as committed (see the module documentation): compact JSON, one
/// `{"scheduled_at_date","scheduled_at_time"}` object per slot, `[]` when there is none. Pure.
pub fn slots_json(logs: &[LeaderLog], epoch: u64) -> String {
    let entries: Vec<Value> = epoch_slots(logs, epoch)
        .into_iter()
        .map(|(date, time)| {
            json!({
                "scheduled_at_date": date.to_string(),
                "scheduled_at_time": crate::time::rfc3339_numeric_offset(time),
            })
        })
        .collect();
    Value::Array(entries).to_string()
}

/// The number of slots in a committed list; `None` when the text is not a JSON array.
pub fn count_slots(text: &str) -> Option<usize> {
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Array(entries) => Some(entries.len()),
        _ => None,
    }
}

/// The verification part of a `sendlogs` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Commitment {
    /// No verification: the 5 base keys only.
    None,
    /// Hash mode.
    Hash {
        /// sha256 hex of this epoch's list.
        this_epoch_hash: String,
        /// The previous epoch's list as sent (a JSON text), `""` when unknown.
        last_epoch_slots: String,
    },
    /// GPG mode.
    Gpg {
        /// The previous epoch's passphrase, `""` when unknown.
        previous_epoch_key: String,
        /// This epoch's list, encrypted (ASCII-armored OpenPGP message).
        encrypted_slots: String,
    },
}

/// The `sendlogs` body: `currentepoch`, `poolid`, `genesispref`, `userid`, `assigned_slots`, then
/// the commitment's keys, every value a string. Pure.
pub fn slots_body(
    identity: &Identity,
    epoch: u64,
    assigned: usize,
    commitment: &Commitment,
) -> Value {
    let mut body = Map::new();
    let mut put = |key: &str, value: &str| {
        body.insert(key.to_string(), Value::String(value.to_string()));
    };
    put("currentepoch", &epoch.to_string());
    put("poolid", identity.pool_id.trim());
    put("genesispref", identity.genesis_prefix());
    put("userid", identity.user_id.expose().trim());
    put("assigned_slots", &assigned.to_string());
    match commitment {
        Commitment::None => {}
        Commitment::Hash {
            this_epoch_hash,
            last_epoch_slots,
        } => {
            put("this_epoch_hash", this_epoch_hash);
            put("last_epoch_slots", last_epoch_slots);
        }
        Commitment::Gpg {
            previous_epoch_key,
            encrypted_slots,
        } => {
            put("previous_epoch_key", previous_epoch_key);
            put("encrypted_slots", encrypted_slots);
        }
    }
    Value::Object(body)
}

/// Why an exchange with PoolTool got no usable answer: no connection, no answer in time, or an
/// HTTP error status. Shared by the reports (`ReportError`) and the reference fetch
/// (`reference::ReferenceError`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub enum ExchangeError {
    /// The connection failed (refused, DNS, reset, unsupported scheme, ...).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// An HTTP status the exchange does not accept.
    #[error("HTTP {0}")]
    Status(u16),
}

impl ExchangeError {
    /// A short stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ExchangeError::Unreachable(_) => "unreachable",
            ExchangeError::Timeout(_) => "timeout",
            ExchangeError::Status(_) => "http_status",
        }
    }

    /// A transport failure, "connection refused" spelled the same whatever layer reported it.
    pub fn unreachable(error: &reqwest::Error) -> ExchangeError {
        if describe::io_error_kind(error) == Some(io::ErrorKind::ConnectionRefused) {
            return ExchangeError::Unreachable("connection refused".into());
        }
        ExchangeError::Unreachable(describe::innermost(error))
    }
}

/// Why a report did not go through.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// No connection, no answer in time, or an HTTP status other than 2xx.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// A 2xx answer without `"success": true` (PoolTool's error text, cut).
    #[error("refused by PoolTool: {0}")]
    Rejected(String),
    /// The key files could not be read or written.
    #[error("key files: {0}")]
    KeyFiles(String),
    /// gpg failed.
    #[error("gpg: {0}")]
    Gpg(String),
}

/// Judges a PoolTool answer: a 2xx status and a JSON object with `"success": true`. Otherwise the
/// error is the status or PoolTool's text (`message.error`, else `error`), cut short. Pure.
pub fn check_answer(status: u16, body: &[u8]) -> Result<(), ReportError> {
    if !(200..300).contains(&status) {
        return Err(ExchangeError::Status(status).into());
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        return Err(ReportError::Rejected(format!(
            "not JSON: {}",
            describe::excerpt(&text, 80)
        )));
    };
    if value.get("success") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    let text = |v: Option<&Value>| match v {
        Some(Value::String(text)) if !text.is_empty() => Some(describe::excerpt(text, 200)),
        Some(Value::Null) | None => None,
        Some(other) => Some(describe::excerpt(&other.to_string(), 200)),
    };
    let detail = text(value.pointer("/message/error"))
        .or_else(|| text(value.get("error")))
        .unwrap_or_else(|| "no \"success\": true in the answer".into());
    Err(ReportError::Rejected(detail))
}

/// sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(Sha256::digest(bytes).as_slice())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// The HTTP client of every exchange with PoolTool: no proxy, nodekeeper's user agent, no
/// redirect from https to http (`http::client_builder`).
pub fn client() -> reqwest::Client {
    crate::http::client_builder()
        .build()
        // Building fails only for TLS or proxy setup, which are not configured here.
        .unwrap_or_default()
}

/// Sends `request` and judges the answer (`check_answer`) within `timeout`.
pub async fn exchange(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(), ReportError> {
    let run = async {
        let response = request
            .send()
            .await
            .map_err(|e| ExchangeError::unreachable(&e))?;
        let status = response.status().as_u16();
        match crate::http::read_limited(response, MAX_ANSWER_BYTES).await {
            Ok(body) => check_answer(status, &body),
            Err(crate::http::BodyError::TooLarge) if (200..300).contains(&status) => Err(
                ReportError::Rejected(format!("answer larger than {MAX_ANSWER_BYTES} bytes")),
            ),
            Err(crate::http::BodyError::TooLarge) => Err(ExchangeError::Status(status).into()),
            Err(crate::http::BodyError::Transport(e)) => Err(ExchangeError::unreachable(&e).into()),
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or(Err(ExchangeError::Timeout(timeout).into()))
}

#[cfg(test)]
mod tests;
