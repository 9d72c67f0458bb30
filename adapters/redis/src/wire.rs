//! Requests into Redis commands, and Redis replies and messages into store
//! events. Nothing here decides: each request maps to one script call, and
//! each reply to the event the core expects.

use std::time::Duration;

use bytes::Bytes;
use redis::{Cmd, Value};
use tether_core::wire::text_frame;
use tether_core::{
    Channel, Control, NodeInfo, NodeStats, Position, Refusal, StoreEvent, StoreRequest, Ticket,
    encode_publication_prefix,
};

use crate::keys::{Keys, member};
use crate::scripts::{Digests, Script};

/// How long a channel's epoch and counter outlive its last use: a day, or
/// the history's lifetime when that is longer. Past it, the next use
/// starts a new epoch, which is what losing the history means anyway.
const META_TTL_FLOOR: Duration = Duration::from_secs(24 * 60 * 60);

/// What a node's commands need besides the request.
#[derive(Clone, Debug)]
pub(crate) struct Context {
    /// Key names.
    pub(crate) keys: Keys,
    /// This run of the node.
    pub(crate) node: String,
    /// Publications kept per channel.
    pub(crate) history_size: usize,
    /// How long each stays.
    pub(crate) history_ttl: Duration,
    /// Channels whose state Redis keeps at most.
    pub(crate) history_max_channels: usize,
    /// How long an idempotency key is recognised.
    pub(crate) idempotency_window: Duration,
}

/// What a command's reply becomes.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Nothing (its effects arrive through pub/sub).
    Nothing,
    /// [`StoreEvent::Published`] when there is a ticket.
    Published(Option<Ticket>),
    /// [`StoreEvent::Subscribed`].
    Subscribed { ticket: Ticket, channel: Channel },
    /// [`StoreEvent::CaughtUp`].
    CaughtUp { channel: Channel, since: Position },
    /// [`StoreEvent::Presence`].
    Presence { ticket: Ticket, channel: Channel },
    /// [`StoreEvent::Leased`].
    Leased,
    /// [`StoreEvent::PresenceStats`].
    PresenceStats(Ticket),
    /// [`StoreEvent::History`].
    History(Ticket),
    /// [`StoreEvent::Channels`].
    Channels(Ticket),
    /// [`StoreEvent::ControlSent`].
    ControlSent(Ticket),
    /// [`StoreEvent::Info`].
    Info(Ticket),
}

/// Why a reply could not be read.
#[derive(Debug)]
pub(crate) struct Malformed(pub(crate) String);

