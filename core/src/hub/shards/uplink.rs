//! The router's side of a node's one link to a shared store (a backplane
//! such as Redis), when the node runs as shards.
//!
//! Each shard's hub speaks to the store as a node of its own would; the
//! [`Uplink`] turns their requests into the requests of one node and the
//! store's events into each shard's:
//!
//! - Tickets: the shards number their tickets each on its own, so a
//!   ticketed request leaves with a ticket of the router's, remembered
//!   with the shard and its ticket until the answer comes back (or the
//!   link fails): the map holds the requests in flight, no more. A
//!   [`StoreEvent::CaughtUp`] carries no ticket: the store answers a
//!   channel's catch-ups in the order it got them, and so do the shards
//!   that asked.
//! - Following: the node follows a channel in the store from the first
//!   shard's [`StoreRequest::Follow`] to the last shard's
//!   [`StoreRequest::Unfollow`] (the router's follow table decides; this
//!   module only carries the requests).
//! - The link: the router opens it and reopens it on its own
//!   [`Link`] schedule, ignoring the shards' [`StoreRequest::Connect`]s,
//!   and tells every shard [`StoreEvent::Up`] and [`StoreEvent::Down`].
//!   A link that fails loses the requests in flight: their tickets are
//!   forgotten, and each shard answers its waiting requests `UNAVAILABLE`
//!   when it hears `Down`, as a node of its own does. Until then the
//!   router drops what the shards send.
//! - The lease: renewed once per node, on the router's schedule, with the
//!   node's figures (the shards' latest, added up); the shards' own
//!   [`StoreRequest::Lease`]s only bring their figures.
//! - Presence: the store holds one set of entries per node, so the router
//!   keeps each shard's members (from its last [`StoreRequest::Rejoin`],
//!   then its joins and leaves). After the link comes up, or a lease
//!   finds the node's entries lapsed, every shard restates its members;
//!   once the last one has, the node renews its lease and restates the
//!   whole node's members in one `Rejoin`. Meanwhile what a shard that
//!   has restated asks waits, in order, and leaves after the `Rejoin`:
//!   its presence snapshots then reflect the whole node's members, and
//!   its joins and leaves count after them. A shard that restates on
//!   its own (after a refusal) has the node restate at once: the other
//!   shards' members are current while the link is up.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::super::link::{Due, Link};
use super::super::store::{Member, NodeStats, StoreRequest, Ticket};
use crate::config::ServerConfig;
use crate::envelope::Channel;
use crate::time::Instant;

/// The node's link to the store, and what the router remembers about the
/// requests it carried there.
#[derive(Debug)]
pub(super) struct Uplink {
    link: Link,
    /// Requests for the store, in order, until the adapter takes them.
    requests: VecDeque<StoreRequest>,
    /// The shard and ticket behind each ticket of the router in flight.
    tickets: BTreeMap<Ticket, (usize, Ticket)>,
    next_ticket: u64,
    /// The shards waiting for each channel's catch-ups, in order asked.
    catch_ups: BTreeMap<Channel, VecDeque<usize>>,
    /// Each shard's presence entries: connections by channel and user.
    members: Vec<BTreeMap<(Channel, String), u32>>,
    /// Shards whose restated members the node waits for.
    awaiting: Vec<bool>,
    /// Requests of shards that restated, waiting for the node's `Rejoin`:
    /// at most what the shards ask while the others take their turn.
    held: VecDeque<(usize, StoreRequest)>,
    /// The link came up: the lease is renewed with the node's restated
    /// members.
    lease_wanted: bool,
    /// Each shard's latest figures, from its lease renewals.
    stats: Vec<NodeStats>,
}

impl Uplink {
    /// A closed link for `shards` shards, whose first `Connect` waits to
    /// be taken; `seed` draws the jitter of its reconnections.
    pub(super) fn new(config: &ServerConfig, seed: u64, shards: usize) -> Uplink {
        Uplink {
            link: Link::new(config, seed),
            requests: VecDeque::from([StoreRequest::Connect]),
            tickets: BTreeMap::new(),
            next_ticket: 0,
            catch_ups: BTreeMap::new(),
            members: vec![BTreeMap::new(); shards],
            awaiting: vec![false; shards],
            held: VecDeque::new(),
            lease_wanted: false,
            stats: vec![NodeStats::default(); shards],
        }
    }

    /// Whether the link carries requests.
    pub(super) fn is_up(&self) -> bool {
        self.link.is_up()
    }

    /// How often the link failed or could not be opened.
    pub(super) fn failures(&self) -> u64 {
        self.link.failures()
    }

    /// The next request for the store.
    pub(super) fn poll_request(&mut self) -> Option<StoreRequest> {
        self.requests.pop_front()
    }

    /// Sends `request` to the store.
    pub(super) fn send(&mut self, request: StoreRequest) {
        self.requests.push_back(request);
    }

