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
//!   An answer whose reply must wait behind an earlier one of its
//!   connection is held, and taken when its turn comes.
//! - Presence is counted per connection by the store, which reports a user's
//!   first arrival and last departure in a channel as [`StoreEvent::Joined`]
//!   and [`StoreEvent::Left`]; the hub turns each into one `join` or `leave`
//!   frame, shared by the channel's active local subscribers (the user's own
//!   connection is still pending at its join and gone at its leave).
//!   Snapshots come only with `subscribe`, on request, and after a backplane
//!   outage. Each local channel keeps one view of presence for all its
//!   subscribers (module `presence`), ordered by the store's presence
//!   versions: a change a snapshot already holds is not told again, even
//!   when changes and snapshots arrive by different paths, and a `presence`
//!   request about a channel with a current view is answered from it.
//!
//! - With an external store the hub also keeps the link to it (module
//!   `link`): it asks the adapter to connect ([`StoreRequest::Connect`]),
//!   retries with [`BACKPLANE_BACKOFF`] after [`StoreEvent::Down`], and
//!   renews the node's presence lease while the link is up. It follows a
//!   channel in the store ([`StoreRequest::Follow`]) only while the channel
//!   has local subscribers.
//! - Delivery order is rebuilt from offsets per channel (module `local`):
//!   a shared store's publications and answers may arrive in either order,
//!   and a failing link loses publications; a gap is filled from the
//!   store's history before anything after it is delivered.
//! - While the link is down the node keeps its connections and
//!   subscriptions. What needs the store is refused at once with
//!   `UNAVAILABLE` (publish, subscribe, presence, the HTTP API), as is
//!   every request that was waiting for an answer; what does not
//!   (unsubscribe, disconnect) is done locally. When the link is back the
//!   node renews its lease, restates its presence ([`StoreRequest::Rejoin`]),
//!   follows its channels again and catches each one up from the last
//!   publication it delivered, before anything newer.
//!
//! The code follows these seams: module `requests` answers clients'
//! requests, `store_events` the store's events (one function each), and
//! `recovery` keeps the channels whole across a failing link; this module
//! keeps the hub's state and dispatches.
//!
//! Users: the hub keeps one entry per user (module `users`), keyed by the
//! id the user's connections share, where it counts the user's
//! connections (`max_connections_per_user`, checked by the node at the
//! auth verdict) and the channels new to the node the user brought into
//! existence in its current minute (`max_new_channels_per_user`): a
//! `subscribe` or `publish` that would bring one too many is answered
//! `LIMIT_EXCEEDED`.
//!
//! Cleanup: a connection's subscriptions are released when it disconnects;
//! a local channel is dropped with its last subscriber; the store forgets a
//! channel with no presence, history or idempotency record, and expires
//! history and records at their deadlines ([`Hub::poll_timeout`]).

mod api;
mod history_index;
mod link;
mod local;
mod memory;
mod presence;
mod recovery;
mod replies;
mod requests;
mod shards;
mod store;
mod store_events;
mod users;
mod waiting;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;

pub use self::api::{ApiAnswer, ApiOutcome, ApiRequest};
pub use self::link::BACKPLANE_BACKOFF;
use self::link::{Due, Link};
use self::local::LocalChannel;
pub use self::memory::MemoryStore;
use self::replies::Replies;
use self::requests::{Publication, Subscription};
pub use self::shards::Router;
pub use self::store::{
    Control, Member, NodeInfo, NodeStats, Refusal, StoreEvent, StoreRequest, Ticket,
};
use self::store_events::{CaughtUpAnswer, SubscribedAnswer};
use self::users::Users;
use self::waiting::{Waiter, Waiting};
use crate::access::{Access, Grants, Operation};
use crate::close::CloseReason;
use crate::config::ServerConfig;
use crate::envelope::{
    Channel, ClientMessage, ErrorCode, IdempotencyKey, Position, RequestId, ServerMessage,
    UnsubscribeReason, encode_server_message,
};
use crate::frame::text_frame;
use crate::hooks::{Notification, Rejection};
use crate::ids::ConnId;
use crate::queue::CoalesceKey;
use crate::shard::{Figures, NodeShards};
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
    /// Something the application may observe; dropped unless the node
    /// hands it out.
    fn notify(&mut self, notification: Notification) {
        let _ = notification;
    }
}

