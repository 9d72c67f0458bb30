//! The router of a node split into shards: one store for the node, in
//! front of which each shard's hub is one of many.
//!
//! # Theory of operation
//!
//! A node may run several shards, each an event loop owning a [`Server`]
//! and its connections (a connection lives its whole life on one shard).
//! Each shard's hub talks to the store as a hub always does, through
//! [`StoreRequest`]s and [`StoreEvent`]s; the [`Router`] stands between all
//! of them and the node's one [`MemoryStore`], as a backplane stands
//! between nodes:
//!
//! - A request is carried out in the order the router receives it, so the
//!   store keeps one order per channel: every shard delivers a channel's
//!   publications at the same offsets.
//! - The store answers a request at once, so every answer it gives while
//!   carrying out a shard's request (`subscribed`, `ack`, presence, the
//!   HTTP API's answers, a catch-up) goes back to that shard. Shards'
//!   tickets never meet: no ticket crosses from one shard to another.
//! - A [`StoreEvent::Publication`], [`StoreEvent::Joined`] or
//!   [`StoreEvent::Left`] goes to every shard that follows the channel
//!   ([`StoreRequest::Follow`] while it has local subscribers), once per
//!   shard: the frame is the store's [`Bytes`], encoded once per node, and
//!   a shard hands it to its own subscribers.
//! - A [`StoreEvent::Control`] (disconnect a user, end a user's
//!   subscription) goes to every shard: the user's connections may sit on
//!   any of them.
//! - Each shard's events wait in its own queue, in the store's order;
//!   [`Router::poll_woken`] names each shard whose queue went from empty
//!   to not empty once, so the adapter wakes a shard once however many
//!   events wait for it.
//!
//! The router also keeps what must be counted once per node rather than
//! per shard: the node's connections (`max_connections`), each user's
//! connections (`max_connections_per_user`) and the
//! channels new to the node each user brought into existence
//! (`max_new_channels_per_user`), in the same [`Users`] a single hub keeps.
//! A shard's hub asks it through [`NodeShards`] at the moment it decides.
//!
//! Time: the store's history and idempotency records expire at
//! [`Router::poll_timeout`]; the adapter drives [`Router::handle_timeout`]
//! from one place only.
//!
//! [`Server`]: crate::Server
//! [`NodeShards`]: crate::NodeShards

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::store::{StoreEvent, StoreRequest};
use super::users::Users;
use super::{HistoryUsage, MemoryStore};
use crate::config::ServerConfig;
use crate::envelope::Channel;
use crate::server::node_id;
use crate::time::Instant;

/// The store of a node split into shards, and the routing of its events
/// to the shards (see the module's theory of operation).
#[derive(Debug)]
pub struct Router {
    store: MemoryStore,
    queues: Queues,
    /// The shards following each channel, in shard order.
    follows: BTreeMap<Channel, Vec<usize>>,
    /// The node's users, over all shards.
    users: Users,
    /// The node's connections, over all shards (`max_connections`).
    sockets: usize,
}

impl Router {
    /// A router for `shards` shards (at least one) in front of a store
    /// with the history and idempotency settings of `config`. `seed` names
    /// this run of the node as [`Server::new`]'s does: the store's epochs
    /// start with the node id drawn from it. Give each shard's server
    /// another seed.
    ///
    /// [`Server::new`]: crate::Server::new
    pub fn new(config: &ServerConfig, seed: u64, shards: usize) -> Router {
        let shards = shards.max(1);
        Router {
            store: MemoryStore::new(config, &node_id(seed)),
            queues: Queues {
                events: (0..shards).map(|_| VecDeque::new()).collect(),
                woken: VecDeque::new(),
                named: vec![false; shards],
            },
            follows: BTreeMap::new(),
            users: Users::default(),
            sockets: 0,
        }
    }

    /// How many shards the router serves.
    pub fn shards(&self) -> usize {
        self.queues.events.len()
    }

    /// Carries out a request of `shard` at `now` and routes the events it
    /// produces. A request from a shard the router does not serve is
    /// ignored.
    pub fn handle_request(&mut self, now: Instant, shard: usize, request: StoreRequest) {
        if shard >= self.shards() {
            return;
        }
        match request {
            StoreRequest::Follow { channel } => {
                let shards = self.follows.entry(channel).or_default();
                if let Err(at) = shards.binary_search(&shard) {
                    shards.insert(at, shard);
                }
            }
            StoreRequest::Unfollow { channel } => {
                if let Some(shards) = self.follows.get_mut(&channel) {
                    shards.retain(|&follower| follower != shard);
                    if shards.is_empty() {
                        self.follows.remove(&channel);
                    }
                }
            }
            request => {
                self.store.handle_request(now, request);
                while let Some(event) = self.store.poll_event() {
                    self.route(shard, event);
                }
            }
        }
    }

