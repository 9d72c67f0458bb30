//! Target `client_ops`: sequences of operations on a client session that
//! talks to a real node through an in-memory network: commands, requests,
//! partial deliveries, tokens given or refused by the provider (and a
//! switch to a fixed token), failed and accepted dials, auth and refresh
//! verdicts (tokens that expire included), dropped sockets, node restarts,
//! hostile bytes and time jumps.
//!
//! Invariants checked after every operation (PROTOCOL.md section 10 and
//! the client decisions of section 11):
//!
//! - every request the session accepted is settled exactly once (by the
//!   end, after `close()`, all of them), and a reply settles the request
//!   that carries its id;
//! - the session's next deadline is never in the past;
//! - socket actions make sense: a dial only without a socket, writes only
//!   on an open socket; with the provider, a dial only right after the
//!   provider gave the token the session wanted;
//! - a `Disconnected` that will reconnect is followed by `Reconnecting`,
//!   with attempts counting up from 1 after each `Connected` and within
//!   `max_attempts`, and delays within the backoff's bounds; one that will
//!   not leaves the session closed for good, and nothing connects again;
//! - publications reach the application with offsets strictly increasing
//!   per channel and epoch.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use serde_json::value::RawValue;

use super::peer;

use crate::auth::{Expiry, Identity};
use crate::backoff::Backoff;
use crate::client::{ClientConfig, ClientSession, Event, SendError, TokenSource, Transmit};
use crate::config::ServerConfig;
use crate::envelope::{Channel, ClientMessage, RequestId, ServerMessage};
use crate::ids::ConnId;
use crate::server::{Decision, Output, Server};
use crate::time::Instant;

/// Channels the operations use.
const CHANNELS: &[&str] = &["a", "b", "ticker:x"];

/// The wall clock at the origin of the world's time line, in Unix
/// milliseconds.
const UNIX_AT_ORIGIN: u64 = 1_700_000_000_000;

/// The lives of the tokens a verdict may accept, in milliseconds, picked
/// by the verdict's number; `None`: no expiry.
const LIVES: [Option<u64>; 4] = [None, Some(1_000), Some(3_000), Some(90_000)];

/// One step of the scenario.
#[derive(Arbitrary, Clone, Debug)]
pub enum Op {
    /// `subscribe(channel)`.
    Subscribe(u8),
    /// `unsubscribe(channel)`.
    Unsubscribe(u8),
    /// `publish(channel, payload)`.
    Publish {
        /// Which channel.
        channel: u8,
        /// A number that becomes the payload.
        payload: u8,
    },
    /// `request(message, timeout)` for a ping, presence, unsubscribe or
    /// `auth` (which is not a request).
    Request {
        /// Which kind of message.
        kind: u8,
        /// Which channel.
        channel: u8,
        /// The timeout, in milliseconds (at least 1).
        timeout: u16,
    },
    /// `send` of a publication without an id.
    Send(u8),
    /// `close()`.
    Close,
    /// The dial in progress succeeds.
    Accept,
    /// The dial in progress fails.
    Refuse,
    /// Up to this many 64-byte units travel to the node.
    ToNode(u8),
    /// Up to this many 64-byte units travel to the client.
    ToClient(u8),
    /// Everything in flight travels, both ways, until nothing moves.
    Flush,
    /// The node's verdict on the pending token (of `auth` or `refresh`):
    /// user `u<n % 3>`, whose token lives as long as `LIVES[n / 3 % 4]`
    /// says, or a refusal.
    Verdict(Option<u8>),
    /// The application publishes on the node.
    NodePublish {
        /// Which channel.
        channel: u8,
        /// A number that becomes the payload.
        payload: u8,
    },
    /// The socket drops under both ends.
    Drop,
    /// The node restarts: its connection vanishes, channels get new epochs.
    Restart,
    /// A hostile node: these bytes reach the client instead of the node's.
    Garbage(Vec<u8>),
    /// Time moves on by this many milliseconds; deadlines fire.
    Advance(u16),
    /// The provider answers: a token, or a failure. Sent whether the
    /// session wants one or not.
    Token(bool),
    /// `set_token`: from now on the session has a fixed token.
    SetToken,
}

