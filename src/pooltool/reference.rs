//! The reference tip: PoolTool's majority max (`stats.json`, key `majoritymax`), the height reported
//! by the largest number of pools. This module owns fetching it (`PoolToolSource`), decoding it
//! (`parse_majority_max`, pure) and the refresh policy (`ReferenceTracker`, pure: `now` is passed in).
//!
//! A broken reference never produces a value: garbage is an error, and a reference older than the
//! tracker's `max_age` is not current. It must not decide anything about nodes.
//!
//! Unlike jmanager (§1.4), a non-numeric `majoritymax` is an error of this source only, never a
//! crash of the loop, and there is no "0 when unavailable": unavailable is `None`.

use std::time::{Duration, SystemTime};

use reqwest::Url;
use serde_json::Value;

use super::due::Attempts;
use super::wire::{self, ExchangeError};
use crate::backoff::ExponentialBackoff;
use crate::describe;

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
    /// No connection, no answer in time, or an HTTP status other than 200.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
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
    /// A reference node (nodeos `reference_url`) gave no usable head: why, in its adapter's words.
    #[error("the reference node: {0}")]
    Node(String),
}

impl ReferenceError {
    /// A short stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ReferenceError::Exchange(e) => e.kind(),
            ReferenceError::TooLarge(_) => "too_large",
            ReferenceError::NotJson(_) => "not_json",
            ReferenceError::MissingMajorityMax => "missing",
            ReferenceError::BadMajorityMax(_) => "bad_value",
            ReferenceError::Node(_) => "node",
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
        PoolToolSource {
            http: wire::client(),
            url,
            timeout,
        }
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
            Err(_elapsed) => return Err(ExchangeError::Timeout(self.timeout).into()),
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
                crate::http::GetError::Transport(e) => ExchangeError::unreachable(&e).into(),
                crate::http::GetError::Status(code) => ExchangeError::Status(code).into(),
                crate::http::GetError::TooLarge => ReferenceError::TooLarge(MAX_BODY_BYTES),
            })
    }
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
    /// From `refresh` up to `MAX_BACKOFF_FACTOR × refresh`; `None` for a zero refresh (the
    /// configuration refuses it): no wait at all.
    backoff: Option<ExponentialBackoff>,
    max_age: Duration,
    attempts: Attempts,
    last_good: Option<Reference>,
    last_error: Option<ReferenceError>,
}

impl ReferenceTracker {
    /// A tracker that has never fetched.
    pub fn new(refresh: Duration, max_age: Duration) -> Self {
        let ceiling = refresh.saturating_mul(MAX_BACKOFF_FACTOR);
        ReferenceTracker {
            backoff: ExponentialBackoff::try_new(refresh, ceiling, 0.0).ok(),
            max_age,
            attempts: Attempts::default(),
            last_good: None,
            last_error: None,
        }
    }

    /// The wait between the last attempt and the next one, given the failures so far.
    pub fn interval(&self) -> Duration {
        // One failure retries at the normal rate; each further one doubles the wait.
        let doublings = self.attempts.consecutive_failures().saturating_sub(1);
        self.backoff
            .map_or(Duration::ZERO, |backoff| backoff.delay(doublings))
    }

    /// Whether a fetch should be attempted at `now`.
    pub fn due(&self, now: SystemTime) -> bool {
        self.attempts.waited(now, self.interval())
    }

    /// When the next attempt is due (`None`: now, nothing was attempted yet).
    pub fn next_attempt_at(&self) -> Option<SystemTime> {
        self.attempts
            .last()
            .and_then(|attempt| attempt.checked_add(self.interval()))
    }

    /// Records the outcome of an attempt made at `now`. A success replaces the reference (also by a
    /// lower height: the majority can move back after a rollback) and clears the error; a failure
    /// keeps the last good reference, remembers the error and counts it.
    pub fn record(&mut self, now: SystemTime, result: Result<Reference, ReferenceError>) {
        self.attempts.started(now);
        self.attempts.ended(result.is_ok());
        match result {
            Ok(reference) => {
                self.last_good = Some(reference);
                self.last_error = None;
            }
            Err(error) => self.last_error = Some(error),
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
        self.attempts.consecutive_failures()
    }

    /// The last good reference however old, for status display (never for decisions).
    pub fn last_good(&self) -> Option<Reference> {
        self.last_good
    }
}

#[cfg(test)]
mod tests;
