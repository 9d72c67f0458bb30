//! A connection's replies, kept in the order of its requests.
//!
//! Some replies are known at once (an error, `unsubscribed`), others only
//! when the store answers (`ack`, `subscribed`, `presence`). Each request
//! that waits for the store reserves a slot; a reply known at once goes out
//! immediately only when no slot is waiting before it. In memory mode the
//! store answers within the same call, so nothing stays queued.

use std::collections::VecDeque;

use bytes::Bytes;

use super::Outbox;
use super::store::Ticket;
use crate::ids::ConnId;

/// The replies of one connection that are waiting for an earlier one.
#[derive(Debug, Default)]
pub(super) struct Replies {
    slots: VecDeque<Slot>,
}

#[derive(Debug)]
enum Slot {
    Waiting(Ticket),
    Ready(Vec<Bytes>),
}

impl Replies {
    /// Reserves the place of the answer to `ticket`.
    pub(super) fn wait(&mut self, ticket: Ticket) {
        self.slots.push_back(Slot::Waiting(ticket));
    }

    /// Sends a reply known now, or queues it behind the replies still waiting.
    pub(super) fn send(&mut self, conn: ConnId, frame: Bytes, outbox: &mut impl Outbox) {
        if self.slots.is_empty() {
            outbox.send_control(conn, frame);
        } else {
            self.slots.push_back(Slot::Ready(vec![frame]));
        }
    }

    /// Whether the reply to an earlier request still waits ahead of the
    /// answer to `ticket`.
    pub(super) fn waits_before(&self, ticket: Ticket) -> bool {
        self.slots
            .iter()
            .take_while(|slot| !matches!(slot, Slot::Waiting(waiting) if *waiting == ticket))
            .any(|slot| matches!(slot, Slot::Waiting(_)))
    }

    /// The ticket whose answer the first reply still waiting waits for.
    pub(super) fn first_waiting(&self) -> Option<Ticket> {
        self.slots.iter().find_map(|slot| match slot {
            Slot::Waiting(ticket) => Some(*ticket),
            Slot::Ready(_) => None,
        })
    }

    /// Fills the slot of `ticket` and sends every reply no longer waiting
    /// behind another.
    pub(super) fn fulfil(
        &mut self,
        conn: ConnId,
        ticket: Ticket,
        frames: Vec<Bytes>,
        outbox: &mut impl Outbox,
    ) {
        if let Some(slot) = self
            .slots
            .iter_mut()
            .find(|slot| matches!(slot, Slot::Waiting(waiting) if *waiting == ticket))
        {
            *slot = Slot::Ready(frames);
        }
        while matches!(self.slots.front(), Some(Slot::Ready(_))) {
            let Some(Slot::Ready(frames)) = self.slots.pop_front() else {
                break;
            };
            for frame in frames {
                outbox.send_control(conn, frame);
            }
        }
    }
}
