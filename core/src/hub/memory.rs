//! The in-memory store of a single node: sequencer, history, idempotency
//! records and presence counts, answering [`StoreRequest`]s synchronously.
//! Its link never fails: [`StoreRequest::Connect`] is answered
//! [`StoreEvent::Up`] and a lease never lapses; routing requests
//! ([`StoreRequest::Follow`], [`StoreRequest::Unfollow`]) mean nothing to a
//! store inside the node.
//!
//! Per channel it keeps an epoch, the last offset, the last `history_size`
//! publication frames (each until `history_ttl` after it was published), the
//! idempotency keys of each publisher (each for `idempotency_window`) and
//! the number of connections of each present user. A channel with no present
//! user, no history and no idempotency record is forgotten; the next use
//! starts it again under a new epoch, which is exactly when its history was
//! lost.
//!
//! Bounds: over all channels the history holds at most `history_max_bytes`
//! (frames and bookkeeping, see [`super::history_index`]) in at most
//! `history_max_channels` channels. Storing an entry beyond either bound
//! evicts the node's oldest entries until both hold again, so a flood of
//! publications to ever-new channels costs bounded memory. An evicted entry
//! is lost like an expired one: recovery past it answers `recovered:false`.
//!
//! Expiry: history entries expire in the order they were stored, so the
//! history index is also their expiry queue. Every idempotency record that
//! expires pushes `(deadline, channel)` onto a queue in deadline order as long
//! as time does not go backwards. A timeout drops the due entries and
//! records and forgets the channels left with nothing. Every request first
//! drops the history due at its instant, and records are pruned before they
//! are read, so an answer at an instant never depends on whether the timeout
//! at that instant was handled first.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::history_index::HistoryIndex;
use super::store::{Member, NodeInfo, StoreEvent, StoreRequest};
use crate::access::ChannelPattern;
use crate::config::ServerConfig;
use crate::envelope::{Channel, IdempotencyKey, Position, encode_publication};
use crate::frame::{text_frame, text_frame_payload};
use crate::time::Instant;

/// A node's own sequencer, history and presence store.
#[derive(Debug)]
pub struct MemoryStore {
    epoch_prefix: String,
    epochs_issued: u64,
    history_size: usize,
    history_ttl: Duration,
    history_max_bytes: usize,
    history_max_channels: usize,
    idempotency_window: Duration,
    idempotency_max_records: usize,
    channels: BTreeMap<Channel, StoredChannel>,
    /// The version of the last presence change, over all channels.
    presence_version: u64,
    history_index: HistoryIndex,
    /// Channels whose history holds at least one entry.
    history_channels: usize,
    retry_expiry: VecDeque<(Instant, Channel)>,
    events: VecDeque<StoreEvent>,
}

#[derive(Debug)]
struct StoredChannel {
    epoch: String,
    offset: u64,
    history: VecDeque<Stored>,
    retries: BTreeMap<RetryKey, Retry>,
    retry_order: VecDeque<(Instant, RetryKey)>,
    members: BTreeMap<String, usize>,
}

#[derive(Debug)]
struct Stored {
    /// The entry's number in the history index.
    number: u64,
    offset: u64,
    frame: Bytes,
}

/// An idempotency key in its scope: the publishing user, or `None` for the
/// HTTP API.
type RetryKey = (Option<String>, IdempotencyKey);

#[derive(Debug)]
struct Retry {
    offset: u64,
    expires: Instant,
}

