//! The hub's link to a shared store: whether it carries requests, when to
//! try to open it again, and when the node's presence lease is due.
//!
//! The link starts closed with a [`StoreRequest::Connect`] out. A
//! [`StoreEvent::Down`] (the link failed, or could not be opened) waits a
//! [`RetrySchedule`] delay and asks again; [`StoreEvent::Up`] resets the
//! schedule. While up, the node renews its presence lease every quarter of
//! `presence_ttl` for half of it: a node that stops renewing is dead to the
//! others after at most half a `presence_ttl`, and the next renewal of any
//! other node, at most a quarter later, announces its users' departures, so
//! they leave within three quarters of `presence_ttl`. The remaining
//! quarter absorbs a renewal that is late by as much again.
//!
//! [`StoreRequest::Connect`]: super::StoreRequest::Connect
//! [`StoreEvent::Down`]: super::StoreEvent::Down
//! [`StoreEvent::Up`]: super::StoreEvent::Up

use std::time::Duration;

use crate::backoff::{Backoff, RetrySchedule};
use crate::config::ServerConfig;
use crate::time::Instant;

/// How the node retries opening its link to a shared store: quickly at
/// first, since most outages are a restart or a failover, and at least once
/// every five seconds after that, which costs a store nothing.
pub const BACKPLANE_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(250),
    cap: Duration::from_secs(5),
    jitter: Duration::from_millis(250),
    max_attempts: None,
};

/// The state of the link and its timers.
#[derive(Debug)]
pub(super) struct Link {
    state: State,
    schedule: RetrySchedule,
    renew_every: Duration,
    lease: Duration,
    lease_due: Option<Instant>,
    failures: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A `Connect` is out.
    Connecting,
    /// The link carries requests.
    Up,
    /// The link failed; the next `Connect` is due at this instant.
    Waiting(Instant),
}

/// What a timeout asks the hub to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Due {
    /// Try to open the link again.
    Connect,
    /// Renew the presence lease for this long.
    Lease(Duration),
}

impl Link {
    /// A closed link whose first `Connect` is out; `seed` draws the jitter.
    pub(super) fn new(config: &ServerConfig, seed: u64) -> Link {
        Link {
            state: State::Connecting,
            schedule: RetrySchedule::new(BACKPLANE_BACKOFF, seed),
            renew_every: config.presence_ttl / 4,
            lease: config.presence_ttl / 2,
            lease_due: None,
            failures: 0,
        }
    }

    /// Whether the link carries requests.
    pub(super) fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// How long a presence lease lasts.
    pub(super) fn lease(&self) -> Duration {
        self.lease
    }

    /// How often the link failed or could not be opened.
    pub(super) fn failures(&self) -> u64 {
        self.failures
    }

    /// The link opened at `now`; false when it was up already. The caller
    /// renews the lease at once; the next renewal is due a period later.
    pub(super) fn handle_up(&mut self, now: Instant) -> bool {
        if self.state == State::Up {
            return false;
        }
        self.state = State::Up;
        self.schedule.reset();
        self.lease_due = Some(now + self.renew_every);
        true
    }

    /// The link failed at `now`, or could not be opened; false when it was
    /// down already.
    pub(super) fn handle_down(&mut self, now: Instant) -> bool {
        if matches!(self.state, State::Waiting(_)) {
            return false;
        }
        let delay = self.schedule.next_delay().unwrap_or(BACKPLANE_BACKOFF.cap);
        self.state = State::Waiting(now + delay);
        self.lease_due = None;
        self.failures += 1;
        true
    }

    /// What is due at `now`. Early or repeated calls return nothing.
    pub(super) fn handle_timeout(&mut self, now: Instant) -> Option<Due> {
        match self.state {
            State::Waiting(at) if at <= now => {
                self.state = State::Connecting;
                Some(Due::Connect)
            }
            State::Up => match self.lease_due {
                Some(at) if at <= now => {
                    self.lease_due = Some(now + self.renew_every);
                    Some(Due::Lease(self.lease))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// When [`Link::handle_timeout`] has something to do.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting(at) => Some(at),
            State::Up => self.lease_due,
            State::Connecting => None,
        }
    }
}
