//! The seam between the hub and the store that sequences publications, keeps
//! history and counts presence: plain values both ways.
//!
//! The hub sends [`StoreRequest`]s and reacts to [`StoreEvent`]s. In memory
//! mode a [`super::MemoryStore`] answers inside the same call; with a shared
//! backplane an adapter carries the requests to it and feeds its events back
//! through [`super::Hub::handle_store_event`]. Nothing here refers to a
//! connection: a store knows channels, users and tickets only.

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::envelope::{Channel, Position, RequestId};

/// Names a request that awaits exactly one answer from the store, so the hub
/// can route the answer to whoever asked. Never reused within a hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// What the hub asks of the store.
///
/// A store must answer the requests that carry a ticket, and must produce its
/// events in one order consistent with its sequencing: an answer reflects
/// every [`StoreEvent::Publication`] of the channel produced before it and
/// none produced after it.
#[derive(Clone, Debug)]
pub enum StoreRequest {
    /// Assign the channel's next offset to a publication, keep it in the
    /// history, and deliver it to every node as a
    /// [`StoreEvent::Publication`]. With a ticket, answer
    /// [`StoreEvent::Published`]. When `sender` and `id` are both given and
    /// that user already published that id on the channel within the
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
        /// The client's request id, which makes a retry recognisable.
        id: Option<RequestId>,
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
}

/// What the store tells the hub.
#[derive(Clone, Debug)]
pub enum StoreEvent {
    /// A sequenced publication for every local subscriber of the channel:
    /// the complete WebSocket frame of its `message`, encoded once.
    Publication {
        /// The channel published to.
        channel: Channel,
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
    },
    /// The answer to a [`StoreRequest::Presence`].
    Presence {
        /// The request's ticket.
        ticket: Ticket,
        /// The channel described.
        channel: Channel,
        /// The users present, sorted, each once.
        users: Vec<String>,
    },
    /// A user's first connection joined the channel.
    Joined {
        /// The channel.
        channel: Channel,
        /// The user.
        user: String,
    },
    /// A user's last connection left the channel.
    Left {
        /// The channel.
        channel: Channel,
        /// The user.
        user: String,
    },
}