impl MemoryStore {
    /// A store with the history and idempotency settings of `config`.
    ///
    /// Epochs are `epoch_prefix` , a dash and a counter, so they are unique
    /// per store as long as each store gets its own prefix (a node passes one
    /// that differs across restarts, e.g. drawn from its seeded generator).
    pub fn new(config: &ServerConfig, epoch_prefix: &str) -> MemoryStore {
        MemoryStore {
            epoch_prefix: epoch_prefix.to_owned(),
            epochs_issued: 0,
            history_size: config.history_size,
            history_ttl: config.history_ttl,
            history_max_bytes: config.history_max_bytes,
            history_max_channels: config.history_max_channels,
            idempotency_window: config.idempotency_window,
            idempotency_max_records: config.idempotency_max_records,
            channels: BTreeMap::new(),
            presence_version: 0,
            history_index: HistoryIndex::default(),
            history_channels: 0,
            retry_expiry: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Carries out one request at `now`; its events wait in
    /// [`MemoryStore::poll_event`].
    pub fn handle_request(&mut self, now: Instant, request: StoreRequest) {
        self.expire_history(now);
        match request {
            StoreRequest::Publish {
                ticket,
                channel,
                payload,
                sender,
                idempotency_key,
            } => {
                self.prune_channel(now, &channel);
                let retry_key = idempotency_key.map(|key| (sender.clone(), key));
                let offset = match self.retried_offset(now, &channel, retry_key.as_ref()) {
                    Some(offset) => offset,
                    None => self.publish(now, &channel, &payload, sender.as_deref(), retry_key),
                };
                if let Some(ticket) = ticket {
                    self.events
                        .push_back(StoreEvent::Published { ticket, offset });
                }
                self.forget_if_idle(&channel);
            }
            StoreRequest::Subscribe {
                ticket,
                channel,
                since,
            } => {
                self.prune_channel(now, &channel);
                let stored = self.channel_mut(&channel);
                let (recovered, replay) = match since {
                    Some(since) => match stored.replay_after(&since) {
                        Some(replay) => (Some(true), replay),
                        None => (Some(false), Vec::new()),
                    },
                    None => (None, Vec::new()),
                };
                let event = StoreEvent::Subscribed {
                    ticket,
                    epoch: stored.epoch.clone(),
                    offset: stored.offset,
                    recovered,
                    replay,
                    users: stored.members.keys().cloned().collect(),
                    presence_version: self.presence_version,
                    channel: channel.clone(),
                };
                self.events.push_back(event);
                self.forget_if_idle(&channel);
            }
            StoreRequest::Presence { ticket, channel } => {
                let users = self
                    .channels
                    .get(&channel)
                    .map_or_else(Vec::new, |stored| stored.members.keys().cloned().collect());
                self.events.push_back(StoreEvent::Presence {
                    ticket,
                    channel,
                    users,
                    version: self.presence_version,
                });
            }
            StoreRequest::Join { channel, user } => {
                let count = self
                    .channel_mut(&channel)
                    .members
                    .entry(user.clone())
                    .or_insert(0);
                *count += 1;
                if *count == 1 {
                    self.announce(channel, user, true);
                }
            }
            StoreRequest::Leave { channel, user } => {
                let Some(stored) = self.channels.get_mut(&channel) else {
                    return;
                };
                let Some(count) = stored.members.get_mut(&user) else {
                    return;
                };
                *count -= 1;
                if *count == 0 {
                    stored.members.remove(&user);
                    self.forget_if_idle(&channel);
                    self.announce(channel, user, false);
                }
            }
            StoreRequest::CatchUp { channel, since } => {
                self.prune_channel(now, &channel);
                let stored = self.channel_mut(&channel);
                let replay = stored.replay_after(&since);
                let event = StoreEvent::CaughtUp {
                    epoch: stored.epoch.clone(),
                    offset: stored.offset,
                    recovered: replay.is_some(),
                    replay: replay.unwrap_or_default(),
                    channel: channel.clone(),
                    since,
                };
                self.events.push_back(event);
                self.forget_if_idle(&channel);
            }
            StoreRequest::Rejoin { members } => self.rejoin(members),
            StoreRequest::PresenceStats { ticket, channel } => {
                let members = self.channels.get(&channel).map(|stored| &stored.members);
                let (users, connections) = members.map_or((0, 0), |members| {
                    (members.len() as u64, members.values().sum::<usize>() as u64)
                });
                self.events.push_back(StoreEvent::PresenceStats {
                    ticket,
                    users,
                    connections,
                });
            }
            StoreRequest::History {
                ticket,
                channel,
                since,
                limit,
                reverse,
            } => {
                self.prune_channel(now, &channel);
                let stored = self.channel_mut(&channel);
                let publications = stored.history_after(since.as_ref(), limit, reverse);
                let event = StoreEvent::History {
                    ticket,
                    epoch: stored.epoch.clone(),
                    offset: stored.offset,
                    publications,
                };
                self.events.push_back(event);
                self.forget_if_idle(&channel);
            }
            StoreRequest::Channels {
                ticket,
                pattern,
                limit,
            } => {
                let (channels, total) = self.active_channels(pattern.as_ref(), limit);
                self.events.push_back(StoreEvent::Channels {
                    ticket,
                    channels,
                    total,
                });
            }
            StoreRequest::Control { ticket, control } => {
                self.events.push_back(StoreEvent::Control(control));
                self.events.push_back(StoreEvent::ControlSent { ticket });
            }
            StoreRequest::Info { ticket, node } => {
                let nodes = vec![NodeInfo {
                    id: self.epoch_prefix.clone(),
                    stats: node,
                }];
                self.events.push_back(StoreEvent::Info { ticket, nodes });
            }
            StoreRequest::Connect => self.events.push_back(StoreEvent::Up),
            StoreRequest::Lease { .. } => {
                self.events.push_back(StoreEvent::Leased { lapsed: false });
            }
            StoreRequest::Follow { .. } | StoreRequest::Unfollow { .. } => {}
        }
    }

    /// The next event to hand to the hub, in the order they happened.
    pub fn poll_event(&mut self) -> Option<StoreEvent> {
        self.events.pop_front()
    }

    /// Drops the history entries and idempotency records due at `now`, and
    /// the channels left with nothing. Early or repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_history(now);
        while let Some(channel) = self.pop_due_retry(now) {
            self.prune_channel(now, &channel);
            self.forget_if_idle(&channel);
        }
    }

    /// When the next record expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let history = self.history_index.next_expiry();
        let retry = self.retry_expiry.front().map(|(at, _)| *at);
        history.into_iter().chain(retry).min()
    }

