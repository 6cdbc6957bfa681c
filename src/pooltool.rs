//! PoolTool reporting: the pool's tip (`sharemytip`) and, once per epoch, its slot schedule
//! (`sendlogs`) with its verification commitment (none, sha256 hash or gpg) and the per-epoch key
//! files that commitment needs. The reference tip (reading PoolTool) is `reference`'s job.
//!
//! Pure pieces, unit-tested without I/O: decoding the tip block's header (`decode_header`), the
//! `sharemytip` address (`tip_request_url`), the slot list (`slots_json`), the `sendlogs` body per
//! mode (`slots_body`), PoolTool's answer (`check_answer`) and the due rules (`TipTracker`,
//! `SlotsTracker`; `now` is always passed in). `Reporter` drives them from the daemon loop: its
//! `poll` never awaits network I/O, it collects finished sends and spawns due ones.
//!
//! Wire facts (see `pooltool-api.md` and jmanager §1.7):
//! - `sharemytip` is a GET with query parameters; the tip block's header (fetched from the node
//!   as raw bytes, `GET {rest}/v0/block/{hash}`) gives `lastepoch`/`lastslot`/`lastparent`/
//!   `lastpool` at byte offsets 8, 12, 52 and 84 of the block (u16 length prefix included).
//! - `sendlogs` is a JSON POST whose values are all strings, as the shell scripts send them.
//!
//! The slot list that is hashed, encrypted and kept in `leader_slots_{epoch}` is one deterministic
//! compact JSON text: `[{"scheduled_at_date":"E.S","scheduled_at_time":"<RFC 3339>"},…]`, the
//! leader node's entries of exactly that epoch (any status), sorted by slot, duplicates removed.
//! The key names are Jormungandr's own (`/leaders/logs`), the fields PoolTool reads. The hash is
//! the sha256 of exactly the bytes of that file, and `last_epoch_slots` is the previous epoch's
//! file sent as a *string* (like `send_slots.sh`'s `jq --arg`), so PoolTool can hash what it
//! receives and compare it with last epoch's `this_epoch_hash` byte for byte.

use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use reqwest::Url;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::chain::NodeStatus;
use crate::config::model::PoolToolSettings;
use crate::config::raw::SlotsVerification;
use crate::describe;
use crate::slots::{LeaderLog, SlotClock, SlotDate};

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

/// The ceiling of the tip report back-off (unless `tip_interval` itself is longer).
pub const MAX_TIP_BACKOFF: Duration = Duration::from_secs(10 * 60);

/// How long the slot window stays open after `send_slots_after`.
pub const SLOTS_WINDOW: Duration = Duration::from_secs(60);

/// The least time between two `sendlogs` attempts within a window.
pub const SLOTS_RETRY: Duration = Duration::from_secs(10);

/// The largest PoolTool answer read (they are a few hundred bytes).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Who reports: the pool and the PoolTool account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The pool id, hex.
    pub pool_id: String,
    /// The PoolTool user id (UUID).
    pub user_id: String,
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
        ("userid", identity.user_id.trim()),
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

/// `{rest}/v0/block/{hash}` for a REST base like `http://127.0.0.1:3101/api`; `None` when the base
/// cannot have a path.
pub fn block_url(rest: &Url, hash: &str) -> Option<Url> {
    let mut url = rest.clone();
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .extend(["v0", "block", hash]);
    Some(url)
}

/// A successful tip report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TipSent {
    /// When it was sent (the `now` of the attempt).
    pub at: SystemTime,
    /// The height it reported.
    pub height: u64,
}

/// When to report the tip. Pure: no I/O, no clock reads.
///
/// A report is due when the height differs from the last *successful* report's (or none
/// succeeded yet) and the last attempt is at least one wait old. The wait is `interval` while
/// reports succeed and doubles with each consecutive failure, capped at `MAX_TIP_BACKOFF` (or
/// `interval` when that is longer). A clock that stepped back makes a report due.
#[derive(Clone, Debug)]
pub struct TipTracker {
    interval: Duration,
    last_attempt: Option<SystemTime>,
    last_sent: Option<TipSent>,
    consecutive_failures: u32,
}

impl TipTracker {
    /// A tracker that has never reported.
    pub fn new(interval: Duration) -> TipTracker {
        TipTracker {
            interval,
            last_attempt: None,
            last_sent: None,
            consecutive_failures: 0,
        }
    }

    /// The wait after the last attempt, given the failures since the last success.
    pub fn wait(&self) -> Duration {
        let factor = 1u32 << self.consecutive_failures.min(20);
        self.interval
            .saturating_mul(factor)
            .min(MAX_TIP_BACKOFF.max(self.interval))
    }

    /// Whether a report of `height` is due at `now`.
    pub fn due(&self, now: SystemTime, height: u64) -> bool {
        if self.last_sent.is_some_and(|sent| sent.height == height) {
            return false;
        }
        match self.last_attempt {
            None => true,
            Some(attempt) => now
                .duration_since(attempt)
                .map_or(true, |elapsed| elapsed >= self.wait()),
        }
    }

    /// Notes an attempt started at `now`.
    pub fn attempted(&mut self, now: SystemTime) {
        self.last_attempt = Some(now);
    }

    /// Records the outcome of the attempt made at `at` for `height`.
    pub fn record(&mut self, at: SystemTime, height: u64, ok: bool) {
        if ok {
            self.last_sent = Some(TipSent { at, height });
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        }
    }

    /// The last successful report.
    pub fn last_sent(&self) -> Option<TipSent> {
        self.last_sent
    }

    /// Failed attempts since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
}

/// The `sendlogs` window of `epoch`: `[start + after, start + after + 60 s)`, the start being the
/// chain's (from `SlotClock`), never a configured wall-clock time; `None` when it lies beyond what
/// `SystemTime` can hold (it never opens). Pure.
pub fn slots_window(
    clock: &SlotClock,
    after: Duration,
    epoch: u64,
) -> Option<(SystemTime, SystemTime)> {
    let open = clock.epoch_start(epoch).checked_add(after)?;
    Some((open, open.checked_add(SLOTS_WINDOW)?))
}

/// What to do about the slot schedule at some instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotsDecision {
    /// Nothing: sent already, the window is not open yet, or a retry is not due yet.
    Idle,
    /// Send this epoch's schedule.
    Send(u64),
    /// This epoch's window passed without a successful send (reported once per epoch).
    Missed(u64),
}

/// When to send the slot schedule. Pure: no I/O, no clock reads.
///
/// Once per epoch, inside its window; a failed attempt is retried within the window at most every
/// `SLOTS_RETRY`. An epoch whose window passed unsent is `Missed` once, then left alone.
#[derive(Clone, Debug)]
pub struct SlotsTracker {
    after: Duration,
    sent_epoch: Option<u64>,
    missed_epoch: Option<u64>,
    last_attempt: Option<SystemTime>,
    consecutive_failures: u32,
}

impl SlotsTracker {
    /// A tracker that has sent nothing; windows open `after` the epoch start.
    pub fn new(after: Duration) -> SlotsTracker {
        SlotsTracker {
            after,
            sent_epoch: None,
            missed_epoch: None,
            last_attempt: None,
            consecutive_failures: 0,
        }
    }

    /// The decision at `now`.
    pub fn decide(&self, clock: &SlotClock, now: SystemTime) -> SlotsDecision {
        let epoch = clock.epoch_at(now);
        if self.sent_epoch == Some(epoch) {
            return SlotsDecision::Idle;
        }
        let Some((open, close)) = slots_window(clock, self.after, epoch) else {
            return SlotsDecision::Idle;
        };
        if now < open {
            return SlotsDecision::Idle;
        }
        if now >= close {
            return if self.missed_epoch == Some(epoch) {
                SlotsDecision::Idle
            } else {
                SlotsDecision::Missed(epoch)
            };
        }
        let retry_due = self.last_attempt.is_none_or(|attempt| {
            now.duration_since(attempt)
                .map_or(true, |elapsed| elapsed >= SLOTS_RETRY)
        });
        if retry_due {
            SlotsDecision::Send(epoch)
        } else {
            SlotsDecision::Idle
        }
    }

    /// Notes an attempt started at `now`.
    pub fn attempted(&mut self, now: SystemTime) {
        self.last_attempt = Some(now);
    }

    /// Notes that `epoch`'s miss was reported.
    pub fn missed(&mut self, epoch: u64) {
        self.missed_epoch = Some(epoch);
    }

    /// Records the outcome of an attempt for `epoch`.
    pub fn record(&mut self, epoch: u64, ok: bool) {
        if ok {
            self.sent_epoch = Some(self.sent_epoch.map_or(epoch, |sent| sent.max(epoch)));
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        }
    }

