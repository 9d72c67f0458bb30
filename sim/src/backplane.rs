//! The shared store of a simulated cluster: an in-memory model of the Redis
//! backplane, step for step what its Lua scripts do, on the world's clock.
//!
//! - **Publish:** an idempotency record (publisher, idempotency key) within
//!   `idempotency_window` answers with the original offset and publishes
//!   nothing; otherwise the channel's next offset, an entry in its history
//!   (at most `history_size` entries, none older than `history_ttl`), the
//!   record, and the publication to every node that follows the channel.
//! - **Epochs:** created once per channel, from the asking node's name and
//!   the clock, by the first request that needs one; they expire
//!   `max(history_ttl, one day)` after the channel's last use. Beyond
//!   `history_max_channels` channels, the least recently used lose their
//!   epoch, offset and history.
//! - **Reads** (subscribe, catch-up): epoch, latest offset and, with
//!   `since`, the replay when the history still covers the gap.
//! - **Presence:** a user's connection count per channel over all nodes,
//!   with each node's own share; a user's first arrival and last departure
//!   go to the channel's followers. Nodes hold leases; every renewal also
//!   removes the share of each node whose lease ran out, announcing its
//!   users' departures, and a rejoin replaces a node's share.
//! - **Routing:** publications and presence changes go to the nodes that
//!   follow the channel on their current link; the HTTP API's orders
//!   (`Control`) go to every node.
//! - **The HTTP API's questions:** presence counts, a history read
//!   (which makes an epoch like any read), the channels with a user
//!   present, and every node whose lease runs with the figures of its last
//!   lease, its uptime carried on to now.
//!
//! The model only computes; the world carries requests and events over the
//! simulated links and decides which of them are lost.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use tether_core::wire::text_frame;
use tether_core::{
    Channel, ChannelPattern, IdempotencyKey, Instant, Member, NodeInfo, NodeStats, Position,
    ServerConfig, StoreEvent, StoreRequest, encode_publication_prefix,
};

/// How long a channel's epoch and counter outlive its last use at least,
/// as in the Redis adapter.
const META_TTL_FLOOR: Duration = Duration::from_secs(24 * 60 * 60);

/// Where an event of the store goes.
#[derive(Clone, Debug)]
pub enum Delivery {
    /// The answer to the node that asked.
    Reply(StoreEvent),
    /// A message on the channel's topic, for every node following it.
    Topic(Channel, StoreEvent),
    /// A message for every node.
    Everyone(StoreEvent),
}

/// The shared state of every channel and node.
#[derive(Debug)]
pub struct Backplane {
    history_size: usize,
    history_ttl: Duration,
    history_max_channels: usize,
    meta_ttl: Duration,
    idempotency_window: Duration,
    channels: BTreeMap<Channel, Meta>,
    /// The channels by their last use, as `remember` in `common.lua` keeps
    /// them: a counter of uses to the channel.
    uses: BTreeMap<u64, Channel>,
    histories: BTreeMap<Channel, VecDeque<Entry>>,
    /// `(channel, publisher, idempotency key)` to the offset and the
    /// record's expiry; the publisher is a user, or `None` for the HTTP API.
    retries: BTreeMap<(Channel, Option<String>, IdempotencyKey), (u64, Instant)>,
    /// Users present per channel, with their connections over all nodes.
    users: BTreeMap<Channel, BTreeMap<String, i64>>,
    /// The version of the last presence change, over all channels.
    presence_version: u64,
    /// Each node's own share of the presence counts.
    shares: BTreeMap<String, BTreeMap<(Channel, String), i64>>,
    /// Each node's lease expiry.
    leases: BTreeMap<String, Instant>,
    /// Each node's figures and when it gave them.
    figures: BTreeMap<String, (NodeStats, Instant)>,
    /// Which world node follows which channel.
    followers: BTreeMap<Channel, BTreeSet<usize>>,
}

#[derive(Debug)]
struct Meta {
    epoch: String,
    seq: u64,
    expires: Instant,
    /// The channel's last use in `uses`.
    used: u64,
}

