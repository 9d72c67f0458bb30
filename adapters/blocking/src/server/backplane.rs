//! The seam between a blocking node and a shared store (a backplane such as
//! Redis) that lets several nodes act as one.
//!
//! As on smol, the node's core decides everything; a [`Backplane`] only
//! carries the core's [`StoreRequest`]s to the store, in order, and brings
//! the store's events back, in the order it receives them. It runs on a
//! thread of its own. The channels are `async_channel`'s, which work from
//! plain threads (`send_blocking`, `recv_blocking`) and from async code
//! alike, so a store client written for either can sit behind the seam.

use async_channel::{Receiver, Sender};
use tether_core::hub::{StoreEvent, StoreRequest};

/// A shared store a node can run with ([`crate::Server::with_backplane`]).
pub trait Backplane: Send {
    /// Carries the requests of node `node` (a name unique to this run of
    /// the node) to the store and sends the store's events back, on the
    /// calling thread, until `requests` is closed and every request
    /// received was carried out.
    fn run_blocking(
        self: Box<Self>,
        node: String,
        requests: Receiver<StoreRequest>,
        events: Sender<StoreEvent>,
    );
}
