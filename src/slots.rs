//! Chain time: epochs and slots computed from a node's `/api/v0/settings` (block0 time, slot
//! duration, slots per epoch), never from a configured wall-clock time, and the typed entries of
//! `/api/v0/leaders/logs`. Pure: every function takes the instant it is about.

use std::fmt;
use std::time::{Duration, SystemTime};

/// An epoch/slot date, `"E.S"` on the wire.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct SlotDate {
    /// The epoch.
    pub epoch: u64,
    /// The slot within the epoch.
    pub slot: u64,
}

impl SlotDate {
    /// Parses `"E.S"`.
    pub fn parse(text: &str) -> Option<SlotDate> {
        let (epoch, slot) = text.split_once('.')?;
        Some(SlotDate {
            epoch: epoch.parse().ok()?,
            slot: slot.parse().ok()?,
        })
    }
}

impl fmt::Display for SlotDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.epoch, self.slot)
    }
}

/// The chain's time parameters (`/api/v0/settings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlotClock {
    /// Genesis time (`block0Time`).
    pub block0: SystemTime,
    /// `slotDuration` (whole seconds on Jormungandr, at least 1).
    pub slot_duration: Duration,
    /// `slotsPerEpoch` (at least 1).
    pub slots_per_epoch: u64,
}

impl SlotClock {
    /// Builds a clock; `None` when a parameter is zero (nonsense settings are not used).
    pub fn new(block0: SystemTime, slot_duration: Duration, slots_per_epoch: u64) -> Option<Self> {
        (!slot_duration.is_zero() && slots_per_epoch > 0).then_some(SlotClock {
            block0,
            slot_duration,
            slots_per_epoch,
        })
    }

    /// The epoch's length.
    pub fn epoch_duration(&self) -> Duration {
        self.slot_duration
            .saturating_mul(u32::try_from(self.slots_per_epoch).unwrap_or(u32::MAX))
    }

    /// The absolute slot in progress at `t` (0 before genesis).
    pub fn abs_slot_at(&self, t: SystemTime) -> u64 {
        let elapsed = t.duration_since(self.block0).unwrap_or_default();
        u64::try_from(elapsed.as_nanos() / self.slot_duration.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    /// The date in progress at `t`.
    pub fn date_at(&self, t: SystemTime) -> SlotDate {
        self.date_of(self.abs_slot_at(t))
    }

    /// The epoch in progress at `t`.
    pub fn epoch_at(&self, t: SystemTime) -> u64 {
        self.date_at(t).epoch
    }

    /// The date of an absolute slot.
    pub fn date_of(&self, abs_slot: u64) -> SlotDate {
        SlotDate {
            epoch: abs_slot / self.slots_per_epoch,
            slot: abs_slot % self.slots_per_epoch,
        }
    }

    /// The absolute slot of a date.
    pub fn abs_slot_of(&self, date: SlotDate) -> u64 {
        date.epoch
            .saturating_mul(self.slots_per_epoch)
            .saturating_add(date.slot)
    }

    /// The start time of an absolute slot.
    pub fn slot_time(&self, abs_slot: u64) -> SystemTime {
        let secs = self.slot_duration.as_secs_f64() * abs_slot as f64;
        self.block0 + Duration::from_secs_f64(secs.min(1e12))
    }

    /// The start time of a date.
    pub fn date_time(&self, date: SlotDate) -> SystemTime {
        self.slot_time(self.abs_slot_of(date))
    }

    /// The start of `epoch` (its rollover from the previous one).
    pub fn epoch_start(&self, epoch: u64) -> SystemTime {
        self.slot_time(epoch.saturating_mul(self.slots_per_epoch))
    }

    /// The next epoch rollover strictly after `t`.
    pub fn next_rollover(&self, t: SystemTime) -> SystemTime {
        self.epoch_start(self.epoch_at(t).saturating_add(1))
    }
}

/// How a leadership log entry ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStatus {
    /// Not yet due.
    Pending,
    /// A block was produced.
    Block,
    /// Rejected, with Jormungandr's reason.
    Rejected(String),
}

/// One entry of `GET /api/v0/leaders/logs`, typed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LeaderLog {
    /// The slot's date.
    pub date: SlotDate,
    /// The slot's start time (`scheduled_at_time`).
    pub scheduled_at: SystemTime,
    /// `finished_at_time` is set.
    pub finished: bool,
    /// The outcome.
    pub status: LogStatus,
    /// The enclave leader id the entry belongs to.
    pub enclave_leader_id: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> SlotClock {
        SlotClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
            Duration::from_secs(2),
            10,
        )
        .unwrap()
    }

    #[test]
    fn epochs_and_slots_follow_the_settings() {
        let c = clock();
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(c.date_at(at(1_000)), SlotDate { epoch: 0, slot: 0 });
        assert_eq!(c.date_at(at(1_019)), SlotDate { epoch: 0, slot: 9 });
        assert_eq!(c.date_at(at(1_020)), SlotDate { epoch: 1, slot: 0 });
        assert_eq!(c.date_at(at(1_045)), SlotDate { epoch: 2, slot: 2 });
        assert_eq!(c.epoch_start(3), at(1_060));
        assert_eq!(c.next_rollover(at(1_045)), at(1_060));
        assert_eq!(c.next_rollover(at(1_040)), at(1_060));
        assert_eq!(c.date_time(SlotDate { epoch: 2, slot: 3 }), at(1_046));
        assert_eq!(c.date_at(at(10)), SlotDate { epoch: 0, slot: 0 });
        assert_eq!(c.epoch_duration(), Duration::from_secs(20));
    }

    #[test]
    fn dates_parse_and_print() {
        assert_eq!(
            SlotDate::parse("147.7349"),
            Some(SlotDate {
                epoch: 147,
                slot: 7349
            })
        );
        assert_eq!(SlotDate::parse("147"), None);
        assert_eq!(SlotDate::parse("a.1"), None);
        assert_eq!(SlotDate { epoch: 3, slot: 4 }.to_string(), "3.4");
        assert!(SlotClock::new(SystemTime::UNIX_EPOCH, Duration::ZERO, 1).is_none());
        assert!(SlotClock::new(SystemTime::UNIX_EPOCH, Duration::from_secs(1), 0).is_none());
    }
}