    /// Whether the store holds state for `channel`: an epoch with
    /// presence, history or idempotency records.
    pub fn holds(&self, channel: &Channel) -> bool {
        self.channels.contains_key(channel)
    }

    /// Whether the store keeps something of a publication (`keyed`: with
    /// an idempotency key): its history entry, or its idempotency record.
    pub fn keeps(&self, keyed: bool) -> bool {
        self.history_size > 0 || keyed
    }

    #[cfg(any(test, feature = "internals"))]
    /// How many channels the store holds state for.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// How many channels hold history (the `tether_history_channels`
    /// gauge); never more than `history_max_channels`.
    pub fn history_channels(&self) -> usize {
        self.history_channels
    }

    /// The bytes the history holds, frames and bookkeeping (the
    /// `tether_history_bytes` gauge); never more than `history_max_bytes`.
    pub fn history_bytes(&self) -> usize {
        self.history_index.bytes()
    }

    /// Sequences a publication: the channel's next offset, its frame encoded
    /// once, kept in the history and handed to the hub.
    fn publish(
        &mut self,
        now: Instant,
        channel: &Channel,
        payload: &RawValue,
        sender: Option<&str>,
        retry_key: Option<RetryKey>,
    ) -> u64 {
        let retry_expires = now + self.idempotency_window;
        let stored = self.channel_mut(channel);
        stored.offset += 1;
        let offset = stored.offset;
        let epoch = stored.epoch.clone();
        let frame = text_frame(&encode_publication(
            channel.as_str(),
            payload,
            sender,
            offset,
        ));
        if let Some(key) = retry_key {
            if self.retry_expiry.len() >= self.idempotency_max_records {
                self.forget_oldest_retry();
            }
            let stored = self.channel_mut(channel);
            stored.retry_order.push_back((retry_expires, key.clone()));
            stored.retries.insert(
                key,
                Retry {
                    offset,
                    expires: retry_expires,
                },
            );
            self.retry_expiry
                .push_back((retry_expires, channel.clone()));
        }
        self.events.push_back(StoreEvent::Publication {
            channel: channel.clone(),
            epoch,
            offset,
            frame: frame.clone(),
        });
        self.keep(now, channel, offset, frame);
        offset
    }

