//! Figures measured during a run: reconnect rates per 100 ms window and the
//! time until every client is subscribed again, counted from a mark (the
//! instant a fault strikes).

use std::collections::BTreeMap;
use std::time::Duration;

use tether_core::Instant;

/// The width of a rate window.
pub const WINDOW: Duration = Duration::from_millis(100);

/// Counters kept while a run goes on.
#[derive(Debug)]
pub struct Stats {
    mark: Instant,
    dials: BTreeMap<u128, u64>,
    connects: BTreeMap<u128, u64>,
    /// Per client, its first `subscribed` after the mark.
    resubscribed: Vec<Option<Instant>>,
    /// Publications delivered to applications, over all clients.
    pub delivered: u64,
}

/// What a run measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Dials in the busiest 100 ms window after the mark.
    pub peak_dials: u64,
    /// `auth_ack`s in the busiest 100 ms window after the mark.
    pub peak_connects: u64,
    /// From the mark until the last client's first `subscribed` after it;
    /// `None` if some client never got one.
    pub all_resubscribed: Option<Duration>,
    /// Publications delivered to applications, over all clients.
    pub delivered: u64,
}

impl Stats {
    /// Counters for `clients` clients, measuring from `mark`.
    pub fn new(clients: usize, mark: Instant) -> Self {
        Stats {
            mark,
            dials: BTreeMap::new(),
            connects: BTreeMap::new(),
            resubscribed: vec![None; clients],
            delivered: 0,
        }
    }

    /// A client dialed at `at`.
    pub fn dialed(&mut self, at: Instant) {
        if let Some(window) = self.window(at) {
            *self.dials.entry(window).or_default() += 1;
        }
    }

    /// A client got its `auth_ack` at `at`.
    pub fn connected(&mut self, at: Instant) {
        if let Some(window) = self.window(at) {
            *self.connects.entry(window).or_default() += 1;
        }
    }

    /// A client got a `subscribed` at `at`.
    pub fn subscribed(&mut self, at: Instant, client: usize) {
        if at >= self.mark && self.resubscribed[client].is_none() {
            self.resubscribed[client] = Some(at);
        }
    }

    /// The figures so far.
    pub fn figures(&self) -> Figures {
        let last = self
            .resubscribed
            .iter()
            .try_fold(self.mark, |latest, at| at.map(|at| latest.max(at)));
        Figures {
            peak_dials: self.dials.values().copied().max().unwrap_or(0),
            peak_connects: self.connects.values().copied().max().unwrap_or(0),
            all_resubscribed: last.map(|at| at - self.mark),
            delivered: self.delivered,
        }
    }

    fn window(&self, at: Instant) -> Option<u128> {
        (at >= self.mark).then(|| (at - self.mark).as_nanos() / WINDOW.as_nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_are_per_window_after_the_mark() {
        let mark = Instant::from_millis(1_000);
        let mut stats = Stats::new(2, mark);
        stats.dialed(Instant::from_millis(500));
        stats.dialed(Instant::from_millis(500));
        stats.dialed(Instant::from_millis(1_050));
        stats.dialed(Instant::from_millis(1_150));
        stats.dialed(Instant::from_millis(1_199));
        stats.connected(Instant::from_millis(1_200));
        stats.subscribed(Instant::from_millis(900), 0);
        stats.subscribed(Instant::from_millis(1_300), 0);
        assert_eq!(stats.figures().all_resubscribed, None);
        stats.subscribed(Instant::from_millis(1_700), 1);
        stats.subscribed(Instant::from_millis(1_900), 1);
        let figures = stats.figures();
        assert_eq!(figures.peak_dials, 2);
        assert_eq!(figures.peak_connects, 1);
        assert_eq!(figures.all_resubscribed, Some(Duration::from_millis(700)));
    }
}