#[derive(Debug)]
struct Entry {
    at: Instant,
    offset: u64,
    json: Vec<u8>,
}

impl Backplane {
    /// An empty store keeping history and idempotency records as `config`
    /// says.
    pub fn new(config: &ServerConfig) -> Self {
        Backplane {
            history_size: config.history_size,
            history_ttl: config.history_ttl,
            history_max_channels: config.history_max_channels,
            meta_ttl: config.history_ttl.max(META_TTL_FLOOR),
            idempotency_window: config.idempotency_window,
            channels: BTreeMap::new(),
            uses: BTreeMap::new(),
            histories: BTreeMap::new(),
            retries: BTreeMap::new(),
            users: BTreeMap::new(),
            presence_version: 0,
            shares: BTreeMap::new(),
            leases: BTreeMap::new(),
            figures: BTreeMap::new(),
            followers: BTreeMap::new(),
        }
    }

    /// The world nodes that follow `channel`.
    pub fn followers(&self, channel: &Channel) -> Vec<usize> {
        self.followers
            .get(channel)
            .map(|nodes| nodes.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Forgets what `link` (a world node) follows: its connection closed.
    pub fn drop_link(&mut self, link: usize) {
        for nodes in self.followers.values_mut() {
            nodes.remove(&link);
        }
        self.followers.retain(|_, nodes| !nodes.is_empty());
    }

    /// The users present in `channel`, sorted.
    pub fn presence(&self, channel: &Channel) -> Vec<String> {
        self.users
            .get(channel)
            .map(|users| users.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Carries out `request` of the node named `node`, reached over world
    /// node `link`, at `now`: what it changes and what it says.
    /// `Connect` is the world's business and yields nothing here.
    pub fn handle(
        &mut self,
        now: Instant,
        node: &str,
        link: usize,
        request: StoreRequest,
    ) -> Vec<Delivery> {
        let mut out = Vec::new();
        match request {
            StoreRequest::Publish {
                ticket,
                channel,
                payload,
                sender,
                idempotency_key,
            } => {
                let retry = idempotency_key.map(|key| (channel.clone(), sender.clone(), key));
                if let Some(key) = &retry
                    && let Some(&(offset, expires)) = self.retries.get(key)
                    && expires > now
                {
                    if let Some(ticket) = ticket {
                        out.push(Delivery::Reply(StoreEvent::Published { ticket, offset }));
                    }
                    return out;
                }
                let epoch = self.epoch_of(now, node, &channel);
                let meta = self.channels.get_mut(&channel).expect("made by epoch_of");
                meta.seq += 1;
                let offset = meta.seq;
                let mut json =
                    encode_publication_prefix(channel.as_str(), &payload, sender.as_deref());
                json.extend_from_slice(format!("{offset}}}").as_bytes());
                if self.history_size > 0 {
                    let history = self.histories.entry(channel.clone()).or_default();
                    history.push_back(Entry {
                        at: now,
                        offset,
                        json: json.clone(),
                    });
                    while history.len() > self.history_size {
                        history.pop_front();
                    }
                    prune(now, history, self.history_ttl);
                }
                if let Some(key) = retry {
                    let expires = now + self.idempotency_window;
                    match self.retries.get(&key) {
                        Some(&(_, old)) if old > now => {}
                        _ => {
                            self.retries.insert(key, (offset, expires));
                        }
                    }
                }
                out.push(Delivery::Topic(
                    channel.clone(),
                    StoreEvent::Publication {
                        channel,
                        epoch,
                        offset,
                        frame: text_frame(&json),
                    },
                ));
                if let Some(ticket) = ticket {
                    out.push(Delivery::Reply(StoreEvent::Published { ticket, offset }));
                }
            }
            StoreRequest::Subscribe {
                ticket,
                channel,
                since,
            } => {
                let (epoch, offset, recovered, replay) =
                    self.read(now, node, &channel, since.as_ref());
                let users = self.presence(&channel);
                out.push(Delivery::Reply(StoreEvent::Subscribed {
                    ticket,
                    channel,
                    epoch,
                    offset,
                    recovered,
                    replay,
                    users,
                    presence_version: self.presence_version,
                }));
            }
            StoreRequest::CatchUp { channel, since } => {
                let (epoch, offset, recovered, replay) =
                    self.read(now, node, &channel, Some(&since));
                out.push(Delivery::Reply(StoreEvent::CaughtUp {
                    channel,
                    since,
                    epoch,
                    offset,
                    recovered: recovered == Some(true),
                    replay,
                }));
            }
            StoreRequest::Presence { ticket, channel } => {
                let users = self.presence(&channel);
                out.push(Delivery::Reply(StoreEvent::Presence {
                    ticket,
                    channel,
                    users,
                    version: self.presence_version,
                }));
            }
            StoreRequest::Join { channel, user } => self.member(node, channel, user, 1, &mut out),
            StoreRequest::Leave { channel, user } => {
                self.member(node, channel, user, -1, &mut out);
            }
            StoreRequest::Lease { lease, node: stats } => {
                let lapsed = !self.leases.contains_key(node);
                self.leases.insert(node.to_owned(), now + lease);
                self.figures.insert(node.to_owned(), (stats, now));
                let dead: Vec<String> = self
                    .leases
                    .iter()
                    .filter(|(_, expires)| **expires < now)
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in dead {
                    let share = self.shares.remove(&name).unwrap_or_default();
                    for ((channel, user), count) in share {
                        self.shift(channel, user, -count, &mut out);
                    }
                    self.leases.remove(&name);
                    self.figures.remove(&name);
                }
                out.push(Delivery::Reply(StoreEvent::Leased { lapsed }));
            }
            StoreRequest::Rejoin { members } => self.rejoin(node, members, &mut out),
            StoreRequest::Follow { channel } => {
                self.followers.entry(channel).or_default().insert(link);
            }
            StoreRequest::Unfollow { channel } => {
                if let Some(nodes) = self.followers.get_mut(&channel) {
                    nodes.remove(&link);
                    if nodes.is_empty() {
                        self.followers.remove(&channel);
                    }
                }
            }
            StoreRequest::PresenceStats { ticket, channel } => {
                let users = self.users.get(&channel);
                let (users, connections) = users.map_or((0, 0), |users| {
                    (users.len() as u64, users.values().sum::<i64>() as u64)
                });
                out.push(Delivery::Reply(StoreEvent::PresenceStats {
                    ticket,
                    users,
                    connections,
                }));
            }
            StoreRequest::History {
                ticket,
                channel,
                since,
                limit,
                reverse,
            } => {
                let epoch = self.epoch_of(now, node, &channel);
                let offset = self.channels[&channel].seq;
                let after = since
                    .filter(|since| since.epoch == epoch)
                    .map_or(0, |since| since.offset);
                let history = self.histories.entry(channel).or_default();
                prune(now, history, self.history_ttl);
                let entries = history.iter().filter(|entry| entry.offset > after);
                let json = |entry: &Entry| bytes::Bytes::from(entry.json.clone());
                let publications = if reverse {
                    entries.rev().take(limit).map(json).collect()
                } else {
                    entries.take(limit).map(json).collect()
                };
                out.push(Delivery::Reply(StoreEvent::History {
                    ticket,
                    epoch,
                    offset,
                    publications,
                }));
            }
            StoreRequest::Channels {
                ticket,
                pattern,
                limit,
            } => {
                let matches = |channel: &&Channel| {
                    pattern
                        .as_ref()
                        .is_none_or(|pattern: &ChannelPattern| pattern.matches(channel.as_str()))
                };
                let total = self.users.keys().filter(matches).count() as u64;
                let channels = self
                    .users
                    .keys()
                    .filter(matches)
                    .take(limit)
                    .cloned()
                    .collect();
                out.push(Delivery::Reply(StoreEvent::Channels {
                    ticket,
                    channels,
                    total,
                }));
            }
            StoreRequest::Control { ticket, control } => {
                out.push(Delivery::Everyone(StoreEvent::Control(control)));
                out.push(Delivery::Reply(StoreEvent::ControlSent { ticket }));
            }
            StoreRequest::Info {
                ticket,
                node: stats,
            } => {
                self.figures.insert(node.to_owned(), (stats, now));
                let nodes = self
                    .leases
                    .iter()
                    .filter(|(_, expires)| **expires >= now)
                    .filter_map(|(name, _)| {
                        let (stats, at) = self.figures.get(name)?;
                        let uptime = stats.uptime + now.saturating_duration_since(*at);
                        Some(NodeInfo {
                            id: name.clone(),
                            stats: NodeStats { uptime, ..*stats },
                        })
                    })
                    .collect();
                out.push(Delivery::Reply(StoreEvent::Info { ticket, nodes }));
            }
            StoreRequest::Connect => {}
        }
        out
    }

    /// The channel's epoch, made now if it has none (new or expired), which
    /// also forgets a stale history; either way its life is extended and
    /// its use recorded, which may make other channels lose their state.
    fn epoch_of(&mut self, now: Instant, node: &str, channel: &Channel) -> String {
        let alive = self
            .channels
            .get(channel)
            .is_some_and(|meta| meta.expires > now);
        if !alive {
            let epoch = format!("{node}-{}", now.since_origin().as_micros());
            let used = self.channels.get(channel).map_or(0, |meta| meta.used);
            self.channels.insert(
                channel.clone(),
                Meta {
                    epoch,
                    seq: 0,
                    expires: now,
                    used,
                },
            );
            self.histories.remove(channel);
        }
        let used = self.uses.last_key_value().map_or(1, |(last, _)| last + 1);
        let meta = self.channels.get_mut(channel).expect("inserted above");
        meta.expires = now + self.meta_ttl;
        let epoch = meta.epoch.clone();
        let before = std::mem::replace(&mut meta.used, used);
        self.uses.remove(&before);
        self.uses.insert(used, channel.clone());
        while self.uses.len() > self.history_max_channels {
            let (_, oldest) = self.uses.pop_first().expect("more than the bound");
            self.channels.remove(&oldest);
            self.histories.remove(&oldest);
        }
        epoch
    }

    /// A subscription's or catch-up's read: epoch, latest offset, whether
    /// the replay covers everything after `since`, and the replay.
    fn read(
        &mut self,
        now: Instant,
        node: &str,
        channel: &Channel,
        since: Option<&Position>,
    ) -> (String, u64, Option<bool>, Vec<bytes::Bytes>) {
        let epoch = self.epoch_of(now, node, channel);
        let seq = self.channels[channel].seq;
        let Some(since) = since else {
            return (epoch, seq, None, Vec::new());
        };
        if since.epoch != epoch || since.offset > seq {
            return (epoch, seq, Some(false), Vec::new());
        }
        if since.offset == seq {
            return (epoch, seq, Some(true), Vec::new());
        }
        let Some(history) = self.histories.get_mut(channel) else {
            return (epoch, seq, Some(false), Vec::new());
        };
        prune(now, history, self.history_ttl);
        match history.front() {
            Some(head) if head.offset <= since.offset + 1 => {
                let replay = history
                    .iter()
                    .filter(|entry| entry.offset > since.offset)
                    .map(|entry| text_frame(&entry.json))
                    .collect();
                (epoch, seq, Some(true), replay)
            }
            _ => (epoch, seq, Some(false), Vec::new()),
        }
    }

    /// One connection of `user` on `node` joins (+1) or leaves (-1).
    fn member(
        &mut self,
        node: &str,
        channel: Channel,
        user: String,
        delta: i64,
        out: &mut Vec<Delivery>,
    ) {
        let share = self.shares.entry(node.to_owned()).or_default();
        let key = (channel, user);
        let own = share.get(&key).copied().unwrap_or(0) + delta;
        if own <= 0 {
            share.remove(&key);
        } else {
            share.insert(key.clone(), own);
        }
        if own < 0 {
            return;
        }
        let (channel, user) = key;
        self.shift(channel, user, delta, out);
    }

    /// Makes `node`'s share exactly `members`, announcing the changes.
    fn rejoin(&mut self, node: &str, members: Vec<Member>, out: &mut Vec<Delivery>) {
        let old = self.shares.remove(node).unwrap_or_default();
        let new: BTreeMap<(Channel, String), i64> = members
            .into_iter()
            .map(|m| ((m.channel, m.user), i64::from(m.connections)))
            .collect();
        for (key, &count) in &new {
            let delta = count - old.get(key).copied().unwrap_or(0);
            if delta != 0 {
                self.shift(key.0.clone(), key.1.clone(), delta, out);
            }
        }
        for (key, &count) in &old {
            if !new.contains_key(key) {
                self.shift(key.0.clone(), key.1.clone(), -count, out);
            }
        }
        if !new.is_empty() {
            self.shares.insert(node.to_owned(), new);
        }
    }

    /// Changes a user's count in a channel; announces a first arrival or a
    /// last departure on the channel's topic.
    fn shift(&mut self, channel: Channel, user: String, delta: i64, out: &mut Vec<Delivery>) {
        let users = self.users.entry(channel.clone()).or_default();
        let total = users.get(&user).copied().unwrap_or(0) + delta;
        let before = total - delta;
        if total <= 0 {
            users.remove(&user);
        } else {
            users.insert(user.clone(), total);
        }
        if users.is_empty() {
            self.users.remove(&channel);
        }
        let joined = before <= 0 && total > 0;
        if joined || (before > 0 && total <= 0) {
            self.presence_version += 1;
            let event =
                StoreEvent::presence_change(channel.clone(), user, joined, self.presence_version);
            out.push(Delivery::Topic(channel, event));
        }
    }
}

/// Drops the entries at the head of `history` older than `ttl`.
fn prune(now: Instant, history: &mut VecDeque<Entry>, ttl: Duration) {
    while history.front().is_some_and(|head| head.at + ttl <= now) {
        history.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;
    use tether_core::Ticket;

    use super::*;

    fn channel() -> Channel {
        Channel::new("room").unwrap()
    }

    fn publish(key: Option<&str>) -> StoreRequest {
        StoreRequest::Publish {
            ticket: Some(Ticket::new(1)),
            channel: channel(),
            payload: RawValue::from_string("1".into()).unwrap(),
            sender: Some("ann".into()),
            idempotency_key: key.map(|key| IdempotencyKey::new(key).unwrap()),
        }
    }

    fn offset_of(out: &[Delivery]) -> u64 {
        out.iter()
            .find_map(|d| match d {
                Delivery::Reply(StoreEvent::Published { offset, .. }) => Some(*offset),
                _ => None,
            })
            .expect("a published answer")
    }

    #[test]
    fn offsets_are_central_retries_are_recognised_and_history_is_capped() {
        let config = ServerConfig {
            history_size: 2,
            ..ServerConfig::dev()
        };
        let mut store = Backplane::new(&config);
        let t = Instant::from_millis(10);
        store.handle(t, "a", 0, StoreRequest::Follow { channel: channel() });
        let first = store.handle(t, "a", 0, publish(Some("p1")));
        assert_eq!(offset_of(&first), 1);
        assert!(matches!(first[0], Delivery::Topic(..)));
        assert_eq!(offset_of(&store.handle(t, "b", 1, publish(Some("p2")))), 2);
        let retry = store.handle(t, "b", 1, publish(Some("p1")));
        assert_eq!(offset_of(&retry), 1);
        assert_eq!(retry.len(), 1, "a retry publishes nothing");
        assert_eq!(offset_of(&store.handle(t, "b", 1, publish(None))), 3);
        let epoch = store.channels[&channel()].epoch.clone();
        let since = |offset| Position {
            epoch: epoch.clone(),
            offset,
        };
        let (_, seq, recovered, replay) = store.read(t, "a", &channel(), Some(&since(1)));
        assert_eq!((seq, recovered, replay.len()), (3, Some(true), 2));
        let (_, _, recovered, _) = store.read(t, "a", &channel(), Some(&since(0)));
        assert_eq!(recovered, Some(false), "offset 1 left the capped history");
        let later = t + config.history_ttl;
        let (_, _, recovered, _) = store.read(later, "a", &channel(), Some(&since(2)));
        assert_eq!(recovered, Some(false), "the history expired");
    }

    #[test]
    fn beyond_history_max_channels_the_least_recently_used_channel_loses_its_state() {
        let config = ServerConfig {
            history_max_channels: 2,
            ..ServerConfig::dev()
        };
        let mut store = Backplane::new(&config);
        let t = Instant::from_millis(10);
        let on = |name: &str| StoreRequest::Publish {
            ticket: None,
            channel: Channel::new(name).unwrap(),
            payload: RawValue::from_string("1".into()).unwrap(),
            sender: None,
            idempotency_key: None,
        };
        store.handle(t, "a", 0, on("room"));
        let epoch = store.channels[&channel()].epoch.clone();
        store.handle(t, "a", 0, on("hall"));
        store.handle(t, "a", 0, on("room"));
        store.handle(t, "a", 0, on("yard"));
        assert_eq!(
            store
                .histories
                .keys()
                .map(Channel::as_str)
                .collect::<Vec<_>>(),
            ["room", "yard"],
            "hall was used least recently"
        );
        store.handle(t, "a", 0, on("hall"));
        assert!(!store.histories.contains_key(&channel()));
        let since = Position { epoch, offset: 0 };
        let (now, seq, recovered, _) = store.read(t, "b", &channel(), Some(&since));
        assert_ne!(now, since.epoch, "a new epoch");
        assert_eq!((seq, recovered), (0, Some(false)));
    }

    #[test]
    fn a_dead_nodes_users_leave_at_the_next_renewal_after_its_lease() {
        let mut store = Backplane::new(&ServerConfig::dev());
        let lease = Duration::from_secs(5);
        let t = Instant::from_millis(0);
        let join = |user: &str| StoreRequest::Join {
            channel: channel(),
            user: user.into(),
        };
        store.handle(
            t,
            "a",
            0,
            StoreRequest::Lease {
                lease,
                node: NodeStats::default(),
            },
        );
        store.handle(
            t,
            "b",
            1,
            StoreRequest::Lease {
                lease,
                node: NodeStats::default(),
            },
        );
        assert!(matches!(
            store.handle(t, "a", 0, join("ann"))[0],
            Delivery::Topic(_, StoreEvent::Joined { .. })
        ));
        assert!(
            store.handle(t, "b", 1, join("ann")).is_empty(),
            "ann was there"
        );
        store.handle(t, "b", 1, join("bob"));
        assert_eq!(store.presence(&channel()), ["ann", "bob"]);
        let renewed = store.handle(
            t + lease,
            "a",
            0,
            StoreRequest::Lease {
                lease,
                node: NodeStats::default(),
            },
        );
        assert_eq!(renewed.len(), 1, "b's lease ends only now: {renewed:?}");
        let later = t + lease + Duration::from_millis(1);
        let renewed = store.handle(
            later,
            "a",
            0,
            StoreRequest::Lease {
                lease,
                node: NodeStats::default(),
            },
        );
        assert!(
            matches!(&renewed[0], Delivery::Topic(_, StoreEvent::Left { user, .. }) if user == "bob")
        );
        assert!(matches!(
            renewed[1],
            Delivery::Reply(StoreEvent::Leased { lapsed: false })
        ));
        assert_eq!(store.presence(&channel()), ["ann"]);
        let back = store.handle(
            later,
            "b",
            1,
            StoreRequest::Lease {
                lease,
                node: NodeStats::default(),
            },
        );
        assert!(matches!(
            back[0],
            Delivery::Reply(StoreEvent::Leased { lapsed: true })
        ));
        let members = vec![Member {
            channel: channel(),
            user: "cat".into(),
            connections: 2,
        }];
        store.handle(later, "b", 1, StoreRequest::Rejoin { members });
        assert_eq!(store.presence(&channel()), ["ann", "cat"]);
        assert!(
            store
                .handle(
                    later,
                    "b",
                    1,
                    StoreRequest::Leave {
                        channel: channel(),
                        user: "bob".into()
                    }
                )
                .is_empty()
        );
    }
}
