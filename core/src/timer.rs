//! A table of named deadlines: the one place a machine keeps its timers.
//!
//! Each machine names its timers with a small enum and keeps one
//! [`TimerTable`] of them. The machine's `poll_timeout` is the table's
//! [`TimerTable::next`]; on `handle_timeout(now)` it asks the table which
//! timers are [`TimerTable::expired`] and handles each once. A timer that is
//! not due yet never fires, so an early or repeated timeout input does
//! nothing.

use crate::time::Instant;

/// A timer name usable as a key of a [`TimerTable`].
pub trait TimerKey: Copy + Eq + 'static {
    /// Every key, in the order expired timers are reported.
    const ALL: &'static [Self];

    /// The key's index into [`Self::ALL`].
    fn index(self) -> usize;
}

/// Deadlines for each of a machine's timers; `N` is the number of keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerTable<K, const N: usize> {
    deadlines: [Option<Instant>; N],
    keys: std::marker::PhantomData<K>,
}

impl<K: TimerKey, const N: usize> Default for TimerTable<K, N> {
    fn default() -> Self {
        TimerTable {
            deadlines: [None; N],
            keys: std::marker::PhantomData,
        }
    }
}

impl<K: TimerKey, const N: usize> TimerTable<K, N> {
    /// Arms `key` to fire at `at`, replacing any earlier setting.
    pub fn set(&mut self, key: K, at: Instant) {
        self.deadlines[key.index()] = Some(at);
    }

    /// Disarms `key`.
    pub fn stop(&mut self, key: K) {
        self.deadlines[key.index()] = None;
    }

    /// Disarms every timer.
    pub fn stop_all(&mut self) {
        self.deadlines = [None; N];
    }

    /// When `key` fires, if armed.
    pub fn deadline(&self, key: K) -> Option<Instant> {
        self.deadlines[key.index()]
    }

    /// Whether `key` is armed.
    pub fn is_armed(&self, key: K) -> bool {
        self.deadline(key).is_some()
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Disarms and returns the first timer (in [`TimerKey::ALL`] order) that
    /// is due at `now`, with the deadline it was set for (so periodic timers
    /// re-arm from their schedule, not from a late `now`); call until it
    /// returns `None`.
    pub fn expired(&mut self, now: Instant) -> Option<(K, Instant)> {
        K::ALL.iter().copied().find_map(|key| {
            let slot = &mut self.deadlines[key.index()];
            let at = slot.filter(|at| *at <= now)?;
            *slot = None;
            Some((key, at))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Key {
        A,
        B,
    }

    impl TimerKey for Key {
        const ALL: &'static [Self] = &[Key::A, Key::B];
        fn index(self) -> usize {
            self as usize
        }
    }

    #[test]
    fn fires_each_due_timer_once_and_never_early() {
        let mut table = TimerTable::<Key, 2>::default();
        table.set(Key::B, Instant::from_millis(100));
        table.set(Key::A, Instant::from_millis(200));
        assert_eq!(table.next(), Some(Instant::from_millis(100)));
        assert_eq!(table.expired(Instant::from_millis(99)), None);
        assert_eq!(
            table.expired(Instant::from_millis(150)),
            Some((Key::B, Instant::from_millis(100)))
        );
        assert_eq!(table.expired(Instant::from_millis(150)), None);
        assert_eq!(table.next(), Some(Instant::from_millis(200)));
        table.stop(Key::A);
        assert_eq!(table.next(), None);
        assert_eq!(table.expired(Instant::from_millis(1_000)), None);
    }
}
