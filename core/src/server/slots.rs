//! The node's table of connections: a slot per connection, reused under a
//! new generation so that a [`ConnId`] is never reused, and what the node
//! keeps beside each connection's machine.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use bytes::Bytes;

use crate::auth::Identity;
use crate::connection::{Connection, Transport};
use crate::envelope::ClientMessage;
use crate::hooks::DecisionId;
use crate::http::HttpRequest;
use crate::ids::ConnId;
use crate::time::Instant;

use super::Output;

/// A connection and what the node knows about it.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) conn: Connection,
    /// Who the accepted `auth` proved, until the hub takes it: boxed, so
    /// that a connection keeps one pointer for what it needs once.
    pub(super) identity: Option<Box<Identity>>,
    /// A request waiting for a [`Decision::Channel`](super::Decision::Channel)
    /// or [`Decision::Rpc`](super::Decision::Rpc), boxed for the same reason.
    pub(super) deciding: Option<Box<Deciding>>,
    /// The [`Decision::Authenticate`](super::Decision::Authenticate) out
    /// for this connection's `auth` or `refresh`, whose verdict counts.
    pub(super) authenticating: Option<DecisionId>,
    /// The connection info the application attached at `auth`.
    pub(super) info: Option<Box<str>>,
    /// Refused at accept: not counted among the node's connections.
    pub(super) refused: bool,
    /// A `POST /api/publish` waiting for its key check.
    pub(super) api_request: Option<HttpRequest>,
    /// The deadline this connection has in the timer heap, if any.
    pub(super) scheduled: Option<Instant>,
    /// A `Wake` is out and no transmit has happened since.
    pub(super) woken: bool,
    /// The order to close the socket now went out (once, even to a writer
    /// that is stuck on a peer that does not read).
    pub(super) close_now_signalled: bool,
    pub(super) upgraded: bool,
}

/// A request that waits for the application's decision, and what the
/// connection sent behind it, in order, until it is decided.
#[derive(Debug)]
pub(super) struct Deciding {
    /// The decision out for `message`, whose verdict counts.
    pub(super) id: DecisionId,
    pub(super) message: ClientMessage,
    pub(super) held: VecDeque<Held>,
}

/// A request, a reply the connection made itself, or a `refresh` (its
/// token), behind a request that waits for the application.
#[derive(Debug)]
pub(super) enum Held {
    Request(ClientMessage),
    Reply(Bytes),
    Refresh(String),
}

#[derive(Debug, Default)]
pub(super) struct Slot {
    pub(super) generation: u32,
    pub(super) entry: Option<Entry>,
}

pub(super) fn entry(slots: &[Slot], conn: ConnId) -> Option<&Entry> {
    let slot = slots.get(conn.0 as u32 as usize)?;
    (slot.generation == (conn.0 >> 32) as u32).then_some(slot.entry.as_ref())?
}

pub(super) fn entry_mut(slots: &mut [Slot], conn: ConnId) -> Option<&mut Entry> {
    let slot = slots.get_mut(conn.0 as u32 as usize)?;
    (slot.generation == (conn.0 >> 32) as u32).then_some(slot.entry.as_mut())?
}

/// Puts `conn`'s next deadline in the heap if it is earlier than the one
/// there, and wakes its writer if it has something to write or close.
pub(super) fn schedule_and_wake(
    conn: ConnId,
    entry: &mut Entry,
    timers: &mut BinaryHeap<Reverse<(Instant, ConnId)>>,
    events: &mut VecDeque<Output>,
) {
    if let Some(at) = entry.conn.poll_timeout()
        && entry.scheduled.is_none_or(|scheduled| at < scheduled)
    {
        entry.scheduled = Some(at);
        timers.push(Reverse((at, conn)));
    }
    let transport = entry.conn.transport();
    let close_now = transport.closes_now() && !entry.close_now_signalled;
    let wants_io = entry.conn.queued_bytes() > 0 || transport != Transport::Open;
    if close_now || (wants_io && !entry.woken) {
        entry.woken = true;
        entry.close_now_signalled |= transport.closes_now();
        events.push_back(Output::Wake(conn));
    }
}