    /// The last epoch whose schedule was sent.
    pub fn sent_epoch(&self) -> Option<u64> {
        self.sent_epoch
    }

    /// Failed attempts since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
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
                "scheduled_at_time": rfc3339(time),
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
    put("userid", identity.user_id.trim());
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

/// Why a report did not go through.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The connection failed.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// An HTTP status other than 2xx.
    #[error("HTTP {0}")]
    Status(u16),
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
        return Err(ReportError::Status(status));
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

/// A per-epoch key file: `{dir}/{kind}_{epoch}` (`leader_slots`, `hash`, `passphrase`).
pub fn key_file(dir: &Path, kind: &str, epoch: u64) -> PathBuf {
    dir.join(format!("{kind}_{epoch}"))
}

/// The content of a key file, trailing whitespace removed; `None` when it does not exist.
fn read_key(path: &Path) -> io::Result<Option<String>> {
    let mut text = String::new();
    let read = std::fs::File::open(path).and_then(|mut file| file.read_to_string(&mut text));
    match read {
        Ok(_) => Ok(Some(text.trim_end().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at_path(path, e)),
    }
}

/// `error`, its message prefixed with `path`.
fn at_path(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// The content of `path` if it exists; otherwise `make()`'s, written atomically (a temporary file
/// of mode 0600, synced, renamed) so that it is never seen half-written and never rewritten.
fn key_once(path: &Path, make: impl FnOnce() -> io::Result<String>) -> io::Result<String> {
    if let Some(text) = read_key(path)? {
        return Ok(text);
    }
    let text = make()?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let write = || -> io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&temp);
        return Err(at_path(path, e));
    }
    Ok(text)
}

/// Creates the key directory (and its parents) with mode 0700 when missing.
fn key_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| at_path(dir, e))
}

/// A fresh passphrase: 32 random bytes, base64 (like `openssl rand -base64 32`).
fn new_passphrase() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
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

fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// The commitment's inputs read or created from the key files.
enum Prepared {
    None,
    Hash {
        this_epoch_hash: String,
        last_epoch_slots: String,
    },
    Gpg {
        slots: String,
        passphrase: String,
        previous_epoch_key: String,
    },
}

/// Reads or creates `epoch`'s key files for `mode` (blocking file I/O). Returns the number of
/// assigned slots (of the committed list) and the commitment's inputs. In hash and gpg modes the
/// list is kept in `leader_slots_{epoch}` and reused, so that a restarted daemon commits to the
/// same list; the hash and passphrase files likewise.
fn prepare(
    mode: SlotsVerification,
    dir: &Path,
    epoch: u64,
    fresh: String,
) -> Result<(usize, Prepared), ReportError> {
    let files = |e: io::Error| ReportError::KeyFiles(e.to_string());
    if mode == SlotsVerification::None {
        let count = count_slots(&fresh).unwrap_or_default();
        return Ok((count, Prepared::None));
    }
    key_dir(dir).map_err(files)?;
    let slots_path = key_file(dir, "leader_slots", epoch);
    let slots = key_once(&slots_path, || Ok(fresh)).map_err(files)?;
    let count = count_slots(&slots).ok_or_else(|| {
        ReportError::KeyFiles(format!("{} is not a JSON list", slots_path.display()))
    })?;
    let previous = epoch.checked_sub(1);
    let previous_key = |kind: &str| -> Result<String, ReportError> {
        match previous {
            Some(previous) => Ok(read_key(&key_file(dir, kind, previous))
                .map_err(files)?
                .unwrap_or_default()),
            None => Ok(String::new()),
        }
    };
    let prepared = match mode {
        SlotsVerification::None => Prepared::None,
        SlotsVerification::Hash => Prepared::Hash {
            this_epoch_hash: key_once(&key_file(dir, "hash", epoch), || {
                Ok(sha256_hex(slots.as_bytes()))
            })
            .map_err(files)?,
            last_epoch_slots: previous_key("leader_slots")?,
        },
        SlotsVerification::Gpg => Prepared::Gpg {
            passphrase: key_once(&key_file(dir, "passphrase", epoch), new_passphrase)
                .map_err(files)?,
            previous_epoch_key: previous_key("passphrase")?,
            slots,
        },
    };
    Ok((count, prepared))
}

/// Encrypts `plaintext` (plus a newline, as `echo` adds) with `gpg --symmetric --armor --batch`.
/// The passphrase goes through gpg's stdin (`--passphrase-fd 0`, first line), never the command
/// line. The armored message, trailing whitespace removed.
pub async fn gpg_encrypt(
    gpg: &Path,
    passphrase: &str,
    plaintext: &str,
    timeout: Duration,
) -> Result<String, ReportError> {
    let mut child = tokio::process::Command::new(gpg)
        .args([
            "--batch",
            "--quiet",
            "--no-tty",
            "--symmetric",
            "--armor",
            "--passphrase-fd",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ReportError::Gpg(format!("cannot run {}: {e}", gpg.display())))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| ReportError::Gpg("no stdin".into()))?;
    let input = format!("{passphrase}\n{plaintext}\n");
    let feed = async move {
        // A write error shows as gpg's own failure below.
        let _ = stdin.write_all(input.as_bytes()).await;
        drop(stdin);
    };
    let run = async {
        let ((), output) = tokio::join!(feed, child.wait_with_output());
        output
    };
    let output = match tokio::time::timeout(timeout, run).await {
        Ok(output) => output.map_err(|e| ReportError::Gpg(e.to_string()))?,
        Err(_elapsed) => return Err(ReportError::Gpg(format!("no result within {timeout:?}"))),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ReportError::Gpg(format!(
            "{}: {}",
            output.status,
            describe::excerpt(stderr.trim(), 200)
        )));
    }
    let armored = String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_string();
    if !armored.starts_with("-----BEGIN PGP MESSAGE-----") {
        return Err(ReportError::Gpg("no armored message in the output".into()));
    }
    Ok(armored)
}

/// The tip input of one tick: the best node's REST base (e.g. `http://127.0.0.1:3101/api`) and
/// its status.
#[derive(Clone, Debug)]
pub struct TipInput {
    /// The node's REST API base.
    pub rest_url: Url,
    /// What it said about itself (height, tip hash, version).
    pub status: NodeStatus,
}

/// The slots input of one tick: the chain's time and the leader node's leadership logs.
#[derive(Clone, Debug)]
pub struct SlotsInput {
    /// Chain time.
    pub clock: SlotClock,
    /// The leader node's `/leaders/logs`.
    pub logs: Vec<LeaderLog>,
}

/// What the reporter has achieved, for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReporterStatus {
    /// Reporting is on (enabled, identity and URLs complete).
    pub active: bool,
    /// The last successful tip report.
    pub last_tip: Option<TipSent>,
    /// The last epoch whose slot schedule was sent.
    pub last_slots_epoch: Option<u64>,
    /// Failed tip reports since the last success.
    pub tip_failures: u32,
    /// Failed slot sends since the last success.
    pub slots_failures: u32,
}

/// What the spawned sends need, shared.
#[derive(Debug)]
struct Context {
    http: reqwest::Client,
    identity: Identity,
    tip_url: Url,
    slots_url: Url,
    mode: SlotsVerification,
    gpg: PathBuf,
    key_path: PathBuf,
    timeout: Duration,
}

#[derive(Debug)]
struct TipOutcome {
    at: SystemTime,
    height: u64,
    result: Result<(), ReportError>,
}

#[derive(Debug)]
struct SlotsOutcome {
    epoch: u64,
    result: Result<usize, ReportError>,
}

/// Drives PoolTool reporting from the daemon loop (see `poll`).
#[derive(Debug)]
pub struct Reporter {
    context: Option<Arc<Context>>,
    tip: TipTracker,
    tip_flight: Option<oneshot::Receiver<TipOutcome>>,
    slots: SlotsTracker,
    slots_flight: Option<oneshot::Receiver<SlotsOutcome>>,
}

impl Reporter {
    /// A reporter for `settings`, keeping key files in `key_path`, with `timeout` over each HTTP
    /// exchange (and gpg run). Inactive (every `poll` a no-op) when PoolTool is disabled or the
    /// pool id, user id, genesis hash or a URL is missing or unusable (said once, here).
    pub fn new(settings: &PoolToolSettings, key_path: PathBuf, timeout: Duration) -> Reporter {
        let raw = &settings.raw;
        let context = if raw.enabled {
            match Reporter::context(settings, key_path, timeout) {
                Ok(context) => Some(Arc::new(context)),
                Err(why) => {
                    warn!("PoolTool reporting off: {why}");
                    None
                }
            }
        } else {
            None
        };
        Reporter {
            context,
            tip: TipTracker::new(raw.tip_interval),
            tip_flight: None,
            slots: SlotsTracker::new(raw.send_slots_after),
            slots_flight: None,
        }
    }

