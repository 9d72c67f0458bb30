//! Virtual time: the only notion of "now" the core knows.
//!
//! The core never reads a clock. Adapters translate their monotonic clock into
//! an [`Instant`] (time elapsed since an origin they choose, usually their own
//! start) and pass it with every input. Tests and the simulator construct
//! instants directly, so every deadline can be asserted exactly.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point in time, measured from an origin chosen by whoever drives the core.
///
/// Comparable, hashable and printable, so traces built from it are
/// deterministic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    /// The origin of the driver's time line.
    pub const ZERO: Instant = Instant(Duration::ZERO);

    /// The instant `elapsed` after the origin.
    pub const fn from_origin(elapsed: Duration) -> Self {
        Instant(elapsed)
    }

    /// The instant `millis` milliseconds after the origin (handy in tests).
    pub const fn from_millis(millis: u64) -> Self {
        Instant(Duration::from_millis(millis))
    }

    /// Time elapsed since the origin.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;

    fn sub(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_sub(rhs))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let t = Instant::from_millis(1_500);
        assert_eq!(t + Duration::from_millis(500), Instant::from_millis(2_000));
        assert_eq!(t - Instant::from_millis(2_000), Duration::ZERO);
        assert_eq!(Instant::from_millis(2_000) - t, Duration::from_millis(500));
        assert_eq!(
            Instant::from_origin(Duration::MAX) + Duration::from_secs(1),
            Instant::from_origin(Duration::MAX)
        );
    }

    #[test]
    fn displays_offset_from_origin() {
        assert_eq!(Instant::from_millis(250).to_string(), "t+250ms");
    }
}
