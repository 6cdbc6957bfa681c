//! The reporter: `Reporter` drives the due rules (`due`) from the daemon loop. Its `poll` never
//! awaits network I/O: it collects finished sends and spawns due ones. A tip report asks the node
//! for the tip block's first bytes through `TipHeaders` (the chain adapter implements it; nothing
//! here calls a node), decodes the header from them and falls back to the core fields without it.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::Url;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::due::{SlotsDecision, SlotsTracker, TipSent, TipTracker};
use super::gpg::gpg_encrypt;
use super::keys::{Prepared, prepare};
use super::settings::{PoolToolSettings, SlotsVerification};
use super::wire::{
    self, Commitment, HEADER_PREFIX_LEN, Identity, ReportError, TipReport, decode_header,
    slots_body, slots_json, tip_request_url,
};
use crate::chain::{NodeStatus, ProbeError};
use crate::describe;
use crate::secret::Secret;
use crate::slots::{LeaderLog, SlotClock};

/// The future of `TipHeaders::header_bytes`.
pub type HeaderFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, ProbeError>> + Send + 'a>>;

/// Where a tip report gets the tip block's first bytes, which hold the header fields it reports:
/// the node's API, reached through the chain adapter (Jormungandr: `chain::jormungandr::blocks`).
/// The only node call PoolTool reporting makes. The reporter bounds each call with its timeout
/// (dropping the future when it passes), so an implementation needs none of its own.
pub trait TipHeaders: Send + Sync + std::fmt::Debug {
    /// The first `len` bytes (fewer when the block is shorter) of block `hash` from the node whose
    /// REST API base is `rest` (e.g. `http://127.0.0.1:3101/api`).
    fn header_bytes<'a>(&'a self, rest: &'a Url, hash: &'a str, len: usize) -> HeaderFuture<'a>;
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
    headers: Arc<dyn TipHeaders>,
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
    /// exchange (and gpg run), reading tip headers through `headers`. Inactive (every `poll` a
    /// no-op) when PoolTool is disabled or the pool id, user id, genesis hash or a URL is missing
    /// or unusable (said once, here).
    pub fn new(
        settings: &PoolToolSettings,
        key_path: PathBuf,
        timeout: Duration,
        headers: Arc<dyn TipHeaders>,
    ) -> Reporter {
        let context = if settings.enabled {
            match Reporter::context(settings, key_path, timeout, headers) {
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
            tip: TipTracker::new(settings.tip_interval),
            tip_flight: None,
            slots: SlotsTracker::new(settings.send_slots_after),
            slots_flight: None,
        }
    }

    fn context(
        settings: &PoolToolSettings,
        key_path: PathBuf,
        timeout: Duration,
        headers: Arc<dyn TipHeaders>,
    ) -> Result<Context, String> {
        let present = |value: Option<&String>, what: &str| {
            value
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("no {what}"))
        };
        let identity = Identity {
            pool_id: present(settings.pool_id.as_ref(), "pool id")?,
            user_id: Secret::new(present(
                settings
                    .user_id
                    .as_ref()
                    .map(|id| id.expose().to_string())
                    .as_ref(),
                "user id",
            )?),
            genesis_hash: present(settings.genesis_hash.as_ref(), "genesis hash")?,
        };
        let url = |text: &str, key: &str| {
            Url::parse(text).map_err(|e| {
                let shown = crate::http::redact_url(text);
                format!("pooltool.{key} {}: {e}", describe::excerpt(&shown, 80))
            })
        };
        Ok(Context {
            http: wire::client(),
            headers,
            identity,
            tip_url: url(&settings.tip_url, "tip_url")?,
            slots_url: url(&settings.slots_url, "slots_url")?,
            mode: settings.slots_verification,
            gpg: settings.gpg.clone().unwrap_or_else(|| PathBuf::from("gpg")),
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

/// The tip block's header from the node, when it can be had (a debug line says why not).
async fn tip_header(context: &Context, rest: &Url, hash: &str) -> Option<wire::TipHeader> {
    let fetch = context.headers.header_bytes(rest, hash, HEADER_PREFIX_LEN);
    let fetched = tokio::time::timeout(context.timeout, fetch)
        .await
        .unwrap_or(Err(ProbeError::Timeout(context.timeout)));
    match fetched {
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
    }
}

/// One `sharemytip` report: the header from the node when it can be had, then the GET.
async fn send_tip(
    context: &Context,
    rest: &Url,
    height: u64,
    hash: String,
    version: String,
) -> Result<(), ReportError> {
    let header = tip_header(context, rest, &hash).await;
    let report = TipReport {
        height,
        hash,
        version,
        header,
    };
    let url = tip_request_url(&context.tip_url, &context.identity, &report);
    let request = context.http.get(url).header("Accept", "application/json");
    wire::exchange(request, context.timeout).await
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
    wire::exchange(request, context.timeout).await?;
    Ok(assigned)
}

#[cfg(test)]
mod tests;
