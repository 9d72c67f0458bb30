//! How the hub's frames reach the connections: an outbox lent to the hub
//! for one call, which queues each frame on its connection and notes the
//! connections a frame closed (4008) for the node to process. A
//! connection that agreed on permessage-deflate gets a publication's
//! compressed frame, made once for all of them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use bytes::Bytes;

use crate::config::ServerConfig;
use crate::hooks::Notification;
use crate::hub::Outbox;
use crate::ids::ConnId;
use crate::metrics::Counters;
use crate::queue::{CoalesceKey, FrameAdmission};
use crate::time::Instant;

use super::Output;
use super::compressed::Compressed;
use super::slots::{Slot, entry_mut, schedule_and_wake};

/// Delivers the hub's frames into the connections' queues.
pub(super) struct NodeOutbox<'a> {
    pub(super) slots: &'a mut [Slot],
    pub(super) config: &'a ServerConfig,
    pub(super) now: Instant,
    pub(super) work: &'a mut Vec<ConnId>,
    pub(super) timers: &'a mut BinaryHeap<Reverse<(Instant, ConnId)>>,
    pub(super) events: &'a mut VecDeque<Output>,
    pub(super) counters: &'a mut Counters,
    /// The compressed frame of the publication being delivered.
    pub(super) compressed: Compressed<'a>,
}

impl NodeOutbox<'_> {
    /// After a frame went to `conn`: a connection the frame closed (4008)
    /// has events to process; any other only needs its deadline and writer.
    fn after_delivery(&mut self, conn: ConnId) {
        let Some(entry) = entry_mut(self.slots, conn) else {
            return;
        };
        if entry.conn.is_open() {
            schedule_and_wake(conn, entry, self.timers, self.events);
        } else {
            self.work.push(conn);
        }
    }
}

impl Outbox for NodeOutbox<'_> {
    fn notify(&mut self, notification: Notification) {
        self.events.push_back(Output::Notify(notification));
    }

    fn send_control(&mut self, conn: ConnId, frame: Bytes) {
        if let Some(entry) = entry_mut(self.slots, conn) {
            entry.conn.send_control(self.config, self.now, frame);
            self.after_delivery(conn);
        }
    }

    fn send_publication(&mut self, conn: ConnId, frame: &Bytes, latest_only: Option<CoalesceKey>) {
        let Some(entry) = entry_mut(self.slots, conn) else {
            return;
        };
        let frame = if entry.conn.deflates() {
            &self
                .compressed
                .frame(frame, self.config.compression_min_size)
        } else {
            frame
        };
        let admission = entry
            .conn
            .send_publication(self.config, self.now, frame, latest_only);
        if admission == FrameAdmission::Dropped {
            self.counters.messages_dropped_total += 1;
        }
        self.after_delivery(conn);
    }
}
