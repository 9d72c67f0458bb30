//! The seam between the hub and the store that sequences publications, keeps
//! history and counts presence: plain values both ways.
//!
//! The hub sends [`StoreRequest`]s and reacts to [`StoreEvent`]s. In memory
//! mode a [`super::MemoryStore`] answers inside the same call; with a shared
//! backplane an adapter carries the requests to it and feeds its events back
//! through [`super::Hub::handle_store_event`]. Nothing here refers to a
//! connection: a store knows channels, users and tickets only.
//!
//! A shared store is reached over a link that can fail. The hub owns that
//! link's life ([`StoreRequest::Connect`], [`StoreEvent::Up`],
//! [`StoreEvent::Down`]), its retry schedule and its presence lease; the
//! adapter only opens connections and carries requests. A store carries the
//! requests out in the order it receives them, each taking effect after the
//! one before: in particular a [`StoreRequest::Follow`] is in force before
//! the next request is carried out.

use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::access::ChannelPattern;
use crate::envelope::{Channel, IdempotencyKey, Position};

/// Names a request that awaits exactly one answer from the store, so the hub
/// can route the answer to whoever asked. Never reused within a hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub(crate) u64);

impl Ticket {
    /// A ticket with the number `n`, for tests of a store that play the
    /// hub's part; a hub numbers its own.
    #[cfg(feature = "internals")]
    pub fn new(n: u64) -> Ticket {
        Ticket(n)
    }
}

/// What the hub asks of the store.
///
/// A store must answer the requests that carry a ticket. Its answers and its
/// other events may reach the hub by different paths, in any order between
/// the paths, as long as each path keeps the store's order: the hub orders
/// publications by their offsets and presence by [presence
/// versions](StoreEvent::Joined). An answer reflects every
/// [`StoreEvent::Publication`] of the channel produced before it and none
/// produced after it.
#[derive(Clone, Debug)]
pub enum StoreRequest {
    /// Assign the channel's next offset to a publication, keep it in the
    /// history, and deliver it to every node as a
    /// [`StoreEvent::Publication`]. With a ticket, answer
    /// [`StoreEvent::Published`]. When `idempotency_key` is given and the
    /// same publisher (the `sender`, or the HTTP API when there is none)
    /// already published with that key on the channel within the
    /// idempotency window, publish nothing and answer with the original
    /// offset.
    Publish {
        /// Present when the publisher waits for the offset.
        ticket: Option<Ticket>,
        /// The channel published to.
        channel: Channel,
        /// The payload, raw.
        payload: Box<RawValue>,
        /// The publishing user; `None` for the HTTP API.
        sender: Option<String>,
        /// The publisher's idempotency key, which makes a retry
        /// recognisable.
        idempotency_key: Option<IdempotencyKey>,
    },
    /// Answer [`StoreEvent::Subscribed`] for a new or repeated subscription:
    /// the channel's epoch and offset, the replay after `since` and the
    /// presence snapshot.
    Subscribe {
        /// Routes the answer.
        ticket: Ticket,
        /// The channel subscribed to.
        channel: Channel,
        /// The last position the client saw, when it asks for recovery.
        since: Option<Position>,
    },
    /// Answer [`StoreEvent::Presence`] with the channel's users.
    Presence {
        /// Routes the answer.
        ticket: Ticket,
        /// The channel asked about.
        channel: Channel,
    },
    /// One more connection of `user` is in `channel`; when it is the user's
    /// first, every node hears [`StoreEvent::Joined`].
    Join {
        /// The channel joined.
        channel: Channel,
        /// The user whose connection joined.
        user: String,
    },
    /// One connection of `user` left `channel`; when it was the user's last,
    /// every node hears [`StoreEvent::Left`].
    Leave {
        /// The channel left.
        channel: Channel,
        /// The user whose connection left.
        user: String,
    },
    /// Open the link to a shared store (again); answer [`StoreEvent::Up`]
    /// once it carries requests, [`StoreEvent::Down`] if it cannot.
    Connect,
    /// From now on deliver the channel's publications and presence changes
    /// to this node: it has local subscribers.
    Follow {
        /// The channel.
        channel: Channel,
    },
    /// Stop delivering the channel to this node: its last local subscriber
    /// left.
    Unfollow {
        /// The channel.
        channel: Channel,
    },
    /// Answer [`StoreEvent::CaughtUp`] with the publications after `since`:
    /// the node saw a gap in the channel's offsets, or came back after an
    /// outage, and must deliver what its subscribers missed.
    CatchUp {
        /// The channel.
        channel: Channel,
        /// The last publication the node delivered.
        since: Position,
    },
    /// Keep this node's presence entries alive for `lease` from now, and
    /// remove those of nodes whose lease ran out, announcing their users'
    /// departures ([`StoreEvent::Left`]) on every node. Answer
    /// [`StoreEvent::Leased`]. The node registers itself with it: `node`
    /// is what [`StoreRequest::Info`] tells of it until the lease ends.
    Lease {
        /// How long the entries live without another lease.
        lease: Duration,
        /// The node's figures now.
        node: NodeStats,
    },
    /// Make this node's presence entries exactly `members`, announcing the
    /// users who arrive or leave through the change: after an outage the
    /// store may have lost entries, or kept ones the node no longer has.
    Rejoin {
        /// Every channel, user and connection count of the node.
        members: Vec<Member>,
    },
    /// Answer [`StoreEvent::PresenceStats`]: how many users and
    /// connections are in the channel, over all nodes.
    PresenceStats {
        /// Routes the answer.
        ticket: Ticket,
        /// The channel asked about.
        channel: Channel,
    },
    /// Answer [`StoreEvent::History`] with what the channel's history
    /// holds after `since` (all of it when `since` is of another epoch or
    /// absent): the oldest `limit` publications, or with `reverse` the
    /// newest `limit`, newest first. Creates the channel's epoch if it has
    /// none, as a subscription does.
    History {
        /// Routes the answer.
        ticket: Ticket,
        /// The channel asked about.
        channel: Channel,
        /// Only publications after this position.
        since: Option<Position>,
        /// At most this many publications.
        limit: usize,
        /// Newest first.
        reverse: bool,
    },
    /// Answer [`StoreEvent::Channels`] with the channels that have a user
    /// present on some node (every subscriber is present), those matching
    /// `pattern` only when it is given: at most `limit` of them, in name
    /// order, and how many matched.
    Channels {
        /// Routes the answer.
        ticket: Ticket,
        /// Only the channels it matches.
        pattern: Option<ChannelPattern>,
        /// At most this many names.
        limit: usize,
    },
    /// Deliver `control` to every node, this one included, as
    /// [`StoreEvent::Control`], and answer [`StoreEvent::ControlSent`] once
    /// it went out.
    Control {
        /// Routes the answer.
        ticket: Ticket,
        /// What every node does.
        control: Control,
    },
    /// Answer [`StoreEvent::Info`] with every node whose lease runs, this
    /// one with the figures `node` gives (the others as of their last
    /// lease).
    Info {
        /// Routes the answer.
        ticket: Ticket,
        /// This node's figures now.
        node: NodeStats,
    },
}

