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
//! # In front of a backplane
//!
//! A node with a shared store ([`Router::with_backplane`]) keeps the
//! same routing, in front of its one link to the store instead of a
//! [`MemoryStore`]: the router's requests come out of
//! [`Router::poll_store_request`] for the adapter to carry to the
//! backplane exactly as a single node's, and the backplane's events go
//! into [`Router::handle_store_event`]. Answers arrive later, so they are
//! routed by ticket; the node follows a channel while any shard follows
//! it; the link's news reaches every shard; the node renews its lease
//! once and restates its presence as one node (module `uplink`).
//! Sessions stay unique across shards: each shard's ids start with its
//! own node id, and the store knows the node by the router's.
//!
//! [`Server`]: crate::Server
//! [`NodeShards`]: crate::NodeShards

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

mod uplink;

use self::uplink::Uplink;
use super::store::{Refusal, StoreEvent, StoreRequest, Ticket};
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
    store: Backend,
    /// The node's id in the store's epochs and to a backplane.
    node_id: String,
    queues: Queues,
    /// The shards following each channel, in shard order.
    follows: BTreeMap<Channel, Vec<usize>>,
    /// The node's users, over all shards.
    users: Users,
    /// The node's connections, over all shards (`max_connections`).
    sockets: usize,
    /// Requests the backplane refused while its link stayed up.
    refusals: u64,
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
        let node_id = node_id(seed);
        let store = Backend::Memory(MemoryStore::new(config, &node_id));
        Router::with_backend(store, node_id, shards)
    }

    /// A router for `shards` shards (at least one) in front of the node's
    /// one link to a shared store (see the module's docs): its first
    /// request, [`StoreRequest::Connect`], already waits in
    /// [`Router::poll_store_request`]. `seed` names this run of the node
    /// ([`Router::node_id`], the name a backplane knows it by) and draws
    /// the jitter of its reconnections. Give each shard's server another
    /// seed.
    pub fn with_backplane(config: &ServerConfig, seed: u64, shards: usize) -> Router {
        let shards = shards.max(1);
        let store = Backend::Backplane(Uplink::new(config, seed, shards));
        Router::with_backend(store, node_id(seed), shards)
    }

    fn with_backend(store: Backend, node_id: String, shards: usize) -> Router {
        let shards = shards.max(1);
        Router {
            store,
            node_id,
            queues: Queues {
                events: (0..shards).map(|_| VecDeque::new()).collect(),
                woken: VecDeque::new(),
                named: vec![false; shards],
            },
            follows: BTreeMap::new(),
            users: Users::default(),
            sockets: 0,
            refusals: 0,
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
            StoreRequest::Follow { channel } => self.follow(shard, channel),
            StoreRequest::Unfollow { channel } => self.unfollow(shard, channel),
            request => match &mut self.store {
                Backend::Memory(memory) => {
                    memory.handle_request(now, request);
                    while let Some(event) = self.memory_event() {
                        self.route(shard, event);
                    }
                }
                Backend::Backplane(uplink) => uplink.carry(shard, request, self.follows.len()),
            },
        }
    }

    /// The name of this run of the node: a backplane knows the node by
    /// it ([`Backplane::run`]).
    ///
    /// [`Backplane::run`]: crate::Backplane::run
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The next request for the backplane, in order; always `None` in
    /// front of a memory store.
    pub fn poll_store_request(&mut self) -> Option<StoreRequest> {
        match &mut self.store {
            Backend::Memory(_) => None,
            Backend::Backplane(uplink) => uplink.poll_request(),
        }
    }

    /// An event from the backplane at `now`, in the order the adapter
    /// received it, routed to the shards it concerns. Ignored in front of
    /// a memory store.
    pub fn handle_store_event(&mut self, now: Instant, event: StoreEvent) {
        let Backend::Backplane(uplink) = &mut self.store else {
            return;
        };
        if matches!(event, StoreEvent::Refused(_)) {
            self.refusals += 1;
        }
        match event {
            StoreEvent::Up => {
                if uplink.handle_up(now) {
                    self.tell_every_shard(StoreEvent::Up);
                }
            }
            StoreEvent::Down => {
                if uplink.handle_down(now) {
                    self.follows.clear();
                    self.tell_every_shard(StoreEvent::Down);
                }
            }
            StoreEvent::Leased { lapsed } => {
                if lapsed {
                    uplink.await_every_shard();
                }
                self.tell_every_shard(StoreEvent::Leased { lapsed });
            }
            StoreEvent::Refused(Refusal::Unanswered) => {
                self.tell_every_shard(StoreEvent::Refused(Refusal::Unanswered));
            }
            StoreEvent::Refused(Refusal::CatchUp(channel)) => {
                if let Some(shard) = uplink.caught_up(&channel) {
                    let refusal = StoreEvent::Refused(Refusal::CatchUp(channel));
                    self.queues.push(shard, refusal);
                }
            }
            StoreEvent::CaughtUp { ref channel, .. } => {
                if let Some(shard) = uplink.caught_up(channel) {
                    self.queues.push(shard, event);
                }
            }
            StoreEvent::Publication { .. }
            | StoreEvent::Joined { .. }
            | StoreEvent::Left { .. }
            | StoreEvent::Control(_) => self.route(0, event),
            mut answer => {
                if let Some(ticket) = ticket_of(&mut answer)
                    && let Some((shard, theirs)) = uplink.answered(*ticket)
                {
                    *ticket = theirs;
                    self.queues.push(shard, answer);
                }
            }
        }
    }

    /// Whether the node's link to its backplane carries requests; always
    /// in front of a memory store.
    pub fn is_store_up(&self) -> bool {
        match &self.store {
            Backend::Memory(_) => true,
            Backend::Backplane(uplink) => uplink.is_up(),
        }
    }

    /// How many requests the node's backplane refused while its link
    /// stayed up (the `tether_backplane_request_errors_total` counter),
    /// counted once per node: a refusal every shard hears is one.
    pub fn store_refusals(&self) -> u64 {
        self.refusals
    }

    /// How often the node's link to its backplane failed or could not be
    /// opened (the `tether_backplane_errors_total` counter).
    pub fn store_failures(&self) -> u64 {
        match &self.store {
            Backend::Memory(_) => 0,
            Backend::Backplane(uplink) => uplink.failures(),
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

    /// Expires history and idempotency records due at `now`; in front of
    /// a backplane, asks to reopen the link or renews the node's lease
    /// when due. Early or repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.store {
            Backend::Memory(memory) => memory.handle_timeout(now),
            Backend::Backplane(uplink) => uplink.handle_timeout(now, self.follows.len()),
        }
    }

    /// When [`Router::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.store {
            Backend::Memory(memory) => memory.poll_timeout(),
            Backend::Backplane(uplink) => uplink.poll_timeout(),
        }
    }

    /// Channels with a subscriber on some shard (the node's
    /// `tether_channels` gauge).
    pub fn channel_count(&self) -> usize {
        self.follows.len()
    }

    /// What the node's history holds.
    pub fn history_usage(&self) -> HistoryUsage {
        match &self.store {
            Backend::Memory(memory) => HistoryUsage {
                channels: memory.history_channels(),
                bytes: memory.history_bytes(),
            },
            Backend::Backplane(_) => HistoryUsage::default(),
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
    /// shard, or the memory store's epoch, history, records or presence.
    pub(crate) fn holds(&self, channel: &Channel) -> bool {
        self.follows.contains_key(channel)
            || match &self.store {
                Backend::Memory(memory) => memory.holds(channel),
                Backend::Backplane(_) => false,
            }
    }

    /// Whether the node's store keeps something of a publication
    /// (`keyed`: with an idempotency key): never on the node with a
    /// backplane, whose store is elsewhere.
    pub(crate) fn keeps(&self, keyed: bool) -> bool {
        match &self.store {
            Backend::Memory(memory) => memory.keeps(keyed),
            Backend::Backplane(_) => false,
        }
    }

    /// Whether the node's store is a backplane behind a link that can
    /// fail: its shards then keep that link's state as a node's hub does.
    pub(crate) fn has_backplane(&self) -> bool {
        matches!(self.store, Backend::Backplane(_))
    }

    fn memory_event(&mut self) -> Option<StoreEvent> {
        match &mut self.store {
            Backend::Memory(memory) => memory.poll_event(),
            Backend::Backplane(_) => None,
        }
    }

    /// `shard` follows `channel`; with a backplane, the node follows it
    /// from its first following shard on.
    fn follow(&mut self, shard: usize, channel: Channel) {
        if let Backend::Backplane(uplink) = &mut self.store {
            if !uplink.is_up() {
                return;
            }
            if !self.follows.contains_key(&channel) {
                uplink.send(StoreRequest::Follow {
                    channel: channel.clone(),
                });
            }
        }
        let shards = self.follows.entry(channel).or_default();
        if let Err(at) = shards.binary_search(&shard) {
            shards.insert(at, shard);
        }
    }

    /// `shard` no longer follows `channel`; with a backplane, the node
    /// stops following it after its last following shard.
    fn unfollow(&mut self, shard: usize, channel: Channel) {
        let Some(shards) = self.follows.get_mut(&channel) else {
            return;
        };
        shards.retain(|&follower| follower != shard);
        if !shards.is_empty() {
            return;
        }
        self.follows.remove(&channel);
        if let Backend::Backplane(uplink) = &mut self.store {
            uplink.send(StoreRequest::Unfollow { channel });
        }
    }

    /// Queues `event` for every shard.
    fn tell_every_shard(&mut self, event: StoreEvent) {
        let every: Vec<usize> = (0..self.shards()).collect();
        self.queues.push_to(&every, event);
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
            StoreEvent::Control(_) => self.tell_every_shard(event),
            _ => self.queues.push(asker, event),
        }
    }
}

/// The store the router stands in front of.
#[derive(Debug)]
enum Backend {
    /// The node's own store.
    Memory(MemoryStore),
    /// The node's link to a shared store.
    Backplane(Uplink),
}

/// The ticket an answer of the store carries, if any.
fn ticket_of(answer: &mut StoreEvent) -> Option<&mut Ticket> {
    match answer {
        StoreEvent::Published { ticket, .. }
        | StoreEvent::Subscribed { ticket, .. }
        | StoreEvent::Presence { ticket, .. }
        | StoreEvent::PresenceStats { ticket, .. }
        | StoreEvent::History { ticket, .. }
        | StoreEvent::Channels { ticket, .. }
        | StoreEvent::ControlSent { ticket }
        | StoreEvent::Info { ticket, .. }
        | StoreEvent::Refused(Refusal::Ticket(ticket)) => Some(ticket),
        _ => None,
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
mod backplane_tests;
#[cfg(test)]
mod tests;
