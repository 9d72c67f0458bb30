//! Exponential backoff with jitter, for anything that retries a connection.
//!
//! PROTOCOL.md section 10 fixes the client's reconnect schedule: before retry
//! number `n` (counted from 0 since the last success) wait
//! `min(base * 2^n, cap) + jitter`, with `jitter` uniform in `[0, jitter_max)`.
//! The exponential part keeps a fleet of clients from hammering a server that
//! is down; the jitter spreads the fleet out so that a restarted server is not
//! hit by every client in the same millisecond.
//!
//! [`Backoff`] is the policy alone: pure arithmetic plus a random draw from a
//! generator the caller passes in. [`RetrySchedule`] adds the state most users
//! want: the attempt counter, an owned seeded generator, and the optional limit
//! on attempts. Neither reads a clock or the OS: the same seed gives the same
//! schedule, so retry loops can be tested in virtual time.

use std::time::Duration;

/// The shape of a retry schedule: base, cap, jitter and an optional limit.
///
/// `Default` gives the protocol's client defaults: 1 s base, 30 s cap, up to
/// 1 s of jitter, no limit on attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry, before jitter.
    pub base: Duration,
    /// Largest delay before jitter, however many retries failed.
    pub cap: Duration,
    /// Exclusive upper bound of the uniform random delay added to each wait.
    pub jitter: Duration,
    /// How many retries in a row may be made before giving up; `None` retries
    /// for ever.
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            jitter: Duration::from_secs(1),
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// The deterministic part of the wait before retry `attempt` (from 0):
    /// `min(base * 2^attempt, cap)`.
    ///
    /// Exact for every `attempt`, including ones where `2^attempt` overflows
    /// any integer type: those are simply `cap`.
    pub fn floor(&self, attempt: u32) -> Duration {
        let base = self.base.as_nanos();
        let cap = self.cap.as_nanos();
        // `checked_shl` refuses shifts of 128 bits or more; any such factor
        // exceeds every possible cap anyway, unless the base is zero.
        let scaled = match 1u128.checked_shl(attempt) {
            Some(factor) => base.saturating_mul(factor),
            None if base == 0 => 0,
            None => u128::MAX,
        };
        duration_from_nanos(scaled.min(cap))
    }

    /// The full wait before retry `attempt` (from 0): [`Backoff::floor`] plus
    /// a jitter drawn uniformly from `[0, jitter)` with `rng`.
    ///
    /// Always within `[floor, floor + jitter)` (or exactly `floor` when
    /// `jitter` is zero); saturates at `Duration::MAX` instead of overflowing.
    pub fn delay(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        self.floor(attempt).saturating_add(self.draw_jitter(rng))
    }

    /// Whether retry `attempt` (from 0) is still allowed by `max_attempts`.
    pub fn allows(&self, attempt: u32) -> bool {
        self.max_attempts.is_none_or(|max| attempt < max)
    }

    /// A uniform draw from `[0, jitter)`, in whole nanoseconds.
    fn draw_jitter(&self, rng: &mut fastrand::Rng) -> Duration {
        let bound = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        if bound == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.u64(0..bound))
    }
}

/// A [`Backoff`] policy with its attempt counter and its own seeded generator.
///
/// Call [`RetrySchedule::next_delay`] after each failure and
/// [`RetrySchedule::reset`] after each success. The counter only moves through
/// those two calls, so the caller decides what "success" means (for the
/// client, an `auth_ack`, not merely an open socket).
#[derive(Clone, Debug)]
pub struct RetrySchedule {
    backoff: Backoff,
    attempt: u32,
    rng: fastrand::Rng,
}

