//! Target `server_ops`: sequences of operations on one node with several
//! connections: connects, handshakes, auth and verdicts, requests, `rpc`
//! calls and the application's answers (or none, until
//! `decision_timeout`), reads at any pace, raw bytes, close frames,
//! dropped sockets, API publications, time jumps and shutdown.
//!
//! Invariants checked after every operation (PROTOCOL.md sections 3 to 8):
//!
//! - every frame is valid, and nothing follows a close frame;
//! - each request with an `id` gets exactly one reply with that id, and by
//!   the end every request of a live authenticated connection has one;
//! - an `rpc`'s reply comes after the replies to every request sent before
//!   it on its connection, and before those sent after it; it is the
//!   application's answer given in time (its result, its rejection's code
//!   as the protocol passes it on, `INTERNAL` for an answer that is not
//!   JSON), `UNAVAILABLE` when none came within `decision_timeout` (a later
//!   one is ignored), or, without asking the application,
//!   `INVALID_MESSAGE` for a bad method name or `RATE_LIMITED`; and the
//!   application is asked once per valid `rpc`, with its method and data;
//! - each subscriber sees a channel's offsets strictly increasing (a
//!   `since` replay goes back no further than `since`), and all
//!   subscribers agree on what each offset of an epoch carries;
//! - a publish retried with the same `id` is acknowledged with the first
//!   offset;
//! - no publication of channel `a` (whose subscriptions need a token grant)
//!   reaches a connection whose current token does not grant it: after a
//!   `refreshed` that drops the grant, only its unsolicited `unsubscribed`
//!   may follow;
//! - the `tether_connections` gauge counts the upgraded connections that
//!   have not ended, each ending is reported once, and the node's next
//!   deadline is never in the past;
//! - once every socket is gone the node holds no connection and no channel.
//!
//! The driver acts like an adapter: it closes a socket when
//! [`Server::transport`] says it closes now
//! ([`Transport::closes_now`](crate::connection::Transport::closes_now))
//! and reports it.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use serde_json::value::RawValue;

use super::peer::{self, Received, ServerReader};
use crate::access::{ChannelPattern, Grants, Namespace, Operation, Rule};
use crate::auth::Identity;
use crate::config::ServerConfig;
use crate::envelope::{
    Channel, ClientMessage, ErrorCode, IdempotencyKey, Position, RequestId, ServerMessage,
};
use crate::frame::{Opcode, encode_frame};
use crate::hooks::{DecisionId, Rejection};
use crate::ids::ConnId;
use crate::server::{Decision, Output, Server, Verdict};
use crate::time::Instant;

/// Channels the operations use: public, `latest_only`, and private ones.
const CHANNELS: &[&str] = &["a", "b", "ticker:x", "user:u0", "user:u1"];

/// Users the verdicts accept connections as.
const USERS: &[&str] = &["u0", "u1", "u2"];

/// The channel whose `subscribe` and `history` rules are `token`.
const GRANTED: &str = "a";

/// The token that grants [`GRANTED`]; every other token grants nothing.
const GRANTING_TOKEN: &str = "g";

/// The `rpc` methods the operations call: two the application answers,
/// and a name the protocol refuses.
const METHODS: &[&str] = &["sum", "orders.create", "not a method"];

/// The codes an application rejects an `rpc` with, and what the client
/// gets for each: the application's own codes as they are, a code of the
/// protocol's own checks as `INTERNAL`.
const REJECTIONS: &[(ErrorCode, ErrorCode)] = &[
    (ErrorCode::Forbidden, ErrorCode::Forbidden),
    (ErrorCode::BadRequest, ErrorCode::BadRequest),
    (ErrorCode::NotFound, ErrorCode::NotFound),
    (ErrorCode::LimitExceeded, ErrorCode::LimitExceeded),
    (ErrorCode::RateLimited, ErrorCode::RateLimited),
    (ErrorCode::Unavailable, ErrorCode::Unavailable),
    (ErrorCode::Internal, ErrorCode::Internal),
    (ErrorCode::InvalidChannel, ErrorCode::Internal),
];

/// One step of the scenario.
#[derive(Arbitrary, Clone, Debug)]
pub enum Op {
    /// A new TCP connection.
    Connect,
    /// The client of a connection (picked modulo the open ones) acts.
    Client {
        /// Which connection.
        conn: u8,
        /// What its client does.
        action: Action,
    },
    /// The verdict on a connection's pending token (of `auth` or
    /// `refresh`); its grants follow from the token.
    Verdict {
        /// Which connection.
        conn: u8,
        /// Accept (as one of three users) or reject.
        accept: Option<u8>,
    },
    /// The application publishes through the API.
    ApiPublish {
        /// Which channel.
        channel: u8,
        /// A number that becomes the payload.
        payload: u8,
    },
    /// Time moves on by this many milliseconds; deadlines fire.
    Advance {
        /// Milliseconds.
        millis: u16,
    },
    /// The node starts its graceful shutdown.
    Shutdown,
    /// The application answers the oldest `rpc` decision it was handed of
    /// a connection (picked modulo those with one, open or not), in time
    /// or after the node gave up on it.
    Answer {
        /// Which connection.
        conn: u8,
        /// The answer.
        answer: RpcAnswer,
    },
}

