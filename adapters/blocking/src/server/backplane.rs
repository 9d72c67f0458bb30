//! The blocking node's side of the backplane seam
//! ([`tether_core::backplane`]): the thread that runs the backplane's task
//! and the ends of its two channels that the task holds.
//!
//! The channels are `async_channel`'s, unbounded, which work from plain
//! threads (`try_send`, `recv_blocking`) and from the task alike: the
//! node hands requests over wherever an input is settled, and a thread of
//! its own feeds the events to the core.

use std::io;
use std::task::Context;
use std::thread;

use async_channel::{Receiver, Sender};
use futures_lite::{Stream, future};
use tether_core::{Backplane, StoreEvent, StoreRequest};

/// Starts the thread that runs `backplane`'s task for node `node` until the
/// task ends (`requests` closed and carried out), then calls `finished`.
pub(crate) fn spawn(
    backplane: Box<dyn Backplane>,
    node: &str,
    requests: Receiver<StoreRequest>,
    events: Sender<StoreEvent>,
    finished: impl FnOnce() + Send + 'static,
) -> io::Result<()> {
    let mut requests = Box::pin(requests);
    let source = move |cx: &mut Context<'_>| requests.as_mut().poll_next(cx);
    // Unbounded: the send fails only once the node stopped taking events.
    let sink = move |event| {
        let _ = events.try_send(event);
    };
    let task = backplane.run(node, Box::new(source), Box::new(sink));
    thread::Builder::new()
        .name("tether-backplane".into())
        .spawn(move || {
            future::block_on(task);
            finished();
        })?;
    Ok(())
}
