//! Time, the one module that reads the wall clock: the `Clock` trait (the shell asks it; the
//! policy never reads a clock and gets `now` as an argument), the system clock, a clock that
//! follows tokio's (paused) time for shell tests, and the RFC 3339 renderings every message, file
//! and wire format uses. Monotonic timing uses `tokio::time::Instant` (clippy bans `std::time::Instant` and
//! `SystemTime::now` everywhere else).

use std::time::{Duration, SystemTime};

/// A source of wall-clock time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one place that reads the wall clock.
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Wall-clock time that advances with tokio's clock: `base` at the moment it was made, plus the
/// tokio time elapsed since. Under `#[tokio::test(start_paused = true)]` it moves only when tokio's
/// time does (`tokio::time::advance`, or auto-advance while every task sleeps), so a test of the
/// shell controls both clocks at once.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    base: SystemTime,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `base` now.
    pub fn starting_at(base: SystemTime) -> TokioClock {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.base + self.start.elapsed()
    }
}

/// Seconds and nanoseconds since the Unix epoch as a `SystemTime`, with checked arithmetic
/// (`None` when out of range).
pub fn from_unix(secs: i64, nanos: u32) -> Option<SystemTime> {
    let whole = if secs >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))?
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))?
    };
    // chrono reports a leap second as nanoseconds >= 10^9; `Duration` carries them over.
    whole.checked_add(Duration::from_nanos(u64::from(nanos)))
}

/// `time + duration`, or the latest time this platform can hold when that would overflow: for
/// deadlines computed from configured durations, which must never panic.
pub fn saturating_add(time: SystemTime, duration: Duration) -> SystemTime {
    time.checked_add(duration).unwrap_or_else(|| {
        // i64 seconds, halved, is far beyond any real deadline and representable everywhere.
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX >> 2)
    })
}

/// RFC 3339 UTC with whole seconds (`2026-11-22T01:39:07Z`): status, logs, messages.
pub fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// RFC 3339 UTC with milliseconds (`2026-11-22T01:39:07.974Z`): the restart log and its API.
pub fn rfc3339_millis(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// RFC 3339 UTC with a numeric `+00:00` offset and the fraction only when it is not zero
/// (`2020-05-08T23:18:35+00:00`), as Jormungandr writes the times of `/leaders/logs`: the slot
/// lists committed to PoolTool, which mirror those entries.
pub fn rfc3339_numeric_offset(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renderings() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_052_347_974);
        assert_eq!(rfc3339(t), "2026-11-19T01:39:07Z");
        assert_eq!(rfc3339_millis(t), "2026-11-19T01:39:07.974Z");
        assert_eq!(rfc3339_numeric_offset(t), "2026-11-19T01:39:07.974+00:00");
        let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_052_347);
        assert_eq!(rfc3339_numeric_offset(whole), "2026-11-19T01:39:07+00:00");
        assert_eq!(
            from_unix(-1, 0),
            SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(1))
        );
        assert_eq!(from_unix(i64::MAX, 1_999_999_999), None);
        assert_eq!(
            saturating_add(t, Duration::from_secs(1)),
            t + Duration::from_secs(1)
        );
        assert!(saturating_add(t, Duration::MAX) > t + Duration::from_secs(1 << 40));
    }

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_paused_time() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let clock = TokioClock::starting_at(base);
        assert_eq!(clock.now(), base);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(clock.now(), base + Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(clock.now(), base + Duration::from_secs(65));
    }
}