    /// Moves every event waiting for `shard` into `events`, in order.
    pub fn take_events(&mut self, shard: usize, events: &mut Vec<StoreEvent>) {
        if let Some(queue) = self.queues.events.get_mut(shard) {
            events.extend(queue.drain(..));
            self.queues.named[shard] = false;
        }
    }

    /// A shard with events waiting, each named once until its queue is
    /// drained ([`Router::take_events`]): the adapter wakes it.
    pub fn poll_woken(&mut self) -> Option<usize> {
        self.queues.woken.pop_front()
    }

    /// Expires history and idempotency records due at `now`. Early or
    /// repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.store.handle_timeout(now);
    }

    /// When [`Router::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.store.poll_timeout()
    }

    /// Channels with a subscriber on some shard (the node's
    /// `tether_channels` gauge).
    pub fn channel_count(&self) -> usize {
        self.follows.len()
    }

    /// What the node's history holds.
    pub fn history_usage(&self) -> HistoryUsage {
        HistoryUsage {
            channels: self.store.history_channels(),
            bytes: self.store.history_bytes(),
        }
    }

    /// Counts one more connection on the node and returns `true`, or
    /// returns `false`, counting nothing, when it holds `limit` already:
    /// an acceptor that hands connections to shards counts each as it
    /// accepts it, and tells the shard ([`Server::accept_counted`]).
    ///
    /// [`Server::accept_counted`]: crate::Server::accept_counted
    pub fn open_socket(&mut self, limit: usize) -> bool {
        if self.sockets >= limit {
            return false;
        }
        self.sockets += 1;
        true
    }

    /// A connection [`Router::open_socket`] counted is gone.
    pub fn close_socket(&mut self) {
        self.sockets = self.sockets.saturating_sub(1);
    }

    /// Counts one more connection of `user` on the node and returns `true`,
    /// or returns `false`, counting nothing, when the user already holds
    /// `limit`.
    pub(crate) fn admit(&mut self, user: &str, limit: usize) -> bool {
        if self.users.connections(user) >= limit {
            return false;
        }
        self.users.arrive(user);
        true
    }

    /// A connection of `user` that [`Router::admit`] counted ended at
    /// `now`.
    pub(crate) fn depart(&mut self, now: Instant, user: &Arc<str>) {
        self.users.depart(now, user);
    }

    /// Counts one channel new to the node that `user` brings into existence
    /// at `now`, as a single hub does ([`Users`]).
    pub(crate) fn create_channel(&mut self, now: Instant, user: &str, limit: usize) -> bool {
        self.users.create_channel(now, user, limit)
    }

    /// Whether the node holds state for `channel`: a subscriber on some
    /// shard, or the store's epoch, history, records or presence.
    pub(crate) fn holds(&self, channel: &Channel) -> bool {
        self.follows.contains_key(channel) || self.store.holds(channel)
    }

    /// Whether the store keeps something of a publication (`keyed`: with
    /// an idempotency key).
    pub(crate) fn keeps(&self, keyed: bool) -> bool {
        self.store.keeps(keyed)
    }

    /// Routes one event the store produced while carrying out a request of
    /// `asker`.
    fn route(&mut self, asker: usize, event: StoreEvent) {
        match &event {
            StoreEvent::Publication { channel, .. }
            | StoreEvent::Joined { channel, .. }
            | StoreEvent::Left { channel, .. } => {
                if let Some(followers) = self.follows.get(channel) {
                    self.queues.push_to(followers, event);
                }
            }
            StoreEvent::Control(_) => {
                let every: Vec<usize> = (0..self.shards()).collect();
                self.queues.push_to(&every, event);
            }
            _ => self.queues.push(asker, event),
        }
    }
}

/// The shards' event queues, and which shards must be woken.
#[derive(Debug)]
struct Queues {
    /// Each shard's events, in the store's order.
    events: Vec<VecDeque<StoreEvent>>,
    /// Shards with events that `poll_woken` has not named yet.
    woken: VecDeque<usize>,
    /// Whether a shard was named and not drained since.
    named: Vec<bool>,
}

impl Queues {
    /// Queues `event` for each of `shards`: clones for all but the last,
    /// which takes it.
    fn push_to(&mut self, shards: &[usize], event: StoreEvent) {
        let Some((&last, rest)) = shards.split_last() else {
            return;
        };
        for &shard in rest {
            self.push(shard, event.clone());
        }
        self.push(last, event);
    }

    fn push(&mut self, shard: usize, event: StoreEvent) {
        self.events[shard].push_back(event);
        if !self.named[shard] {
            self.named[shard] = true;
            self.woken.push_back(shard);
        }
    }
}

#[cfg(test)]
mod tests;