/// The session's settings: short delays and a bound on attempts.
fn client_config() -> ClientConfig {
    ClientConfig {
        backoff: Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            jitter: Duration::from_millis(100),
            max_attempts: Some(6),
        },
        ping_idle: Duration::from_secs(3),
        pong_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        close_timeout: Duration::from_secs(1),
        offline_queue: 8,
        seed: 5,
        max_payload: 4096,
        token: TokenSource::Provider,
        ..ClientConfig::new("tether.test", "t")
    }
}

/// The node's settings.
fn server_config() -> ServerConfig {
    ServerConfig {
        heartbeat_interval: Duration::from_secs(4),
        auth_timeout: Duration::from_secs(2),
        max_payload: 4096,
        high_water: 2048,
        hard_limit: 16 * 1024,
        history_size: 4,
        latest_only: vec!["ticker:*".into()],
        ..ServerConfig::dev()
    }
}

/// Decodes operations from `data` and runs them.
pub fn check(data: &[u8]) {
    let input = Unstructured::new(data);
    let ops: Vec<Op> = Vec::arbitrary_take_rest(input).unwrap_or_default();
    run(&ops);
}

/// Runs `ops` against a fresh session and node, checking the invariants
/// after each.
pub fn run(ops: &[Op]) {
    let mut world = World::new();
    for op in ops {
        world.apply_and_settle(op);
        world.check();
    }
    world.finish();
}

/// The session, the node and the network between them.
struct World {
    now: Instant,
    session: ClientSession,
    server: Server,
    restarts: u32,
    /// A dial was handed out and not answered.
    dialing: bool,
    /// The node's end of the client's socket.
    conn: Option<ConnId>,
    /// Bytes the client wrote that the node has not read.
    to_node: Vec<u8>,
    /// Bytes the node wrote that the client has not read.
    to_client: Vec<u8>,
    /// A token waits for its verdict on this connection.
    verdict_due: Option<ConnId>,
    /// The session asked for a token and the provider has not answered.
    token_wanted: bool,
    /// The provider just gave the token the session wanted: a dial may
    /// follow.
    token_given: bool,
    /// The session still asks the provider for its tokens.
    provider: bool,
    /// Requests accepted and not settled.
    unsettled: BTreeSet<String>,
    /// Requests settled.
    settled: BTreeSet<String>,
    /// The retry attempt the next `Reconnecting` must carry.
    next_attempt: u32,
    /// A `Disconnected` said a `Reconnecting` comes next.
    reconnect_due: bool,
    /// The session said it closed for good.
    finished: bool,
    /// Per channel, the epoch and last offset delivered.
    delivered: BTreeMap<String, (String, u64)>,
}

