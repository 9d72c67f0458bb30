//! The hub: channels, presence, offsets, history and recovery for one node,
//! with encode-once fan-out (PROTOCOL.md sections 4, 5, 6 and 8).
//!
//! # Theory of operation
//!
//! The hub is split along one seam. On this side, [`Hub`] keeps what is
//! local to the node: which connection belongs to which user, which local
//! connections are subscribed to which channel, and which request waits for
//! which answer. On the other side, a store keeps what all nodes must agree
//! on: each channel's epoch and offsets (the sequencer), its history, the
//! idempotency records of publishes, and presence counts. The two talk only
//! in plain values: [`StoreRequest`] one way, [`StoreEvent`] the other.
//!
//! - In memory mode ([`Hub::new`]) the hub owns a [`MemoryStore`] and hands
//!   it each request as it arises, then handles the events it produced
//!   before returning: every reply is out when the call returns.
//! - With an external store ([`Hub::with_external_store`]) requests wait in
//!   [`Hub::poll_store_request`] for an adapter to carry them out, and the
//!   adapter feeds the store's events back through
//!   [`Hub::handle_store_event`], whenever they arrive.
//!
//! The hub is written for the second case and runs the same code in both:
//!
//! - A publication reaches subscribers only as a [`StoreEvent::Publication`],
//!   after the store gave it its offset, so every node delivers a channel's
//!   publications in the store's order. The store encodes and frames the
//!   `message` once; the hub hands the same [`Bytes`] to every local
//!   subscriber through [`Outbox::send_publication`], which clones a
//!   reference count and allocates nothing.
//! - A request whose reply needs the store (`publish` with an `id`,
//!   `subscribe`, `presence`) takes a [`Ticket`] and reserves a slot in its
//!   connection's reply order; a reply known at once (an error,
//!   `unsubscribed`) queues behind waiting slots. So an `ack` goes out only
//!   once its offset is known, and replies still come in request order.
//! - A new subscription receives nothing until its `subscribed` answer: the
//!   store's answer reflects every earlier publication of the channel (which
//!   the replay covers) and none after (which the subscription then gets).
//! - Presence is counted per connection by the store, which reports a user's
//!   first arrival and last departure in a channel as [`StoreEvent::Joined`]
//!   and [`StoreEvent::Left`]; the hub turns each into one `join` or `leave`
//!   frame, shared by the channel's active local subscribers (the user's own
//!   connection is still pending at its join and gone at its leave).
//!   Snapshots come only with `subscribe` and on request.
//!
//! Cleanup: a connection's subscriptions are released when it disconnects;
//! a local channel is dropped with its last subscriber; the store forgets a
//! channel with no presence, history or idempotency record, and expires
//! history and records at their deadlines ([`Hub::poll_timeout`]).

mod memory;
mod replies;
mod store;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use serde_json::value::RawValue;

pub use self::memory::MemoryStore;
use self::replies::Replies;
pub use self::store::{StoreEvent, StoreRequest, Ticket};
use crate::config::ServerConfig;
use crate::envelope::{
    Channel, ClientMessage, ErrorCode, Position, RequestId, ServerMessage, encode_server_message,
};
use crate::frame::text_frame;
use crate::ids::ConnId;
use crate::queue::CoalesceKey;
use crate::time::Instant;

/// Where the hub's frames for connections go; implemented by whoever owns
/// the connections' outbound queues.
pub trait Outbox {
    /// A reply, error, presence snapshot, join or leave: never dropped.
    fn send_control(&mut self, conn: ConnId, frame: Bytes);
    /// A channel publication; the connection's backpressure policy may drop
    /// it, or, when `latest_only` is `Some(key)`, coalesce it with an
    /// undelivered frame of the same key.
    fn send_publication(&mut self, conn: ConnId, frame: &Bytes, latest_only: Option<CoalesceKey>);
}