    fn context(
        settings: &PoolToolSettings,
        key_path: PathBuf,
        timeout: Duration,
    ) -> Result<Context, String> {
        let raw = &settings.raw;
        let present = |value: Option<&String>, what: &str| {
            value
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("no {what}"))
        };
        let identity = Identity {
            pool_id: present(settings.pool_id.as_ref(), "pool id")?,
            user_id: present(raw.user_id.as_ref(), "user id")?,
            genesis_hash: present(settings.genesis_hash.as_ref(), "genesis hash")?,
        };
        let url = |text: &str, key: &str| {
            Url::parse(text)
                .map_err(|e| format!("pooltool.{key} {}: {e}", describe::excerpt(text, 80)))
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .user_agent(concat!("nodekeeper/", env!("CARGO_PKG_VERSION")))
            .build()
            // Building fails only for TLS or proxy setup, which are not configured here.
            .unwrap_or_default();
        Ok(Context {
            http,
            identity,
            tip_url: url(&raw.tip_url, "tip_url")?,
            slots_url: url(&raw.slots_url, "slots_url")?,
            mode: raw.slots_verification,
            gpg: raw.gpg.clone().unwrap_or_else(|| PathBuf::from("gpg")),
            key_path,
            timeout,
        })
    }

    /// Called once per tick: collects finished sends (a warning when reports start failing, an info
    /// line when they work again), then spawns the due ones (`tokio::spawn`) from `tip` and
    /// `slots`. Never awaits network I/O; needs a Tokio runtime.
    pub fn poll(&mut self, now: SystemTime, tip: Option<TipInput>, slots: Option<SlotsInput>) {
        let Some(context) = self.context.clone() else {
            return;
        };
        self.collect();
        if let Some(input) = tip {
            self.poll_tip(&context, now, input);
        }
        if let Some(input) = slots {
            self.poll_slots(&context, now, input);
        }
    }

    /// For status and metrics.
    pub fn status(&self) -> ReporterStatus {
        ReporterStatus {
            active: self.context.is_some(),
            last_tip: self.tip.last_sent(),
            last_slots_epoch: self.slots.sent_epoch(),
            tip_failures: self.tip.consecutive_failures(),
            slots_failures: self.slots.consecutive_failures(),
        }
    }

    /// Takes the outcomes of finished sends.
    fn collect(&mut self) {
        if let Some(outcome) = take_finished(&mut self.tip_flight) {
            match &outcome.result {
                Ok(()) => {
                    if self.tip.consecutive_failures() > 0 {
                        info!(height = outcome.height, "PoolTool tip reports work again");
                    }
                }
                Err(e) => {
                    if self.tip.consecutive_failures() == 0 {
                        warn!("PoolTool tip report failed ({e}); retrying with back-off");
                    } else {
                        debug!("PoolTool tip report failed again ({e})");
                    }
                }
            }
            self.tip
                .record(outcome.at, outcome.height, outcome.result.is_ok());
        }
        if let Some(outcome) = take_finished(&mut self.slots_flight) {
            match &outcome.result {
                Ok(assigned) => info!(
                    epoch = outcome.epoch,
                    assigned, "sent the epoch's slot schedule to PoolTool"
                ),
                Err(e) => {
                    if self.slots.consecutive_failures() == 0 {
                        warn!(
                            epoch = outcome.epoch,
                            "sending the slot schedule to PoolTool failed ({e}); retrying within the window"
                        );
                    } else {
                        debug!(
                            epoch = outcome.epoch,
                            "sending the slot schedule failed again ({e})"
                        );
                    }
                }
            }
            self.slots.record(outcome.epoch, outcome.result.is_ok());
        }
    }

    fn poll_tip(&mut self, context: &Arc<Context>, now: SystemTime, input: TipInput) {
        if self.tip_flight.is_some() {
            return;
        }
        let (Some(height), Some(hash)) = (input.status.height, input.status.tip_hash.clone())
        else {
            return;
        };
        if !self.tip.due(now, height) {
            return;
        }
        self.tip.attempted(now);
        let context = Arc::clone(context);
        let (sender, receiver) = oneshot::channel();
        tokio::spawn(async move {
            let result = send_tip(
                &context,
                &input.rest_url,
                height,
                hash,
                input.status.version,
            )
            .await;
            let _ = sender.send(TipOutcome {
                at: now,
                height,
                result,
            });
        });
        self.tip_flight = Some(receiver);
    }

    fn poll_slots(&mut self, context: &Arc<Context>, now: SystemTime, input: SlotsInput) {
        if self.slots_flight.is_some() {
            return;
        }
        match self.slots.decide(&input.clock, now) {
            SlotsDecision::Idle => {}
            SlotsDecision::Missed(epoch) => {
                info!(
                    epoch,
                    "the epoch's slot schedule was not sent to PoolTool: its window has passed; skipped"
                );
                self.slots.missed(epoch);
            }
            SlotsDecision::Send(epoch) => {
                self.slots.attempted(now);
                let fresh = slots_json(&input.logs, epoch);
                let context = Arc::clone(context);
                let (sender, receiver) = oneshot::channel();
                tokio::spawn(async move {
                    let result = send_slots(&context, epoch, fresh).await;
                    let _ = sender.send(SlotsOutcome { epoch, result });
                });
                self.slots_flight = Some(receiver);
            }
        }
    }
}

/// The outcome of a finished send, clearing the slot; `None` while running. A send whose task died
/// without answering is dropped (the next due time retries).
fn take_finished<T>(flight: &mut Option<oneshot::Receiver<T>>) -> Option<T> {
    let receiver = flight.as_mut()?;
    match receiver.try_recv() {
        Err(oneshot::error::TryRecvError::Empty) => None,
        Err(oneshot::error::TryRecvError::Closed) => {
            *flight = None;
            None
        }
        Ok(outcome) => {
            *flight = None;
            Some(outcome)
        }
    }
}

