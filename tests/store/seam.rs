//! The one interface the cases see, and how they read a store's events.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tether_core::{Instant, ServerConfig, StoreEvent, StoreRequest};

/// A store behind the seam, as one node sees it.
pub trait Store: Sized {
    /// A fresh, empty store keeping history and idempotency records as
    /// `config` says, reached by one node that is already connected.
    fn start(config: &ServerConfig) -> Self;

    /// Carries out `request` at `now`. A store on a clock of its own
    /// (Redis) ignores `now`.
    fn handle(&mut self, now: Instant, request: StoreRequest);

    /// The next event for the node; panics when none comes: at once for a
    /// store in this process, after a bounded wait for Redis.
    fn next_event(&mut self) -> StoreEvent;
}

/// A store and the events it gave that no case has taken yet: answers and
/// other events may reach a node by different paths (the seam's contract),
/// so a case takes each event it expects wherever it is in the stream.
pub struct Seam<S> {
    store: S,
    waiting: VecDeque<StoreEvent>,
}

impl<S: Store> Seam<S> {
    /// A fresh store with `config`.
    pub fn start(config: &ServerConfig) -> Seam<S> {
        Seam {
            store: S::start(config),
            waiting: VecDeque::new(),
        }
    }

    /// Sends `request` at `now`.
    pub fn ask(&mut self, now: Instant, request: StoreRequest) {
        self.store.handle(now, request);
    }

    /// The first event, given or yet to come, that `pick` maps to
    /// something; the events it passes over stay for later.
    pub fn take<T>(&mut self, mut pick: impl FnMut(&StoreEvent) -> Option<T>) -> T {
        if let Some(index) = self.waiting.iter().position(|event| pick(event).is_some()) {
            let event = self.waiting.remove(index).expect("found above");
            return pick(&event).expect("picked above");
        }
        loop {
            let event = self.store.next_event();
            if let Some(found) = pick(&event) {
                return found;
            }
            self.waiting.push_back(event);
        }
    }
}

/// The virtual instant `seconds` after the origin, for the stores that
/// take their time from the request.
pub fn at(seconds: u64) -> Instant {
    Instant::from_origin(Duration::from_secs(seconds))
}

/// The `message` a publication frame carries: an unmasked WebSocket text
/// frame, as a server sends it.
pub fn message(frame: &Bytes) -> Value {
    assert_eq!(frame[0], 0x81, "a final text frame");
    let start = match frame[1] {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    serde_json::from_slice(&frame[start..]).expect("a JSON message")
}