/// The outcome of [`Hub::publish_from_api`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiPublish {
    /// The publication got this offset.
    Published {
        /// The channel offset of the publication.
        offset: u64,
    },
    /// The store has not answered yet; the offset will come out of
    /// [`Hub::poll_api_published`] with this ticket.
    Pending {
        /// Names the publication.
        ticket: Ticket,
    },
}

/// The channels, presence and routing of one server node.
#[derive(Debug)]
pub struct Hub {
    config: ServerConfig,
    conns: BTreeMap<ConnId, Conn>,
    channels: BTreeMap<Channel, LocalChannel>,
    waiting: BTreeMap<Ticket, Waiter>,
    api_published: VecDeque<(Ticket, u64)>,
    store: Store,
    tickets_issued: u64,
    keys_issued: u64,
}

/// An authenticated connection as the hub sees it.
#[derive(Debug)]
struct Conn {
    user: String,
    channels: BTreeSet<Channel>,
    replies: Replies,
}

/// The local subscribers of a channel.
#[derive(Debug)]
struct LocalChannel {
    key: CoalesceKey,
    latest_only: bool,
    /// Subscribers that receive publications.
    active: BTreeSet<ConnId>,
    /// Subscribers waiting for their `subscribed` answer.
    pending: BTreeSet<ConnId>,
}

/// Who waits for the answer to a ticket.
#[derive(Debug)]
enum Waiter {
    Conn { conn: ConnId, id: Option<RequestId> },
    Api,
}

#[derive(Debug)]
enum Store {
    Memory(MemoryStore),
    External(VecDeque<StoreRequest>),
}

impl Hub {
    /// A hub with its own in-memory store: a single node. Channel epochs are
    /// `epoch_prefix` followed by a counter; give every hub instance a
    /// different prefix so that epochs never repeat across restarts.
    pub fn new(config: &ServerConfig, epoch_prefix: &str) -> Hub {
        Hub::with_store(
            config,
            Store::Memory(MemoryStore::new(config, epoch_prefix)),
        )
    }

    /// A hub whose store is elsewhere (a backplane shared by several nodes):
    /// requests come out of [`Hub::poll_store_request`] and the store's
    /// events go into [`Hub::handle_store_event`].
    pub fn with_external_store(config: &ServerConfig) -> Hub {
        Hub::with_store(config, Store::External(VecDeque::new()))
    }

    fn with_store(config: &ServerConfig, store: Store) -> Hub {
        Hub {
            config: config.clone(),
            conns: BTreeMap::new(),
            channels: BTreeMap::new(),
            waiting: BTreeMap::new(),
            api_published: VecDeque::new(),
            store,
            tickets_issued: 0,
            keys_issued: 0,
        }
    }

    /// A connection passed auth as `user`; from now on its messages may
    /// reach the hub. Repeating it for the same connection changes nothing.
    pub fn handle_authenticated(&mut self, conn: ConnId, user: &str) {
        self.conns.entry(conn).or_insert_with(|| Conn {
            user: user.to_owned(),
            channels: BTreeSet::new(),
            replies: Replies::default(),
        });
    }