    /// Keeps a publication in the channel's history, dropping the channel's
    /// oldest entry beyond `history_size` and the node's oldest entries
    /// beyond its bounds. Last of a publication's steps, as it may forget
    /// the channel.
    fn keep(&mut self, now: Instant, channel: &Channel, offset: u64, frame: Bytes) {
        if self.history_size == 0 {
            return;
        }
        if self
            .channels
            .get(channel)
            .is_some_and(|stored| stored.history.len() >= self.history_size)
        {
            self.drop_oldest_of(channel);
        }
        let expires = now + self.history_ttl;
        let number = self.history_index.insert(channel, expires, frame.len());
        let stored = self.channel_mut(channel);
        let first = stored.history.is_empty();
        stored.history.push_back(Stored {
            number,
            offset,
            frame,
        });
        if first {
            self.history_channels += 1;
        }
        while self.history_index.bytes() > self.history_max_bytes
            || self.history_channels > self.history_max_channels
        {
            let Some((_, oldest)) = self.history_index.oldest() else {
                break;
            };
            let oldest = oldest.clone();
            self.drop_oldest_of(&oldest);
            self.forget_if_idle(&oldest);
        }
    }

    /// Drops every history entry expired at `now`, oldest first, and the
    /// channels left with nothing.
    fn expire_history(&mut self, now: Instant) {
        while let Some((_, channel)) = self.history_index.expired(now) {
            let channel = channel.clone();
            self.drop_oldest_of(&channel);
            self.forget_if_idle(&channel);
        }
    }

    /// Drops the oldest entry of the channel's history.
    fn drop_oldest_of(&mut self, channel: &Channel) {
        let Some(stored) = self.channels.get_mut(channel) else {
            return;
        };
        let Some(entry) = stored.history.pop_front() else {
            return;
        };
        if stored.history.is_empty() {
            self.history_channels -= 1;
        }
        self.history_index.remove(entry.number);
    }

    /// The channels with a user present, those `pattern` matches: the
    /// first `limit` in name order, and how many there are.
    fn active_channels(
        &self,
        pattern: Option<&ChannelPattern>,
        limit: usize,
    ) -> (Vec<Channel>, u64) {
        let mut matching = self
            .channels
            .iter()
            .filter(|(channel, stored)| {
                !stored.members.is_empty()
                    && pattern.is_none_or(|pattern| pattern.matches(channel.as_str()))
            })
            .map(|(channel, _)| channel);
        let channels: Vec<Channel> = matching.by_ref().take(limit).cloned().collect();
        let total = channels.len() + matching.count();
        (channels, total as u64)
    }

    /// Replaces every presence count with `members` (this store serves one
    /// node), announcing the users who arrive and leave.
    fn rejoin(&mut self, members: Vec<Member>) {
        let mut wanted: BTreeMap<Channel, BTreeMap<String, usize>> = BTreeMap::new();
        for member in members {
            let count = usize::try_from(member.connections).unwrap_or(usize::MAX);
            if count > 0 {
                wanted
                    .entry(member.channel)
                    .or_default()
                    .insert(member.user, count);
            }
        }
        let present: Vec<Channel> = self
            .channels
            .iter()
            .filter(|(_, stored)| !stored.members.is_empty())
            .map(|(channel, _)| channel.clone())
            .collect();
        for channel in present {
            wanted.entry(channel).or_default();
        }
        for (channel, users) in wanted {
            let stored = self.channel_mut(&channel);
            let before = std::mem::replace(&mut stored.members, users);
            let after = &stored.members;
            let left: Vec<String> = before
                .keys()
                .filter(|user| !after.contains_key(*user))
                .cloned()
                .collect();
            let joined: Vec<String> = after
                .keys()
                .filter(|user| !before.contains_key(*user))
                .cloned()
                .collect();
            for user in joined {
                self.announce(channel.clone(), user, true);
            }
            for user in left {
                self.announce(channel.clone(), user, false);
            }
            self.forget_if_idle(&channel);
        }
    }

    /// Tells a user's first arrival (`joined`) or last departure, under the
    /// next presence version.
    fn announce(&mut self, channel: Channel, user: String, joined: bool) {
        self.presence_version += 1;
        let event = StoreEvent::presence_change(channel, user, joined, self.presence_version);
        self.events.push_back(event);
    }

    /// The offset of an earlier publication with the same key in the same
    /// scope that is still within the idempotency window.
    fn retried_offset(
        &self,
        now: Instant,
        channel: &Channel,
        key: Option<&RetryKey>,
    ) -> Option<u64> {
        let retry = self.channels.get(channel)?.retries.get(key?)?;
        (now < retry.expires).then_some(retry.offset)
    }