impl World {
    fn new() -> World {
        let now = Instant::ZERO;
        let mut world = World {
            now,
            session: ClientSession::new(now, client_config()),
            server: Server::new(server_config(), 0).expect("a valid config"),
            restarts: 0,
            dialing: false,
            conn: None,
            to_node: Vec::new(),
            to_client: Vec::new(),
            verdict_due: None,
            token_wanted: false,
            token_given: false,
            provider: true,
            unsettled: BTreeSet::new(),
            settled: BTreeSet::new(),
            next_attempt: 1,
            reconnect_due: false,
            finished: false,
            delivered: BTreeMap::new(),
        };
        world.settle();
        world
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::Subscribe(channel) => self.command(|s| s.subscribe(channel_at(*channel))),
            Op::Unsubscribe(channel) => self.command(|s| s.unsubscribe(channel_at(*channel))),
            Op::Publish { channel, payload } => {
                let result = self
                    .session
                    .publish(now, channel_at(*channel), payload_of(*payload));
                self.issued(result);
            }
            Op::Request {
                kind,
                channel,
                timeout,
            } => {
                let channel = channel_at(*channel);
                let message = match kind % 4 {
                    0 => ClientMessage::Ping { id: None },
                    1 => ClientMessage::Presence { id: None, channel },
                    2 => ClientMessage::Unsubscribe { id: None, channel },
                    _ => ClientMessage::Auth {
                        id: None,
                        token: "t".into(),
                    },
                };
                let is_auth = matches!(message, ClientMessage::Auth { .. });
                let timeout = Duration::from_millis(u64::from(*timeout).max(1));
                let result = self.session.request(now, message, timeout);
                if is_auth {
                    assert!(result.is_err(), "auth accepted as a request");
                }
                self.issued(result);
            }
            Op::Send(channel) => self.command(|s| {
                s.send(ClientMessage::Publish {
                    id: None,
                    idempotency_key: None,
                    channel: channel_at(*channel),
                    payload: payload_of(0),
                })
            }),
            Op::Close => self.session.close(now),
            Op::Accept => {
                if std::mem::take(&mut self.dialing) {
                    self.conn = Some(self.server.accept(now));
                    self.session.handle_connected(now, unix_ms(now));
                }
            }
            Op::Refuse => {
                if std::mem::take(&mut self.dialing) {
                    self.session.handle_connect_failed(now);
                }
            }
            Op::ToNode(units) => self.carry_to_node(usize::from(*units) * 64),
            Op::ToClient(units) => self.carry_to_client(usize::from(*units) * 64),
            Op::Flush => loop {
                // At least once: what the node has written and not sent
                // yet travels too.
                self.carry_to_node(usize::MAX);
                self.carry_to_client(usize::MAX);
                self.settle();
                if self.to_node.is_empty() && self.to_client.is_empty() {
                    break;
                }
            },
            Op::Verdict(accept) => {
                if let Some(conn) = self.verdict_due.take() {
                    let identity = accept.map(|n| identity(now, n));
                    self.server.handle_auth_verdict(now, conn, identity);
                }
            }
            Op::Token(given) => {
                self.token_given = std::mem::take(&mut self.token_wanted);
                if *given {
                    self.session.handle_token(now, "t".into());
                } else {
                    self.session.handle_token_failed(now);
                }
            }
            Op::SetToken => {
                self.session.set_token("t");
                self.provider = false;
            }
            Op::NodePublish { channel, payload } => {
                let name = CHANNELS[usize::from(*channel) % CHANNELS.len()];
                let payload = format!(r#"{{"node":{payload}}}"#);
                self.server.publish(now, 0, name, &payload);
            }
            Op::Drop => {
                if let Some(conn) = self.conn.take() {
                    self.server.handle_transport_closed(now, conn);
                    self.forget_socket();
                    self.session.handle_transport_closed(now);
                }
            }
            Op::Restart => {
                self.restarts += 1;
                self.server =
                    Server::new(server_config(), u64::from(self.restarts)).expect("a valid config");
                self.verdict_due = None;
                if self.conn.take().is_some() {
                    self.forget_socket();
                    self.session.handle_transport_closed(now);
                }
            }
            Op::Garbage(bytes) => {
                if self.conn.is_some() {
                    self.session.handle_read(now, bytes);
                }
            }
            Op::Advance(millis) => {
                self.now += Duration::from_millis(u64::from(*millis));
                self.server.handle_timeout(self.now);
                self.session.handle_timeout(self.now);
            }
        }
    }

    /// A command that returns nothing: it fails only on a closed session.
    fn command(&mut self, command: impl FnOnce(&mut ClientSession) -> Result<(), SendError>) {
        let closed = self.session.is_closed();
        match command(&mut self.session) {
            Ok(()) => assert!(!closed, "a closed session took a command"),
            Err(SendError::Closed) => assert!(closed, "refused as closed while open"),
            Err(error) => assert_eq!(error, SendError::QueueFull),
        }
    }

    /// Carries out the operation, then forgets that a token was just given:
    /// only the dial it caused may use it.
    fn apply_and_settle(&mut self, op: &Op) {
        self.apply(op);
        self.settle();
        self.token_given = false;
    }

