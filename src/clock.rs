//! Wall-clock time behind a trait, so that the shell can be tested with a fake clock and the policy
//! never reads a clock at all (it gets `now` as an argument).

use std::time::SystemTime;

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

/// Seconds and nanoseconds since the Unix epoch as a `SystemTime`, with checked arithmetic
/// (`None` when out of range).
pub fn from_unix(secs: i64, nanos: u32) -> Option<SystemTime> {
    let whole = if secs >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs.unsigned_abs()))?
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(std::time::Duration::from_secs(secs.unsigned_abs()))?
    };
    // chrono reports a leap second as nanoseconds >= 10^9; `Duration` carries them over.
    whole.checked_add(std::time::Duration::from_nanos(u64::from(nanos)))
}