/// Fetches the first `HEADER_PREFIX_LEN` bytes of the tip block from the node.
async fn fetch_block_prefix(
    http: &reqwest::Client,
    rest: &Url,
    hash: &str,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let url = block_url(rest, hash).ok_or_else(|| format!("unusable REST address {rest}"))?;
    let fetch = async {
        let mut response = http
            .get(url)
            .header("Accept", "application/octet-stream")
            .send()
            .await
            .map_err(|e| describe::innermost(&e))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        let mut bytes = Vec::with_capacity(HEADER_PREFIX_LEN);
        while bytes.len() < HEADER_PREFIX_LEN {
            match response
                .chunk()
                .await
                .map_err(|e| describe::innermost(&e))?
            {
                Some(chunk) => bytes.extend_from_slice(&chunk),
                None => break,
            }
        }
        Ok(bytes)
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// One `sharemytip` report: the header from the node when it can be had, then the GET.
async fn send_tip(
    context: &Context,
    rest: &Url,
    height: u64,
    hash: String,
    version: String,
) -> Result<(), ReportError> {
    let header = match fetch_block_prefix(&context.http, rest, &hash, context.timeout).await {
        Ok(bytes) => {
            let header = decode_header(&bytes);
            if header.is_none() {
                debug!(
                    bytes = bytes.len(),
                    "tip block too short for its header; reporting the core fields"
                );
            }
            header
        }
        Err(why) => {
            debug!("tip block unavailable ({why}); reporting the core fields");
            None
        }
    };
    let report = TipReport {
        height,
        hash,
        version,
        header,
    };
    let url = tip_request_url(&context.tip_url, &context.identity, &report);
    let request = context.http.get(url).header("Accept", "application/json");
    exchange(request, context.timeout).await
}

/// One `sendlogs` attempt for `epoch` with the fresh slot list `fresh`; the number of assigned
/// slots sent.
async fn send_slots(context: &Context, epoch: u64, fresh: String) -> Result<usize, ReportError> {
    let mode = context.mode;
    let dir = context.key_path.clone();
    let (assigned, prepared) =
        tokio::task::spawn_blocking(move || prepare(mode, &dir, epoch, fresh))
            .await
            .map_err(|e| ReportError::KeyFiles(format!("task failed: {e}")))??;
    let commitment = match prepared {
        Prepared::None => Commitment::None,
        Prepared::Hash {
            this_epoch_hash,
            last_epoch_slots,
        } => Commitment::Hash {
            this_epoch_hash,
            last_epoch_slots,
        },
        Prepared::Gpg {
            slots,
            passphrase,
            previous_epoch_key,
        } => Commitment::Gpg {
            encrypted_slots: gpg_encrypt(&context.gpg, &passphrase, &slots, context.timeout)
                .await?,
            previous_epoch_key,
        },
    };
    let body = slots_body(&context.identity, epoch, assigned, &commitment);
    let request = context
        .http
        .post(context.slots_url.clone())
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body(body.to_string());
    exchange(request, context.timeout).await?;
    Ok(assigned)
}

/// Sends `request` and judges the answer (`check_answer`) within `timeout`.
async fn exchange(request: reqwest::RequestBuilder, timeout: Duration) -> Result<(), ReportError> {
    let run = async {
        let response = request.send().await.map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        match crate::http::read_limited(response, MAX_ANSWER_BYTES).await {
            Ok(body) => check_answer(status, &body),
            Err(crate::http::BodyError::TooLarge) if (200..300).contains(&status) => Err(
                ReportError::Rejected(format!("answer larger than {MAX_ANSWER_BYTES} bytes")),
            ),
            Err(crate::http::BodyError::TooLarge) => Err(ReportError::Status(status)),
            Err(crate::http::BodyError::Transport(e)) => Err(unreachable(&e)),
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or(Err(ReportError::Timeout(timeout)))
}

/// A transport failure, "connection refused" spelled the same whatever layer reported it.
fn unreachable(error: &reqwest::Error) -> ReportError {
    if describe::io_error_kind(error) == Some(io::ErrorKind::ConnectionRefused) {
        return ReportError::Unreachable("connection refused".into());
    }
    ReportError::Unreachable(describe::innermost(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Mutex;

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};

    use crate::chain::NodeState;
    use crate::config::raw::RawPoolTool;
    use crate::slots::LogStatus;

    const POOL: &str = "5d5a1fd43e4ea9bb1e2c2c77a37b5ab16b1a2e0ae1e58d1eef6fbc8e0a1d2c3b";
    const USER: &str = "0f2b8a34-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
    const GENESIS: &str = "8e4d2a343f3dcf9330ad9035b3e8d168e6728904262f2c434a4f8f934ec7b676";
    const TIP_HASH: &str = "b1a3c5e7d9f1b3a5c7e9d1f3b5a7c9e1d3f5b7a9c1e3d5f7b9a1c3e5d7f9b1a3";
    const TIMEOUT: Duration = Duration::from_secs(5);

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    /// Genesis at `t(0)`, 2 s slots, 500 slots: epoch `e` starts at `t(1000 e)`.
    fn clock() -> SlotClock {
        SlotClock::new(t(0), Duration::from_secs(2), 500).unwrap()
    }

    fn identity() -> Identity {
        Identity {
            pool_id: POOL.into(),
            user_id: USER.into(),
            genesis_hash: GENESIS.into(),
        }
    }

    /// A Genesis-Praos-like block: the header fields, a leader id, filler for VRF/KES and content.
    fn fake_block(
        header_len: u16,
        epoch: u32,
        slot: u32,
        parent: [u8; 32],
        pool: [u8; 32],
    ) -> Vec<u8> {
        let mut block = Vec::new();
        block.extend(header_len.to_be_bytes());
        block.extend(2u16.to_be_bytes()); // version
        block.extend(1234u32.to_be_bytes()); // content size
        block.extend(epoch.to_be_bytes());
        block.extend(slot.to_be_bytes());
        block.extend(987_654u32.to_be_bytes()); // chain length
        block.extend([0x11; 32]); // content hash
        block.extend(parent);
        block.extend(pool);
        block.extend([0x77; 400]); // VRF proof, KES signature, content
        block
    }

    #[test]
    fn decodes_the_header_at_jmanagers_offsets() {
        let block = fake_block(762, 176, 4242, [0xab; 32], [0xcd; 32]);
        let header = decode_header(&block).unwrap();
        assert_eq!(
            header,
            TipHeader {
                epoch: 176,
                slot: 4242,
                parent: "ab".repeat(32),
                pool_id: "cd".repeat(32),
            }
        );
        // The same fields read the way jmanager reads jcli's hex dump.
        let dump = hex(&block);
        assert_eq!(
            u32::from_str_radix(&dump[16..24], 16).unwrap(),
            header.epoch
        );
        assert_eq!(u32::from_str_radix(&dump[24..32], 16).unwrap(), header.slot);
        assert_eq!(dump[104..168], header.parent);
        assert_eq!(dump[168..232], header.pool_id);
        // A prefix is enough; shorter is not; a header without a leader id is refused.
        assert_eq!(decode_header(&block[..HEADER_PREFIX_LEN]), Some(header));
        assert_eq!(decode_header(&block[..HEADER_PREFIX_LEN - 1]), None);
        assert_eq!(decode_header(&[]), None);
        assert_eq!(decode_header(&fake_block(82, 0, 0, [0; 32], [0; 32])), None);
        assert!(decode_header(&fake_block(114, 1, 2, [0; 32], [0; 32])).is_some());
    }

    #[test]
    fn decodes_the_simulators_blocks() {
        // What nodekeeper-sim makes with `ChainParams::try_new(1_700_000_000, 2, 60, 7, 3, None)`
        // (its chain tests decode the same blocks with this decoder): the first bytes of block 500
        // (date 8.20, parent block 499's hash, the pool id) and the whole block0.
        let bytes = |hex: &str| -> Vec<u8> {
            let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap();
            (0..hex.len()).step_by(2).map(byte).collect()
        };
        let header = decode_header(&bytes(concat!(
            "02b60002000000000000000800000014000001f4eec395f9586942eba792c813964d3461b5c297fb0256",
            "df6403a0e18e847c7faed1377c11c1f18a425224d97453cd5162b0e680bd68420901afdb1985373e2ce1",
            "97b4860a586d7d9bac87fb5d8f84d617c518840ee92dc7aaa5a4e5937cdb63ef",
        )))
        .unwrap();
        assert_eq!((u64::from(header.epoch), u64::from(header.slot)), (8, 20));
        let parent = "d1377c11c1f18a425224d97453cd5162b0e680bd68420901afdb1985373e2ce1";
        assert_eq!(header.parent, parent);
        let pool = "97b4860a586d7d9bac87fb5d8f84d617c518840ee92dc7aaa5a4e5937cdb63ef";
        assert_eq!(header.pool_id, pool);
        // block0 carries no leader id.
        let block0 = concat!(
            "00520000000000000000000000000000000000000ae7e7ce0903612c50efcca915a911a39fea06a4b7e5",
            "86b52bfc160246d758590000000000000000000000000000000000000000000000000000000000000000",
        );
        assert_eq!(decode_header(&bytes(block0)), None);
    }

    #[test]
    fn genesis_prefix_is_seven_characters() {
        let mut id = identity();
        assert_eq!(id.genesis_prefix(), "8e4d2a3");
        id.genesis_hash = " 8e4d\n".into();
        assert_eq!(id.genesis_prefix(), "8e4d");
        id.genesis_hash = "ééééééééé".into();
        assert_eq!(id.genesis_prefix(), "ééééééé");
    }

    fn pairs(url: &Url) -> Vec<(String, String)> {
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn builds_the_tip_query() {
        let base = Url::parse("https://api.pooltool.io/v0/sharemytip").unwrap();
        let mut report = TipReport {
            height: 405_672,
            hash: TIP_HASH.into(),
            version: "jormungandr 0.9.0-rc1+abc".into(),
            header: Some(TipHeader {
                epoch: 176,
                slot: 4242,
                parent: "ab".repeat(32),
                pool_id: "cd".repeat(32),
            }),
        };
        let url = tip_request_url(&base, &identity(), &report);
        let parent = "ab".repeat(32);
        let leader = "cd".repeat(32);
        assert_eq!(
            pairs(&url),
            owned(&[
                ("poolid", POOL),
                ("userid", USER),
                ("genesispref", "8e4d2a3"),
                ("mytip", "405672"),
                ("lasthash", TIP_HASH),
                ("lastpool", &leader),
                ("lastparent", &parent),
                ("lastslot", "4242"),
                ("lastepoch", "176"),
                ("jormver", "jormungandr 0.9.0-rc1+abc"),
                ("platform", "nodekeeper"),
            ])
        );
        assert!(
            url.as_str()
                .ends_with("&jormver=jormungandr%200.9.0-rc1%2Babc&platform=nodekeeper"),
            "{url}"
        );
        assert_eq!(url.path(), "/v0/sharemytip");
        // Without the header: the core only. A query already in the base is kept.
        report.header = None;
        let base = Url::parse("http://127.0.0.1:9/sharemytip?key=v+w").unwrap();
        let url = tip_request_url(&base, &identity(), &report);
        assert_eq!(
            pairs(&url),
            owned(&[
                ("key", "v w"),
                ("poolid", POOL),
                ("userid", USER),
                ("genesispref", "8e4d2a3"),
                ("mytip", "405672"),
                ("lasthash", TIP_HASH),
            ])
        );
    }

    #[test]
    fn block_url_appends_segments() {
        for base in ["http://127.0.0.1:3101/api", "http://127.0.0.1:3101/api/"] {
            let url = block_url(&Url::parse(base).unwrap(), "ab12").unwrap();
            assert_eq!(url.as_str(), "http://127.0.0.1:3101/api/v0/block/ab12");
        }
    }

    #[test]
    fn tip_tracker_rules() {
        let mut tracker = TipTracker::new(Duration::from_secs(15));
        // Never sent: due at once.
        assert!(tracker.due(t(0), 100));
        tracker.attempted(t(0));
        tracker.record(t(0), 100, true);
        assert_eq!(
            tracker.last_sent(),
            Some(TipSent {
                at: t(0),
                height: 100
            })
        );
        // A new height waits for the interval; the same height is never re-sent.
        assert!(!tracker.due(t(14), 101));
        assert!(tracker.due(t(15), 101));
        assert!(!tracker.due(t(1000), 100));
        // A lower height (rollback) is a change too.
        assert!(tracker.due(t(15), 99));
        // Failures double the wait: 30, 60, 120, 240, 480, then 600 (capped).
        let mut at = 15;
        for (failures, wait) in [
            (1, 30),
            (2, 60),
            (3, 120),
            (4, 240),
            (5, 480),
            (6, 600),
            (7, 600),
        ] {
            tracker.attempted(t(at));
            tracker.record(t(at), 101, false);
            assert_eq!(tracker.consecutive_failures(), failures);
            assert_eq!(tracker.wait(), Duration::from_secs(wait), "{failures}");
            assert!(!tracker.due(t(at + wait - 1), 101));
            assert!(tracker.due(t(at + wait), 101));
            at += wait;
        }
        // The failed height is retried, and a success resets the wait.
        tracker.attempted(t(at));
        tracker.record(t(at), 101, true);
        assert_eq!(tracker.consecutive_failures(), 0);
        assert_eq!(tracker.wait(), Duration::from_secs(15));
        assert!(!tracker.due(t(at + 100), 101));
        // A clock that stepped back makes a report due.
        assert!(tracker.due(t(0), 102));
        // An interval above the cap is never shortened by it.
        let mut slow = TipTracker::new(Duration::from_secs(900));
        slow.record(t(0), 1, false);
        assert_eq!(slow.wait(), Duration::from_secs(900));
        for _ in 0..100 {
            slow.record(t(0), 1, false);
        }
        assert_eq!(slow.wait(), Duration::from_secs(900));
    }

    #[test]
    fn slots_tracker_rules() {
        let c = clock();
        let mut tracker = SlotsTracker::new(Duration::from_secs(180));
        assert_eq!(
            slots_window(&c, Duration::from_secs(180), 5),
            Some((t(5180), t(5240)))
        );
        assert_eq!(slots_window(&c, Duration::MAX, 5), None);
        let never = SlotsTracker::new(Duration::MAX);
        assert_eq!(never.decide(&c, t(5180)), SlotsDecision::Idle);
        // Before the window: wait. In it: send.
        assert_eq!(tracker.decide(&c, t(5000)), SlotsDecision::Idle);
        assert_eq!(tracker.decide(&c, t(5179)), SlotsDecision::Idle);
        assert_eq!(tracker.decide(&c, t(5180)), SlotsDecision::Send(5));
        // A failure is retried within the window, at most every 10 s.
        tracker.attempted(t(5180));
        tracker.record(5, false);
        assert_eq!(tracker.consecutive_failures(), 1);
        assert_eq!(tracker.decide(&c, t(5189)), SlotsDecision::Idle);
        assert_eq!(tracker.decide(&c, t(5190)), SlotsDecision::Send(5));
        tracker.attempted(t(5190));
        tracker.record(5, true);
        assert_eq!(tracker.sent_epoch(), Some(5));
        assert_eq!(tracker.consecutive_failures(), 0);
        // Sent: nothing more this epoch, even after the window.
        assert_eq!(tracker.decide(&c, t(5200)), SlotsDecision::Idle);
        assert_eq!(tracker.decide(&c, t(5900)), SlotsDecision::Idle);
        // Epoch 6's window passes unsent: missed once, then left alone.
        assert_eq!(tracker.decide(&c, t(6240)), SlotsDecision::Missed(6));
        tracker.missed(6);
        assert_eq!(tracker.decide(&c, t(6241)), SlotsDecision::Idle);
        // Epoch 7 again in its window, at its last second.
        assert_eq!(tracker.decide(&c, t(7239)), SlotsDecision::Send(7));
        // A failing epoch is missed once its window closes.
        tracker.attempted(t(7239));
        tracker.record(7, false);
        assert_eq!(tracker.decide(&c, t(7240)), SlotsDecision::Missed(7));
        assert_eq!(tracker.sent_epoch(), Some(5));
    }

    fn log(epoch: u64, slot: u64, status: LogStatus) -> LeaderLog {
        let date = SlotDate { epoch, slot };
        LeaderLog {
            date,
            scheduled_at: clock().date_time(date),
            finished: status != LogStatus::Pending,
            status,
            enclave_leader_id: 1,
        }
    }

    /// Epoch 5 has 3 distinct slots (7 twice, any status); epochs 4 and 50 are not epoch 5.
    fn logs() -> Vec<LeaderLog> {
        vec![
            log(5, 400, LogStatus::Pending),
            log(50, 5, LogStatus::Pending),
            log(5, 30, LogStatus::Rejected("missed".into())),
            log(4, 1, LogStatus::Block),
            log(5, 7, LogStatus::Block),
            log(5, 7, LogStatus::Block),
        ]
    }

    #[test]
    fn slot_list_is_the_exact_epoch_sorted() {
        let text = slots_json(&logs(), 5);
        assert_eq!(
            text,
            concat!(
                r#"[{"scheduled_at_date":"5.7","scheduled_at_time":"1970-01-12T15:10:14+00:00"},"#,
                r#"{"scheduled_at_date":"5.30","scheduled_at_time":"1970-01-12T15:11:00+00:00"},"#,
                r#"{"scheduled_at_date":"5.400","scheduled_at_time":"1970-01-12T15:23:20+00:00"}]"#
            )
        );
        assert_eq!(count_slots(&text), Some(3));
        assert_eq!(slots_json(&logs(), 6), "[]");
        assert_eq!(count_slots("[]"), Some(0));
        assert_eq!(count_slots("{}"), None);
        assert_eq!(count_slots("garbage"), None);
        // The same list in another order gives the same text (and hash).
        let mut reversed = logs();
        reversed.reverse();
        assert_eq!(slots_json(&reversed, 5), text);
    }

    fn keys(body: &Value) -> Vec<&str> {
        body.as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    }

    const BASE_KEYS: [&str; 5] = [
        "currentepoch",
        "poolid",
        "genesispref",
        "userid",
        "assigned_slots",
    ];

    #[test]
    fn builds_the_slots_body_per_mode() {
        let body = slots_body(&identity(), 176, 3, &Commitment::None);
        assert_eq!(keys(&body), BASE_KEYS);
        assert_eq!(
            body,
            json!({"currentepoch": "176", "poolid": POOL, "genesispref": "8e4d2a3",
                   "userid": USER, "assigned_slots": "3"})
        );
        let body = slots_body(
            &identity(),
            176,
            0,
            &Commitment::Hash {
                this_epoch_hash: "f00".into(),
                last_epoch_slots: "[]".into(),
            },
        );
        assert_eq!(keys(&body)[..5], BASE_KEYS);
        assert_eq!(keys(&body)[5..], ["this_epoch_hash", "last_epoch_slots"]);
        assert_eq!(body["assigned_slots"], "0");
        assert_eq!(body["this_epoch_hash"], "f00");
        assert_eq!(body["last_epoch_slots"], "[]");
        let body = slots_body(
            &identity(),
            176,
            2,
            &Commitment::Gpg {
                previous_epoch_key: String::new(),
                encrypted_slots: "-----BEGIN PGP MESSAGE-----\n…".into(),
            },
        );
        assert_eq!(keys(&body)[5..], ["previous_epoch_key", "encrypted_slots"]);
        assert_eq!(body["previous_epoch_key"], "");
        assert!(body.as_object().unwrap().values().all(Value::is_string));
    }

    #[test]
    fn judges_answers() {
        let rejected = |s: &str| Err(ReportError::Rejected(s.into()));
        let cases: Vec<(u16, &str, Result<(), ReportError>)> = vec![
            (200, r#"{"success":true,"confidence":true}"#, Ok(())),
            (201, r#"{"success":true}"#, Ok(())),
            (500, r#"{"success":true}"#, Err(ReportError::Status(500))),
            (404, "", Err(ReportError::Status(404))),
            (
                200,
                r#"{"success":false,"message":{"error":"We were unable to parse"}}"#,
                rejected("\"We were unable to parse\""),
            ),
            (
                200,
                r#"{"success":false,"error":"bad user"}"#,
                rejected("\"bad user\""),
            ),
            (
                200,
                r#"{"success":false,"error":null}"#,
                rejected("no \"success\": true in the answer"),
            ),
            (
                200,
                r#"{"success":"true"}"#,
                rejected("no \"success\": true in the answer"),
            ),
            (
                200,
                r#"{"success":false,"error":{"code":3}}"#,
                rejected("\"{\\\"code\\\":3}\""),
            ),
            (200, "<html>", rejected("not JSON: \"<html>\"")),
        ];
        for (status, body, expected) in cases {
            assert_eq!(
                check_answer(status, body.as_bytes()),
                expected,
                "{status} {body}"
            );
        }
        let long = format!(r#"{{"success":false,"error":"{}"}}"#, "x".repeat(10_000));
        let error = check_answer(200, long.as_bytes()).unwrap_err();
        assert!(error.to_string().len() < 300);
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn key_files_are_written_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("a/pooltool-keys");
        // Hash mode creates the directory, the list and the hash.
        let (count, prepared) =
            prepare(SlotsVerification::Hash, &keys, 5, slots_json(&logs(), 5)).unwrap();
        assert_eq!(count, 3);
        assert_eq!(mode_of(&keys), 0o700);
        let list = std::fs::read_to_string(key_file(&keys, "leader_slots", 5)).unwrap();
        assert_eq!(list, slots_json(&logs(), 5));
        let hash = std::fs::read_to_string(key_file(&keys, "hash", 5)).unwrap();
        assert_eq!(hash, sha256_hex(list.as_bytes()));
        for kind in ["leader_slots", "hash"] {
            assert_eq!(mode_of(&key_file(&keys, kind, 5)), 0o600, "{kind}");
        }
        let Prepared::Hash {
            this_epoch_hash,
            last_epoch_slots,
        } = prepared
        else {
            panic!("not hash");
        };
        assert_eq!(
            (this_epoch_hash, last_epoch_slots),
            (hash.clone(), String::new())
        );
        // A second run (a restarted daemon) commits to the same list, whatever the node says now.
        let (count, prepared) = prepare(SlotsVerification::Hash, &keys, 5, "[]".into()).unwrap();
        assert_eq!(count, 3);
        assert!(
            matches!(prepared, Prepared::Hash { this_epoch_hash, .. } if this_epoch_hash == hash)
        );
        // The next epoch reveals this one's list.
        let (count, prepared) = prepare(SlotsVerification::Hash, &keys, 6, "[]".into()).unwrap();
        assert_eq!(count, 0);
        assert!(
            matches!(prepared, Prepared::Hash { last_epoch_slots, .. } if last_epoch_slots == list)
        );
        // Gpg mode: a fresh base64 passphrase of 32 bytes, kept; the previous one revealed.
        let (_, first) = prepare(SlotsVerification::Gpg, &keys, 6, "[]".into()).unwrap();
        let (_, again) = prepare(SlotsVerification::Gpg, &keys, 6, "[]".into()).unwrap();
        let (_, next) = prepare(SlotsVerification::Gpg, &keys, 7, "[]".into()).unwrap();
        let (
            Prepared::Gpg {
                passphrase: p1,
                slots,
                ..
            },
            Prepared::Gpg { passphrase: p2, .. },
            Prepared::Gpg {
                passphrase: p3,
                previous_epoch_key,
                ..
            },
        ) = (first, again, next)
        else {
            panic!("not gpg");
        };
        assert_eq!(p1, p2);
        assert_ne!(p1, p3);
        assert_eq!(previous_epoch_key, p1);
        assert_eq!(slots, "[]");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&p1)
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert_eq!(mode_of(&key_file(&keys, "passphrase", 6)), 0o600);
        // No verification: no files at all.
        let none = dir.path().join("none");
        let (count, _) =
            prepare(SlotsVerification::None, &none, 5, slots_json(&logs(), 5)).unwrap();
        assert_eq!(count, 3);
        assert!(!none.exists());
        // A broken list file is an error, not a silent new commitment.
        std::fs::write(key_file(&keys, "leader_slots", 9), "not json").unwrap();
        assert!(matches!(
            prepare(SlotsVerification::Hash, &keys, 9, "[]".into()),
            Err(ReportError::KeyFiles(_))
        ));
        // No temporary files are left behind.
        let stray: Vec<_> = std::fs::read_dir(&keys)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with('.'))
            .collect();
        assert!(stray.is_empty(), "{stray:?}");
    }

    #[test]
    fn a_disabled_or_incomplete_reporter_is_inactive() {
        let mut settings = settings("http://127.0.0.1:9", SlotsVerification::None, None);
        settings.raw.enabled = false;
        let mut reporter = Reporter::new(&settings, PathBuf::from("/nonexistent"), TIMEOUT);
        // No runtime needed: nothing is spawned.
        reporter.poll(t(0), None, None);
        assert_eq!(reporter.status(), ReporterStatus::default());
        settings.raw.enabled = true;
        settings.raw.user_id = Some("  ".into());
        assert!(
            !Reporter::new(&settings, PathBuf::new(), TIMEOUT)
                .status()
                .active
        );
        settings.raw.user_id = Some(USER.into());
        settings.raw.tip_url = "not a url".into();
        assert!(
            !Reporter::new(&settings, PathBuf::new(), TIMEOUT)
                .status()
                .active
        );
    }

    // ---- over HTTP ----

    /// A request the fake PoolTool received.
    #[derive(Clone, Debug)]
    struct Seen {
        method: String,
        path: String,
        raw_query: String,
        query: Vec<(String, String)>,
        accept: Option<String>,
        content_type: Option<String>,
        body: Vec<u8>,
    }

    impl Seen {
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap()
        }
    }

    /// The fake PoolTool and node: `/api/v0/block/{hash}` serves `block` (404 when `None`), any
    /// other path is recorded and answered from `answers` (then `{"success":true}`).
    #[derive(Default)]
    struct Fake {
        seen: Vec<Seen>,
        answers: VecDeque<(u16, String)>,
        block: Option<Vec<u8>>,
        block_requests: Vec<String>,
    }

    type Shared = Arc<Mutex<Fake>>;

    async fn handle(State(shared): State<Shared>, request: axum::extract::Request) -> Response {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default()
            .to_vec();
        let mut fake = shared.lock().unwrap();
        let path = parts.uri.path().to_string();
        if let Some(hash) = path.strip_prefix("/api/v0/block/") {
            fake.block_requests.push(hash.to_string());
            return match &fake.block {
                Some(bytes) => (StatusCode::OK, bytes.clone()).into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            };
        }
        let raw_query = parts.uri.query().unwrap_or_default().to_string();
        let query = pairs(&Url::parse(&format!("http://x/?{raw_query}")).unwrap());
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        let seen = Seen {
            method: parts.method.to_string(),
            path,
            raw_query,
            query,
            accept: header("accept"),
            content_type: header("content-type"),
            body,
        };
        fake.seen.push(seen);
        let (status, answer) = fake
            .answers
            .pop_front()
            .unwrap_or((200, r#"{"success":true}"#.into()));
        (StatusCode::from_u16(status).unwrap(), answer).into_response()
    }

    async fn server() -> (String, Shared) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shared = Shared::default();
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (format!("http://{address}"), shared)
    }

    fn settings(base: &str, mode: SlotsVerification, gpg: Option<PathBuf>) -> PoolToolSettings {
        PoolToolSettings {
            raw: RawPoolTool {
                enabled: true,
                tip_url: format!("{base}/v0/sharemytip"),
                slots_url: format!("{base}/v0/sendlogs"),
                slots_verification: mode,
                gpg,
                user_id: Some(USER.into()),
                ..RawPoolTool::default()
            },
            pool_id: Some(POOL.into()),
            genesis_hash: Some(GENESIS.into()),
        }
    }

    fn tip(base: &str, height: u64) -> Option<TipInput> {
        Some(TipInput {
            rest_url: Url::parse(&format!("{base}/api")).unwrap(),
            status: NodeStatus {
                state: NodeState::Running,
                version: "jormungandr 0.9.0".into(),
                height: Some(height),
                tip_hash: Some(TIP_HASH.into()),
                tip_date: None,
                last_block_time: None,
                uptime_secs: None,
            },
        })
    }

    fn slots(logs: Vec<LeaderLog>) -> Option<SlotsInput> {
        Some(SlotsInput {
            clock: clock(),
            logs,
        })
    }

    /// Polls (without new inputs) until every send has been collected.
    async fn settle(reporter: &mut Reporter, now: SystemTime) {
        for _ in 0..4000 {
            if reporter.tip_flight.is_none() && reporter.slots_flight.is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            reporter.poll(now, None, None);
        }
        panic!("the sends did not finish");
    }

    fn seen(shared: &Shared) -> Vec<Seen> {
        shared.lock().unwrap().seen.clone()
    }

    #[tokio::test]
    async fn reports_the_tip_with_its_header() {
        let (base, shared) = server().await;
        shared.lock().unwrap().block = Some(fake_block(762, 176, 4242, [0xab; 32], [0xcd; 32]));
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(&base, SlotsVerification::Hash, None);
        let mut reporter = Reporter::new(&settings, dir.path().join("keys"), TIMEOUT);
        reporter.poll(t(0), tip(&base, 405_672), None);
        settle(&mut reporter, t(0)).await;
        let requests = seen(&shared);
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", "/v0/sharemytip")
        );
        let parent = "ab".repeat(32);
        let leader = "cd".repeat(32);
        assert_eq!(
            request.query,
            owned(&[
                ("poolid", POOL),
                ("userid", USER),
                ("genesispref", "8e4d2a3"),
                ("mytip", "405672"),
                ("lasthash", TIP_HASH),
                ("lastpool", &leader),
                ("lastparent", &parent),
                ("lastslot", "4242"),
                ("lastepoch", "176"),
                ("jormver", "jormungandr 0.9.0"),
                ("platform", "nodekeeper"),
            ])
        );
        assert!(
            request.raw_query.contains("jormver=jormungandr%200.9.0&"),
            "{}",
            request.raw_query
        );
        assert_eq!(shared.lock().unwrap().block_requests, [TIP_HASH]);
        let status = reporter.status();
        assert!(status.active);
        assert_eq!(
            status.last_tip,
            Some(TipSent {
                at: t(0),
                height: 405_672
            })
        );
        assert_eq!(status.tip_failures, 0);
        // A new height waits for the interval; the same height is not re-sent.
        reporter.poll(t(14), tip(&base, 405_673), None);
        reporter.poll(t(15), tip(&base, 405_672), None);
        settle(&mut reporter, t(15)).await;
        assert_eq!(seen(&shared).len(), 1);
        reporter.poll(t(15), tip(&base, 405_673), None);
        settle(&mut reporter, t(15)).await;
        let requests = seen(&shared);
        assert_eq!(requests.len(), 2);
        assert!(
            requests[1]
                .query
                .contains(&("mytip".into(), "405673".into()))
        );
        assert_eq!(
            reporter.status().last_tip,
            Some(TipSent {
                at: t(15),
                height: 405_673
            })
        );
        // No tip input, or a node without a height: nothing.
        let mut booting = tip(&base, 1).unwrap();
        booting.status.height = None;
        reporter.poll(t(100), Some(booting), None);
        reporter.poll(t(100), None, None);
        settle(&mut reporter, t(100)).await;
        assert_eq!(seen(&shared).len(), 2);
    }

    #[tokio::test]
    async fn without_the_block_only_the_core_is_reported() {
        let core = |height: &str| {
            owned(&[
                ("poolid", POOL),
                ("userid", USER),
                ("genesispref", "8e4d2a3"),
                ("mytip", height),
                ("lasthash", TIP_HASH),
            ])
        };
        let (base, shared) = server().await;
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(&base, SlotsVerification::None, None);
        let mut reporter = Reporter::new(&settings, dir.path().to_path_buf(), TIMEOUT);
        // 404 from the node.
        reporter.poll(t(0), tip(&base, 10), None);
        settle(&mut reporter, t(0)).await;
        // A block too short for the header.
        shared.lock().unwrap().block =
            Some(fake_block(762, 1, 2, [1; 32], [2; 32])[..100].to_vec());
        reporter.poll(t(15), tip(&base, 11), None);
        settle(&mut reporter, t(15)).await;
        let requests = seen(&shared);
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].query, core("10"));
        assert_eq!(requests[1].query, core("11"));
        assert_eq!(shared.lock().unwrap().block_requests.len(), 2);
    }

    #[tokio::test]
    async fn failed_tip_reports_back_off_and_retry() {
        let (base, shared) = server().await;
        shared.lock().unwrap().answers = VecDeque::from([
            (500, "oops".to_string()),
            (
                200,
                r#"{"success":false,"error":"unknown user"}"#.to_string(),
            ),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(&base, SlotsVerification::None, None);
        let mut reporter = Reporter::new(&settings, dir.path().to_path_buf(), TIMEOUT);
        reporter.poll(t(0), tip(&base, 10), None);
        settle(&mut reporter, t(0)).await;
        assert_eq!(reporter.status().tip_failures, 1);
        assert_eq!(reporter.status().last_tip, None);
        // Wait 30 s after one failure, 60 s after two.
        reporter.poll(t(29), tip(&base, 10), None);
        settle(&mut reporter, t(29)).await;
        assert_eq!(seen(&shared).len(), 1);
        reporter.poll(t(30), tip(&base, 10), None);
        settle(&mut reporter, t(30)).await;
        assert_eq!(seen(&shared).len(), 2);
        assert_eq!(reporter.status().tip_failures, 2);
        reporter.poll(t(89), tip(&base, 10), None);
        settle(&mut reporter, t(89)).await;
        assert_eq!(seen(&shared).len(), 2);
        reporter.poll(t(90), tip(&base, 10), None);
        settle(&mut reporter, t(90)).await;
        assert_eq!(seen(&shared).len(), 3);
        let status = reporter.status();
        assert_eq!(status.tip_failures, 0);
        assert_eq!(
            status.last_tip,
            Some(TipSent {
                at: t(90),
                height: 10
            })
        );
    }

    #[tokio::test]
    async fn tip_reports_to_nowhere_fail_quietly() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(&base, SlotsVerification::None, None);
        let mut reporter = Reporter::new(&settings, dir.path().to_path_buf(), TIMEOUT);
        reporter.poll(t(0), tip(&base, 10), None);
        settle(&mut reporter, t(0)).await;
        assert_eq!(reporter.status().tip_failures, 1);
    }

    fn assert_slots_request(request: &Seen) {
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/v0/sendlogs")
        );
        assert_eq!(request.accept.as_deref(), Some("application/json"));
        assert_eq!(request.content_type.as_deref(), Some("application/json"));
    }

    #[tokio::test]
    async fn sends_the_slot_count_without_verification() {
        let (base, shared) = server().await;
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let settings = settings(&base, SlotsVerification::None, None);
        let mut reporter = Reporter::new(&settings, keys.clone(), TIMEOUT);
        // Before the window: nothing.
        reporter.poll(t(5179), None, slots(logs()));
        settle(&mut reporter, t(5179)).await;
        assert!(seen(&shared).is_empty());
        reporter.poll(t(5180), None, slots(logs()));
        settle(&mut reporter, t(5180)).await;
        let requests = seen(&shared);
        assert_eq!(requests.len(), 1);
        assert_slots_request(&requests[0]);
        let body = requests[0].json();
        assert_eq!(keys_of(&body), BASE_KEYS);
        assert_eq!(
            body,
            json!({"currentepoch": "5", "poolid": POOL, "genesispref": "8e4d2a3",
                   "userid": USER, "assigned_slots": "3"})
        );
        assert_eq!(reporter.status().last_slots_epoch, Some(5));
        assert!(!keys.exists());
        // Once per epoch.
        reporter.poll(t(5200), None, slots(logs()));
        settle(&mut reporter, t(5200)).await;
        assert_eq!(seen(&shared).len(), 1);
    }

    fn keys_of(body: &Value) -> Vec<String> {
        keys(body).into_iter().map(str::to_string).collect()
    }

    #[tokio::test]
    async fn hash_mode_commits_then_reveals() {
        let (base, shared) = server().await;
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("pooltool-keys");
        let settings = settings(&base, SlotsVerification::Hash, None);
        let mut reporter = Reporter::new(&settings, keys.clone(), TIMEOUT);
        // Epoch 4: its one slot committed; nothing known of epoch 3.
        reporter.poll(t(4200), None, slots(logs()));
        settle(&mut reporter, t(4200)).await;
        // Epoch 5: three slots committed, epoch 4's list revealed.
        reporter.poll(t(5230), None, slots(logs()));
        settle(&mut reporter, t(5230)).await;
        let requests = seen(&shared);
        assert_eq!(requests.len(), 2);
        let (four, five) = (requests[0].json(), requests[1].json());
        assert_slots_request(&requests[1]);
        let mut expected_keys = BASE_KEYS.to_vec();
        expected_keys.extend(["this_epoch_hash", "last_epoch_slots"]);
        assert_eq!(keys_of(&five), expected_keys);
        assert_eq!(four["currentepoch"], "4");
        assert_eq!(four["assigned_slots"], "1");
        assert_eq!(four["last_epoch_slots"], "");
        assert_eq!(five["currentepoch"], "5");
        assert_eq!(five["assigned_slots"], "3");
        // The hash is the file's, and is the sha256 of the file's list.
        let list = std::fs::read_to_string(key_file(&keys, "leader_slots", 5)).unwrap();
        assert_eq!(list, slots_json(&logs(), 5));
        let hash = std::fs::read_to_string(key_file(&keys, "hash", 5)).unwrap();
        assert_eq!(five["this_epoch_hash"], hash.as_str());
        assert_eq!(hash, sha256_hex(list.as_bytes()));
        // The reveal is epoch 4's list exactly, and it matches epoch 4's commitment.
        let revealed = five["last_epoch_slots"].as_str().unwrap();
        assert_eq!(revealed, slots_json(&logs(), 4));
        assert_eq!(
            four["this_epoch_hash"],
            sha256_hex(revealed.as_bytes()).as_str()
        );
        assert_eq!(mode_of(&keys), 0o700);
        for kind in ["leader_slots", "hash"] {
            assert_eq!(mode_of(&key_file(&keys, kind, 5)), 0o600);
        }
        assert_eq!(reporter.status().last_slots_epoch, Some(5));
    }

    #[tokio::test]
    async fn refused_sends_are_retried_within_the_window() {
        let (base, shared) = server().await;
        shared.lock().unwrap().answers = VecDeque::from([
            (500, "Internal Server Error".to_string()),
            (
                200,
                r#"{"success":false,"message":{"error":"We were unable to parse the decrypted json data."}}"#
                    .to_string(),
            ),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let settings = settings(&base, SlotsVerification::Hash, None);
        let mut reporter = Reporter::new(&settings, keys.clone(), TIMEOUT);
        reporter.poll(t(5180), None, slots(logs()));
        settle(&mut reporter, t(5180)).await;
        let status = reporter.status();
        assert_eq!((status.last_slots_epoch, status.slots_failures), (None, 1));
        // Not before 10 s; then a `success: false` is a failure too.
        reporter.poll(t(5189), None, slots(logs()));
        settle(&mut reporter, t(5189)).await;
        assert_eq!(seen(&shared).len(), 1);
        // The node's list changed meanwhile: the commitment does not.
        let mut changed = logs();
        changed.push(log(5, 499, LogStatus::Pending));
        reporter.poll(t(5190), None, slots(changed.clone()));
        settle(&mut reporter, t(5190)).await;
        let status = reporter.status();
        assert_eq!((status.last_slots_epoch, status.slots_failures), (None, 2));
        reporter.poll(t(5200), None, slots(changed.clone()));
        settle(&mut reporter, t(5200)).await;
        let status = reporter.status();
        assert_eq!(
            (status.last_slots_epoch, status.slots_failures),
            (Some(5), 0)
        );
        let requests = seen(&shared);
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].body, requests[1].body);
        assert_eq!(requests[0].body, requests[2].body);
        assert_eq!(requests[2].json()["assigned_slots"], "3");
        // A restarted daemon in the same window sends the same commitment.
        let mut restarted = Reporter::new(&settings, keys, TIMEOUT);
        restarted.poll(t(5210), None, slots(changed));
        settle(&mut restarted, t(5210)).await;
        let requests = seen(&shared);
        assert_eq!(requests.len(), 4);
        assert_eq!(requests[3].body, requests[0].body);
    }

    #[tokio::test]
    async fn outside_the_window_the_epoch_is_skipped() {
        let (base, shared) = server().await;
        shared.lock().unwrap().answers = VecDeque::from([(503, String::new())]);
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(&base, SlotsVerification::None, None);
        let mut reporter = Reporter::new(&settings, dir.path().to_path_buf(), TIMEOUT);
        for at in [5240, 5241, 5900] {
            reporter.poll(t(at), None, slots(logs()));
            settle(&mut reporter, t(at)).await;
        }
        assert!(seen(&shared).is_empty());
        assert_eq!(reporter.status().last_slots_epoch, None);
        // A failure at the window's last second is not retried after it.
        reporter.poll(t(6239), None, slots(logs()));
        settle(&mut reporter, t(6239)).await;
        reporter.poll(t(6250), None, slots(logs()));
        settle(&mut reporter, t(6250)).await;
        assert_eq!(seen(&shared).len(), 1);
        assert_eq!(reporter.status().last_slots_epoch, None);
        // The next epoch goes out in its window.
        reporter.poll(t(7180), None, slots(logs()));
        settle(&mut reporter, t(7180)).await;
        assert_eq!(seen(&shared).len(), 2);
        assert_eq!(seen(&shared)[1].json()["currentepoch"], "7");
        assert_eq!(reporter.status().last_slots_epoch, Some(7));
    }

    fn found(program: &str) -> bool {
        std::process::Command::new("which")
            .arg(program)
            .output()
            .is_ok_and(|output| output.status.success())
    }

    /// Runs `gpg --homedir home` with `args`, `stdin` on its standard input; its standard output.
    fn gpg_run(home: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let mut child = std::process::Command::new("gpg")
            .arg("--homedir")
            .arg(home)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    #[tokio::test]
    async fn gpg_mode_encrypts_with_the_epochs_passphrase() {
        if !found("gpg") {
            println!("skipped: no gpg");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // A private gpg home, through a wrapper given as the configured binary.
        let home = dir.path().join("gnupg");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&home)
            .unwrap();
        let wrapper = dir.path().join("gpg-wrapper");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec gpg --homedir '{}' \"$@\"\n",
                home.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        std::fs::write(key_file(&keys, "passphrase", 4), "last-epochs-key\n").unwrap();

        let (base, shared) = server().await;
        let settings = settings(&base, SlotsVerification::Gpg, Some(wrapper));
        let mut reporter = Reporter::new(&settings, keys.clone(), Duration::from_secs(30));
        reporter.poll(t(5180), None, slots(logs()));
        settle(&mut reporter, t(5180)).await;
        let requests = seen(&shared);
        let result = || {
            assert_eq!(requests.len(), 1, "{:?}", reporter.status());
            assert_slots_request(&requests[0]);
            let body = requests[0].json();
            let mut expected_keys = BASE_KEYS.to_vec();
            expected_keys.extend(["previous_epoch_key", "encrypted_slots"]);
            assert_eq!(keys_of(&body), expected_keys);
            assert_eq!(body["assigned_slots"], "3");
            assert_eq!(body["previous_epoch_key"], "last-epochs-key");
            let armored = body["encrypted_slots"].as_str().unwrap();
            assert!(
                armored.starts_with("-----BEGIN PGP MESSAGE-----"),
                "{armored}"
            );
            assert!(armored.ends_with("-----END PGP MESSAGE-----"), "{armored}");
            let passphrase = std::fs::read_to_string(key_file(&keys, "passphrase", 5)).unwrap();
            assert_eq!(mode_of(&key_file(&keys, "passphrase", 5)), 0o600);
            assert_eq!(
                base64::engine::general_purpose::STANDARD
                    .decode(&passphrase)
                    .unwrap()
                    .len(),
                32
            );
            assert!(!String::from_utf8_lossy(&requests[0].body).contains(&passphrase));
            // The passphrase file decrypts the message back to the committed list.
            let message = dir.path().join("message.asc");
            std::fs::write(&message, armored).unwrap();
            let plain = gpg_run(
                &home,
                &[
                    "--batch",
                    "--quiet",
                    "--decrypt",
                    "--passphrase-fd",
                    "0",
                    message.to_str().unwrap(),
                ],
                passphrase.as_bytes(),
            );
            let list = std::fs::read_to_string(key_file(&keys, "leader_slots", 5)).unwrap();
            assert_eq!(String::from_utf8(plain).unwrap(), format!("{list}\n"));
            assert_eq!(list, slots_json(&logs(), 5));
            assert_eq!(reporter.status().last_slots_epoch, Some(5));
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(result));
        // End the agent gpg started for this home.
        let _ = std::process::Command::new("gpgconf")
            .arg("--homedir")
            .arg(&home)
            .args(["--kill", "gpg-agent"])
            .output();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    #[tokio::test]
    async fn a_missing_gpg_fails_the_send() {
        let (base, shared) = server().await;
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(
            &base,
            SlotsVerification::Gpg,
            Some(dir.path().join("no-such-gpg")),
        );
        let mut reporter = Reporter::new(&settings, dir.path().join("keys"), TIMEOUT);
        reporter.poll(t(5180), None, slots(logs()));
        settle(&mut reporter, t(5180)).await;
        assert!(seen(&shared).is_empty());
        assert_eq!(reporter.status().slots_failures, 1);
        let error = gpg_encrypt(&dir.path().join("no-such-gpg"), "p", "[]", TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ReportError::Gpg(ref why) if why.contains("cannot run")),
            "{error}"
        );
    }
}
