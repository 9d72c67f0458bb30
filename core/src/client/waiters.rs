//! The callers waiting for their requests' outcomes, and where each event
//! of a session goes: to the caller whose request it settles, or to the
//! application's event stream.
//!
//! Every client's `request` returns the reply instead of leaving it among
//! the events, so every client adapter keeps such a table; this is the one
//! rule they share. A request's outcome that no caller waits for (a
//! `publish` of an async client) stays an event.

use std::collections::HashMap;

use super::event::{Event, RequestError};
use crate::envelope::{RequestId, ServerMessage};

/// Callers waiting for the outcome of a request, by the request's id. `R`
/// is the adapter's way of answering one caller: a one-shot channel's
/// sender, usually.
#[derive(Debug)]
pub struct Waiters<R> {
    waiting: HashMap<RequestId, R>,
}

/// Where [`Waiters::route`] sends an event.
#[derive(Debug)]
pub enum Routed<R> {
    /// The outcome of the request `caller` waits for: answer them with it.
    Caller {
        /// The caller, no longer waiting.
        caller: R,
        /// The reply, or why there is none.
        outcome: Result<ServerMessage, RequestError>,
    },
    /// An event for the application's event stream.
    Event(Event),
}

impl<R> Default for Waiters<R> {
    fn default() -> Self {
        Waiters {
            waiting: HashMap::new(),
        }
    }
}

impl<R> Waiters<R> {
    /// Records that `caller` waits for the outcome of request `id`. Call it
    /// in the same input as the request, before draining the session: a
    /// request may settle in the drain that follows it.
    pub fn wait(&mut self, id: RequestId, caller: R) {
        self.waiting.insert(id, caller);
    }

    /// Where `event` goes: a [`Event::RequestDone`] whose request a caller
    /// waits for goes to that caller, every other event to the event
    /// stream.
    pub fn route(&mut self, event: Event) -> Routed<R> {
        match event {
            Event::RequestDone { id, result } => match self.waiting.remove(&id) {
                Some(caller) => Routed::Caller {
                    caller,
                    outcome: result,
                },
                None => Routed::Event(Event::RequestDone { id, result }),
            },
            event => Routed::Event(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(id: &RequestId, result: Result<ServerMessage, RequestError>) -> Event {
        Event::RequestDone {
            id: id.clone(),
            result,
        }
    }

    #[test]
    fn a_settled_request_goes_to_its_caller_once_and_everything_else_to_the_stream() {
        let mut waiters = Waiters::default();
        let (mine, other) = (RequestId::new("r1").unwrap(), RequestId::new("r2").unwrap());
        waiters.wait(mine.clone(), "caller of r1");
        let pong = ServerMessage::Pong {
            id: Some(mine.clone()),
        };
        match waiters.route(done(&mine, Ok(pong.clone()))) {
            Routed::Caller { caller, outcome } => {
                assert_eq!((caller, outcome), ("caller of r1", Ok(pong)));
            }
            Routed::Event(event) => panic!("expected the caller, got {event:?}"),
        }
        // Answered once: a second outcome for the id is an event.
        for event in [
            done(&mine, Err(RequestError::Timeout)),
            done(&other, Err(RequestError::Closed)),
            Event::Join {
                channel: crate::envelope::Channel::new("room").unwrap(),
                user: "ann".into(),
            },
        ] {
            assert!(
                matches!(waiters.route(event), Routed::Event(_)),
                "not a waiting caller's"
            );
        }
    }
}