    fn channel_mut(&mut self, channel: &Channel) -> &mut StoredChannel {
        if !self.channels.contains_key(channel) {
            self.epochs_issued += 1;
            let epoch = format!("{}-{}", self.epoch_prefix, self.epochs_issued);
            self.channels
                .insert(channel.clone(), StoredChannel::new(epoch));
        }
        self.channels
            .get_mut(channel)
            .expect("the channel was just inserted")
    }

    fn prune_channel(&mut self, now: Instant, channel: &Channel) {
        if let Some(stored) = self.channels.get_mut(channel) {
            stored.prune(now);
        }
    }

    fn forget_if_idle(&mut self, channel: &Channel) {
        if self
            .channels
            .get(channel)
            .is_some_and(StoredChannel::is_idle)
        {
            self.channels.remove(channel);
        }
    }

    /// Makes room for one more idempotency record: the node's oldest goes,
    /// so records never outnumber `idempotency_max_records`.
    fn forget_oldest_retry(&mut self) {
        let Some((_, channel)) = self.retry_expiry.pop_front() else {
            return;
        };
        if let Some(stored) = self.channels.get_mut(&channel) {
            stored.forget_oldest_retry();
        }
        self.forget_if_idle(&channel);
    }

    fn pop_due_retry(&mut self, now: Instant) -> Option<Channel> {
        match self.retry_expiry.front() {
            Some((at, _)) if *at <= now => {
                self.retry_expiry.pop_front().map(|(_, channel)| channel)
            }
            _ => None,
        }
    }
}

impl StoredChannel {
    fn new(epoch: String) -> StoredChannel {
        StoredChannel {
            epoch,
            offset: 0,
            history: VecDeque::new(),
            retries: BTreeMap::new(),
            retry_order: VecDeque::new(),
            members: BTreeMap::new(),
        }
    }

    /// The frames after `since` when the history still holds every one of
    /// them, `None` when it cannot cover the gap: another epoch, an offset
    /// from the future, or publications already evicted or expired.
    fn replay_after(&self, since: &Position) -> Option<Vec<Bytes>> {
        if since.epoch != self.epoch || since.offset > self.offset {
            return None;
        }
        if since.offset == self.offset {
            return Some(Vec::new());
        }
        let first = self.history.front()?.offset;
        if first > since.offset + 1 {
            return None;
        }
        let skip = usize::try_from(since.offset + 1 - first).ok()?;
        Some(
            self.history
                .iter()
                .skip(skip)
                .map(|stored| stored.frame.clone())
                .collect(),
        )
    }

    /// The `message` texts of the history after `since` (the whole
    /// history when `since` is of another epoch or absent): the oldest
    /// `limit`, or with `reverse` the newest `limit`, newest first.
    fn history_after(&self, since: Option<&Position>, limit: usize, reverse: bool) -> Vec<Bytes> {
        let after = since
            .filter(|since| since.epoch == self.epoch)
            .map_or(0, |since| since.offset);
        let entries = self.history.iter().filter(|stored| stored.offset > after);
        let texts = |stored: &Stored| text_frame_payload(&stored.frame);
        if reverse {
            entries.rev().take(limit).map(texts).collect()
        } else {
            entries.take(limit).map(texts).collect()
        }
    }

    /// Drops the idempotency records due at `now`.
    fn prune(&mut self, now: Instant) {
        while let Some((at, _)) = self.retry_order.front() {
            if *at > now {
                break;
            }
            let (_, key) = self
                .retry_order
                .pop_front()
                .expect("the front was just seen");
            if self
                .retries
                .get(&key)
                .is_some_and(|retry| retry.expires <= now)
            {
                self.retries.remove(&key);
            }
        }
    }

    /// Drops the channel's oldest idempotency record, unless a newer
    /// publication with the same key replaced it.
    fn forget_oldest_retry(&mut self) {
        if let Some((at, key)) = self.retry_order.pop_front()
            && self
                .retries
                .get(&key)
                .is_some_and(|retry| retry.expires == at)
        {
            self.retries.remove(&key);
        }
    }

    fn is_idle(&self) -> bool {
        self.members.is_empty() && self.history.is_empty() && self.retries.is_empty()
    }
}