    /// Keeps the id of a request the session accepted.
    fn issued(&mut self, result: Result<RequestId, SendError>) {
        match result {
            Ok(id) => {
                let id = id.as_str().to_owned();
                assert!(!self.settled.contains(&id), "an id was reused: {id}");
                assert!(self.unsettled.insert(id.clone()), "an id was reused: {id}");
            }
            Err(SendError::Closed) => assert!(self.session.is_closed()),
            Err(SendError::QueueFull | SendError::NotARequest) => {}
        }
    }

    fn carry_to_node(&mut self, budget: usize) {
        let Some(conn) = self.conn else {
            return;
        };
        let take = budget.min(self.to_node.len());
        let bytes: Vec<u8> = self.to_node.drain(..take).collect();
        if !bytes.is_empty() {
            self.server.handle_read(self.now, conn, &bytes);
        }
    }

    fn carry_to_client(&mut self, budget: usize) {
        let Some(conn) = self.conn else {
            return;
        };
        let mut out = Vec::new();
        let moved = self.server.poll_transmit(conn, usize::MAX, &mut out);
        self.server.handle_written(conn, moved);
        for chunk in out {
            self.to_client.extend_from_slice(&chunk);
        }
        let take = budget.min(self.to_client.len());
        let bytes: Vec<u8> = self.to_client.drain(..take).collect();
        if !bytes.is_empty() {
            self.session.handle_read(self.now, &bytes);
        }
    }

    /// The socket is gone: nothing in flight arrives any more.
    fn forget_socket(&mut self) {
        self.to_node.clear();
        self.to_client.clear();
        self.verdict_due = None;
    }