/// How the application answers an `rpc`.
#[derive(Arbitrary, Clone, Debug)]
pub enum RpcAnswer {
    /// Its result, `{"r":n}`.
    Result(u8),
    /// A rejection with one of [`REJECTIONS`].
    Reject(u8),
    /// Text that is not JSON, which the node answers `INTERNAL`.
    NotJson,
}

/// What the client of one connection does. Until its handshake is written,
/// any action writes the handshake instead.
#[derive(Arbitrary, Clone, Debug)]
pub enum Action {
    /// Sends `auth`, with the token that grants [`GRANTED`] or another.
    Auth(bool),
    /// Sends `{"type":"ping"}` with an id.
    AppPing,
    /// Subscribes, optionally recovering from an offset in the current epoch.
    Subscribe {
        /// Which channel.
        channel: u8,
        /// The offset of `since`.
        since: Option<u8>,
    },
    /// Unsubscribes.
    Unsubscribe {
        /// Which channel.
        channel: u8,
    },
    /// Publishes, with a fresh idempotency key or retrying the last
    /// acknowledged publication with its key; always with a fresh id.
    Publish {
        /// Which channel.
        channel: u8,
        /// A number that becomes the payload.
        payload: u8,
        /// Reuse the idempotency key of the last acknowledged publish.
        retry: bool,
    },
    /// Asks for presence.
    Presence {
        /// Which channel.
        channel: u8,
    },
    /// A WebSocket Ping with this data.
    Ping(u8),
    /// A WebSocket Pong.
    Pong,
    /// A close frame with this code.
    Close(u16),
    /// Arbitrary bytes (afterwards the connection's replies are not
    /// accounted for: the bytes may be anything).
    Raw(Vec<u8>),
    /// Reads up to this many bytes of what the node wrote (in 64-byte units).
    Read(u8),
    /// The socket drops.
    Drop,
    /// Sends `refresh` with an id, with the token that grants [`GRANTED`]
    /// or another.
    Refresh(bool),
    /// Calls an `rpc` with an id.
    Rpc {
        /// Which of [`METHODS`].
        method: u8,
        /// A number that goes into the data.
        data: u8,
    },
}

/// Limits small enough for the operations to reach.
fn config() -> ServerConfig {
    ServerConfig {
        handshake_timeout: Duration::from_secs(2),
        close_timeout: Duration::from_secs(1),
        auth_timeout: Duration::from_secs(3),
        heartbeat_interval: Duration::from_secs(5),
        max_payload: 512,
        high_water: 1024,
        hard_limit: 4096,
        slow_timeout: Duration::from_secs(1),
        history_size: 4,
        history_ttl: Duration::from_secs(20),
        rate_limit: 50,
        rate_burst: 20,
        max_connections: 6,
        latest_only: vec!["ticker:*".into()],
        max_pending_before_auth: 4,
        idempotency_window: Duration::from_secs(10),
        decision_timeout: Duration::from_secs(2),
        namespaces: vec![
            Namespace {
                subscribe: Rule::Token,
                history: Rule::Token,
                ..Namespace::open(ChannelPattern::new(GRANTED).expect("a pattern"))
            },
            Namespace::open(ChannelPattern::new("*").expect("a pattern")),
        ],
        ..ServerConfig::default()
    }
}

/// What a token grants: [`GRANTED`] for [`GRANTING_TOKEN`], nothing else.
fn grants_of(token: &str) -> Grants {
    let pattern = ChannelPattern::new(GRANTED).expect("a pattern");
    let ops: &[Operation] = if token == GRANTING_TOKEN {
        &[Operation::Subscribe, Operation::History]
    } else {
        &[]
    };
    Grants::new([(pattern, ops)])
}

/// Decodes operations from `data` and runs them.
pub fn check(data: &[u8]) {
    let input = Unstructured::new(data);
    let ops: Vec<Op> = Vec::arbitrary_take_rest(input).unwrap_or_default();
    run(&ops);
}

/// Runs `ops` on a fresh node, checking the invariants after each.
pub fn run(ops: &[Op]) {
    let mut node = Node::new();
    for op in ops {
        node.apply(op);
        node.settle();
        node.check();
    }
    node.finish();
}

/// The node and the clients of its connections, as the driver sees them.
struct Node {
    server: Server,
    config: ServerConfig,
    now: Instant,
    clients: Vec<Client>,
    /// What each (channel, epoch, offset) carried, as first seen.
    published: Record,
    /// Upgraded connections whose end was not reported yet.
    upgraded_open: u64,
    next_request: u64,
    /// The node's next deadline, from its last drain.
    deadline: Option<Instant>,
}

