//! The one exponential backoff: a validated value (`ExponentialBackoff::try_new`, after
//! linkerd2-proxy's `exp-backoff`) that says how long to wait before attempt `n + 1` after `n`
//! consecutive failures. Pure arithmetic: no clock, no sleeping, no hidden randomness (jitter takes
//! its random sample as an argument), so the policy and the trackers may use it as plain data.

use std::time::Duration;

/// Why a backoff was refused.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum InvalidBackoff {
    /// The first delay is zero: doubling it would never wait.
    #[error("invalid backoff: the minimum delay must not be zero")]
    ZeroMin,
    /// The first delay is longer than the ceiling.
    #[error("invalid backoff: the minimum {min:?} exceeds the maximum {max:?}")]
    MinAboveMax {
        /// The first delay.
        min: Duration,
        /// The ceiling.
        max: Duration,
    },
    /// The jitter ratio is not a number in `[0, 1]`.
    #[error("invalid backoff: jitter {0} is not between 0 and 1")]
    Jitter(f64),
}

/// Delays that start at `min`, double with each failure and stop growing at `max`, plus up to
/// `jitter × delay` of random spread when asked (`jittered`).
#[derive(Clone, Copy, Debug)]
pub struct ExponentialBackoff {
    min: Duration,
    max: Duration,
    jitter: f64,
}

impl ExponentialBackoff {
    /// A backoff from `min` doubling up to `max`, with `jitter` (a ratio in `[0, 1]`; 0 for
    /// none). Refuses a zero `min`, `min > max` and a jitter outside `[0, 1]` (NaN included).
    pub const fn try_new(
        min: Duration,
        max: Duration,
        jitter: f64,
    ) -> Result<ExponentialBackoff, InvalidBackoff> {
        if min.is_zero() {
            return Err(InvalidBackoff::ZeroMin);
        }
        if min.as_nanos() > max.as_nanos() {
            return Err(InvalidBackoff::MinAboveMax { min, max });
        }
        if jitter.is_nan() || jitter < 0.0 || jitter > 1.0 {
            return Err(InvalidBackoff::Jitter(jitter));
        }
        Ok(ExponentialBackoff { min, max, jitter })
    }

    /// A backoff without jitter for a `const` item: an invalid pair fails the build there (and
    /// panics if called at run time, so use `try_new` for values that come from outside).
    pub const fn constant(min: Duration, max: Duration) -> ExponentialBackoff {
        match ExponentialBackoff::try_new(min, max, 0.0) {
            Ok(backoff) => backoff,
            Err(_) => panic!("invalid constant backoff"),
        }
    }

    /// The first delay.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// The ceiling.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The delay after `attempt` doublings: `min × 2^attempt`, saturating, never above `max`
    /// (`delay(0)` is `min`). Never jittered.
    pub fn delay(&self, attempt: u32) -> Duration {
        // A Duration holds under 2^95 ns, so 2^128 × a non-zero `min` is past any ceiling.
        let Some(factor) = 1u128.checked_shl(attempt) else {
            return self.max;
        };
        let nanos = self.min.as_nanos().saturating_mul(factor);
        if nanos >= self.max.as_nanos() {
            return self.max;
        }
        // Below `max`, so it fits a Duration.
        Duration::new(
            (nanos / 1_000_000_000) as u64,
            (nanos % 1_000_000_000) as u32,
        )
    }

    /// `delay(attempt)` plus up to `jitter × delay(attempt)`, scaled by `sample` (a random number
    /// in `[0, 1]` from the caller's source; clamped), never above `max`. With a jitter of 0 it
    /// is exactly `delay(attempt)`.
    pub fn jittered(&self, attempt: u32, sample: f64) -> Duration {
        let base = self.delay(attempt);
        let sample = if sample.is_nan() {
            0.0
        } else {
            sample.clamp(0.0, 1.0)
        };
        let spread = Duration::try_from_secs_f64(base.as_secs_f64() * self.jitter * sample)
            .unwrap_or(self.max);
        base.saturating_add(spread).min(self.max)
    }
}

// Jitter is validated finite, so comparing its bits is equality.
impl PartialEq for ExponentialBackoff {
    fn eq(&self, other: &Self) -> bool {
        self.min == other.min
            && self.max == other.max
            && self.jitter.to_bits() == other.jitter.to_bits()
    }
}