    /// Carries out the session's socket actions and the node's requests,
    /// and checks the session's events, until nothing is left.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            while let Some(transmit) = self.session.poll_transmit() {
                moved = true;
                self.transmit(transmit);
            }
            if self.session.poll_token_wanted() {
                moved = true;
                assert!(self.provider, "a token wanted with a fixed token");
                self.token_wanted = true;
            }
            let verdict_due = &mut self.verdict_due;
            peer::drain(&mut self.server, |_, output| {
                moved = true;
                match output {
                    Output::Decide(Decision::Authenticate { request, .. }) => {
                        *verdict_due = Some(request.conn);
                    }
                    Output::Published { result, .. } => assert!(result.is_ok(), "{result:?}"),
                    Output::Store(request) => panic!("a memory node asked a store: {request:?}"),
                    Output::Wake(_)
                    | Output::Decide(_)
                    | Output::Notify(_)
                    | Output::Closed { .. }
                    | Output::Drained
                    | Output::Timeout(_) => {}
                }
            });
            if let Some(conn) = self.conn
                && self.server.transport(conn).closes_now()
                && self.to_client.is_empty()
            {
                moved = true;
                self.conn = None;
                self.server.handle_transport_closed(self.now, conn);
                self.forget_socket();
                self.session.handle_transport_closed(self.now);
            }
            while let Some(event) = self.session.poll_event() {
                moved = true;
                self.event(event);
            }
            if !moved {
                return;
            }
        }
    }

    fn transmit(&mut self, transmit: Transmit) {
        match transmit {
            Transmit::Dial { .. } => {
                assert!(
                    self.conn.is_none() && !self.dialing,
                    "a dial with a socket open"
                );
                assert!(!self.finished, "a dial after the session closed for good");
                assert!(
                    !self.provider || std::mem::take(&mut self.token_given),
                    "a dial without the token it wanted"
                );
                self.dialing = true;
            }
            Transmit::Write(bytes) => {
                assert!(self.conn.is_some(), "a write without a socket");
                self.to_node.extend_from_slice(&bytes);
            }
            Transmit::Close => {
                self.dialing = false;
                if let Some(conn) = self.conn.take() {
                    self.server.handle_transport_closed(self.now, conn);
                    self.forget_socket();
                }
            }
        }
    }

    fn event(&mut self, event: Event) {
        let settles = matches!(event, Event::RequestDone { result: Err(_), .. });
        assert!(
            !self.finished || settles,
            "an event after the session closed for good: {event:?}"
        );
        if self.reconnect_due {
            let next = matches!(
                event,
                Event::Reconnecting { .. } | Event::RequestDone { .. }
            );
            assert!(next, "{event:?} before Reconnecting");
        }
        match event {
            Event::Connected { .. } => self.next_attempt = 1,
            Event::Disconnected { will_reconnect, .. } => {
                self.reconnect_due = will_reconnect;
                if !will_reconnect {
                    assert!(self.session.is_closed(), "gave up but not closed");
                    self.finished = true;
                }
            }
            Event::Reconnecting { attempt, delay } => {
                let backoff = &client_config().backoff;
                assert!(self.reconnect_due, "Reconnecting without a Disconnected");
                assert_eq!(attempt, self.next_attempt);
                assert!(backoff.max_attempts.is_none_or(|max| attempt <= max));
                let floor = backoff.floor(attempt - 1);
                assert!(
                    delay >= floor && delay < floor + backoff.jitter,
                    "delay {delay:?}"
                );
                self.reconnect_due = false;
                self.next_attempt += 1;
            }
            Event::Subscribed {
                channel,
                epoch,
                offset,
                ..
            } => {
                let entry = self
                    .delivered
                    .entry(channel.as_str().to_owned())
                    .or_insert_with(|| (epoch.clone(), offset));
                if entry.0 == epoch {
                    entry.1 = entry.1.max(offset);
                } else {
                    *entry = (epoch, offset);
                }
            }
            Event::Message {
                channel, offset, ..
            } => {
                if let Some((_, last)) = self.delivered.get_mut(channel.as_str()) {
                    assert!(
                        offset > *last,
                        "offset {offset} delivered after {last} on {channel}"
                    );
                    *last = offset;
                }
            }
            Event::RequestDone { id, result } => {
                let id = id.as_str().to_owned();
                assert!(
                    self.unsettled.remove(&id),
                    "settled twice or never issued: {id}"
                );
                self.settled.insert(id.clone());
                if let Ok(reply) = result {
                    assert_eq!(
                        reply_id(&reply),
                        Some(id.as_str()),
                        "{reply:?} settled {id}"
                    );
                }
            }
            Event::SubscribeFailed { .. }
            | Event::Refreshed { .. }
            | Event::RefreshFailed { .. }
            | Event::Unsubscribed { .. }
            | Event::Presence { .. }
            | Event::Join { .. }
            | Event::Leave { .. }
            | Event::Error { .. } => {}
        }
    }

    fn check(&self) {
        if let Some(deadline) = self.session.poll_timeout() {
            assert!(
                deadline > self.now,
                "deadline {deadline:?} is not after {:?}",
                self.now
            );
        }
        if self.finished {
            assert!(
                self.unsettled.is_empty(),
                "closed with {:?} unsettled",
                self.unsettled
            );
        }
    }

    /// Closes the session and lets every deadline pass: every request is
    /// settled by then.
    fn finish(mut self) {
        self.session.close(self.now);
        self.settle();
        self.apply(&Op::Flush);
        self.settle();
        let close_timeout = client_config().close_timeout;
        self.apply(&Op::Advance(close_timeout.as_millis() as u16 + 1));
        self.settle();
        assert!(self.session.is_closed());
        assert!(
            self.unsettled.is_empty(),
            "never settled: {:?}",
            self.unsettled
        );
        assert_eq!(
            self.session.poll_timeout(),
            None,
            "a closed session keeps a deadline"
        );
    }
}

/// The wall clock at `at`, in Unix milliseconds, for the node's token
/// expiries and the session's connections alike.
fn unix_ms(at: Instant) -> u64 {
    UNIX_AT_ORIGIN + u64::try_from(at.since_origin().as_millis()).unwrap_or(u64::MAX)
}