impl Context {
    /// The command that carries out `request`; `None` for the requests
    /// that are not commands (connect, follow, unfollow).
    pub(crate) fn command(&self, digests: &Digests, request: StoreRequest) -> Option<(Cmd, Reply)> {
        let keys = &self.keys;
        let (script, command_keys, args, reply) = match request {
            StoreRequest::Control { ticket, control } => {
                let mut publish = redis::cmd("PUBLISH");
                publish.arg(keys.control()).arg(encode_control(&control));
                return Some((publish, Reply::ControlSent(ticket)));
            }
            StoreRequest::PresenceStats { ticket, channel } => (
                Script::Stats,
                vec![keys.users(&channel)],
                Vec::new(),
                Reply::PresenceStats(ticket),
            ),
            StoreRequest::History {
                ticket,
                channel,
                since,
                limit,
                reverse,
            } => {
                let (epoch, offset) = match since {
                    Some(since) => (since.epoch, since.offset.to_string()),
                    None => (String::new(), String::new()),
                };
                let mut args = vec![
                    self.node.clone().into_bytes(),
                    millis(self.meta_ttl()),
                    millis(self.history_ttl),
                    epoch.into_bytes(),
                    offset.into_bytes(),
                    limit.to_string().into_bytes(),
                    if reverse {
                        b"1".to_vec()
                    } else {
                        b"0".to_vec()
                    },
                ];
                args.extend(self.remembered(&channel));
                (
                    Script::History,
                    vec![keys.meta(&channel), keys.history(&channel)],
                    args,
                    Reply::History(ticket),
                )
            }
            StoreRequest::Channels {
                ticket,
                pattern,
                limit,
            } => {
                let pattern = pattern.map_or_else(String::new, |p| p.as_str().to_owned());
                (
                    Script::Channels,
                    vec![keys.active()],
                    vec![pattern.into_bytes(), limit.to_string().into_bytes()],
                    Reply::Channels(ticket),
                )
            }
            StoreRequest::Info { ticket, node } => {
                let mut args = vec![
                    keys.prefix().as_bytes().to_vec(),
                    self.node.clone().into_bytes(),
                ];
                args.extend(figures(&node));
                (Script::Info, vec![keys.leases()], args, Reply::Info(ticket))
            }
            StoreRequest::Publish {
                ticket,
                channel,
                payload,
                sender,
                idempotency_key,
            } => {
                let head = encode_publication_prefix(channel.as_str(), &payload, sender.as_deref());
                let mut command_keys = vec![keys.meta(&channel), keys.history(&channel)];
                if let Some(key) = &idempotency_key {
                    command_keys.push(keys.idempotency(&channel, sender.as_deref(), key));
                }
                let mut args = vec![
                    self.node.clone().into_bytes(),
                    head,
                    self.history_size.to_string().into_bytes(),
                    millis(self.history_ttl),
                    millis(self.meta_ttl()),
                    millis(self.idempotency_window),
                    keys.topic(&channel).into_bytes(),
                ];
                args.extend(self.remembered(&channel));
                (
                    Script::Publish,
                    command_keys,
                    args,
                    Reply::Published(ticket),
                )
            }
            StoreRequest::Subscribe {
                ticket,
                channel,
                since,
            } => {
                let (command_keys, args) = self.read(&channel, since.as_ref(), true);
                (
                    Script::Read,
                    command_keys,
                    args,
                    Reply::Subscribed { ticket, channel },
                )
            }
            StoreRequest::CatchUp { channel, since } => {
                let (command_keys, args) = self.read(&channel, Some(&since), false);
                (
                    Script::Read,
                    command_keys,
                    args,
                    Reply::CaughtUp { channel, since },
                )
            }
            StoreRequest::Presence { ticket, channel } => (
                Script::Presence,
                vec![keys.users(&channel), keys.presence_version()],
                Vec::new(),
                Reply::Presence { ticket, channel },
            ),
            StoreRequest::Join { channel, user } => self.member(&channel, &user, 1),
            StoreRequest::Leave { channel, user } => self.member(&channel, &user, -1),
            StoreRequest::Lease { lease, node } => {
                let mut args = vec![
                    keys.prefix().as_bytes().to_vec(),
                    self.node.clone().into_bytes(),
                    millis(lease),
                ];
                args.extend(figures(&node));
                (
                    Script::Lease,
                    vec![keys.leases(), keys.presence_version()],
                    args,
                    Reply::Leased,
                )
            }
            StoreRequest::Rejoin { members } => {
                let mut args = vec![keys.prefix().as_bytes().to_vec()];
                for entry in members {
                    args.push(member(&entry.channel, &entry.user).into_bytes());
                    args.push(entry.connections.to_string().into_bytes());
                }
                (
                    Script::Rejoin,
                    vec![keys.node(&self.node), keys.presence_version()],
                    args,
                    Reply::Nothing,
                )
            }
            StoreRequest::Connect | StoreRequest::Follow { .. } | StoreRequest::Unfollow { .. } => {
                return None;
            }
        };
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(digests.of(script)).arg(command_keys.len());
        for key in command_keys {
            cmd.arg(key);
        }
        for arg in args {
            cmd.arg(arg);
        }
        Some((cmd, reply))
    }

    fn meta_ttl(&self) -> Duration {
        self.history_ttl.max(META_TTL_FLOOR)
    }

    fn read(
        &self,
        channel: &Channel,
        since: Option<&Position>,
        with_users: bool,
    ) -> (Vec<String>, Vec<Vec<u8>>) {
        let keys = vec![
            self.keys.meta(channel),
            self.keys.history(channel),
            self.keys.users(channel),
            self.keys.presence_version(),
        ];
        let (epoch, offset) = match since {
            Some(since) => (since.epoch.clone(), since.offset.to_string()),
            None => (String::new(), String::new()),
        };
        let mut args = vec![
            self.node.clone().into_bytes(),
            millis(self.meta_ttl()),
            millis(self.history_ttl),
            epoch.into_bytes(),
            offset.into_bytes(),
            if with_users {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            },
        ];
        args.extend(self.remembered(channel));
        (keys, args)
    }

    /// The arguments of `remember` in `common.lua`: the key prefix, the
    /// channel and `history_max_channels`.
    fn remembered(&self, channel: &Channel) -> [Vec<u8>; 3] {
        [
            self.keys.prefix().as_bytes().to_vec(),
            channel.as_str().as_bytes().to_vec(),
            self.history_max_channels.to_string().into_bytes(),
        ]
    }

