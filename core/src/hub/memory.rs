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
//! Expiry: every record that expires pushes `(deadline, channel)` onto one of
//! two queues, one per lifetime, so each queue is in deadline order as long as
//! time does not go backwards. A timeout pops the due entries and prunes
//! those channels. Records are also pruned lazily before they are read, so an
//! answer at an instant never depends on whether the timeout at that instant
//! was handled first.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::store::{Member, StoreEvent, StoreRequest};
use crate::config::ServerConfig;
use crate::envelope::{Channel, IdempotencyKey, Position, encode_publication};
use crate::frame::text_frame;
use crate::time::Instant;

/// A node's own sequencer, history and presence store.
#[derive(Debug)]
pub struct MemoryStore {
    epoch_prefix: String,
    epochs_issued: u64,
    history_size: usize,
    history_ttl: Duration,
    idempotency_window: Duration,
    channels: BTreeMap<Channel, StoredChannel>,
    /// The version of the last presence change, over all channels.
    presence_version: u64,
    history_expiry: VecDeque<(Instant, Channel)>,
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
    offset: u64,
    expires: Instant,
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
            idempotency_window: config.idempotency_window,
            channels: BTreeMap::new(),
            presence_version: 0,
            history_expiry: VecDeque::new(),
            retry_expiry: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Carries out one request at `now`; its events wait in
    /// [`MemoryStore::poll_event`].
    pub fn handle_request(&mut self, now: Instant, request: StoreRequest) {
        match request {
            StoreRequest::Publish {
                ticket,
                channel,
                payload,
                sender,
                idempotency_key,
            } => {
                self.prune(&channel, now);
                let retry_key = idempotency_key.map(|key| (sender.clone(), key));
                let offset = match self.retried_offset(&channel, retry_key.as_ref(), now) {
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
                self.prune(&channel, now);
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
                self.prune(&channel, now);
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
        for queue in [Queue::History, Queue::Retry] {
            while let Some(channel) = self.pop_due(queue, now) {
                self.prune(&channel, now);
                self.forget_if_idle(&channel);
            }
        }
    }

    /// When the next record expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let history = self.history_expiry.front().map(|(at, _)| *at);
        let retry = self.retry_expiry.front().map(|(at, _)| *at);
        history.into_iter().chain(retry).min()
    }

    /// How many channels the store holds state for.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
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
        let history_size = self.history_size;
        let history_expires = now + self.history_ttl;
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
        if history_size > 0 {
            if stored.history.len() == history_size {
                stored.history.pop_front();
            }
            stored.history.push_back(Stored {
                offset,
                expires: history_expires,
                frame: frame.clone(),
            });
            self.history_expiry
                .push_back((history_expires, channel.clone()));
        }
        if let Some(key) = retry_key {
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
            frame,
        });
        offset
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
        channel: &Channel,
        key: Option<&RetryKey>,
        now: Instant,
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

    fn prune(&mut self, channel: &Channel, now: Instant) {
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

    fn pop_due(&mut self, queue: Queue, now: Instant) -> Option<Channel> {
        let queue = match queue {
            Queue::History => &mut self.history_expiry,
            Queue::Retry => &mut self.retry_expiry,
        };
        match queue.front() {
            Some((at, _)) if *at <= now => queue.pop_front().map(|(_, channel)| channel),
            _ => None,
        }
    }
}

/// The two expiry queues.
#[derive(Clone, Copy)]
enum Queue {
    History,
    Retry,
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

    fn prune(&mut self, now: Instant) {
        while self
            .history
            .front()
            .is_some_and(|stored| stored.expires <= now)
        {
            self.history.pop_front();
        }
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

    fn is_idle(&self) -> bool {
        self.members.is_empty() && self.history.is_empty() && self.retries.is_empty()
    }
}
