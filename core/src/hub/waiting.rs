//! The requests that wait for the store's answer, by ticket.

use serde_json::value::RawValue;
use std::collections::BTreeMap;

use super::store::Ticket;
use crate::envelope::{Channel, Position, RequestId};
use crate::ids::ConnId;

/// Who waits for the answer to a ticket.
#[derive(Debug)]
pub(super) enum Waiter {
    /// A `publish` with an id, or a `presence`.
    Conn { conn: ConnId, id: Option<RequestId> },
    /// A `subscribe`, which may have to be asked again.
    Subscribe {
        conn: ConnId,
        id: Option<RequestId>,
        channel: Channel,
        since: Option<Position>,
        /// The subscribe asked to recover, and may not: the reply says
        /// `recovered: false` and nothing is replayed.
        history_refused: bool,
        /// What the application gave with its consent, for `subscribed`.
        data: Option<Box<RawValue>>,
    },
    /// A request or publication of the HTTP API.
    Api,
    /// A presence snapshot for every local subscriber of the channel, after
    /// the backplane link came back.
    Refresh,
}

/// The tickets issued so far and the waiters of those not yet answered.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    issued: u64,
    waiters: BTreeMap<Ticket, Waiter>,
}

impl Waiting {
    /// A fresh ticket, whose answer `waiter` waits for.
    pub(super) fn issue(&mut self, waiter: Waiter) -> Ticket {
        self.issued += 1;
        let ticket = Ticket(self.issued);
        self.waiters.insert(ticket, waiter);
        ticket
    }

    /// The waiter of `ticket`, which stops waiting.
    pub(super) fn remove(&mut self, ticket: Ticket) -> Option<Waiter> {
        self.waiters.remove(&ticket)
    }

    /// The waiter of `ticket`, which still waits.
    pub(super) fn get(&self, ticket: Ticket) -> Option<&Waiter> {
        self.waiters.get(&ticket)
    }

    /// `waiter` waits for `ticket` again: the answer was not the one it
    /// waits for, or the request is asked again.
    pub(super) fn restore(&mut self, ticket: Ticket, waiter: Waiter) {
        self.waiters.insert(ticket, waiter);
    }

    /// Every waiter, which all stop waiting.
    pub(super) fn take_all(&mut self) -> BTreeMap<Ticket, Waiter> {
        std::mem::take(&mut self.waiters)
    }

    /// Whether no request waits.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}
