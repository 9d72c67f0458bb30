//! A whole node in virtual time: several scripted clients, the drain loop an
//! adapter runs, and assertions on what each client received.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::access::{ChannelPattern, Grants, Operation};
use crate::envelope::{ServerMessage, encode_server_message, parse_server_message};
use crate::frame::{FrameDecoder, Message, Role};
use crate::fuzzing::peer;
use crate::http::ApiMethod;
use crate::hub::StoreRequest;
use crate::testkit::{UPGRADE, client_frame, find, text};

mod access;
mod api;
mod backplane;
mod deflate;
mod hooks;
mod shards;
mod upgraded;

const T0: Instant = Instant::from_millis(1_000);
const API_KEY: &str = "Bearer k";

/// The client end of one connection.
#[derive(Default)]
struct Wire {
    http: Vec<u8>,
    upgraded: bool,
    decoder: Option<FrameDecoder>,
    received: Vec<Message>,
    /// A paused client reads nothing: its queue on the server grows.
    paused: bool,
    socket_closed: bool,
    /// The server sent FIN and waits for the client's end of stream.
    half_closed: bool,
}

impl Wire {
    fn take(&mut self, bytes: &[u8]) {
        if !self.upgraded {
            self.http.extend_from_slice(bytes);
            if let Some(end) = find(&self.http, b"\r\n\r\n")
                && self.http.starts_with(b"HTTP/1.1 101")
            {
                self.upgraded = true;
                let rest = self.http.split_off(end + 4);
                // A 101 that agreed on permessage-deflate: the server
                // compresses each message on its own.
                self.decoder = Some(if find(&self.http, b"permessage-deflate").is_some() {
                    FrameDecoder::with_deflate(Role::Client, 1 << 24, false)
                } else {
                    FrameDecoder::new(Role::Client, 1 << 24)
                });
                self.take(&rest);
            }
            return;
        }
        let decoder = self.decoder.as_mut().expect("upgraded");
        decoder.feed(bytes);
        while let Ok(Some(message)) = decoder.poll_message() {
            self.received.push(message);
        }
    }
}

struct Node {
    server: Server,
    now: Instant,
    wires: BTreeMap<ConnId, Wire>,
    closed: Vec<(ConnId, CloseCode, ClosedBy)>,
    published: BTreeMap<u64, Result<u64, PublishError>>,
    next_token: u64,
    drained: bool,
    deadline: Option<Instant>,
    /// What the node asked of its backplane, oldest first.
    store_requests: VecDeque<StoreRequest>,
    /// Decisions the test answers itself: channel requests, rpc calls,
    /// and the tokens starting with `held`.
    decisions: VecDeque<Decision>,
    /// What the node let the application observe, in order.
    notifications: Vec<Notification>,
}

impl Node {
    fn new(config: ServerConfig) -> Self {
        Node::with_server(Server::new(config, 7).expect("a valid config"))
    }

    fn with_server(server: Server) -> Self {
        Node {
            server,
            now: T0,
            wires: BTreeMap::new(),
            closed: Vec::new(),
            published: BTreeMap::new(),
            next_token: 0,
            drained: false,
            deadline: None,
            store_requests: VecDeque::new(),
            decisions: VecDeque::new(),
            notifications: Vec::new(),
        }
    }

    fn open(&mut self) -> ConnId {
        let conn = self.server.accept(self.now);
        self.wires.insert(conn, Wire::default());
        self.drain();
        conn
    }

    /// Publishes through the embedding API and returns its outcome, which
    /// the memory hub gives at once.
    fn publish(&mut self, channel: &str, payload: &str) -> Result<u64, PublishError> {
        let token = self.start_publish(channel, payload);
        self.published.remove(&token).expect("an outcome at once")
    }

    /// Starts a publication through the embedding API; returns its token.
    fn start_publish(&mut self, channel: &str, payload: &str) -> u64 {
        self.next_token += 1;
        let token = self.next_token;
        self.server.publish(self.now, token, channel, payload);
        self.drain();
        token
    }

    /// A connection authenticated as `user` (the harness accepts any token
    /// as its user id), with the `auth_ack` already consumed.
    fn connect(&mut self, user: &str) -> ConnId {
        let conn = self.open_as(user, &[]);
        assert!(matches!(
            self.replies(conn).as_slice(),
            [ServerMessage::AuthAck { .. }]
        ));
        conn
    }

