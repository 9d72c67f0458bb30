//! The seam between a node and a shared store (a backplane such as Redis)
//! that lets several nodes act as one: one trait for every runtime.
//!
//! The core decides everything: when to connect and retry, which channels
//! to follow, when to renew the node's lease or catch a channel up, and in
//! which order to deliver. A [`Backplane`] only carries the core's
//! [`StoreRequest`]s to the store, in order, and brings the store's answers,
//! its publications and the news of its link back as [`StoreEvent`]s, in
//! the order it receives them. It is written once, as a future, and every
//! runtime adapter drives it: a smol node spawns it on its executor, a
//! blocking node runs it on a thread of its own.
//!
//! The seam names no runtime and no channel crate, so the core stays pure
//! and a backplane depends on the core alone: its task reaches the
//! adapter's channels through two std-only traits, [`RequestSource`] and
//! [`EventSink`], which a closure over a channel's end satisfies.
//!
//! # Who calls what, in which order
//!
//! 1. The adapter makes its core with [`crate::server::Server::with_backplane`]
//!    and two channels of its own runtime: one for requests, one for
//!    events, each unbounded.
//! 2. It calls [`Backplane::run`] once, with the core's
//!    [`node_id`](crate::server::Server::node_id) and the channels' ends
//!    behind a [`RequestSource`] and an [`EventSink`], and polls the
//!    [`BackplaneTask`] it gets until it ends.
//!    The first request is already waiting: drain the new core once
//!    before its first input (see the crate docs).
//! 3. While the node runs, the adapter hands every
//!    [`Output::Store`](crate::server::Output::Store) to the request
//!    channel in the order the core made them, and feeds every event the
//!    sink received to [`crate::server::Server::handle_store_event`], in the
//!    order received.
//! 4. When the node stops (after a graceful shutdown, the departures of its
//!    users are among the last requests) the adapter closes the request
//!    channel. The task carries out every request it still holds and then
//!    ends; the adapter waits for that, within `shutdown_timeout`. That is
//!    how a graceful shutdown lets the departures reach the store.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::hub::{StoreEvent, StoreRequest};

/// The future that carries one node's requests to a store
/// ([`Backplane::run`]). It is `Send`, so any executor or thread may poll
/// it.
pub type BackplaneTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A shared store a node can run with.
pub trait Backplane: Send {
    /// The task that carries the requests of node `node` (a name unique to
    /// this run of the node) from `requests` to the store, one after the
    /// other, and gives the store's events to `events`. It ends once
    /// `requests` is closed and every request it yielded was carried out.
    /// The call itself does no I/O and needs no runtime: the work starts at
    /// the task's first poll, so an adapter may call it as soon as it has
    /// the core's node id.
    fn run(
        self: Box<Self>,
        node: &str,
        requests: Box<dyn RequestSource>,
        events: Box<dyn EventSink>,
    ) -> BackplaneTask;
}

/// Where a [`BackplaneTask`] takes the core's store requests from: the
/// receiving end of the adapter's request channel.
pub trait RequestSource: Send {
    /// The next request, in the order the core made them; `Ready(None)`
    /// once the adapter closed the channel and every request was taken,
    /// and on every poll after.
    /// `Pending` wakes `cx`'s waker when a request arrives or the channel
    /// closes. A request is returned exactly once, so a task may drop a
    /// wait for the next request at any time without losing one.
    fn poll_request(&mut self, cx: &mut Context<'_>) -> Poll<Option<StoreRequest>>;
}

/// Where a [`BackplaneTask`] puts the store's events: the sending end of
/// the adapter's event channel. `Sync`, so that the task may lend it to
/// the parts of its work while staying `Send`.
pub trait EventSink: Send + Sync {
    /// Queues `event` for the core without waiting. An event sent after
    /// the node stopped listening is dropped: the core has already
    /// answered whatever it concerned.
    fn send(&self, event: StoreEvent);
}

/// A closure that polls the adapter's channel is a request source, so an
/// adapter needs no type of its own for it.
impl<F> RequestSource for F
where
    F: FnMut(&mut Context<'_>) -> Poll<Option<StoreRequest>> + Send,
{
    fn poll_request(&mut self, cx: &mut Context<'_>) -> Poll<Option<StoreRequest>> {
        self(cx)
    }
}

/// A closure that queues an event on the adapter's channel is an event
/// sink, so an adapter needs no type of its own for it.
impl<F> EventSink for F
where
    F: Fn(StoreEvent) + Send + Sync,
{
    fn send(&self, event: StoreEvent) {
        self(event)
    }
}