/// The outcome of [`Hub::publish_from_api`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiPublish {
    /// The publication got this offset.
    Published {
        /// The channel offset of the publication.
        offset: u64,
    },
    /// The store has not answered yet; its answer will come out of
    /// [`Hub::poll_api_answer`] with this ticket: the offset, or
    /// [`ApiAnswer::Unavailable`] if the link fails first.
    Pending {
        /// Names the publication.
        ticket: Ticket,
    },
    /// The link to the store is down: nothing was published.
    Unavailable,
}

/// What the node's own history holds ([`Hub::history_usage`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryUsage {
    /// Channels whose history holds at least one publication.
    pub channels: usize,
    /// Bytes of frames and bookkeeping, as counted against
    /// `history_max_bytes`.
    pub bytes: usize,
}

/// The channels, presence and routing of one server node.
#[derive(Debug)]
pub struct Hub {
    config: ServerConfig,
    conns: BTreeMap<ConnId, Conn>,
    /// The users of `conns`, one entry each.
    users: Users,
    channels: BTreeMap<Channel, LocalChannel>,
    waiting: Waiting,
    /// Answers to the HTTP API, by ticket, until polled.
    api_answers: VecDeque<(Ticket, ApiAnswer)>,
    /// Connections an order of the HTTP API closes, until polled.
    closing: VecDeque<(ConnId, CloseReason)>,
    /// What the node's leases register.
    node_stats: NodeStats,
    store: Store,
    keys_issued: u64,
    /// Requests the store refused while its link stayed up.
    refusals: u64,
    /// A refused request left the store's presence or a channel's delivery
    /// behind: the next lease the store grants restates them.
    restate_wanted: bool,
}

/// An authenticated connection as the hub sees it.
#[derive(Debug)]
struct Conn {
    /// The user's id, shared with its entry in `users`.
    user: Arc<str>,
    /// What the connection's current token grants.
    grants: Grants,
    /// Set only while the hub handles a request the application allowed.
    allowed_by_application: bool,
    channels: BTreeSet<Channel>,
    replies: Replies,
    /// Answers to its subscriptions that came while the reply to an
    /// earlier request still waited: each is taken when its turn in the
    /// reply order comes, so that the subscriber joins the channel's
    /// deliveries only as its `subscribed` goes out.
    held: Vec<(Ticket, SubscribedAnswer)>,
}

#[derive(Debug)]
enum Store {
    Memory(MemoryStore),
    External {
        requests: VecDeque<StoreRequest>,
        link: Link,
    },
    /// One shard of a node: the node's store is behind its
    /// [`Router`], which the adapter feeds with the requests and which
    /// counts the node's users. In front of a backplane the shard keeps
    /// the state of the node's link as the router tells it (`link`), and
    /// the router opens the link and renews the node's lease.
    Shard {
        requests: VecDeque<StoreRequest>,
        node: Box<dyn NodeShards>,
        link: Option<Link>,
    },
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
    /// requests come out of [`Hub::poll_store_request`], starting with
    /// [`StoreRequest::Connect`], and the store's events go into
    /// [`Hub::handle_store_event`]. `seed` draws the jitter of the
    /// reconnection delays; give each node its own.
    pub fn with_external_store(config: &ServerConfig, seed: u64) -> Hub {
        let store = Store::External {
            requests: VecDeque::from([StoreRequest::Connect]),
            link: Link::new(config, seed),
        };
        Hub::with_store(config, store)
    }

    /// The hub of one shard of a node: its requests come out of
    /// [`Hub::poll_store_request`] for the node's [`Router`], the router's
    /// events for this shard go into [`Hub::handle_store_event`], and the
    /// node-wide bounds on users are counted by the router, through
    /// `node`. In front of a memory store the link never fails; in front
    /// of a backplane the shard starts with the link down and hears of it
    /// from the router (`Up`, `Down`), and `seed` draws the jitter of its
    /// link's schedule.
    pub fn for_shard(config: &ServerConfig, seed: u64, node: Box<dyn NodeShards>) -> Hub {
        let mut linked = false;
        node.with_router(&mut |router| linked = router.has_backplane());
        let store = Store::Shard {
            requests: VecDeque::new(),
            node,
            link: linked.then(|| Link::new(config, seed)),
        };
        Hub::with_store(config, store)
    }