/// The client of one connection.
struct Client {
    id: ConnId,
    reader: ServerReader,
    /// The handshake was written.
    upgraded: bool,
    /// The `auth_ack` was read.
    authenticated: bool,
    /// Raw bytes were written: replies are no longer accounted for.
    tainted: bool,
    /// The node reported the connection's end.
    ended: bool,
    /// The socket is closed.
    gone: bool,
    /// Requests without a reply yet, by the number in their id (`q<n>`),
    /// which counts up in the order they were sent.
    pending: BTreeMap<u64, Request>,
    /// The `rpc` decisions handed out for this connection that the
    /// application has not answered, oldest first, with the number of the
    /// request each decides (none once the connection is tainted: raw
    /// bytes may have made an `rpc` of their own).
    decisions: VecDeque<(DecisionId, Option<u64>)>,
    channels: BTreeMap<String, Subscription>,
    /// The last acknowledged publish: idempotency key, channel, offset,
    /// when it was sent.
    last_ack: Option<(String, String, u64, Instant)>,
    /// The token of the first `auth` sent, the one the node decides.
    auth_token: Option<String>,
    /// The token the node asked a verdict on, until one is fed.
    asked: Option<String>,
    /// The authenticated user.
    user: Option<String>,
    /// Whether the token the connection is on grants [`GRANTED`].
    granted: bool,
}

/// What a request was, to check its reply.
#[derive(Clone, Debug)]
enum Request {
    Ping,
    Subscribe {
        channel: String,
        since: Option<u64>,
    },
    Unsubscribe {
        channel: String,
    },
    Publish {
        channel: String,
        key: String,
        expect: Option<u64>,
        sent: Instant,
    },
    Presence,
    Refresh {
        token: String,
    },
    Rpc {
        method: String,
        state: Rpc,
    },
}

/// Where an `rpc` stands, as the application sees it.
#[derive(Clone, Debug)]
enum Rpc {
    /// Not handed to the application (yet).
    Sent,
    /// Handed out as a decision at this instant; unanswered, or answered
    /// too late.
    Asked(Instant),
    /// Answered in time: what the client must get.
    Answered(Result<String, ErrorCode>),
}

/// One connection's view of one channel.
#[derive(Default)]
struct Subscription {
    /// Subscribed (`subscribed` read, `unsubscribed` not).
    active: bool,
    epoch: Option<String>,
    last: Option<u64>,
    /// Publications read while a `subscribe` was unanswered: replayed ones
    /// and live ones, checked and recorded once the epoch is known.
    unconfirmed: Vec<(u64, String)>,
}