    fn member(
        &self,
        channel: &Channel,
        user: &str,
        delta: i8,
    ) -> (Script, Vec<String>, Vec<Vec<u8>>, Reply) {
        let keys = vec![
            self.keys.users(channel),
            self.keys.node(&self.node),
            self.keys.presence_version(),
        ];
        let args = vec![
            user.as_bytes().to_vec(),
            member(channel, user).into_bytes(),
            delta.to_string().into_bytes(),
            self.keys.prefix().as_bytes().to_vec(),
            channel.as_str().as_bytes().to_vec(),
        ];
        (Script::Member, keys, args, Reply::Nothing)
    }

    /// The event a pub/sub message on `topic` stands for: a publication
    /// (`OFFSET EPOCH JSON`), a join (`+VERSION USER`) or a leave
    /// (`-VERSION USER`) on a channel's topic, or an order of the HTTP API
    /// on the control topic (see [`encode_control`]).
    pub(crate) fn message(&self, topic: &str, payload: &[u8]) -> Result<StoreEvent, Malformed> {
        if topic == self.keys.control() {
            return decode_control(payload).map(StoreEvent::Control);
        }
        let channel = self
            .keys
            .channel_of(topic)
            .ok_or_else(|| Malformed(format!("a message on an unknown topic {topic:?}")))?;
        let text = |bytes: &[u8]| {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| Malformed("a user that is not UTF-8".into()))
        };
        match payload.first() {
            Some(&sign @ (b'+' | b'-')) => {
                let mut parts = payload[1..].splitn(2, |&b| b == b' ');
                let version = parts.next().and_then(parse_u64);
                let user = parts.next().map(text).transpose()?;
                let (Some(version), Some(user)) = (version, user) else {
                    return Err(Malformed(
                        "a presence change without version or user".into(),
                    ));
                };
                Ok(StoreEvent::presence_change(
                    channel,
                    user,
                    sign == b'+',
                    version,
                ))
            }
            _ => {
                let mut parts = payload.splitn(3, |&b| b == b' ');
                let offset = parts.next().and_then(parse_u64);
                let epoch = parts.next().map(text).transpose()?;
                let json = parts.next();
                match (offset, epoch, json) {
                    (Some(offset), Some(epoch), Some(json)) => Ok(StoreEvent::Publication {
                        channel,
                        epoch,
                        offset,
                        frame: text_frame(json),
                    }),
                    _ => Err(Malformed(
                        "a publication without offset, epoch or JSON".into(),
                    )),
                }
            }
        }
    }
}

impl Reply {
    /// What the core is told when Redis answers the command with an error.
    pub(crate) fn refusal(self) -> Refusal {
        match self {
            Reply::Published(Some(ticket))
            | Reply::Subscribed { ticket, .. }
            | Reply::Presence { ticket, .. }
            | Reply::PresenceStats(ticket)
            | Reply::History(ticket)
            | Reply::Channels(ticket)
            | Reply::ControlSent(ticket)
            | Reply::Info(ticket) => Refusal::Ticket(ticket),
            Reply::CaughtUp { channel, .. } => Refusal::CatchUp(channel),
            Reply::Nothing | Reply::Published(None) | Reply::Leased => Refusal::Unanswered,
        }
    }

