//! The smol node's side of the backplane seam
//! ([`tether_core::backplane`]): the ends of its two channels that the
//! backplane's task holds.
//!
//! The channels are `async_channel`'s, unbounded: the node's drain loop
//! hands requests over without waiting, and the task queues events the
//! same way. The task is one more task on the node's executor.

use std::task::Context;

use async_channel::{Receiver, Sender};
use futures_lite::Stream;
use tether_core::{EventSink, RequestSource, StoreEvent, StoreRequest};

/// The task's ends of the channels: it takes requests from `requests` and
/// queues events on `events`.
pub(crate) fn ends(
    requests: Receiver<StoreRequest>,
    events: Sender<StoreEvent>,
) -> (Box<dyn RequestSource>, Box<dyn EventSink>) {
    let mut requests = Box::pin(requests);
    let source = move |cx: &mut Context<'_>| requests.as_mut().poll_next(cx);
    // Unbounded: the send fails only once the node stopped taking events.
    let sink = move |event| {
        let _ = events.try_send(event);
    };
    (Box::new(source), Box::new(sink))
}