impl Node {
    fn new() -> Node {
        let config = config();
        Node {
            server: Server::new(config.clone(), 0).expect("a valid config"),
            config,
            now: Instant::ZERO,
            clients: Vec::new(),
            published: BTreeMap::new(),
            upgraded_open: 0,
            next_request: 0,
            deadline: None,
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Connect => {
                let refused = self.server.is_draining()
                    || self.server.connection_count() >= self.config.max_connections;
                let id = self.server.accept(self.now);
                if refused {
                    // Refused with 503: this client hangs up at once.
                    self.server.handle_transport_closed(self.now, id);
                } else {
                    self.clients.push(Client::new(id));
                }
            }
            Op::Client { conn, action } => {
                if let Some(index) = self.live(*conn) {
                    self.act(index, action);
                }
            }
            Op::Verdict { conn, accept } => {
                if let Some(index) = self.live(*conn) {
                    self.decide(index, accept.map(|user| pick(USERS, user)));
                }
            }
            Op::ApiPublish { channel, payload } => {
                self.server.publish(
                    self.now,
                    0,
                    pick(CHANNELS, *channel),
                    &format!(r#"{{"api":{payload}}}"#),
                );
            }
            Op::Advance { millis } => {
                self.now += Duration::from_millis(u64::from(*millis));
                self.server.handle_timeout(self.now);
            }
            Op::Shutdown => self.server.shutdown(self.now),
            Op::Answer { conn, answer } => {
                let asked: Vec<usize> = (0..self.clients.len())
                    .filter(|&i| !self.clients[i].decisions.is_empty())
                    .collect();
                if !asked.is_empty() {
                    let index = asked[usize::from(*conn) % asked.len()];
                    self.answer(index, answer);
                }
            }
        }
    }

    /// The application answers the oldest `rpc` decision of the client at
    /// `index`; an answer in time is what its client must get.
    fn answer(&mut self, index: usize, answer: &RpcAnswer) {
        let timeout = self.config.decision_timeout;
        let client = &mut self.clients[index];
        let Some((id, number)) = client.decisions.pop_front() else {
            return;
        };
        let (result, expected) = match answer {
            RpcAnswer::Result(n) => {
                let data = format!(r#"{{"r":{n}}}"#);
                (Ok(data.clone()), Ok(data))
            }
            RpcAnswer::Reject(code) => {
                let (given, sent) = REJECTIONS[usize::from(*code) % REJECTIONS.len()];
                (Err(Rejection::new(given, "no")), Err(sent))
            }
            RpcAnswer::NotJson => (Ok("not json".to_owned()), Err(ErrorCode::Internal)),
        };
        if let Some(Request::Rpc { state, .. }) = number.and_then(|n| client.pending.get_mut(&n))
            && let Rpc::Asked(at) = *state
            && self.now < at + timeout
        {
            *state = Rpc::Answered(expected);
        }
        let verdict = Verdict::Rpc {
            id,
            conn: client.id,
            result,
        };
        self.server.handle_verdict(self.now, verdict);
    }

    /// Feeds the verdict on the token the node asked about (if any): as
    /// `user`, with the grants of the token, or refused.
    fn decide(&mut self, index: usize, user: Option<&str>) {
        let client = &mut self.clients[index];
        let Some(token) = client.asked.take() else {
            return;
        };
        let identity = user.map(|user| Identity {
            user: user.to_owned(),
            grants: grants_of(&token),
            ..Identity::default()
        });
        self.server
            .handle_auth_verdict(self.now, client.id, identity);
    }

    /// The index of the `conn`-th connection whose socket is open.
    fn live(&self, conn: u8) -> Option<usize> {
        let live: Vec<usize> = (0..self.clients.len())
            .filter(|&i| !self.clients[i].gone)
            .collect();
        (!live.is_empty()).then(|| live[usize::from(conn) % live.len()])
    }

    fn act(&mut self, index: usize, action: &Action) {
        let id = self.clients[index].id;
        if !self.clients[index].upgraded {
            self.clients[index].upgraded = true;
            self.upgraded_open += 1;
            self.server
                .handle_read(self.now, id, &peer::upgrade_request(false));
            return;
        }
        let bytes = match action {
            Action::Auth(granting) => {
                let token = token_of(*granting);
                // Only the first `auth` is decided: the node answers a
                // later one `INVALID_MESSAGE`.
                self.clients[index].auth_token.get_or_insert(token.clone());
                peer::text(&ClientMessage::Auth { id: None, token })
            }
            Action::Refresh(granting) => {
                let token = token_of(*granting);
                let request = Request::Refresh {
                    token: token.clone(),
                };
                let id = self.request(index, request);
                peer::text(&ClientMessage::Refresh {
                    id: Some(id),
                    token,
                })
            }
            Action::AppPing => {
                let id = self.request(index, Request::Ping);
                peer::text(&ClientMessage::Ping { id: Some(id) })
            }
            Action::Subscribe { channel, since } => {
                let name = pick(CHANNELS, *channel);
                let epoch = self.clients[index].channel(name).epoch.clone();
                let since = since.zip(epoch).map(|(offset, epoch)| Position {
                    epoch,
                    offset: u64::from(offset),
                });
                let request = Request::Subscribe {
                    channel: name.to_owned(),
                    since: since.as_ref().map(|p| p.offset),
                };
                let id = self.request(index, request);
                peer::text(&ClientMessage::Subscribe {
                    id: Some(id),
                    channel: channel_named(name),
                    since,
                })
            }
            Action::Unsubscribe { channel } => {
                let name = pick(CHANNELS, *channel);
                let request = Request::Unsubscribe {
                    channel: name.to_owned(),
                };
                let id = self.request(index, request);
                peer::text(&ClientMessage::Unsubscribe {
                    id: Some(id),
                    channel: channel_named(name),
                })
            }
            Action::Publish {
                channel,
                payload,
                retry,
            } => self.publish(index, pick(CHANNELS, *channel), *payload, *retry),
            Action::Presence { channel } => {
                let id = self.request(index, Request::Presence);
                peer::text(&ClientMessage::Presence {
                    id: Some(id),
                    channel: channel_named(pick(CHANNELS, *channel)),
                })
            }
            Action::Rpc { method, data } => {
                let method = pick(METHODS, *method).to_owned();
                let request = Request::Rpc {
                    method: method.clone(),
                    state: Rpc::Sent,
                };
                let id = self.request(index, request);
                // The request's own number in the data tells which request
                // a decision is for.
                let data = format!(r#"{{"q":{},"n":{data}}}"#, self.next_request);
                peer::text(&ClientMessage::Rpc {
                    id,
                    method,
                    data: RawValue::from_string(data).expect("JSON"),
                })
            }
            Action::Ping(data) => encode_frame(Opcode::Ping, &[*data], Some(peer::MASK)),
            Action::Pong => encode_frame(Opcode::Pong, &[], Some(peer::MASK)),
            Action::Close(code) => {
                encode_frame(Opcode::Close, &code.to_be_bytes(), Some(peer::MASK))
            }
            Action::Raw(bytes) => {
                self.clients[index].tainted = true;
                Bytes::copy_from_slice(bytes)
            }
            Action::Read(units) => {
                self.read(index, usize::from(*units) * 64 + 1);
                return;
            }
            Action::Drop => {
                self.clients[index].gone = true;
                self.server.handle_transport_closed(self.now, id);
                return;
            }
        };
        self.server.handle_read(self.now, id, &bytes);
    }

    /// A fresh request id, recorded as pending on the connection.
    fn request(&mut self, index: usize, request: Request) -> RequestId {
        self.next_request += 1;
        self.clients[index]
            .pending
            .insert(self.next_request, request);
        request_id(self.next_request)
    }

    fn publish(&mut self, index: usize, channel: &str, payload: u8, retry: bool) -> Bytes {
        let window = self.config.idempotency_window;
        let client = &mut self.clients[index];
        let retried = client.last_ack.clone().filter(|(_, acked_on, _, sent)| {
            retry && acked_on == channel && self.now < *sent + window
        });
        self.next_request += 1;
        let (key, expect) = match retried {
            Some((key, _, offset, _)) => (key, Some(offset)),
            None => (format!("k{}", self.next_request), None),
        };
        let request = Request::Publish {
            channel: channel.to_owned(),
            key: key.clone(),
            expect,
            sent: self.now,
        };
        client.pending.insert(self.next_request, request);
        let payload = RawValue::from_string(format!(r#"{{"n":{payload}}}"#)).expect("JSON");
        peer::text(&ClientMessage::Publish {
            id: Some(request_id(self.next_request)),
            idempotency_key: Some(IdempotencyKey::new(key).expect("a short key")),
            channel: channel_named(channel),
            payload,
        })
    }

    /// The client reads up to `budget` bytes and checks each frame.
    fn read(&mut self, index: usize, budget: usize) {
        let mut out = Vec::new();
        let id = self.clients[index].id;
        let moved = self.server.poll_transmit(id, budget, &mut out);
        self.server.handle_written(id, moved);
        for chunk in out {
            if let Some(received) = self.clients[index].reader.read(&chunk) {
                self.receive(index, received);
            }
        }
    }

    fn receive(&mut self, index: usize, received: Received) {
        let client = &mut self.clients[index];
        let Received::Message(message) = received else {
            return;
        };
        if let ServerMessage::AuthAck { user, .. } = &message {
            assert!(!client.authenticated, "a second auth_ack");
            client.authenticated = true;
            client.user = Some(user.clone());
            client.granted = client.auth_token.as_deref() == Some(GRANTING_TOKEN);
        }
        if client.tainted {
            return;
        }
        let request = reply_id(&message).map(|id| {
            let number = number_of(id);
            let request = client
                .pending
                .remove(&number)
                .unwrap_or_else(|| panic!("a reply to no pending request: {message:?}"));
            client.check_order(number, &request);
            request
        });
        let published = &mut self.published;
        match (message, request) {
            (
                ServerMessage::Message {
                    channel,
                    payload,
                    sender,
                    offset,
                },
                None,
            ) => {
                assert!(
                    channel.as_str() != GRANTED || client.granted,
                    "a publication of {GRANTED} reached a connection whose token does not grant it"
                );
                let text = format!("{} {sender:?}", payload.get());
                client.publication(channel.as_str(), offset, text, published);
            }
            (ServerMessage::Refreshed { .. }, Some(Request::Refresh { token })) => {
                client.granted = token == GRANTING_TOKEN;
            }
            (
                ServerMessage::Unsubscribed {
                    channel,
                    reason: Some(_),
                    ..
                },
                None,
            ) => {
                assert!(
                    channel.as_str() == GRANTED && !client.granted,
                    "{channel} ended while its grant stands"
                );
                client.channel(channel.as_str()).active = false;
            }
            (
                ServerMessage::Subscribed {
                    channel,
                    epoch,
                    offset,
                    ..
                },
                Some(Request::Subscribe {
                    channel: asked,
                    since,
                }),
            ) => {
                assert_eq!(channel.as_str(), asked);
                client.subscribed(&asked, epoch, offset, since, published);
            }
            (ServerMessage::Error { .. }, Some(Request::Subscribe { channel, .. })) => {
                client.refused(&channel);
            }
            (
                ServerMessage::Ack { offset, .. },
                Some(Request::Publish {
                    channel,
                    key,
                    expect,
                    sent,
                }),
            ) => {
                if let Some(first) = expect {
                    assert_eq!(offset, first, "a retried publish got a new offset");
                }
                client.last_ack = Some((key, channel, offset, sent));
            }
            (ServerMessage::Unsubscribed { .. }, Some(Request::Unsubscribe { channel })) => {
                client.channel(&channel).active = false;
            }
            (ServerMessage::RpcResult { data, .. }, Some(Request::Rpc { state, .. })) => {
                assert!(
                    matches!(&state, Rpc::Answered(Ok(given)) if *given == data.get()),
                    "rpc_result {} for an rpc {state:?}",
                    data.get()
                );
            }
            (ServerMessage::Error { code, .. }, Some(Request::Rpc { method, state })) => {
                let expected = match state {
                    Rpc::Answered(answer) => vec![answer.expect_err("a rejection")],
                    Rpc::Asked(_) => vec![ErrorCode::Unavailable],
                    Rpc::Sent if crate::is_valid_method(&method) => vec![ErrorCode::RateLimited],
                    Rpc::Sent => vec![ErrorCode::InvalidMessage, ErrorCode::RateLimited],
                };
                assert!(
                    expected.contains(&code),
                    "{code} for an rpc, not {expected:?}"
                );
            }
            (ServerMessage::Pong { .. }, Some(Request::Ping))
            | (ServerMessage::Presence { .. }, Some(Request::Presence))
            | (ServerMessage::Error { .. }, Some(_))
            | (
                ServerMessage::Presence { .. }
                | ServerMessage::Join { .. }
                | ServerMessage::Leave { .. }
                | ServerMessage::AuthAck { .. }
                | ServerMessage::Error { .. },
                None,
            ) => {}
            (message, request) => panic!("{message:?} does not answer {request:?}"),
        }
    }

    /// Drives the node like an adapter after each operation: counts the
    /// sessions that end and closes the sockets the node is done with.
    /// Verdicts are operations of their own, and a `Wake` needs nothing
    /// here: clients read when their operations say so.
    fn settle(&mut self) {
        let mut asked = Vec::new();
        let mut rpcs = Vec::new();
        loop {
            let mut ended = Vec::new();
            self.deadline = peer::drain(&mut self.server, |_, output| match output {
                Output::Published { result, .. } => assert!(result.is_ok(), "{result:?}"),
                Output::Store(request) => panic!("a memory node asked a store: {request:?}"),
                Output::Closed { conn, .. } => ended.push(conn),
                Output::Decide(Decision::Authenticate { request, .. }) => {
                    asked.push((request.conn, request.token));
                }
                Output::Decide(Decision::Rpc { id, request }) => rpcs.push((id, request)),
                Output::Wake(_)
                | Output::Decide(_)
                | Output::Notify(_)
                | Output::Drained
                | Output::Timeout(_) => {}
            });
            for (conn, token) in asked.drain(..) {
                if let Some(client) = self.clients.iter_mut().find(|c| c.id == conn) {
                    client.asked = Some(token);
                }
            }
            for (id, request) in rpcs.drain(..) {
                let client = self
                    .clients
                    .iter_mut()
                    .find(|c| c.id == request.conn)
                    .expect("a known connection");
                client.asked_rpc(self.now, id, &request.method, &request.data);
            }
            for conn in ended {
                let client = self
                    .clients
                    .iter_mut()
                    .find(|c| c.id == conn)
                    .expect("a known connection");
                assert!(!client.ended, "a connection ended twice");
                assert!(
                    client.upgraded,
                    "an HTTP connection reported as a session end"
                );
                client.ended = true;
                self.upgraded_open -= 1;
            }
            let mut closed = false;
            for client in &mut self.clients {
                if !client.gone && self.server.transport(client.id).closes_now() {
                    client.gone = true;
                    closed = true;
                    self.server.handle_transport_closed(self.now, client.id);
                }
            }
            if !closed {
                return;
            }
        }
    }

    fn check(&self) {
        if let Some(deadline) = self.deadline {
            assert!(
                deadline > self.now,
                "deadline {deadline:?} is not after {:?}",
                self.now
            );
        }
        let gauge = format!("tether_connections {}", self.upgraded_open);
        let metrics = self.server.metrics_text();
        assert!(
            metrics.lines().any(|line| line == gauge),
            "{gauge}: {metrics}"
        );
    }

    fn finish(mut self) {
        // What the node wrote is read first: an `auth_ack` not read yet
        // makes a connection one whose requests must all be answered,
        // a `refresh` sent before it included.
        for index in 0..self.clients.len() {
            if !self.clients[index].gone {
                self.read(index, usize::MAX);
            }
        }
        // Every decision out is answered, then those that were waiting
        // behind them.
        loop {
            let mut answered = false;
            for index in 0..self.clients.len() {
                if self.clients[index].authenticated && self.clients[index].asked.is_some() {
                    let user = self.clients[index].user.clone();
                    self.decide(index, user.as_deref());
                    answered = true;
                }
                while !self.clients[index].decisions.is_empty() {
                    self.answer(index, &RpcAnswer::Result(0));
                    answered = true;
                }
            }
            self.settle();
            if !answered {
                break;
            }
        }
        for index in 0..self.clients.len() {
            if !self.clients[index].gone {
                self.read(index, usize::MAX);
            }
            let client = &self.clients[index];
            let open = !client.gone && !client.reader.is_closed();
            if open && client.authenticated && !client.tainted {
                assert!(
                    client.pending.is_empty(),
                    "unanswered: {:?}",
                    client.pending
                );
            }
        }
        for index in 0..self.clients.len() {
            if !self.clients[index].gone {
                self.clients[index].gone = true;
                let id = self.clients[index].id;
                self.server.handle_transport_closed(self.now, id);
            }
        }
        self.settle();
        assert_eq!(self.server.connection_count(), 0);
        let metrics = self.server.metrics_text();
        for gauge in ["tether_connections 0", "tether_channels 0"] {
            assert!(metrics.lines().any(|line| line == gauge), "{metrics}");
        }
    }
}

impl Client {
    fn new(id: ConnId) -> Client {
        Client {
            id,
            reader: ServerReader::new(false),
            upgraded: false,
            authenticated: false,
            tainted: false,
            ended: false,
            gone: false,
            pending: BTreeMap::new(),
            decisions: VecDeque::new(),
            channels: BTreeMap::new(),
            last_ack: None,
            auth_token: None,
            asked: None,
            user: None,
            granted: false,
        }
    }

    fn channel(&mut self, name: &str) -> &mut Subscription {
        self.channels.entry(name.to_owned()).or_default()
    }

    /// The node handed out `rpc` decision `id` for this connection: it
    /// must be for a valid `rpc` this client sent and the application was
    /// not asked yet, with its method and data.
    fn asked_rpc(&mut self, now: Instant, id: DecisionId, method: &str, data: &str) {
        if self.tainted {
            self.decisions.push_back((id, None));
            return;
        }
        let data: serde_json::Value = serde_json::from_str(data).expect("the data sent");
        let number = data["q"].as_u64().expect("the request's number");
        let Some(Request::Rpc {
            method: sent,
            state,
        }) = self.pending.get_mut(&number)
        else {
            panic!("a decision for no pending rpc: q{number}");
        };
        assert!(
            matches!(state, Rpc::Sent),
            "q{number} asked twice: {state:?}"
        );
        assert_eq!(method, sent, "the method of q{number}");
        assert!(crate::is_valid_method(method), "a bad method asked");
        *state = Rpc::Asked(now);
        self.decisions.push_back((id, Some(number)));
    }

    /// The reply to request `number` comes in order as far as `rpc` goes:
    /// after the replies to every request sent before an `rpc`, and before
    /// the reply of any request sent after one that is still unanswered.
    fn check_order(&self, number: u64, request: &Request) {
        let earlier = self.pending.range(..number);
        if let Request::Rpc { .. } = request {
            let earlier: Vec<&u64> = earlier.map(|(n, _)| n).collect();
            assert!(
                earlier.is_empty(),
                "the rpc q{number} was answered before {earlier:?}"
            );
        } else if let Some((rpc, _)) = earlier
            .into_iter()
            .find(|(_, r)| matches!(r, Request::Rpc { .. }))
        {
            panic!("q{number} was answered before the rpc q{rpc}");
        }
    }

    /// Whether a `subscribe` to `channel` waits for its answer.
    fn confirming(&self, channel: &str) -> bool {
        self.pending
            .values()
            .any(|r| matches!(r, Request::Subscribe { channel: c, .. } if c == channel))
    }

    /// A publication read: the next live one of an active subscription, or
    /// else part of the replay of a `subscribe` in flight, checked once it
    /// is answered.
    fn publication(&mut self, channel: &str, offset: u64, text: String, published: &mut Record) {
        let confirming = self.confirming(channel);
        let sub = self.channel(channel);
        let live =
            sub.active && sub.unconfirmed.is_empty() && sub.last.is_none_or(|last| offset > last);
        if live {
            sub.last = Some(offset);
            let epoch = sub
                .epoch
                .clone()
                .expect("active subscriptions have an epoch");
            record(published, channel, &epoch, offset, text);
        } else {
            assert!(
                confirming,
                "offset {offset} on {channel} (active: {}, last: {:?}) is neither live nor a replay",
                sub.active, sub.last
            );
            sub.unconfirmed.push((offset, text));
        }
    }

    /// `subscribed` answered a `subscribe`: what was kept meanwhile is its
    /// replay, strictly increasing from after `since` up to `offset`.
    fn subscribed(
        &mut self,
        channel: &str,
        epoch: String,
        offset: u64,
        since: Option<u64>,
        published: &mut Record,
    ) {
        let sub = self.channel(channel);
        let mut last = since;
        for (seen, text) in std::mem::take(&mut sub.unconfirmed) {
            assert!(since.is_some(), "a replay without since on {channel}");
            assert!(
                last.is_none_or(|last| seen > last),
                "replayed offset {seen} after {last:?} (since {since:?})"
            );
            assert!(
                seen <= offset,
                "offset {seen} read before subscribed at {offset}"
            );
            record(published, channel, &epoch, seen, text);
            last = Some(seen);
        }
        sub.active = true;
        sub.epoch = Some(epoch);
        sub.last = Some(offset);
    }

    /// A `subscribe` was refused: nothing was replayed for it.
    fn refused(&mut self, channel: &str) {
        let sub = self.channel(channel);
        assert!(
            sub.unconfirmed.is_empty(),
            "a replay for a refused subscribe"
        );
    }
}

/// What each (channel, epoch, offset) carried.
type Record = BTreeMap<(String, String, u64), String>;

/// Records what `offset` of `channel` in `epoch` carried; every subscriber
/// must have read the same.
fn record(published: &mut Record, channel: &str, epoch: &str, offset: u64, text: String) {
    let key = (channel.to_owned(), epoch.to_owned(), offset);
    let first = published.entry(key).or_insert_with(|| text.clone());
    assert_eq!(
        *first, text,
        "{channel}@{epoch}:{offset} differs between readers"
    );
}

/// The id a reply carries.
fn reply_id(message: &ServerMessage) -> Option<&RequestId> {
    match message {
        ServerMessage::Pong { id }
        | ServerMessage::Subscribed { id, .. }
        | ServerMessage::Unsubscribed { id, .. }
        | ServerMessage::Refreshed { id, .. }
        | ServerMessage::Presence { id, .. }
        | ServerMessage::Error { id, .. } => id.as_ref(),
        ServerMessage::Ack { id, .. } | ServerMessage::RpcResult { id, .. } => Some(id),
        ServerMessage::AuthAck { .. }
        | ServerMessage::Message { .. }
        | ServerMessage::Join { .. }
        | ServerMessage::Leave { .. } => None,
    }
}

/// The id of request number `number`.
fn request_id(number: u64) -> RequestId {
    RequestId::new(format!("q{number}")).expect("a short id")
}

/// The number in the id of one of the operations' requests.
fn number_of(id: &RequestId) -> u64 {
    id.as_str()
        .strip_prefix('q')
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("{id} is no request of the operations"))
}

/// `choices[index % len]`.
fn pick(choices: &[&'static str], index: u8) -> &'static str {
    choices[usize::from(index) % choices.len()]
}

/// The token an `auth` or `refresh` sends.
fn token_of(granting: bool) -> String {
    if granting { GRANTING_TOKEN } else { "t" }.to_owned()
}

/// One of [`CHANNELS`], as a channel.
fn channel_named(name: &str) -> Channel {
    Channel::new(name).expect("the operations' channels are valid")
}

/// The operations as proptest strategies, so the invariants run on stable.
#[cfg(test)]
pub(crate) mod strategy {
    use proptest::prelude::*;

    use super::{Action, Op, RpcAnswer};

    pub(crate) fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            2 => any::<bool>().prop_map(Action::Auth),
            1 => any::<bool>().prop_map(Action::Refresh),
            1 => Just(Action::AppPing),
            3 => (any::<u8>(), any::<Option<u8>>())
                .prop_map(|(channel, since)| Action::Subscribe { channel, since }),
            1 => any::<u8>().prop_map(|channel| Action::Unsubscribe { channel }),
            3 => (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(channel, payload, retry)| {
                Action::Publish { channel, payload, retry }
            }),
            1 => any::<u8>().prop_map(|channel| Action::Presence { channel }),
            1 => any::<u8>().prop_map(Action::Ping),
            1 => Just(Action::Pong),
            1 => prop_oneof![Just(1000u16), Just(1005), any::<u16>()].prop_map(Action::Close),
            1 => prop::collection::vec(any::<u8>(), 0..16).prop_map(Action::Raw),
            4 => any::<u8>().prop_map(Action::Read),
            1 => Just(Action::Drop),
            2 => (any::<u8>(), any::<u8>()).prop_map(|(method, data)| Action::Rpc { method, data }),
        ]
    }

    pub(crate) fn rpc_answer() -> impl Strategy<Value = RpcAnswer> {
        prop_oneof![
            3 => any::<u8>().prop_map(RpcAnswer::Result),
            2 => any::<u8>().prop_map(RpcAnswer::Reject),
            1 => Just(RpcAnswer::NotJson),
        ]
    }

    pub(crate) fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => Just(Op::Connect),
            12 => (any::<u8>(), action()).prop_map(|(conn, action)| Op::Client { conn, action }),
            2 => (any::<u8>(), any::<Option<u8>>())
                .prop_map(|(conn, accept)| Op::Verdict { conn, accept }),
            2 => (any::<u8>(), any::<u8>())
                .prop_map(|(channel, payload)| Op::ApiPublish { channel, payload }),
            2 => prop_oneof![0..2000u16, any::<u16>()].prop_map(|millis| Op::Advance { millis }),
            1 => Just(Op::Shutdown),
            2 => (any::<u8>(), rpc_answer()).prop_map(|(conn, answer)| Op::Answer { conn, answer }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn invariants_hold(ops in prop::collection::vec(op(), 0..80)) {
            super::run(&ops);
        }
    }

    /// The path the random operations seldom take in full: a subscriber
    /// of the granted channel refreshes to a token without the grant, then
    /// the channel gets a publication.
    #[test]
    fn a_refresh_that_drops_the_grant_holds_the_invariants() {
        let client = |action| Op::Client { conn: 0, action };
        let verdict = Op::Verdict {
            conn: 0,
            accept: Some(0),
        };
        super::run(&[
            Op::Connect,
            client(Action::Read(0)),
            client(Action::Auth(true)),
            verdict.clone(),
            client(Action::Subscribe {
                channel: 0,
                since: None,
            }),
            client(Action::Read(255)),
            client(Action::Refresh(false)),
            verdict,
            Op::ApiPublish {
                channel: 0,
                payload: 1,
            },
            client(Action::Read(255)),
        ]);
    }

    /// Every way an `rpc` ends, on one connection, in order: a result, a
    /// bad method, a rejection with a code of the protocol's own, an
    /// answer that is not JSON, and one that comes after the node gave up.
    #[test]
    fn rpcs_answered_refused_and_timed_out_hold_the_invariants() {
        let client = |action| Op::Client { conn: 0, action };
        let rpc = |method, data| client(Action::Rpc { method, data });
        let answer = |answer| Op::Answer { conn: 0, answer };
        super::run(&[
            Op::Connect,
            client(Action::Read(0)),
            client(Action::Auth(false)),
            Op::Verdict {
                conn: 0,
                accept: Some(0),
            },
            rpc(0, 1),
            client(Action::AppPing),
            rpc(2, 2),
            rpc(1, 3),
            answer(RpcAnswer::Result(5)),
            answer(RpcAnswer::Reject(7)),
            rpc(0, 4),
            answer(RpcAnswer::NotJson),
            rpc(0, 5),
            Op::Advance { millis: 2000 },
            answer(RpcAnswer::Result(9)),
            rpc(1, 6),
            client(Action::Read(255)),
        ]);
    }
}
