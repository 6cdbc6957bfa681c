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