/// An order from the HTTP API that every node carries out on its own
/// connections ([`StoreRequest::Control`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Close every connection of `user` with `code` and `reason`.
    Disconnect {
        /// The user.
        user: String,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// End every subscription of `user` to `channel`, telling each
    /// connection `unsubscribed` with reason `server`.
    Unsubscribe {
        /// The user.
        user: String,
        /// The channel.
        channel: Channel,
    },
}

/// A node's figures, as it registers them with its lease
/// ([`StoreRequest::Lease`]) and reports them when it asks
/// ([`StoreRequest::Info`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Open WebSocket connections (the `tether_connections` gauge).
    pub connections: u64,
    /// Channels with a subscriber on the node (the `tether_channels`
    /// gauge).
    pub channels: u64,
    /// How long the node has been running.
    pub uptime: Duration,
}

/// One node of [`StoreEvent::Info`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's id (its [`node_id`](crate::Server::node_id)).
    pub id: String,
    /// Its figures: as of its last lease, its uptime carried on to the
    /// store's now.
    pub stats: NodeStats,
}

/// One user's connections in one channel on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The channel.
    pub channel: Channel,
    /// The user.
    pub user: String,
    /// How many of the user's connections on this node are in the channel.
    pub connections: u32,
}

/// What the store tells the hub.
#[derive(Clone, Debug)]
pub enum StoreEvent {
    /// A sequenced publication for every local subscriber of the channel:
    /// the complete WebSocket frame of its `message`, encoded once.
    Publication {
        /// The channel published to.
        channel: Channel,
        /// The channel's epoch when it was published.
        epoch: String,
        /// The offset it was given.
        offset: u64,
        /// The frame every subscriber gets, shared.
        frame: Bytes,
    },
    /// The answer to a [`StoreRequest::Publish`] with a ticket.
    Published {
        /// The request's ticket.
        ticket: Ticket,
        /// The publication's offset (the original one for a retry).
        offset: u64,
    },
    /// The answer to a [`StoreRequest::Subscribe`].
    Subscribed {
        /// The request's ticket.
        ticket: Ticket,
        /// The channel subscribed to.
        channel: Channel,
        /// The channel's epoch.
        epoch: String,
        /// The channel's latest offset.
        offset: u64,
        /// With `since`: whether `replay` covers every missed publication.
        recovered: Option<bool>,
        /// The frames of the publications after `since`, in order; empty
        /// unless `recovered` is `Some(true)`.
        replay: Vec<Bytes>,
        /// The users present, sorted, each once.
        users: Vec<String>,
        /// The presence version `users` reflects.
        presence_version: u64,
    },
    /// The answer to a [`StoreRequest::Presence`].
    Presence {
        /// The request's ticket.
        ticket: Ticket,
        /// The channel described.
        channel: Channel,
        /// The users present, sorted, each once.
        users: Vec<String>,
        /// The presence version `users` reflects.
        version: u64,
    },
    /// A user's first connection joined the channel.
    ///
    /// Every presence change ([`StoreEvent::Joined`], [`StoreEvent::Left`])
    /// carries a version greater than that of every change before it in the
    /// store, and every presence snapshot tells the version of the last
    /// change it reflects. A node that hears a change and a snapshot by
    /// different paths can then tell whether the snapshot already holds the
    /// change.
    Joined {
        /// The channel.
        channel: Channel,
        /// The user.
        user: String,
        /// The change's presence version.
        version: u64,
    },
    /// A user's last connection left the channel.
    Left {
        /// The channel.
        channel: Channel,
        /// The user.
        user: String,
        /// The change's presence version.
        version: u64,
    },
    /// The answer to a [`StoreRequest::CatchUp`].
    CaughtUp {
        /// The channel.
        channel: Channel,
        /// The position the request asked from.
        since: Position,
        /// The channel's epoch now.
        epoch: String,
        /// The channel's latest offset.
        offset: u64,
        /// Whether `replay` holds every publication after `since`: false for
        /// another epoch or a gap the history no longer covers.
        recovered: bool,
        /// The frames of the publications after `since` up to `offset`, in
        /// order; empty unless `recovered`.
        replay: Vec<Bytes>,
    },
    /// The answer to a [`StoreRequest::Lease`].
    Leased {
        /// The store held no lease of this node: it is new to the store, or
        /// its entries were removed as those of a dead node. The node then
        /// rejoins.
        lapsed: bool,
    },
    /// The link carries requests: after a [`StoreRequest::Connect`].
    Up,
    /// The link failed, or a [`StoreRequest::Connect`] could not open it.
    /// Requests not yet answered are lost, and so may be the requests
    /// without answers (publications, joins, leaves) sent since the last
    /// answer; nothing more arrives from the failed link.
    Down,
    /// The store refused one request but the link carries on: Redis
    /// answered it with an error, such as `-OOM` when it is full. The
    /// request may not have taken effect; later requests are carried out.
    Refused(Refusal),
    /// The answer to a [`StoreRequest::PresenceStats`].
    PresenceStats {
        /// The request's ticket.
        ticket: Ticket,
        /// Users present in the channel.
        users: u64,
        /// Their connections in the channel, over all nodes.
        connections: u64,
    },
    /// The answer to a [`StoreRequest::History`].
    History {
        /// The request's ticket.
        ticket: Ticket,
        /// The channel's epoch.
        epoch: String,
        /// The channel's latest offset.
        offset: u64,
        /// The JSON text of each publication's `message`, in the order
        /// asked for.
        publications: Vec<Bytes>,
    },
    /// The answer to a [`StoreRequest::Channels`].
    Channels {
        /// The request's ticket.
        ticket: Ticket,
        /// The matching channels, in name order, at most the limit.
        channels: Vec<Channel>,
        /// How many channels matched.
        total: u64,
    },
    /// The answer to a [`StoreRequest::Control`]: every node was sent it.
    ControlSent {
        /// The request's ticket.
        ticket: Ticket,
    },
    /// An order from any node's HTTP API (this one's included) for this
    /// node's connections.
    Control(Control),
    /// The answer to a [`StoreRequest::Info`].
    Info {
        /// The request's ticket.
        ticket: Ticket,
        /// Every live node, in id order.
        nodes: Vec<NodeInfo>,
    },
}

/// Which request a [`StoreEvent::Refused`] stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The request with this ticket: whoever waits for it is answered
    /// `UNAVAILABLE`.
    Ticket(Ticket),
    /// A [`StoreRequest::CatchUp`] of this channel, which the node asks
    /// again later.
    CatchUp(Channel),
    /// A request that awaits no answer: a publication without a ticket, a
    /// presence change, a lease renewal or a rejoin.
    Unanswered,
}

impl StoreEvent {
    /// A user's first arrival in a channel (`joined`) or last departure, at
    /// presence `version`: [`StoreEvent::Joined`] or [`StoreEvent::Left`].
    pub fn presence_change(channel: Channel, user: String, joined: bool, version: u64) -> Self {
        if joined {
            StoreEvent::Joined {
                channel,
                user,
                version,
            }
        } else {
            StoreEvent::Left {
                channel,
                user,
                version,
            }
        }
    }
}