impl Eq for ExponentialBackoff {}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn validation() {
        assert_eq!(
            ExponentialBackoff::try_new(Duration::ZERO, secs(1), 0.0),
            Err(InvalidBackoff::ZeroMin)
        );
        assert_eq!(
            ExponentialBackoff::try_new(secs(2), secs(1), 0.0),
            Err(InvalidBackoff::MinAboveMax {
                min: secs(2),
                max: secs(1)
            })
        );
        for jitter in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(
                    ExponentialBackoff::try_new(secs(1), secs(2), jitter),
                    Err(InvalidBackoff::Jitter(_))
                ),
                "{jitter}"
            );
        }
        for jitter in [0.0, 0.5, 1.0] {
            assert!(ExponentialBackoff::try_new(secs(1), secs(2), jitter).is_ok());
        }
        // min == max is a constant delay.
        let flat = ExponentialBackoff::try_new(secs(5), secs(5), 0.0).unwrap();
        assert_eq!((flat.delay(0), flat.delay(9)), (secs(5), secs(5)));
        let error = ExponentialBackoff::try_new(secs(2), secs(1), 0.0).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid backoff: the minimum 2s exceeds the maximum 1s"
        );
    }

    #[test]
    fn doubles_up_to_the_ceiling() {
        let backoff = ExponentialBackoff::constant(secs(10), secs(600));
        let delays: Vec<u64> = (0..9).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!((backoff.min(), backoff.max()), (secs(10), secs(600)));
        let fine = ExponentialBackoff::constant(Duration::from_nanos(3), Duration::from_millis(1));
        assert_eq!(fine.delay(2), Duration::from_nanos(12));
        assert_eq!(fine.delay(40), Duration::from_millis(1));
    }

    #[test]
    fn saturates() {
        for backoff in [
            ExponentialBackoff::constant(Duration::MAX, Duration::MAX),
            ExponentialBackoff::constant(secs(1), Duration::MAX),
            ExponentialBackoff::constant(Duration::from_nanos(1), Duration::MAX),
        ] {
            for attempt in [95, 96, 127, 128, 129, 1000, u32::MAX] {
                assert_eq!(backoff.delay(attempt), backoff.max(), "{attempt}");
            }
        }
        // Past 64 doublings the product still grows (it is computed in 128 bits).
        let one = ExponentialBackoff::constant(Duration::from_nanos(1), Duration::MAX);
        assert_eq!(one.delay(63), Duration::from_nanos(1 << 63));
        assert_eq!(
            one.delay(64),
            Duration::from_nanos(u64::MAX) + Duration::from_nanos(1)
        );
        // 2^80 ns.
        assert_eq!(
            one.delay(80),
            Duration::new(1_208_925_819_614_629, 174_706_176)
        );
        let second = ExponentialBackoff::constant(Duration::from_secs(1), Duration::MAX);
        assert_eq!(second.delay(63), Duration::from_secs(1 << 63));
        assert_eq!(second.delay(64), Duration::MAX);
    }

    /// Every delay lies in `[min, max]`, never shrinks as attempts grow, and is `min × 2^n`
    /// below the ceiling: checked over a spread of pairs (a deterministic generator).
    #[test]
    fn delays_are_bounded_and_monotonic() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let min = Duration::from_nanos(1 + next() % 100_000_000_000);
            let max = if next() % 4 == 0 {
                Duration::MAX
            } else {
                min.saturating_add(Duration::from_nanos(next() % 10_000_000_000_000))
            };
            let backoff = ExponentialBackoff::try_new(min, max, 0.0).unwrap();
            let mut last = Duration::ZERO;
            for attempt in 0..200 {
                let delay = backoff.delay(attempt);
                assert!(min <= delay && delay <= max, "{min:?} {max:?} {attempt}");
                assert!(delay >= last);
                if let Some(exact) = 2u32
                    .checked_pow(attempt)
                    .and_then(|factor| min.checked_mul(factor))
                    .filter(|exact| *exact < max)
                {
                    assert_eq!(delay, exact);
                }
                last = delay;
            }
        }
    }

    #[test]
    fn jitter_comes_from_the_sample() {
        let none = ExponentialBackoff::constant(secs(10), secs(100));
        assert_eq!(none.jittered(1, 0.9), secs(20));
        let half = ExponentialBackoff::try_new(secs(10), secs(100), 0.5).unwrap();
        assert_eq!(half.jittered(1, 0.0), secs(20));
        assert_eq!(half.jittered(1, 1.0), secs(30));
        assert_eq!(half.jittered(1, 0.5), secs(25));
        // Out-of-range samples are clamped; the ceiling holds.
        assert_eq!(half.jittered(1, 7.0), secs(30));
        assert_eq!(half.jittered(1, f64::NAN), secs(20));
        assert_eq!(half.jittered(3, 1.0), secs(100));
        let huge = ExponentialBackoff::try_new(Duration::MAX, Duration::MAX, 1.0).unwrap();
        assert_eq!(huge.jittered(0, 1.0), Duration::MAX);
    }
}