    fn with_store(config: &ServerConfig, store: Store) -> Hub {
        Hub {
            config: config.clone(),
            conns: BTreeMap::new(),
            users: Users::default(),
            channels: BTreeMap::new(),
            waiting: Waiting::default(),
            api_answers: VecDeque::new(),
            closing: VecDeque::new(),
            node_stats: NodeStats::default(),
            store,
            keys_issued: 0,
            refusals: 0,
            restate_wanted: false,
        }
    }

    /// A connection passed auth as `user`, with the `grants` of its token;
    /// from now on its messages may reach the hub. Repeating it for the same
    /// connection changes nothing.
    pub fn handle_authenticated(&mut self, conn: ConnId, user: &str, grants: Grants) {
        let users = &mut self.users;
        self.conns.entry(conn).or_insert_with(|| Conn {
            user: users.arrive(user),
            grants,
            allowed_by_application: false,
            channels: BTreeSet::new(),
            replies: Replies::default(),
            held: Vec::new(),
        });
    }

    /// Whether `user` may have one more connection on the node: it holds
    /// fewer than `max_connections_per_user`. A shard's node counts the
    /// connection at once, over all shards, so that two shards admitting
    /// the same user at the same time cannot both take the last place;
    /// [`Hub::handle_authenticated`] must follow an admission.
    pub fn admit(&mut self, user: &str) -> bool {
        let limit = self.config.max_connections_per_user;
        match &self.store {
            Store::Shard { node, .. } => {
                let mut admitted = false;
                node.with_router(&mut |router| admitted = router.admit(user, limit));
                admitted
            }
            Store::Memory(_) | Store::External { .. } => self.users.connections(user) < limit,
        }
    }

    /// The user of an authenticated connection.
    pub fn user(&self, conn: ConnId) -> Option<&str> {
        self.conns.get(&conn).map(|state| &*state.user)
    }

