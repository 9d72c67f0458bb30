//! The seam between a smol node and a shared store (a backplane such as
//! Redis) that lets several nodes act as one.
//!
//! The node's core decides everything: which channels to follow, when to
//! connect, renew a lease or catch up, and in which order to deliver. A
//! [`Backplane`] only carries the core's [`StoreRequest`]s to the store, in
//! order, and brings the store's answers, publications and the news of its
//! link back as [`StoreEvent`]s, in the order it receives them.

use std::future::Future;
use std::pin::Pin;

use async_channel::{Receiver, Sender};
use tether_core::hub::{StoreEvent, StoreRequest};

/// The future a [`Backplane`] runs on the node's thread.
pub type BackplaneTask = Pin<Box<dyn Future<Output = ()>>>;

/// A shared store a node can run with ([`crate::Server::with_backplane`]).
pub trait Backplane {
    /// The task that carries the requests of node `node` (a name unique to
    /// this run of the node) to the store and sends the store's events
    /// back. It runs on the node's thread and ends once `requests` is
    /// closed and every request received was carried out.
    fn run(
        self: Box<Self>,
        node: String,
        requests: Receiver<StoreRequest>,
        events: Sender<StoreEvent>,
    ) -> BackplaneTask;
}
