//! When to send, pure (no I/O, no clock reads: `now` is always passed in): the tip report's rule
//! (`TipTracker`: on a height change, backing off while reports fail), the slot schedule's
//! (`SlotsTracker`: once per epoch inside its window, `slots_window`), and the attempt bookkeeping
//! they and the reference tracker share (`Attempts`).

use std::time::{Duration, SystemTime};

use crate::backoff::ExponentialBackoff;
use crate::slots::SlotClock;

/// The ceiling of the tip report back-off (unless `tip_interval` itself is longer).
pub const MAX_TIP_BACKOFF: Duration = Duration::from_secs(10 * 60);

/// How long the slot window stays open after `send_slots_after`.
pub const SLOTS_WINDOW: Duration = Duration::from_secs(60);

/// The least time between two `sendlogs` attempts within a window.
pub const SLOTS_RETRY: Duration = Duration::from_secs(10);

/// The attempts of one kind of request: when the last one started, and how many failed in a row
/// since the last success. Pure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    last: Option<SystemTime>,
    consecutive_failures: u32,
}

impl Attempts {
    /// Notes an attempt started at `now`.
    pub fn started(&mut self, now: SystemTime) {
        self.last = Some(now);
    }

    /// Records the outcome of the last attempt: a success clears the failures, a failure counts.
    pub fn ended(&mut self, ok: bool) {
        self.consecutive_failures = if ok {
            0
        } else {
            self.consecutive_failures.saturating_add(1)
        };
    }

    /// Whether at least `wait` has passed at `now` since the last attempt: true when none was
    /// made, and when the clock stepped back (how long it has been is unknown).
    pub fn waited(&self, now: SystemTime, wait: Duration) -> bool {
        self.last.is_none_or(|attempt| {
            now.duration_since(attempt)
                .map_or(true, |elapsed| elapsed >= wait)
        })
    }

    /// When the last attempt started.
    pub fn last(&self) -> Option<SystemTime> {
        self.last
    }

    /// Failed attempts since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
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
    /// `None` for a zero interval (the configuration refuses it): no wait at all.
    backoff: Option<ExponentialBackoff>,
    attempts: Attempts,
    last_sent: Option<TipSent>,
}

impl TipTracker {
    /// A tracker that has never reported.
    pub fn new(interval: Duration) -> TipTracker {
        TipTracker {
            backoff: ExponentialBackoff::try_new(interval, MAX_TIP_BACKOFF.max(interval), 0.0).ok(),
            attempts: Attempts::default(),
            last_sent: None,
        }
    }

    /// The wait after the last attempt, given the failures since the last success.
    pub fn wait(&self) -> Duration {
        self.backoff.map_or(Duration::ZERO, |backoff| {
            backoff.delay(self.attempts.consecutive_failures())
        })
    }

    /// Whether a report of `height` is due at `now`.
    pub fn due(&self, now: SystemTime, height: u64) -> bool {
        if self.last_sent.is_some_and(|sent| sent.height == height) {
            return false;
        }
        self.attempts.waited(now, self.wait())
    }

    /// Notes an attempt started at `now`.
    pub fn attempted(&mut self, now: SystemTime) {
        self.attempts.started(now);
    }

    /// Records the outcome of the attempt made at `at` for `height`.
    pub fn record(&mut self, at: SystemTime, height: u64, ok: bool) {
        if ok {
            self.last_sent = Some(TipSent { at, height });
        }
        self.attempts.ended(ok);
    }

    /// The last successful report.
    pub fn last_sent(&self) -> Option<TipSent> {
        self.last_sent
    }

    /// Failed attempts since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.attempts.consecutive_failures()
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
    attempts: Attempts,
}

impl SlotsTracker {
    /// A tracker that has sent nothing; windows open `after` the epoch start.
    pub fn new(after: Duration) -> SlotsTracker {
        SlotsTracker {
            after,
            sent_epoch: None,
            missed_epoch: None,
            attempts: Attempts::default(),
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
        if self.attempts.waited(now, SLOTS_RETRY) {
            SlotsDecision::Send(epoch)
        } else {
            SlotsDecision::Idle
        }
    }

    /// Notes an attempt started at `now`.
    pub fn attempted(&mut self, now: SystemTime) {
        self.attempts.started(now);
    }

    /// Notes that `epoch`'s miss was reported.
    pub fn missed(&mut self, epoch: u64) {
        self.missed_epoch = Some(epoch);
    }

    /// Records the outcome of an attempt for `epoch`.
    pub fn record(&mut self, epoch: u64, ok: bool) {
        if ok {
            self.sent_epoch = Some(self.sent_epoch.map_or(epoch, |sent| sent.max(epoch)));
        }
        self.attempts.ended(ok);
    }

    /// The last epoch whose schedule was sent.
    pub fn sent_epoch(&self) -> Option<u64> {
        self.sent_epoch
    }

    /// Failed attempts since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.attempts.consecutive_failures()
    }
}

#[cfg(test)]
mod tests;