    /// A connection refreshed its token: `grants` replace the old ones, and
    /// every subscription they no longer allow ends with an unsolicited
    /// `unsubscribed` (reason `forbidden`), so that nothing more of the
    /// channel reaches the connection.
    pub fn handle_refreshed(
        &mut self,
        now: Instant,
        conn: ConnId,
        grants: Grants,
        outbox: &mut impl Outbox,
    ) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        state.grants = grants;
        let ended: Vec<Channel> = state
            .channels
            .iter()
            .filter(|channel| {
                state.access(&self.config, channel, Operation::Subscribe) == Access::Forbidden
            })
            .cloned()
            .collect();
        for channel in ended {
            self.end_subscription(now, conn, channel, UnsubscribeReason::Forbidden, outbox);
        }
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
        match message {
            ClientMessage::Subscribe { id, channel, since } => {
                let subscription = Subscription {
                    channel,
                    since,
                    data: None,
                };
                self.handle_subscribe(now, conn, id, subscription, outbox);
            }
            ClientMessage::Unsubscribe { id, channel } => {
                self.handle_unsubscribe(now, conn, id, channel, outbox);
            }
            ClientMessage::Publish {
                id,
                idempotency_key,
                channel,
                payload,
            } => {
                let publication = Publication {
                    channel,
                    payload,
                    idempotency_key,
                };
                self.handle_publish(now, conn, id, publication, outbox);
            }
            ClientMessage::Presence { id, channel } => {
                self.handle_presence(now, conn, id, channel, outbox);
            }
            ClientMessage::Auth { .. }
            | ClientMessage::Refresh { .. }
            | ClientMessage::Ping { .. }
            | ClientMessage::Rpc { .. } => {}
        }
    }

    /// The decision `message` of `conn` waits for: the operation and the
    /// channel, when the namespace governing it leaves that operation to
    /// the application (rule `backend`). `None`: the hub decides by itself.
    pub fn question(&self, conn: ConnId, message: &ClientMessage) -> Option<(Operation, Channel)> {
        let (op, channel) = match message {
            ClientMessage::Subscribe { channel, .. } => (Operation::Subscribe, channel),
            ClientMessage::Publish { channel, .. } => (Operation::Publish, channel),
            _ => return None,
        };
        let state = self.conns.get(&conn)?;
        (state.access(&self.config, channel, op) == Access::Ask).then(|| (op, channel.clone()))
    }

    /// A request that waited for the application's decision: handled as
    /// any other when allowed (a subscribe with the application's `data`
    /// in its `subscribed`, a publish with its payload replaced by the
    /// application's `data`), answered with the rejection otherwise.
    pub fn handle_decided(
        &mut self,
        now: Instant,
        conn: ConnId,
        message: ClientMessage,
        answer: Result<Option<Box<RawValue>>, Rejection>,
        outbox: &mut impl Outbox,
    ) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        let data = match answer {
            Ok(data) => data,
            Err(rejection) => return self.reject(conn, message.id().cloned(), rejection, outbox),
        };
        state.allowed_by_application = true;
        match (message, data) {
            (ClientMessage::Subscribe { id, channel, since }, data) => {
                let subscription = Subscription {
                    channel,
                    since,
                    data,
                };
                self.handle_subscribe(now, conn, id, subscription, outbox);
            }
            (
                ClientMessage::Publish {
                    id,
                    idempotency_key,
                    channel,
                    ..
                },
                Some(payload),
            ) => {
                let publication = Publication {
                    channel,
                    payload,
                    idempotency_key,
                };
                self.handle_publish(now, conn, id, publication, outbox);
            }
            (message, _) => self.handle_message(now, conn, message, outbox),
        }
        if let Some(state) = self.conns.get_mut(&conn) {
            state.allowed_by_application = false;
        }
    }

    /// A connection ended, for whatever reason: it leaves every channel
    /// (other subscribers hear `leave` when it was the user's last
    /// connection there) and the hub forgets it.
    pub fn handle_disconnect(&mut self, now: Instant, conn: ConnId, outbox: &mut impl Outbox) {
        let Some(state) = self.conns.remove(&conn) else {
            return;
        };
        self.users.depart(now, &state.user);
        if let Store::Shard { node, .. } = &self.store {
            node.with_router(&mut |router| router.depart(now, &state.user));
        }
        for channel in state.channels {
            self.leave(now, channel, conn, &state.user, outbox);
        }
    }

    /// A publication from the HTTP API: no `sender`, allowed on private
    /// `user:` channels (that is how backends notify one user). An
    /// `idempotency_key` the API already published with on the channel
    /// within the idempotency window gets the original offset back and
    /// publishes nothing; the API's keys are a scope of their own, apart
    /// from every user's. A pending publication's answer comes out of
    /// [`Hub::poll_api_answer`].
    pub fn publish_from_api(
        &mut self,
        now: Instant,
        channel: Channel,
        payload: Box<RawValue>,
        idempotency_key: Option<IdempotencyKey>,
        outbox: &mut impl Outbox,
    ) -> ApiPublish {
        if !self.is_store_up() {
            return ApiPublish::Unavailable;
        }
        let ticket = self.waiting.issue(Waiter::Api);
        let request = StoreRequest::Publish {
            ticket: Some(ticket),
            channel,
            payload,
            sender: None,
            idempotency_key,
        };
        self.request(now, request, outbox);
        match self.take_api_answer(ticket) {
            Some(ApiAnswer::Published(offset)) => ApiPublish::Published { offset },
            Some(_) => ApiPublish::Unavailable,
            None => ApiPublish::Pending { ticket },
        }
    }

    /// The next request for an external store; always `None` in memory mode.
    pub fn poll_store_request(&mut self) -> Option<StoreRequest> {
        match &mut self.store {
            Store::Memory(_) => None,
            Store::External { requests, .. } | Store::Shard { requests, .. } => {
                requests.pop_front()
            }
        }
    }

    /// Whether the store takes requests: always in memory mode, while the
    /// link is up with an external store.
    pub fn is_store_up(&self) -> bool {
        match &self.store {
            Store::Memory(_) | Store::Shard { link: None, .. } => true,
            Store::External { link, .. }
            | Store::Shard {
                link: Some(link), ..
            } => link.is_up(),
        }
    }

    /// How often the link to an external store failed or could not be
    /// opened (the `tether_backplane_errors_total` counter).
    /// A shard tells the node's link's, which every shard shares.
    pub fn store_failures(&self) -> u64 {
        match &self.store {
            Store::Memory(_) => 0,
            Store::External { link, .. } => link.failures(),
            Store::Shard { node, .. } => {
                let mut failures = 0;
                node.with_router(&mut |router| failures = router.store_failures());
                failures
            }
        }
    }

    /// How many requests the store refused while its link stayed up (the
    /// `tether_backplane_request_errors_total` counter).
    /// A shard tells the node's, which every shard shares.
    pub fn store_refusals(&self) -> u64 {
        match &self.store {
            Store::Shard { node, .. } => {
                let mut refusals = 0;
                node.with_router(&mut |router| refusals = router.store_refusals());
                refusals
            }
            Store::Memory(_) | Store::External { .. } => self.refusals,
        }
    }

    /// An event from the store at `now`: a publication to fan out, an
    /// answer to a request, a presence change, or news of the link.
    pub fn handle_store_event(
        &mut self,
        now: Instant,
        event: StoreEvent,
        outbox: &mut impl Outbox,
    ) {
        match event {
            StoreEvent::Publication {
                channel,
                epoch,
                offset,
                frame,
            } => self.on_publication(now, channel, epoch, offset, frame, outbox),
            StoreEvent::Published { ticket, offset } => {
                self.on_published(now, ticket, offset, outbox);
            }
            StoreEvent::Subscribed {
                ticket,
                channel,
                epoch,
                offset,
                recovered,
                replay,
                users,
                presence_version,
            } => {
                let answer = SubscribedAnswer {
                    channel,
                    latest: Position { epoch, offset },
                    recovered,
                    replay,
                    users,
                    presence_version,
                };
                self.on_subscribed(now, ticket, answer, outbox);
            }
            StoreEvent::CaughtUp {
                channel,
                since,
                epoch,
                offset,
                recovered,
                replay,
            } => {
                let answer = CaughtUpAnswer {
                    since,
                    latest: Position { epoch, offset },
                    recovered,
                    replay,
                };
                self.on_caught_up(now, channel, answer, outbox);
            }
            StoreEvent::Presence {
                ticket,
                channel,
                users,
                version,
            } => self.on_presence(now, ticket, channel, users, version, outbox),
            StoreEvent::Joined {
                channel,
                user,
                version,
            } => self.on_presence_change(channel, user, version, true, outbox),
            StoreEvent::Left {
                channel,
                user,
                version,
            } => self.on_presence_change(channel, user, version, false, outbox),
            StoreEvent::Leased { lapsed } => self.on_leased(now, lapsed, outbox),
            StoreEvent::Refused(refusal) => self.on_refusal(now, refusal, outbox),
            StoreEvent::Up => self.on_link_up(now, outbox),
            StoreEvent::Down => self.on_link_down(now, outbox),
            StoreEvent::PresenceStats {
                ticket,
                users,
                connections,
            } => {
                self.answer_api(ticket, ApiAnswer::PresenceStats { users, connections });
            }
            StoreEvent::History {
                ticket,
                epoch,
                offset,
                publications,
            } => {
                let answer = ApiAnswer::History {
                    epoch,
                    offset,
                    publications,
                };
                self.answer_api(ticket, answer);
            }
            StoreEvent::Channels {
                ticket,
                channels,
                total,
            } => {
                self.answer_api(ticket, ApiAnswer::Channels { channels, total });
            }
            StoreEvent::ControlSent { ticket } => {
                self.answer_api(ticket, ApiAnswer::Sent);
            }
            StoreEvent::Control(control) => self.on_control(now, control, outbox),
            StoreEvent::Info { ticket, nodes } => {
                self.answer_api(ticket, ApiAnswer::Info(nodes));
            }
        }
    }

    /// Expires history and idempotency records due at `now` (memory mode);
    /// asks to reopen the link or renews the presence lease when due
    /// (external store). Early or repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.store {
            Store::Memory(memory) => memory.handle_timeout(now),
            Store::External { requests, link } => match link.handle_timeout(now) {
                Some(Due::Connect) => requests.push_back(StoreRequest::Connect),
                Some(Due::Lease(lease)) => requests.push_back(StoreRequest::Lease {
                    lease,
                    node: self.node_stats,
                }),
                None => {}
            },
            // The router reopens the node's link: a shard's link only
            // renews its lease, which brings the router the shard's
            // figures for the node's.
            Store::Shard {
                requests,
                link: Some(link),
                ..
            } => {
                if let Some(Due::Lease(lease)) = link.handle_timeout(now) {
                    requests.push_back(StoreRequest::Lease {
                        lease,
                        node: self.node_stats,
                    });
                }
            }
            Store::Shard { link: None, .. } => {}
        }
    }

    /// When [`Hub::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.store {
            Store::Memory(memory) => memory.poll_timeout(),
            Store::External { link, .. }
            | Store::Shard {
                link: Some(link), ..
            } => link.poll_timeout(),
            Store::Shard { link: None, .. } => None,
        }
    }

    #[cfg(test)]
    /// Authenticated connections the hub knows.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Channels with at least one subscriber on this node (the
    /// `tether_channels` gauge).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The channels holding history and the bytes it holds in this node's
    /// memory store (the `tether_history_channels` and
    /// `tether_history_bytes` gauges); zero with an external store, whose
    /// history is kept elsewhere.
    pub fn history_usage(&self) -> HistoryUsage {
        match &self.store {
            Store::Memory(memory) => HistoryUsage {
                channels: memory.history_channels(),
                bytes: memory.history_bytes(),
            },
            Store::External { .. } | Store::Shard { .. } => HistoryUsage::default(),
        }
    }

    /// For a shard: counts one more connection on the node and returns
    /// `Some(true)`, or `Some(false)`, counting nothing, when the node
    /// holds `limit` already. `None` for a node of its own, which counts
    /// its connections itself.
    pub fn open_socket(&self, limit: usize) -> Option<bool> {
        let Store::Shard { node, .. } = &self.store else {
            return None;
        };
        let mut opened = false;
        node.with_router(&mut |router| opened = router.open_socket(limit));
        Some(opened)
    }

    /// For a shard: a connection [`Hub::open_socket`] counted is gone.
    pub fn close_socket(&self) {
        if let Store::Shard { node, .. } = &self.store {
            node.with_router(&mut |router| router.close_socket());
        }
    }

    /// For a shard: the other shards' figures summed, the channels with a
    /// subscriber on some shard of the node, and what the node's history
    /// holds. `None` for a node of its own.
    pub fn node_figures(&self) -> Option<(Figures, usize, HistoryUsage)> {
        let Store::Shard { node, .. } = &self.store else {
            return None;
        };
        let mut counted = (0, HistoryUsage::default());
        node.with_router(&mut |router| {
            counted = (router.channel_count(), router.history_usage());
        });
        Some((node.others(), counted.0, counted.1))
    }

    /// Hands a request to the store: in memory mode it is carried out and
    /// its events handled before this returns.
    fn request(&mut self, now: Instant, request: StoreRequest, outbox: &mut impl Outbox) {
        match &mut self.store {
            Store::External { requests, .. } | Store::Shard { requests, .. } => {
                requests.push_back(request);
            }
            Store::Memory(memory) => {
                memory.handle_request(now, request);
                while let Some(event) = self.memory_event() {
                    self.handle_store_event(now, event, outbox);
                }
            }
        }
    }

    /// The link to an external store, whether the hub's own or, for a
    /// shard, the node's as the router tells it.
    fn link_mut(&mut self) -> Option<&mut Link> {
        match &mut self.store {
            Store::External { link, .. } => Some(link),
            Store::Shard { link, .. } => link.as_mut(),
            Store::Memory(_) => None,
        }
    }

    fn memory_event(&mut self) -> Option<StoreEvent> {
        match &mut self.store {
            Store::Memory(memory) => memory.poll_event(),
            Store::External { .. } | Store::Shard { .. } => None,
        }
    }

    /// Whether the store is outside the hub: the hub then follows the
    /// channels it has subscribers for.
    fn is_external(&self) -> bool {
        !matches!(self.store, Store::Memory(_))
    }

    /// Whether the node holds state for `channel`: local subscribers or,
    /// in memory mode, the store's epoch, history, idempotency records or
    /// presence. A subscribe to a channel it does not hold brings the
    /// channel into existence on the node.
    fn holds_channel(&self, channel: &Channel) -> bool {
        self.channels.contains_key(channel)
            || match &self.store {
                Store::Memory(memory) => memory.holds(channel),
                Store::External { .. } => false,
                Store::Shard { node, .. } => {
                    let mut holds = false;
                    node.with_router(&mut |router| holds = router.holds(channel));
                    holds
                }
            }
    }

    /// Whether a publish on `channel` (`keyed`: with an idempotency key)
    /// brings the channel into existence on the node: in memory mode, when
    /// the node holds nothing for it and the store keeps the publication.
    /// With a backplane, what a publish leaves is kept in the store, not
    /// on the node.
    fn publish_creates(&self, channel: &Channel, keyed: bool) -> bool {
        match &self.store {
            Store::Memory(memory) => !self.holds_channel(channel) && memory.keeps(keyed),
            Store::External { .. } => false,
            Store::Shard { node, .. } => {
                let mut creates = false;
                node.with_router(&mut |router| {
                    creates = !router.holds(channel) && router.keeps(keyed);
                });
                creates && !self.channels.contains_key(channel)
            }
        }
    }

    /// Counts one channel new to the node that `user` brings into
    /// existence at `now`, or returns `false` when the user brought
    /// `max_new_channels_per_user` already in its window: in this hub's
    /// users, or the node's when the hub is a shard.
    fn create_channel(
        users: &mut Users,
        store: &Store,
        config: &ServerConfig,
        now: Instant,
        user: &str,
    ) -> bool {
        let limit = config.max_new_channels_per_user;
        match store {
            Store::Shard { node, .. } => {
                let mut created = false;
                node.with_router(&mut |router| created = router.create_channel(now, user, limit));
                created
            }
            Store::Memory(_) | Store::External { .. } => users.create_channel(now, user, limit),
        }
    }

    /// Sends a reply known now, in the connection's reply order.
    /// Answers a request of `conn` with the application's rejection, in
    /// the order of its replies.
    pub fn reject(
        &mut self,
        conn: ConnId,
        id: Option<RequestId>,
        rejection: Rejection,
        outbox: &mut impl Outbox,
    ) {
        let (code, message) = rejection.into_wire();
        self.send_reply(conn, error_frame(id, code, &message), outbox);
    }

    /// Answers an `rpc` of `conn` with the application's result, in the
    /// order of its replies.
    pub fn answer_rpc(
        &mut self,
        conn: ConnId,
        id: RequestId,
        data: Box<RawValue>,
        outbox: &mut impl Outbox,
    ) {
        let frame = frame_of(&ServerMessage::RpcResult { id, data });
        self.send_reply(conn, frame, outbox);
    }

    fn send_reply(&mut self, conn: ConnId, frame: Bytes, outbox: &mut impl Outbox) {
        if let Some(state) = self.conns.get_mut(&conn) {
            state.replies.send(conn, frame, outbox);
        }
    }

    /// A connection of `user` leaves `channel`: the store hears it while
    /// the link is up (a rejoin corrects it otherwise), and the node stops
    /// following a channel with no local subscriber left.
    fn leave(
        &mut self,
        now: Instant,
        channel: Channel,
        conn: ConnId,
        user: &str,
        outbox: &mut impl Outbox,
    ) {
        let emptied = self.remove_subscriber(&channel, conn);
        if !self.is_store_up() {
            return;
        }
        let leave = StoreRequest::Leave {
            channel: channel.clone(),
            user: user.to_owned(),
        };
        self.request(now, leave, outbox);
        if emptied && self.is_external() {
            self.request(now, StoreRequest::Unfollow { channel }, outbox);
        }
    }

    /// Sends the answer to `ticket` in the connection's reply order, if the
    /// connection is still there; then takes the held answers whose turn
    /// has come.
    fn fulfil(
        &mut self,
        now: Instant,
        conn: ConnId,
        ticket: Ticket,
        frames: Vec<Bytes>,
        outbox: &mut impl Outbox,
    ) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        state.replies.fulfil(conn, ticket, frames, outbox);
        if state.held.is_empty() {
            return;
        }
        state.held.retain(|(held, _)| *held != ticket);
        while let Some(state) = self.conns.get_mut(&conn)
            && let Some(next) = state.replies.first_waiting()
            && let Some(at) = state.held.iter().position(|(held, _)| *held == next)
        {
            let (ticket, answer) = state.held.remove(at);
            self.on_subscribed(now, ticket, answer, outbox);
        }
    }

    /// The local channel `channel`, created with a fresh key if needed.
    fn local_channel(&mut self, channel: &Channel) -> &mut LocalChannel {
        if !self.channels.contains_key(channel) {
            self.keys_issued += 1;
            let key = CoalesceKey(self.keys_issued);
            let latest_only = self.config.is_latest_only(channel.as_str());
            self.channels
                .insert(channel.clone(), LocalChannel::new(key, latest_only));
        }
        self.channels
            .get_mut(channel)
            .expect("the channel was just inserted")
    }

    /// Drops a subscriber, and the local channel with its last one; true
    /// when the channel was dropped.
    fn remove_subscriber(&mut self, channel: &Channel, conn: ConnId) -> bool {
        let emptied = self
            .channels
            .get_mut(channel)
            .is_some_and(|local| local.remove(conn));
        if emptied {
            self.channels.remove(channel);
        }
        emptied
    }
}

/// The message of every `UNAVAILABLE` error.
const UNAVAILABLE: &str = "the backplane is unavailable; retry later";

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