impl RetrySchedule {
    /// A schedule at attempt 0 whose jitter comes from a generator seeded with
    /// `seed`.
    pub fn new(backoff: Backoff, seed: u64) -> Self {
        RetrySchedule {
            backoff,
            attempt: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The wait before the next retry, and counts that retry; `None` once
    /// `max_attempts` retries in a row have been handed out (the counter then
    /// stays where it is).
    pub fn next_delay(&mut self) -> Option<Duration> {
        if !self.backoff.allows(self.attempt) {
            return None;
        }
        let delay = self.backoff.delay(self.attempt, &mut self.rng);
        self.attempt = self.attempt.saturating_add(1);
        Some(delay)
    }

    /// Retries handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Forgets past failures: the next delay is computed for attempt 0 again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The policy this schedule follows.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

/// A duration from nanoseconds, saturating at `Duration::MAX`.
fn duration_from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below one billion, so it fits a u32.
    let subsec = (nanos % NANOS_PER_SEC) as u32;
    Duration::new(secs, subsec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn floor_doubles_from_base_up_to_cap() {
        let backoff = Backoff::default();
        let floors: Vec<u64> = (0..7).map(|n| backoff.floor(n).as_secs()).collect();
        assert_eq!(floors, [1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn floor_is_cap_for_huge_attempts() {
        let backoff = Backoff {
            base: Duration::MAX,
            cap: Duration::MAX,
            ..Backoff::default()
        };
        assert_eq!(backoff.floor(u32::MAX), Duration::MAX);
        assert_eq!(backoff.floor(1), Duration::MAX);
        assert_eq!(Backoff::default().floor(127), Duration::from_secs(30));
        assert_eq!(Backoff::default().floor(128), Duration::from_secs(30));
        assert_eq!(Backoff::default().floor(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn tiny_base_is_exact_past_thirty_two_doublings() {
        let backoff = Backoff {
            base: Duration::from_nanos(1),
            cap: Duration::MAX,
            ..Backoff::default()
        };
        assert_eq!(backoff.floor(40), Duration::from_nanos(1 << 40));
    }

    #[test]
    fn delay_saturates_instead_of_overflowing() {
        let backoff = Backoff {
            base: Duration::MAX,
            cap: Duration::MAX,
            jitter: Duration::MAX,
            max_attempts: None,
        };
        let mut rng = fastrand::Rng::with_seed(3);
        assert_eq!(backoff.delay(u32::MAX, &mut rng), Duration::MAX);
    }

    #[test]
    fn zero_jitter_gives_exactly_the_floor() {
        let backoff = Backoff {
            jitter: Duration::ZERO,
            ..Backoff::default()
        };
        let mut rng = fastrand::Rng::with_seed(9);
        assert_eq!(backoff.delay(2, &mut rng), Duration::from_secs(4));
    }

    #[test]
    fn golden_schedule_for_seed_42() {
        let mut schedule = RetrySchedule::new(Backoff::default(), 42);
        let delays: Vec<u128> = (0..8)
            .map(|_| schedule.next_delay().unwrap().as_millis())
            .collect();
        assert_eq!(delays, GOLDEN_SEED_42_MILLIS);
    }

    /// The first eight delays, in milliseconds, of the default policy with
    /// seed 42. A change here changes every seeded reconnect trace.
    const GOLDEN_SEED_42_MILLIS: [u128; 8] = [1790, 2493, 4804, 8039, 16542, 30455, 30895, 30388];

    #[test]
    fn max_attempts_stops_the_schedule_and_reset_restarts_it() {
        let backoff = Backoff {
            max_attempts: Some(2),
            jitter: Duration::ZERO,
            ..Backoff::default()
        };
        let mut schedule = RetrySchedule::new(backoff, 1);
        assert_eq!(schedule.next_delay(), Some(Duration::from_secs(1)));
        assert_eq!(schedule.next_delay(), Some(Duration::from_secs(2)));
        assert_eq!(schedule.next_delay(), None);
        assert_eq!(schedule.attempts(), 2);
        schedule.reset();
        assert_eq!(schedule.next_delay(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn zero_max_attempts_never_retries() {
        let backoff = Backoff {
            max_attempts: Some(0),
            ..Backoff::default()
        };
        assert_eq!(RetrySchedule::new(backoff, 1).next_delay(), None);
    }

    proptest! {
        #[test]
        fn every_delay_lies_within_its_bounds(
            base_ms in 0u64..10_000,
            cap_ms in 0u64..120_000,
            jitter_ms in 0u64..5_000,
            attempt in any::<u32>(),
            seed in any::<u64>(),
        ) {
            let backoff = Backoff {
                base: Duration::from_millis(base_ms),
                cap: Duration::from_millis(cap_ms),
                jitter: Duration::from_millis(jitter_ms),
                max_attempts: None,
            };
            // Reference model: 2^17 ms already exceeds the largest cap here.
            let floor_ms = match (base_ms, attempt) {
                (0, _) => 0,
                (_, 17..) => cap_ms,
                (base, n) => (base << n).min(cap_ms),
            };
            let floor = Duration::from_millis(floor_ms);
            let delay = backoff.delay(attempt, &mut fastrand::Rng::with_seed(seed));
            prop_assert!(delay >= floor);
            if jitter_ms == 0 {
                prop_assert_eq!(delay, floor);
            } else {
                prop_assert!(delay < floor + Duration::from_millis(jitter_ms));
            }
        }

        #[test]
        fn schedule_is_a_function_of_the_seed(seed in any::<u64>()) {
            let mut a = RetrySchedule::new(Backoff::default(), seed);
            let mut b = RetrySchedule::new(Backoff::default(), seed);
            for _ in 0..10 {
                prop_assert_eq!(a.next_delay(), b.next_delay());
            }
        }
    }
}
