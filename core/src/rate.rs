//! Per-connection rate limit: a token bucket in virtual time.
//!
//! The bucket holds up to `burst` tokens and refills at `rate` tokens per
//! second; every message takes one. Tokens are counted in billionths so that
//! refilling is exact integer arithmetic: the same inputs always give the
//! same verdicts, to the nanosecond.

use crate::time::Instant;

const SCALE: u128 = 1_000_000_000;

/// A token bucket admitting `rate` messages per second with bursts of `burst`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens currently available, in billionths of a token.
    tokens: u128,
    /// When `tokens` was last brought up to date.
    updated: Instant,
    rate: u32,
    burst: u32,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(now: Instant, rate: u32, burst: u32) -> Self {
        TokenBucket {
            tokens: u128::from(burst) * SCALE,
            updated: now,
            rate,
            burst,
        }
    }

    /// Takes one token if available; `false` means the message is over the
    /// limit and must be refused.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= SCALE {
            self.tokens -= SCALE;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, now: Instant) {
        if now <= self.updated {
            return;
        }
        let elapsed = (now - self.updated).as_nanos();
        let capacity = u128::from(self.burst) * SCALE;
        let refill = elapsed.saturating_mul(u128::from(self.rate));
        self.tokens = self.tokens.saturating_add(refill).min(capacity);
        self.updated = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn admits_exactly_the_burst_then_the_rate() {
        let t0 = Instant::from_millis(5_000);
        let mut bucket = TokenBucket::new(t0, 100, 200);
        let admitted = (0..300).filter(|_| bucket.try_take(t0)).count();
        assert_eq!(admitted, 200);
        // One token every 10 ms at 100/s: not a nanosecond before.
        let almost = t0 + Duration::from_millis(10) - Duration::from_nanos(1);
        assert!(!bucket.try_take(almost));
        assert!(bucket.try_take(t0 + Duration::from_millis(10)));
        assert!(!bucket.try_take(t0 + Duration::from_millis(10)));
        // After one second: exactly 100 more.
        let later = t0 + Duration::from_millis(1_010);
        let admitted = (0..300).filter(|_| bucket.try_take(later)).count();
        assert_eq!(admitted, 100);
    }

    #[test]
    fn refill_never_exceeds_the_burst() {
        let mut bucket = TokenBucket::new(Instant::ZERO, 100, 5);
        let much_later = Instant::from_millis(3_600_000);
        let admitted = (0..50).filter(|_| bucket.try_take(much_later)).count();
        assert_eq!(admitted, 5);
    }

    proptest! {
        /// Over any window, admitted <= burst + rate * window.
        #[test]
        fn admitted_never_exceeds_burst_plus_rate(
            rate in 1u32..1_000,
            burst in 1u32..500,
            steps in proptest::collection::vec(0u64..50_000_000, 1..400),
        ) {
            let mut bucket = TokenBucket::new(Instant::ZERO, rate, burst);
            let mut now = Instant::ZERO;
            let mut admitted = 0u128;
            for step in steps {
                now += Duration::from_nanos(step);
                if bucket.try_take(now) {
                    admitted += 1;
                }
                let bound = u128::from(burst)
                    + now.since_origin().as_nanos() * u128::from(rate) / SCALE;
                prop_assert!(admitted <= bound, "admitted {} > bound {}", admitted, bound);
            }
        }
    }
}
