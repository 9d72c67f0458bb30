//! Token expiry on the session's time line: the wall-clock anchor an
//! adapter gives with each connection, and the instant a refresh is due.
//!
//! The server says when a token expires in Unix milliseconds; the session
//! knows only its virtual [`Instant`]s. The adapter reports the wall clock
//! at the instant a socket opened ([`WallClock`]), which turns an
//! `expires_at` into an instant of the session's time line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::time::Instant;

/// A refresh is due no later than this long before the token expires.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The wall clock reading `at` in Unix milliseconds, as
/// [`ClientSession::handle_connected`](super::ClientSession::handle_connected)
/// takes it: 0 for a clock set before 1970, the largest number for one
/// beyond what milliseconds count.
pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

/// The wall clock read at one instant of the session's time line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WallClock {
    /// The instant of the reading.
    pub(crate) at: Instant,
    /// The wall clock then, in Unix milliseconds.
    pub(crate) unix_ms: u64,
}

impl WallClock {
    /// The instant at which the wall clock shows `unix_ms`; the reading's
    /// own instant for a time before it.
    pub(crate) fn instant_of(self, unix_ms: u64) -> Instant {
        self.at + Duration::from_millis(unix_ms.saturating_sub(self.unix_ms))
    }
}

/// When to refresh, seen at `now`, a token that expires at `expires`: the
/// later of the instant when four fifths of its remaining life have passed
/// and [`REFRESH_MARGIN`] before it expires. `None` once it has expired.
pub(crate) fn refresh_instant(now: Instant, expires: Instant) -> Option<Instant> {
    let remaining = expires - now;
    if remaining.is_zero() {
        return None;
    }
    let four_fifths = now + (remaining - remaining / 5);
    Some(four_fifths.max(expires - REFRESH_MARGIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_becomes_an_instant_of_the_time_line() {
        let clock = WallClock {
            at: Instant::from_millis(5_000),
            unix_ms: 1_700_000_000_000,
        };
        assert_eq!(
            clock.instant_of(1_700_000_090_000),
            Instant::from_millis(95_000)
        );
        assert_eq!(clock.instant_of(1), Instant::from_millis(5_000));
    }

    #[test]
    fn the_wall_clock_reads_in_unix_milliseconds_and_never_below_zero() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(unix_ms(at), 1_700_000_000_123);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }

    #[test]
    fn long_tokens_refresh_a_minute_early_short_ones_at_four_fifths() {
        let now = Instant::from_millis(1_000);
        let hour = now + Duration::from_secs(3_600);
        assert_eq!(refresh_instant(now, hour), Some(hour - REFRESH_MARGIN));
        let two_minutes = now + Duration::from_secs(120);
        assert_eq!(
            refresh_instant(now, two_minutes),
            Some(now + Duration::from_secs(96))
        );
        let five_minutes = now + Duration::from_secs(300);
        assert_eq!(
            refresh_instant(now, five_minutes),
            Some(now + Duration::from_secs(240))
        );
        let nanosecond = now + Duration::from_nanos(1);
        assert_eq!(refresh_instant(now, nanosecond), Some(nanosecond));
        assert_eq!(refresh_instant(now, now), None);
        assert_eq!(refresh_instant(hour, now), None);
    }
}
