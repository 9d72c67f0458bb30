//! What one shard of a node asks of the node as a whole: the seam between
//! a shard's [`Server`](crate::Server) and the adapter that holds the
//! node's [`Router`] and the other shards.
//!
//! A shard's requests to the store leave as any node's do
//! ([`Output::Store`](crate::Output::Store)), and the adapter hands them to
//! the router in batches. A few decisions cannot wait for a batch: whether
//! a user may have one more connection on the node, whether a channel is
//! new to the node, and the node's figures for `/metrics` and
//! `POST /api/info`. For those the shard calls [`NodeShards`] at the
//! moment it decides; the decision itself stays in the core, and the
//! adapter only gives the shard its turn at the router (behind a lock, or
//! however it shares it) and the other shards' latest figures.

use std::fmt::Debug;
use std::ops::Add;

use crate::hub::Router;
use crate::metrics::{Counters, Gauges};

/// The node seen from one of its shards; implemented by the adapter.
pub trait NodeShards: Send + Debug {
    /// Runs `call` on the node's router, with no other shard using it
    /// meanwhile. The shard calls it while deciding and never from inside
    /// `call`; the adapter must not call into the shard's server while it
    /// holds the router.
    fn with_router(&self, call: &mut dyn FnMut(&mut Router));

    /// The latest figures of every other shard of the node, added up.
    fn others(&self) -> Figures;
}

/// One shard's counters and gauges, as it hands them to the other shards
/// ([`crate::Server::figures`]) for the node-wide `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    pub(crate) counters: Counters,
    pub(crate) gauges: Gauges,
}

impl Add for Figures {
    type Output = Figures;

    /// The figures of two parts of a node together: counters and
    /// connections add up, the node drains when either part does, and
    /// the failures of the node's one link to a backplane and the
    /// requests it refused are counted once (each part tells them). The
    /// gauges the router keeps for the whole node (channels, history) are
    /// the left side's.
    fn add(self, other: Figures) -> Figures {
        let (a, b) = (self.counters, other.counters);
        let counters = Counters {
            connections_total: a.connections_total + b.connections_total,
            messages_received_total: a.messages_received_total + b.messages_received_total,
            messages_sent_total: a.messages_sent_total + b.messages_sent_total,
            messages_dropped_total: a.messages_dropped_total + b.messages_dropped_total,
            heartbeat_timeouts_total: a.heartbeat_timeouts_total + b.heartbeat_timeouts_total,
            auth_failures_total: a.auth_failures_total + b.auth_failures_total,
            slow_consumer_closes_total: a.slow_consumer_closes_total + b.slow_consumer_closes_total,
            // Each shard tells the node's one link's failures and refusals.
            backplane_errors_total: a.backplane_errors_total.max(b.backplane_errors_total),
            backplane_request_errors_total: a
                .backplane_request_errors_total
                .max(b.backplane_request_errors_total),
            accept_errors_total: a.accept_errors_total + b.accept_errors_total,
        };
        let (a, b) = (self.gauges, other.gauges);
        let gauges = Gauges {
            connections: a.connections + b.connections,
            sockets: a.sockets + b.sockets,
            draining: a.draining.max(b.draining),
            ..a
        };
        Figures { counters, gauges }
    }
}