    /// The event the reply `value` stands for, if any.
    pub(crate) fn event(self, value: Value) -> Result<Option<StoreEvent>, Malformed> {
        let event = match self {
            Reply::Nothing => return Ok(None),
            Reply::Published(None) => return Ok(None),
            Reply::Published(Some(ticket)) => StoreEvent::Published {
                ticket,
                offset: convert(value)?,
            },
            Reply::Leased => StoreEvent::Leased {
                lapsed: convert::<i64>(value)? == 1,
            },
            Reply::Presence { ticket, channel } => {
                let (version, users) = convert(value)?;
                StoreEvent::Presence {
                    ticket,
                    channel,
                    users,
                    version,
                }
            }
            Reply::Subscribed { ticket, channel } => {
                let read = Read::from_value(value)?;
                StoreEvent::Subscribed {
                    ticket,
                    channel,
                    epoch: read.epoch,
                    offset: read.offset,
                    recovered: read.recovered,
                    replay: read.replay,
                    users: read.users,
                    presence_version: read.presence_version,
                }
            }
            Reply::PresenceStats(ticket) => {
                let (users, connections) = convert(value)?;
                StoreEvent::PresenceStats {
                    ticket,
                    users,
                    connections,
                }
            }
            Reply::History(ticket) => {
                let (epoch, offset, messages): (String, u64, Vec<Vec<u8>>) = convert(value)?;
                StoreEvent::History {
                    ticket,
                    epoch,
                    offset,
                    publications: messages.into_iter().map(Bytes::from).collect(),
                }
            }
            Reply::Channels(ticket) => {
                let (total, names): (u64, Vec<String>) = convert(value)?;
                let channels = names
                    .iter()
                    .map(|name| Channel::new(name))
                    .collect::<Result<_, _>>()
                    .map_err(|_| Malformed("an active channel that is no channel".into()))?;
                StoreEvent::Channels {
                    ticket,
                    channels,
                    total,
                }
            }
            Reply::ControlSent(ticket) => StoreEvent::ControlSent { ticket },
            Reply::Info(ticket) => {
                let rows: Vec<(String, u64, u64, u64)> = convert(value)?;
                let nodes = rows
                    .into_iter()
                    .map(|(id, connections, channels, uptime)| NodeInfo {
                        id,
                        stats: NodeStats {
                            connections,
                            channels,
                            uptime: Duration::from_millis(uptime),
                        },
                    })
                    .collect();
                StoreEvent::Info { ticket, nodes }
            }
            Reply::CaughtUp { channel, since } => {
                let read = Read::from_value(value)?;
                StoreEvent::CaughtUp {
                    channel,
                    since,
                    epoch: read.epoch,
                    offset: read.offset,
                    recovered: read.recovered == Some(true),
                    replay: read.replay,
                }
            }
        };
        Ok(Some(event))
    }
}

/// The reply of `read.lua`.
struct Read {
    epoch: String,
    offset: u64,
    recovered: Option<bool>,
    users: Vec<String>,
    replay: Vec<Bytes>,
    presence_version: u64,
}

impl Read {
    fn from_value(value: Value) -> Result<Read, Malformed> {
        let (epoch, offset, recovered, users, messages, presence_version): (
            String,
            u64,
            String,
            Vec<String>,
            Vec<Vec<u8>>,
            u64,
        ) = convert(value)?;
        let recovered = match recovered.as_str() {
            "" => None,
            "1" => Some(true),
            _ => Some(false),
        };
        Ok(Read {
            epoch,
            offset,
            recovered,
            users,
            replay: messages.iter().map(|json| text_frame(json)).collect(),
            presence_version,
        })
    }
}

/// A node's figures as script arguments: connections, channels, uptime
/// in milliseconds.
fn figures(node: &NodeStats) -> [Vec<u8>; 3] {
    [
        node.connections.to_string().into_bytes(),
        node.channels.to_string().into_bytes(),
        millis(node.uptime),
    ]
}

/// An order of the HTTP API on the control topic: `D CODE USER\nREASON`
/// or `U CHANNEL USER`. User ids and channel names hold neither space nor
/// newline, so the reason, last, may hold anything.
pub(crate) fn encode_control(control: &Control) -> Vec<u8> {
    match control {
        Control::Disconnect { user, code, reason } => format!("D {code} {user}\n{reason}"),
        Control::Unsubscribe { user, channel } => format!("U {channel} {user}"),
    }
    .into_bytes()
}

/// The order [`encode_control`] made.
fn decode_control(payload: &[u8]) -> Result<Control, Malformed> {
    let malformed = || Malformed("an order that is not one".into());
    let text = std::str::from_utf8(payload).map_err(|_| malformed())?;
    if let Some(rest) = text.strip_prefix("D ") {
        let (head, reason) = rest.split_once('\n').ok_or_else(malformed)?;
        let (code, user) = head.split_once(' ').ok_or_else(malformed)?;
        return Ok(Control::Disconnect {
            user: user.to_owned(),
            code: code.parse().map_err(|_| malformed())?,
            reason: reason.to_owned(),
        });
    }
    let rest = text.strip_prefix("U ").ok_or_else(malformed)?;
    let (channel, user) = rest.split_once(' ').ok_or_else(malformed)?;
    Ok(Control::Unsubscribe {
        user: user.to_owned(),
        channel: Channel::new(channel).map_err(|_| malformed())?,
    })
}

fn convert<T: redis::FromRedisValue>(value: Value) -> Result<T, Malformed> {
    redis::from_redis_value(value).map_err(|error| Malformed(error.to_string()))
}

fn parse_u64(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn millis(duration: Duration) -> Vec<u8> {
    duration.as_millis().to_string().into_bytes()
}
