//! The event queue that drives a simulation: events ordered by virtual
//! instant, ties broken by the order they were scheduled in.
//!
//! The sequence number makes the order total, so two runs that schedule the
//! same events in the same order pop them in the same order: no tie is ever
//! left to the heap's internals.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use tether_core::Instant;

/// Events waiting for their instant.
#[derive(Debug)]
pub struct Schedule<E> {
    heap: BinaryHeap<Entry<E>>,
    scheduled: u64,
}

#[derive(Debug)]
struct Entry<E> {
    at: Instant,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed, so that the max-heap pops the earliest entry first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl<E> Default for Schedule<E> {
    fn default() -> Self {
        Schedule {
            heap: BinaryHeap::new(),
            scheduled: 0,
        }
    }
}

impl<E> Schedule<E> {
    /// Schedules `event` at `at`, after every event already scheduled at the
    /// same instant.
    pub fn push(&mut self, at: Instant, event: E) {
        self.scheduled += 1;
        self.heap.push(Entry {
            at,
            seq: self.scheduled,
            event,
        });
    }

    /// The earliest event, if it is due at or before `until`.
    pub fn pop_until(&mut self, until: Instant) -> Option<(Instant, E)> {
        if self.heap.peek()?.at > until {
            return None;
        }
        self.heap.pop().map(|entry| (entry.at, entry.event))
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_instant_then_by_scheduling_order() {
        let mut schedule = Schedule::default();
        schedule.push(Instant::from_millis(20), "late");
        schedule.push(Instant::from_millis(10), "first");
        schedule.push(Instant::from_millis(10), "second");
        assert_eq!(schedule.len(), 3);
        assert_eq!(schedule.pop_until(Instant::from_millis(5)), None);
        let until = Instant::from_millis(20);
        assert_eq!(
            schedule.pop_until(until),
            Some((Instant::from_millis(10), "first"))
        );
        assert_eq!(
            schedule.pop_until(until),
            Some((Instant::from_millis(10), "second"))
        );
        assert_eq!(
            schedule.pop_until(until),
            Some((Instant::from_millis(20), "late"))
        );
        assert!(schedule.is_empty());
    }
}