    /// Opens a WebSocket and sends `auth` for `user`, then `after` in the
    /// same read; the answers stay on the wire.
    fn open_as(&mut self, user: &str, after: &[&str]) -> ConnId {
        let conn = self.open();
        let mut bytes = UPGRADE.as_bytes().to_vec();
        bytes.extend(text(&format!(r#"{{"type":"auth","token":"{user}"}}"#)));
        for message in after {
            bytes.extend(text(message));
        }
        self.read(conn, &bytes);
        conn
    }

    fn read(&mut self, conn: ConnId, bytes: &[u8]) {
        self.server.handle_read(self.now, conn, bytes);
        self.drain();
    }

    fn send(&mut self, conn: ConnId, json: &str) {
        self.read(conn, &text(json));
    }

    fn at(&mut self, now: Instant) {
        self.now = now;
        self.server.handle_timeout(now);
        self.drain();
    }

    /// The adapter's drain loop: every output until only a deadline is
    /// left.
    fn drain(&mut self) {
        let now = self.now;
        let Node {
            server,
            wires,
            closed,
            published,
            drained,
            store_requests,
            decisions,
            notifications,
            ..
        } = self;
        self.deadline = peer::drain(server, |server, output| match output {
            Output::Wake(conn) => {
                if let Some(wire) = wires.get_mut(&conn) {
                    flush(server, now, conn, wire);
                }
            }
            Output::Decide(decision @ Decision::Authenticate { .. }) if matches!(&decision, Decision::Authenticate { request, .. } if request.token.starts_with("held")) =>
            {
                decisions.push_back(decision);
            }
            Output::Decide(Decision::Authenticate { request, .. }) => {
                server.handle_auth_verdict(now, request.conn, identity_of(&request.token));
            }
            Output::Decide(Decision::AuthorizeApi {
                conn,
                authorization,
            }) => {
                let authorized = authorization.as_deref() == Some(API_KEY);
                server.handle_api_verdict(now, conn, authorized);
            }
            Output::Decide(decision @ (Decision::Channel { .. } | Decision::Rpc { .. })) => {
                decisions.push_back(decision);
            }
            Output::Notify(notification) => notifications.push(notification),
            Output::Closed { conn, reason, by } => closed.push((conn, reason.code, by)),
            Output::Published { token, result } => {
                published.insert(token, result);
            }
            Output::Store(request) => store_requests.push_back(request),
            Output::Drained => *drained = true,
            Output::Timeout(_) => unreachable!("the drain keeps the deadline"),
        });
    }

    fn flush(&mut self, conn: ConnId) {
        if let Some(wire) = self.wires.get_mut(&conn) {
            flush(&mut self.server, self.now, conn, wire);
        }
    }

    fn resume(&mut self, conn: ConnId) {
        self.wires.get_mut(&conn).unwrap().paused = false;
        self.flush(conn);
        self.drain();
    }

    fn replies(&mut self, conn: ConnId) -> Vec<ServerMessage> {
        let wire = self.wires.get_mut(&conn).unwrap();
        wire.received
            .drain(..)
            .filter_map(|message| match message {
                Message::Text(text) => {
                    Some(parse_server_message(std::str::from_utf8(&text).unwrap()).unwrap())
                }
                _ => None,
            })
            .collect()
    }

    fn http(&mut self, request: &str) -> String {
        let conn = self.open();
        self.read(conn, request.as_bytes());
        String::from_utf8_lossy(&self.wires[&conn].http).into_owned()
    }

    fn close_frame(&self, conn: ConnId) -> Option<CloseCode> {
        self.wires[&conn].received.iter().find_map(|m| match m {
            Message::Close(Some((code, _))) => Some(*code),
            _ => None,
        })
    }
}

/// What an adapter's writer does for a woken connection: takes frames while
/// the client reads, reports them written, and carries out the transport.
/// The harness's tokens: `bad` is refused; otherwise `<user>` or
/// `<user>|<pattern>=<op>+<op>,<pattern>=<op>` for a token with grants.
fn identity_of(token: &str) -> Option<Identity> {
    if token == "bad" {
        return None;
    }
    let (user, grants) = token.split_once('|').unwrap_or((token, ""));
    let entries: Vec<(ChannelPattern, Vec<Operation>)> = grants
        .split(',')
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (pattern, ops) = entry.split_once('=').expect("pattern=ops");
            let ops = ops
                .split('+')
                .map(|op| Operation::from_name(op).expect("an op"));
            (
                ChannelPattern::new(pattern).expect("a pattern"),
                ops.collect(),
            )
        })
        .collect();
    Some(Identity {
        user: user.to_owned(),
        grants: Grants::new(entries.iter().map(|(p, ops)| (p.clone(), ops.as_slice()))),
        ..Identity::default()
    })
}

fn flush(server: &mut Server, now: Instant, conn: ConnId, wire: &mut Wire) {
    if wire.paused || wire.socket_closed {
        return;
    }
    let mut batch = Vec::new();
    loop {
        let moved = server.poll_transmit(conn, 64 * 1024, &mut batch);
        if moved == 0 {
            break;
        }
        for frame in batch.drain(..) {
            wire.take(&frame);
        }
        server.handle_written(conn, moved);
    }
    let transport = server.transport(conn);
    if transport.closes_now() {
        wire.socket_closed = true;
        server.handle_transport_closed(now, conn);
    } else if transport == Transport::HalfClose {
        wire.half_closed = true;
    }
}

fn offsets(replies: &[ServerMessage]) -> Vec<u64> {
    replies
        .iter()
        .filter_map(|r| match r {
            ServerMessage::Message { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect()
}

#[test]
fn a_publication_reaches_every_subscriber_and_the_publisher_gets_its_ack() {
    let mut node = Node::new(ServerConfig::dev());
    let alice = node.connect("alice");
    let bob = node.connect("bob");
    node.send(alice, r#"{"type":"subscribe","channel":"chat","id":"s"}"#);
    node.send(bob, r#"{"type":"subscribe","channel":"chat","id":"s"}"#);
    node.replies(alice);
    node.replies(bob);
    node.send(
        alice,
        r#"{"type":"publish","channel":"chat","payload":{"text":"hi"},"id":"m1"}"#,
    );
    let to_alice = node.replies(alice);
    let to_bob = node.replies(bob);
    assert_eq!(offsets(&to_alice), [1]);
    assert_eq!(offsets(&to_bob), [1]);
    assert!(to_alice.iter().any(|r| matches!(
        r,
        ServerMessage::Ack { id, offset: 1 } if id.as_str() == "m1"
    )));
    assert!(matches!(
        &to_bob[0],
        ServerMessage::Message { sender: Some(sender), .. } if sender == "alice"
    ));
}

#[test]
fn a_second_connection_of_the_same_user_does_not_join_twice() {
    let mut node = Node::new(ServerConfig::dev());
    let watcher = node.connect("watcher");
    node.send(watcher, r#"{"type":"subscribe","channel":"room"}"#);
    node.replies(watcher);
    let first = node.connect("carol");
    let second = node.connect("carol");
    node.send(first, r#"{"type":"subscribe","channel":"room"}"#);
    node.send(second, r#"{"type":"subscribe","channel":"room"}"#);
    let joins: Vec<ServerMessage> = node
        .replies(watcher)
        .into_iter()
        .filter(|r| matches!(r, ServerMessage::Join { .. }))
        .collect();
    assert_eq!(joins.len(), 1);
    node.server.handle_transport_closed(node.now, first);
    node.drain();
    assert!(node.replies(watcher).is_empty(), "carol is still there");
    node.server.handle_transport_closed(node.now, second);
    node.drain();
    assert!(matches!(
        node.replies(watcher).as_slice(),
        [ServerMessage::Leave { user, .. }] if user == "carol"
    ));
}

#[test]
fn replies_leave_in_the_order_of_the_messages_they_answer() {
    let mut node = Node::new(ServerConfig::dev());
    let conn = node.open();
    let mut bytes = UPGRADE.as_bytes().to_vec();
    for message in [
        r#"{"type":"auth","token":"alice"}"#,
        r#"{"type":"subscribe","channel":"room","id":"s"}"#,
        r#"{"type":"ping","id":"p"}"#,
        r#"{"type":"presence","channel":"room","id":"q"}"#,
        r#"{"type":"ping","id":"r"}"#,
    ] {
        bytes.extend(text(message));
    }
    node.read(conn, &bytes);
    let kinds: Vec<String> = node
        .replies(conn)
        .iter()
        .map(|reply| {
            let json = String::from_utf8(encode_server_message(reply)).unwrap();
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            format!("{} {}", value["type"], value["id"])
        })
        .collect();
    assert_eq!(
        kinds,
        [
            r#""auth_ack" null"#,
            r#""subscribed" "s""#,
            r#""presence" null"#,
            r#""pong" "p""#,
            r#""presence" "q""#,
            r#""pong" "r""#,
        ]
    );
}

#[test]
fn http_routes_are_answered_by_the_node() {
    let mut node = Node::new(ServerConfig::dev());
    assert!(
        node.http("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .starts_with("HTTP/1.1 200")
    );
    let metrics = node.http("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(metrics.starts_with("HTTP/1.1 200"));
    assert!(metrics.contains("tether_connections_total "));
    assert!(
        node.http("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            .starts_with("HTTP/1.1 404")
    );
    assert_eq!(
        node.server.connection_count(),
        0,
        "each answered and closed"
    );
}

#[test]
fn the_browser_client_is_always_served_and_the_demo_page_only_when_enabled() {
    let get =
        |node: &mut Node, path: &str| node.http(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    let mut node = Node::new(ServerConfig::dev());
    let script = get(&mut node, "/tether.js");
    assert!(script.starts_with("HTTP/1.1 200"), "{script}");
    assert!(script.contains("\r\nContent-Type: text/javascript; charset=utf-8\r\n"));
    assert!(script.ends_with(tether_web::CLIENT_SCRIPT));
    let types = get(&mut node, "/tether.d.ts");
    assert!(types.starts_with("HTTP/1.1 200") && types.ends_with(tether_web::CLIENT_TYPES));
    assert!(get(&mut node, "/").starts_with("HTTP/1.1 404"));

    let mut demo = Node::new(ServerConfig {
        demo: true,
        ..ServerConfig::dev()
    });
    let page = get(&mut demo, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"));
    assert!(page.ends_with(tether_web::DEMO_PAGE));
}

fn api_request(key: Option<&str>, body: &str) -> String {
    let auth = key.map_or(String::new(), |k| format!("Authorization: {k}\r\n"));
    format!(
        "POST /api/publish HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn the_publish_api_checks_its_key_and_publishes_without_sender() {
    let mut node = Node::new(ServerConfig::dev());
    let dana = node.connect("dana");
    node.send(dana, r#"{"type":"subscribe","channel":"user:dana"}"#);
    node.replies(dana);
    let body = r#"{"channel":"user:dana","payload":{"note":1}}"#;
    let unauthorized = node.http(&api_request(None, body));
    assert!(unauthorized.starts_with("HTTP/1.1 401"), "{unauthorized}");
    let wrong = node.http(&api_request(Some("Bearer nope"), body));
    assert!(wrong.starts_with("HTTP/1.1 401"));
    let ok = node.http(&api_request(Some(API_KEY), body));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.ends_with(r#"{"offset":1}"#), "{ok}");
    assert!(matches!(
        node.replies(dana).as_slice(),
        [ServerMessage::Message {
            sender: None,
            offset: 1,
            ..
        }]
    ));
    let bad = node.http(&api_request(
        Some(API_KEY),
        r#"{"channel":"x y","payload":1}"#,
    ));
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert!(bad.contains("INVALID_CHANNEL"), "{bad}");
}

#[test]
fn shutdown_closes_every_websocket_with_1001_after_its_queue_and_turns_healthz_503() {
    let mut node = Node::new(ServerConfig::dev());
    let alice = node.connect("alice");
    let bob = node.connect("bob");
    node.send(bob, r#"{"type":"subscribe","channel":"news"}"#);
    node.replies(bob);
    node.wires.get_mut(&bob).unwrap().paused = true;
    node.publish("news", "42").unwrap();
    node.server.shutdown(node.now);
    node.drain();
    assert_eq!(node.close_frame(alice), Some(CloseCode::GOING_AWAY));
    node.resume(bob);
    let received = &node.wires[&bob].received;
    assert!(
        matches!(received[0], Message::Text(_)),
        "the publication first"
    );
    assert!(matches!(
        received[1],
        Message::Close(Some((CloseCode::GOING_AWAY, _)))
    ));
    assert!(node.server.is_draining());
}

#[test]
fn while_draining_every_new_connection_including_healthz_gets_503_draining() {
    let mut node = Node::new(ServerConfig::dev());
    let pending = node.open();
    node.server.shutdown(node.now);
    node.drain();
    assert!(
        node.wires[&pending].socket_closed,
        "a request not yet read is dropped"
    );
    let refused = node.open();
    let wire = &node.wires[&refused];
    let response = String::from_utf8_lossy(&wire.http);
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.ends_with("draining"), "{response}");
    assert!(
        wire.half_closed && !wire.socket_closed,
        "the answer goes out whole, then FIN, and the socket waits for the client's"
    );
    node.server.handle_transport_closed(node.now, refused);
    assert_eq!(node.server.connection_count(), 0);
}

#[test]
fn a_refused_connection_lingers_at_most_close_timeout() {
    let mut node = Node::new(ServerConfig::dev());
    node.server.shutdown(node.now);
    node.drain();
    let refused = node.open();
    assert!(node.wires[&refused].half_closed);
    let linger = node.now + ServerConfig::dev().close_timeout;
    assert_eq!(node.deadline, Some(linger));
    node.at(linger - Duration::from_nanos(1));
    assert!(!node.wires[&refused].socket_closed, "not 1 ns early");
    node.at(linger);
    node.flush(refused);
    assert!(node.wires[&refused].socket_closed);
}

#[test]
fn the_drain_is_over_when_the_last_connection_closes_or_at_shutdown_timeout() {
    let config = ServerConfig {
        close_timeout: Duration::from_secs(60),
        ..ServerConfig::dev()
    };
    let mut node = Node::new(config.clone());
    node.connect("alice");
    node.server.shutdown(node.now);
    node.drain();
    assert!(!node.drained, "alice has not answered the 1001 yet");
    let deadline = node.now + config.shutdown_timeout;
    node.at(deadline - Duration::from_nanos(1));
    assert!(!node.drained);
    node.at(deadline);
    assert!(node.drained, "shutdown_timeout ends the drain");

    let mut node = Node::new(ServerConfig::dev());
    let bob = node.connect("bob");
    node.server.shutdown(node.now);
    node.drain();
    node.server.handle_transport_closed(node.now, bob);
    node.drain();
    assert!(node.drained, "the last connection closing ends it at once");
}

#[test]
fn a_slow_consumer_is_closed_at_exactly_slow_timeout_while_a_fast_one_gets_everything() {
    let config = ServerConfig {
        high_water: 2_000,
        hard_limit: 1_000_000,
        ..ServerConfig::dev()
    };
    let slow_timeout = config.slow_timeout;
    let mut node = Node::new(config);
    let fast = node.connect("fast");
    let slow = node.connect("slow");
    for conn in [fast, slow] {
        node.send(conn, r#"{"type":"subscribe","channel":"feed"}"#);
        node.replies(conn);
    }
    node.wires.get_mut(&slow).unwrap().paused = true;
    let payload = format!(r#""{}""#, "x".repeat(200));
    let t1 = T0 + Duration::from_millis(500);
    node.now = t1;
    for _ in 0..50 {
        node.publish("feed", &payload).unwrap();
        node.drain();
    }
    assert_eq!(offsets(&node.replies(fast)), (1..=50).collect::<Vec<_>>());
    assert!(node.server.counters().messages_dropped_total > 0);
    let deadline = t1 + slow_timeout;
    node.at(deadline - Duration::from_nanos(1));
    assert!(node.closed.is_empty());
    node.at(deadline);
    assert_eq!(
        node.closed,
        vec![(slow, CloseCode::SLOW_CONSUMER, ClosedBy::Server)]
    );
    assert_eq!(node.server.counters().slow_consumer_closes_total, 1);
}

#[test]
fn a_hard_limit_overflow_during_fan_out_closes_only_that_subscriber() {
    // A config `validate` refuses (high_water above hard_limit), so that
    // publications reach hard_limit without being dropped at high_water.
    let config = ServerConfig {
        high_water: 100_000,
        hard_limit: 3_000,
        ..ServerConfig::dev()
    };
    let hub = Hub::new(&config, "n");
    let mut node = Node::with_server(Server::from_parts(config, hub, "n".into()));
    let fast = node.connect("fast");
    let slow = node.connect("slow");
    for conn in [fast, slow] {
        node.send(conn, r#"{"type":"subscribe","channel":"feed"}"#);
        node.replies(conn);
    }
    node.wires.get_mut(&slow).unwrap().paused = true;
    let payload = format!(r#""{}""#, "x".repeat(500));
    for _ in 0..10 {
        node.publish("feed", &payload).unwrap();
        node.drain();
    }
    assert_eq!(offsets(&node.replies(fast)).len(), 10);
    assert_eq!(
        node.closed,
        vec![(slow, CloseCode::SLOW_CONSUMER, ClosedBy::Server)]
    );
}

#[test]
fn closed_connections_leave_no_state_and_ids_are_never_reused() {
    let mut node = Node::new(ServerConfig::dev());
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..3 {
        let conns: Vec<ConnId> = (0..4)
            .map(|i| node.connect(&format!("u{round}{i}")))
            .collect();
        for &conn in &conns {
            assert!(seen.insert(conn), "{conn} reused");
            node.send(conn, r#"{"type":"subscribe","channel":"c"}"#);
        }
        for conn in conns {
            node.server.handle_transport_closed(node.now, conn);
        }
        node.drain();
        assert_eq!(node.server.connection_count(), 0);
        assert_eq!(node.server.hub.connection_count(), 0);
        assert_eq!(node.server.hub.channel_count(), 0);
    }
    assert!(
        node.server
            .metrics_text()
            .contains("\ntether_connections 0\n")
    );
}

#[test]
fn connections_past_max_connections_are_refused_with_503() {
    let config = ServerConfig {
        max_connections: 2,
        ..ServerConfig::dev()
    };
    let mut node = Node::new(config);
    node.open();
    node.open();
    let refused = node.open();
    let response = String::from_utf8_lossy(&node.wires[&refused].http).into_owned();
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.ends_with("too many connections"), "{response}");
    assert_eq!(
        node.server.connection_count(),
        2,
        "a refusal is not counted"
    );
}

#[test]
fn failed_accepts_are_retried_later_and_a_spell_of_them_is_reported_once() {
    let mut server = Server::new(ServerConfig::dev(), 1).unwrap();
    let later = T0 + Duration::from_millis(30);
    assert_eq!(
        server.handle_accept_failed(T0),
        AcceptRetry {
            at: T0 + ACCEPT_RETRY,
            starts_spell: true
        }
    );
    assert_eq!(
        server.handle_accept_failed(later),
        AcceptRetry {
            at: later + ACCEPT_RETRY,
            starts_spell: false
        }
    );
    // An accepted connection ends the spell.
    server.accept(later);
    assert!(server.handle_accept_failed(later).starts_spell);
    assert_eq!(server.counters().accept_errors_total, 3);
    assert!(
        server
            .metrics_text()
            .contains("\ntether_accept_errors_total 3\n")
    );
}

#[test]
fn metrics_count_auth_failures_heartbeat_timeouts_and_messages() {
    let mut node = Node::new(ServerConfig::dev());
    let rejected = node.open();
    let mut bytes = UPGRADE.as_bytes().to_vec();
    bytes.extend(text(r#"{"type":"auth","token":"bad"}"#));
    node.read(rejected, &bytes);
    assert_eq!(node.close_frame(rejected), Some(CloseCode::FORBIDDEN));
    let silent = node.connect("silent");
    node.send(silent, r#"{"type":"ping"}"#);
    let interval = ServerConfig::dev().heartbeat_interval;
    node.at(T0 + interval);
    node.at(T0 + interval * 2);
    let counters = node.server.counters();
    assert_eq!(counters.auth_failures_total, 1);
    assert_eq!(counters.heartbeat_timeouts_total, 1);
    assert_eq!(counters.messages_received_total, 3);
    assert_eq!(counters.connections_total, 2);
    assert!(
        node.closed
            .contains(&(silent, CloseCode::ABNORMAL, ClosedBy::HeartbeatTimeout))
    );
    assert_eq!(node.server.connection_count(), 0);
}

#[test]
fn a_client_close_frame_is_handled_through_the_node() {
    let mut node = Node::new(ServerConfig::dev());
    let conn = node.connect("erin");
    node.read(conn, &client_frame(0x8, &1000u16.to_be_bytes()));
    assert_eq!(
        node.closed,
        vec![(conn, CloseCode::NORMAL, ClosedBy::Client)]
    );
    assert_eq!(node.server.connection_count(), 0);
}

#[test]
fn the_connection_beyond_max_connections_per_user_closes_4029_without_auth_ack() {
    let config = ServerConfig {
        max_connections_per_user: 2,
        ..ServerConfig::dev()
    };
    let mut node = Node::new(config);
    let first = node.connect("carol");
    node.connect("carol");
    let refused = node.open_as("carol", &[r#"{"type":"ping","id":"p"}"#]);
    assert_eq!(
        node.close_frame(refused),
        Some(CloseCode::TOO_MANY_CONNECTIONS)
    );
    assert_eq!(node.replies(refused), [], "no auth_ack, no pong");
    assert!(
        node.closed
            .contains(&(refused, CloseCode::TOO_MANY_CONNECTIONS, ClosedBy::Server))
    );
    node.connect("dave");

    node.server.handle_transport_closed(node.now, first);
    node.drain();
    node.connect("carol");
    let refused = node.open_as("carol", &[]);
    assert_eq!(
        node.close_frame(refused),
        Some(CloseCode::TOO_MANY_CONNECTIONS)
    );
}
