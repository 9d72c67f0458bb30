//! Every history entry of a node's memory store in one order, oldest first,
//! with the bytes they hold: the order in which history expires and in
//! which it is evicted when the node's bounds are exceeded.
//!
//! Entries are numbered as they are stored. All entries live for the same
//! `history_ttl`, so the oldest entry is also the first to expire, and a
//! channel's entries are in the same order here as in its own history: the
//! oldest entry of the node is always the front of its channel's history.
//! Inserting and removing cost O(log n); the index holds live entries only.

use std::collections::BTreeMap;

use crate::envelope::Channel;
use crate::time::Instant;

/// The bookkeeping of one entry beyond its frame, as counted against
/// `history_max_bytes`: its slot in the channel's history (with the slack
/// of a growing ring buffer), the shared frame's header, its node in this
/// index and the allocator's overhead. The channel's name, copied into the
/// index, is counted on top.
pub(super) const ENTRY_OVERHEAD: usize = 256;

/// The node-wide order of history entries and their bytes.
#[derive(Debug, Default)]
pub(super) struct HistoryIndex {
    entries: BTreeMap<u64, Indexed>,
    stored: u64,
    bytes: usize,
}

#[derive(Debug)]
struct Indexed {
    channel: Channel,
    expires: Instant,
    bytes: usize,
}

impl HistoryIndex {
    /// Records an entry of `channel` holding a frame of `frame_len` bytes,
    /// expiring at `expires`; returns its number.
    pub(super) fn insert(&mut self, channel: &Channel, expires: Instant, frame_len: usize) -> u64 {
        self.stored += 1;
        let bytes = entry_bytes(channel, frame_len);
        self.bytes += bytes;
        let indexed = Indexed {
            channel: channel.clone(),
            expires,
            bytes,
        };
        self.entries.insert(self.stored, indexed);
        self.stored
    }

    /// Forgets entry `number`, which left its channel's history.
    pub(super) fn remove(&mut self, number: u64) {
        if let Some(indexed) = self.entries.remove(&number) {
            self.bytes -= indexed.bytes;
        }
    }

    /// The oldest entry: its number and channel.
    pub(super) fn oldest(&self) -> Option<(u64, &Channel)> {
        self.entries
            .first_key_value()
            .map(|(number, indexed)| (*number, &indexed.channel))
    }

    /// The oldest entry when it has expired at `now`.
    pub(super) fn expired(&self, now: Instant) -> Option<(u64, &Channel)> {
        self.entries
            .first_key_value()
            .filter(|(_, indexed)| indexed.expires <= now)
            .map(|(number, indexed)| (*number, &indexed.channel))
    }

    /// When the oldest entry expires.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.entries
            .first_key_value()
            .map(|(_, indexed)| indexed.expires)
    }

    /// The bytes all entries hold, as counted against `history_max_bytes`.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// What one entry of `channel` with a frame of `frame_len` bytes counts.
pub(super) fn entry_bytes(channel: &Channel, frame_len: usize) -> usize {
    frame_len + channel.as_str().len() + ENTRY_OVERHEAD
}