    /// Carries a request of `shard` to the store: its ticket, if any,
    /// replaced by one of the router's. Nothing leaves while the link is
    /// down. `channels`: how many channels the node follows, for the
    /// node's figures.
    pub(super) fn carry(&mut self, shard: usize, request: StoreRequest, channels: usize) {
        if !self.is_up() {
            if let StoreRequest::Lease { node, .. } = request {
                self.stats[shard] = node;
            }
            return;
        }
        if self.awaiting.iter().any(|&awaited| awaited) && !self.awaiting[shard] {
            self.held.push_back((shard, request));
            return;
        }
        let request = match request {
            StoreRequest::Connect => return,
            StoreRequest::Lease { node, .. } => {
                self.stats[shard] = node;
                return;
            }
            StoreRequest::Rejoin { members } => return self.rejoin(shard, members, channels),
            StoreRequest::Join { channel, user } => {
                *self.members[shard]
                    .entry((channel.clone(), user.clone()))
                    .or_insert(0) += 1;
                StoreRequest::Join { channel, user }
            }
            StoreRequest::Leave { channel, user } => {
                let key = (channel, user);
                if let Some(count) = self.members[shard].get_mut(&key) {
                    *count -= 1;
                    if *count == 0 {
                        self.members[shard].remove(&key);
                    }
                }
                let (channel, user) = key;
                StoreRequest::Leave { channel, user }
            }
            StoreRequest::CatchUp { channel, since } => {
                self.catch_ups
                    .entry(channel.clone())
                    .or_default()
                    .push_back(shard);
                StoreRequest::CatchUp { channel, since }
            }
            request => self.retitle(shard, request),
        };
        self.requests.push_back(request);
    }

    /// The shard and ticket behind the router's `ticket`, forgotten.
    pub(super) fn answered(&mut self, ticket: Ticket) -> Option<(usize, Ticket)> {
        self.tickets.remove(&ticket)
    }

    /// The shard whose catch-up of `channel` the store answered.
    pub(super) fn caught_up(&mut self, channel: &Channel) -> Option<usize> {
        let waiting = self.catch_ups.get_mut(channel)?;
        let shard = waiting.pop_front();
        if waiting.is_empty() {
            self.catch_ups.remove(channel);
        }
        shard
    }

    /// The link opened at `now`: every shard is to restate its members.
    /// False when it was up already.
    pub(super) fn handle_up(&mut self, now: Instant) -> bool {
        if !self.link.handle_up(now) {
            return false;
        }
        self.await_every_shard();
        self.lease_wanted = true;
        true
    }

    /// The link failed at `now`: what was in flight is lost. False when
    /// it was down already.
    pub(super) fn handle_down(&mut self, now: Instant) -> bool {
        if !self.link.handle_down(now) {
            return false;
        }
        self.requests.clear();
        self.tickets.clear();
        self.catch_ups.clear();
        self.awaiting.fill(false);
        self.held.clear();
        self.lease_wanted = false;
        true
    }

    /// The store found the node's entries lapsed: every shard is to
    /// restate its members.
    pub(super) fn await_every_shard(&mut self) {
        self.awaiting.fill(true);
    }

    /// Asks to reopen the link or renews the node's lease when due at
    /// `now`. `channels`: how many channels the node follows.
    pub(super) fn handle_timeout(&mut self, now: Instant, channels: usize) {
        match self.link.handle_timeout(now) {
            Some(Due::Connect) => self.requests.push_back(StoreRequest::Connect),
            Some(Due::Lease(lease)) => self.lease(lease, channels),
            None => {}
        }
    }

    /// When [`Uplink::handle_timeout`] must next be called.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.link.poll_timeout()
    }

    /// `shard` restated its members: once no other shard's are awaited,
    /// the node renews its lease (when the link just came up), restates
    /// the whole node's and lets the held requests go.
    fn rejoin(&mut self, shard: usize, members: Vec<Member>, channels: usize) {
        self.members[shard] = members
            .into_iter()
            .map(|member| ((member.channel, member.user), member.connections))
            .collect();
        self.awaiting[shard] = false;
        if self.awaiting.iter().any(|&awaited| awaited) {
            return;
        }
        if std::mem::take(&mut self.lease_wanted) {
            self.lease(self.link.lease(), channels);
        }
        let mut merged: BTreeMap<&(Channel, String), u32> = BTreeMap::new();
        for (key, connections) in self.members.iter().flatten() {
            *merged.entry(key).or_insert(0) += connections;
        }
        let members = merged
            .into_iter()
            .map(|((channel, user), connections)| Member {
                channel: channel.clone(),
                user: user.clone(),
                connections,
            })
            .collect();
        self.requests.push_back(StoreRequest::Rejoin { members });
        while let Some((shard, request)) = self.held.pop_front() {
            self.carry(shard, request, channels);
        }
    }

    /// Renews the node's lease for `lease`, with its figures.
    fn lease(&mut self, lease: Duration, channels: usize) {
        let node = NodeStats {
            connections: self.stats.iter().map(|stats| stats.connections).sum(),
            channels: channels as u64,
            uptime: self
                .stats
                .iter()
                .map(|stats| stats.uptime)
                .max()
                .unwrap_or_default(),
        };
        self.requests.push_back(StoreRequest::Lease { lease, node });
    }

    /// `request` with a ticket of the router's in place of the shard's,
    /// remembered until its answer.
    fn retitle(&mut self, shard: usize, mut request: StoreRequest) -> StoreRequest {
        let ticket = match &mut request {
            StoreRequest::Publish {
                ticket: Some(ticket),
                ..
            }
            | StoreRequest::Subscribe { ticket, .. }
            | StoreRequest::Presence { ticket, .. }
            | StoreRequest::PresenceStats { ticket, .. }
            | StoreRequest::History { ticket, .. }
            | StoreRequest::Channels { ticket, .. }
            | StoreRequest::Control { ticket, .. }
            | StoreRequest::Info { ticket, .. } => ticket,
            _ => return request,
        };
        self.next_ticket += 1;
        let ours = Ticket(self.next_ticket);
        self.tickets.insert(ours, (shard, *ticket));
        *ticket = ours;
        request
    }
}