/// Who an accepted token with number `n` proves, seen at `now`.
fn identity(now: Instant, n: u8) -> Identity {
    let expiry = LIVES[usize::from(n / 3) % LIVES.len()].map(|life| Expiry {
        unix_ms: unix_ms(now) + life,
        remaining: Duration::from_millis(life),
    });
    Identity {
        expiry,
        ..Identity::user(format!("u{}", n % 3))
    }
}

/// The id a reply carries.
fn reply_id(message: &ServerMessage) -> Option<&str> {
    match message {
        ServerMessage::Pong { id }
        | ServerMessage::Subscribed { id, .. }
        | ServerMessage::Unsubscribed { id, .. }
        | ServerMessage::Refreshed { id, .. }
        | ServerMessage::Presence { id, .. }
        | ServerMessage::Error { id, .. } => id.as_ref().map(RequestId::as_str),
        ServerMessage::Ack { id, .. } | ServerMessage::RpcResult { id, .. } => Some(id.as_str()),
        ServerMessage::AuthAck { .. }
        | ServerMessage::Message { .. }
        | ServerMessage::Join { .. }
        | ServerMessage::Leave { .. } => None,
    }
}

/// One of [`CHANNELS`].
fn channel_at(index: u8) -> Channel {
    let name = CHANNELS[usize::from(index) % CHANNELS.len()];
    Channel::new(name).expect("the operations' channels are valid")
}

/// A small JSON payload.
fn payload_of(n: u8) -> Box<RawValue> {
    RawValue::from_string(format!(r#"{{"n":{n}}}"#)).expect("valid JSON")
}

/// The operations as proptest strategies, so the invariants run on stable.
#[cfg(test)]
pub(crate) mod strategy {
    use proptest::prelude::*;

    use super::Op;

    pub(crate) fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => any::<u8>().prop_map(Op::Subscribe),
            1 => any::<u8>().prop_map(Op::Unsubscribe),
            2 => (any::<u8>(), any::<u8>())
                .prop_map(|(channel, payload)| Op::Publish { channel, payload }),
            2 => (any::<u8>(), any::<u8>(), any::<u16>())
                .prop_map(|(kind, channel, timeout)| Op::Request { kind, channel, timeout }),
            1 => any::<u8>().prop_map(Op::Send),
            1 => Just(Op::Close),
            3 => Just(Op::Accept),
            1 => Just(Op::Refuse),
            2 => any::<u8>().prop_map(Op::ToNode),
            2 => any::<u8>().prop_map(Op::ToClient),
            4 => Just(Op::Flush),
            3 => prop_oneof![4 => any::<u8>().prop_map(Some), 1 => Just(None)].prop_map(Op::Verdict),
            2 => (any::<u8>(), any::<u8>())
                .prop_map(|(channel, payload)| Op::NodePublish { channel, payload }),
            1 => Just(Op::Drop),
            1 => Just(Op::Restart),
            1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Op::Garbage),
            3 => prop_oneof![0..3000u16, any::<u16>()].prop_map(Op::Advance),
            3 => prop_oneof![4 => Just(true), 1 => Just(false)].prop_map(Op::Token),
            1 => Just(Op::SetToken),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn invariants_hold(ops in prop::collection::vec(op(), 0..80)) {
            super::run(&ops);
        }

        #[test]
        fn invariants_hold_on_a_connection_whose_token_expires(
            n in 3u8..12,
            refreshed in any::<bool>(),
            ops in prop::collection::vec(op(), 0..60),
        ) {
            let mut all = vec![Op::Token(true), Op::Accept, Op::Flush, Op::Verdict(Some(n)), Op::Flush];
            if refreshed {
                // Four fifths of the shortest life, then a refresh the
                // node accepts for the same user.
                all.extend([Op::Advance(800), Op::Token(true), Op::Flush, Op::Verdict(Some(n)), Op::Flush]);
            }
            all.extend(ops);
            super::run(&all);
        }
    }
}