    /// A message from an authenticated connection. `auth` and `ping` belong
    /// to the connection machine and are ignored here, as is anything from a
    /// connection the hub does not know.
    pub fn handle_message(
        &mut self,
        now: Instant,
        conn: ConnId,
        message: ClientMessage,
        outbox: &mut impl Outbox,
    ) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        match message {
            ClientMessage::Subscribe { id, channel, since } => {
                self.handle_subscribe(now, conn, id, channel, since, outbox);
            }
            ClientMessage::Unsubscribe { id, channel } => {
                self.handle_unsubscribe(now, conn, id, channel, outbox);
            }
            ClientMessage::Publish {
                id,
                channel,
                payload,
            } => self.handle_publish(now, conn, id, channel, payload, outbox),
            ClientMessage::Presence { id, channel } => {
                self.handle_presence(now, conn, id, channel, outbox);
            }
            ClientMessage::Auth { .. } | ClientMessage::Ping { .. } => {}
        }
    }

    /// A connection ended, for whatever reason: it leaves every channel
    /// (other subscribers hear `leave` when it was the user's last
    /// connection there) and the hub forgets it.
    pub fn handle_disconnect(&mut self, now: Instant, conn: ConnId, outbox: &mut impl Outbox) {
        let Some(state) = self.conns.remove(&conn) else {
            return;
        };
        for channel in state.channels {
            self.remove_subscriber(&channel, conn);
            self.request(
                now,
                StoreRequest::Leave {
                    channel,
                    user: state.user.clone(),
                },
                outbox,
            );
        }
    }

    /// A publication from the HTTP API: no `sender`, allowed on private
    /// `user:` channels (that is how backends notify one user).
    pub fn publish_from_api(
        &mut self,
        now: Instant,
        channel: Channel,
        payload: Box<RawValue>,
        outbox: &mut impl Outbox,
    ) -> ApiPublish {
        let ticket = self.issue_ticket(Waiter::Api);
        let request = StoreRequest::Publish {
            ticket: Some(ticket),
            channel,
            payload,
            sender: None,
            id: None,
        };
        self.request(now, request, outbox);
        match self.api_published.iter().position(|(t, _)| *t == ticket) {
            Some(index) => {
                let (_, offset) = self.api_published.remove(index).expect("index was found");
                ApiPublish::Published { offset }
            }
            None => ApiPublish::Pending { ticket },
        }
    }

    /// The offset of an API publication that was [`ApiPublish::Pending`].
    pub fn poll_api_published(&mut self) -> Option<(Ticket, u64)> {
        self.api_published.pop_front()
    }

    /// The next request for an external store; always `None` in memory mode.
    pub fn poll_store_request(&mut self) -> Option<StoreRequest> {
        match &mut self.store {
            Store::Memory(_) => None,
            Store::External(requests) => requests.pop_front(),
        }
    }

    /// An event from the store: a publication to fan out, an answer to a
    /// request, or a presence change.
    pub fn handle_store_event(&mut self, event: StoreEvent, outbox: &mut impl Outbox) {
        match event {
            StoreEvent::Publication { channel, frame, .. } => {
                if let Some(local) = self.channels.get(&channel) {
                    let key = local.latest_only.then_some(local.key);
                    for &conn in &local.active {
                        outbox.send_publication(conn, &frame, key);
                    }
                }
            }
            StoreEvent::Published { ticket, offset } => match self.waiting.remove(&ticket) {
                Some(Waiter::Api) => self.api_published.push_back((ticket, offset)),
                Some(Waiter::Conn { conn, id: Some(id) }) => {
                    let ack = frame_of(&ServerMessage::Ack { id, offset });
                    self.fulfil(conn, ticket, vec![ack], outbox);
                }
                Some(Waiter::Conn { id: None, .. }) | None => {}
            },
            StoreEvent::Subscribed {
                ticket,
                channel,
                epoch,
                offset,
                recovered,
                replay,
                users,
            } => {
                let Some(Waiter::Conn { conn, id }) = self.waiting.remove(&ticket) else {
                    return;
                };
                self.activate(&channel, conn);
                let mut frames = replay;
                frames.push(frame_of(&ServerMessage::Subscribed {
                    id,
                    channel: channel.clone(),
                    epoch,
                    offset,
                    recovered,
                }));
                frames.push(frame_of(&ServerMessage::Presence {
                    id: None,
                    channel,
                    users,
                }));
                self.fulfil(conn, ticket, frames, outbox);
            }
            StoreEvent::Presence {
                ticket,
                channel,
                users,
            } => {
                let Some(Waiter::Conn { conn, id }) = self.waiting.remove(&ticket) else {
                    return;
                };
                let presence = frame_of(&ServerMessage::Presence { id, channel, users });
                self.fulfil(conn, ticket, vec![presence], outbox);
            }
            StoreEvent::Joined { channel, user } => {
                let frame = frame_of(&ServerMessage::Join {
                    channel: channel.clone(),
                    user,
                });
                self.send_presence_change(&channel, frame, outbox);
            }
            StoreEvent::Left { channel, user } => {
                let frame = frame_of(&ServerMessage::Leave {
                    channel: channel.clone(),
                    user,
                });
                self.send_presence_change(&channel, frame, outbox);
            }
        }
    }

    /// Expires history and idempotency records due at `now`. Early or
    /// repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Store::Memory(memory) = &mut self.store {
            memory.handle_timeout(now);
        }
    }

    /// When [`Hub::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.store {
            Store::Memory(memory) => memory.poll_timeout(),
            Store::External(_) => None,
        }
    }

    /// Authenticated connections the hub knows.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Channels with at least one subscriber on this node (the
    /// `tether_channels` gauge).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    fn handle_subscribe(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: Option<RequestId>,
        channel: Channel,
        since: Option<Position>,
        outbox: &mut impl Outbox,
    ) {
        let state = self.conns.get_mut(&conn).expect("checked by the caller");
        if channel
            .private_user()
            .is_some_and(|owner| owner != state.user)
        {
            let error = error_frame(id, ErrorCode::Forbidden, "private channel of another user");
            return state.replies.send(conn, error, outbox);
        }
        let is_new = !state.channels.contains(&channel);
        if is_new && state.channels.len() >= self.config.max_subscriptions {
            let error = error_frame(id, ErrorCode::LimitExceeded, "too many subscriptions");
            return state.replies.send(conn, error, outbox);
        }
        let user = state.user.clone();
        let ticket = self.issue_ticket(Waiter::Conn { conn, id });
        let state = self.conns.get_mut(&conn).expect("checked by the caller");
        state.replies.wait(ticket);
        if is_new {
            state.channels.insert(channel.clone());
            self.local_channel(&channel).pending.insert(conn);
            let join = StoreRequest::Join {
                channel: channel.clone(),
                user,
            };
            self.request(now, join, outbox);
        }
        let subscribe = StoreRequest::Subscribe {
            ticket,
            channel,
            since,
        };
        self.request(now, subscribe, outbox);
    }

    fn handle_unsubscribe(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: Option<RequestId>,
        channel: Channel,
        outbox: &mut impl Outbox,
    ) {
        let state = self.conns.get_mut(&conn).expect("checked by the caller");
        let reply = frame_of(&ServerMessage::Unsubscribed {
            id,
            channel: channel.clone(),
        });
        if state.channels.remove(&channel) {
            let user = state.user.clone();
            self.remove_subscriber(&channel, conn);
            self.request(now, StoreRequest::Leave { channel, user }, outbox);
        }
        if let Some(state) = self.conns.get_mut(&conn) {
            state.replies.send(conn, reply, outbox);
        }
    }

    fn handle_publish(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: Option<RequestId>,
        channel: Channel,
        payload: Box<RawValue>,
        outbox: &mut impl Outbox,
    ) {
        let state = self.conns.get_mut(&conn).expect("checked by the caller");
        if channel.private_user().is_some() {
            let error = error_frame(
                id,
                ErrorCode::Forbidden,
                "clients may not publish to user: channels",
            );
            return state.replies.send(conn, error, outbox);
        }
        let sender = Some(state.user.clone());
        let ticket = id.clone().map(|id| {
            let ticket = self.issue_ticket(Waiter::Conn { conn, id: Some(id) });
            if let Some(state) = self.conns.get_mut(&conn) {
                state.replies.wait(ticket);
            }
            ticket
        });
        let request = StoreRequest::Publish {
            ticket,
            channel,
            payload,
            sender,
            id,
        };
        self.request(now, request, outbox);
    }

    fn handle_presence(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: Option<RequestId>,
        channel: Channel,
        outbox: &mut impl Outbox,
    ) {
        let state = self.conns.get_mut(&conn).expect("checked by the caller");
        if channel
            .private_user()
            .is_some_and(|owner| owner != state.user)
        {
            let error = error_frame(id, ErrorCode::Forbidden, "private channel of another user");
            return state.replies.send(conn, error, outbox);
        }
        let ticket = self.issue_ticket(Waiter::Conn { conn, id });
        if let Some(state) = self.conns.get_mut(&conn) {
            state.replies.wait(ticket);
        }
        self.request(now, StoreRequest::Presence { ticket, channel }, outbox);
    }

    /// Hands a request to the store: in memory mode it is carried out and
    /// its events handled before this returns.
    fn request(&mut self, now: Instant, request: StoreRequest, outbox: &mut impl Outbox) {
        match &mut self.store {
            Store::External(requests) => requests.push_back(request),
            Store::Memory(memory) => {
                memory.handle_request(now, request);
                while let Some(event) = self.memory_event() {
                    self.handle_store_event(event, outbox);
                }
            }
        }
    }

    fn memory_event(&mut self) -> Option<StoreEvent> {
        match &mut self.store {
            Store::Memory(memory) => memory.poll_event(),
            Store::External(_) => None,
        }
    }

    fn issue_ticket(&mut self, waiter: Waiter) -> Ticket {
        self.tickets_issued += 1;
        let ticket = Ticket(self.tickets_issued);
        self.waiting.insert(ticket, waiter);
        ticket
    }

    /// Sends the answer to `ticket` in the connection's reply order, if the
    /// connection is still there.
    fn fulfil(
        &mut self,
        conn: ConnId,
        ticket: Ticket,
        frames: Vec<Bytes>,
        outbox: &mut impl Outbox,
    ) {
        if let Some(state) = self.conns.get_mut(&conn) {
            state.replies.fulfil(conn, ticket, frames, outbox);
        }
    }

    /// The local channel `channel`, created with a fresh key if needed.
    fn local_channel(&mut self, channel: &Channel) -> &mut LocalChannel {
        if !self.channels.contains_key(channel) {
            self.keys_issued += 1;
            let local = LocalChannel {
                key: CoalesceKey(self.keys_issued),
                latest_only: self.config.is_latest_only(channel.as_str()),
                active: BTreeSet::new(),
                pending: BTreeSet::new(),
            };
            self.channels.insert(channel.clone(), local);
        }
        self.channels
            .get_mut(channel)
            .expect("the channel was just inserted")
    }

    /// Lets a pending subscriber receive the channel's publications.
    fn activate(&mut self, channel: &Channel, conn: ConnId) {
        if let Some(local) = self.channels.get_mut(channel) {
            if local.pending.remove(&conn) {
                local.active.insert(conn);
            }
        }
    }

    /// Drops a subscriber, and the local channel with its last one.
    fn remove_subscriber(&mut self, channel: &Channel, conn: ConnId) {
        if let Some(local) = self.channels.get_mut(channel) {
            local.active.remove(&conn);
            local.pending.remove(&conn);
            if local.active.is_empty() && local.pending.is_empty() {
                self.channels.remove(channel);
            }
        }
    }

    /// Sends a `join` or `leave` to the channel's active local subscribers.
    /// They are all other users: a user's own first connection is still
    /// pending when its join is announced, and its last one is gone before
    /// its leave is.
    fn send_presence_change(&self, channel: &Channel, frame: Bytes, outbox: &mut impl Outbox) {
        if let Some(local) = self.channels.get(channel) {
            for &conn in &local.active {
                outbox.send_control(conn, frame.clone());
            }
        }
    }
}

fn frame_of(message: &ServerMessage) -> Bytes {
    text_frame(&encode_server_message(message))
}

fn error_frame(id: Option<RequestId>, code: ErrorCode, message: &str) -> Bytes {
    frame_of(&ServerMessage::Error {
        id,
        code,
        message: message.to_owned(),
    })
}

#[cfg(test)]
mod tests;
