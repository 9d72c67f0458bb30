//! Session tests in virtual time, against a scripted server: the test plays
//! the server by hand, frame by frame, and asserts every output and the exact
//! instant of every deadline.

use std::time::Duration;

use proptest::prelude::*;

mod deflate;
mod token;
mod vectors;

use super::*;
use crate::backoff::Backoff;
use crate::close::CloseCode;
use crate::envelope::{Channel, ClientMessage, encode_server_message};
use crate::frame::{FrameDecoder, Message, Role, close_frame, ping_frame, text_frame};
use crate::time::Instant;

/// The server end of one socket: reads the upgrade request and decodes the
/// client's frames into readable lines.
struct FakeServer {
    head: Vec<u8>,
    key: Option<String>,
    decoder: FrameDecoder,
    received: Vec<String>,
}

impl FakeServer {
    fn new() -> Self {
        FakeServer {
            head: Vec::new(),
            key: None,
            decoder: FrameDecoder::new(Role::Server, 1 << 20),
            received: Vec::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if self.key.is_some() {
            self.decoder.feed(bytes);
        } else {
            self.head.extend_from_slice(bytes);
            let head = String::from_utf8(self.head.clone()).unwrap();
            assert!(head.ends_with("\r\n\r\n"), "one write per upgrade request");
            let key = head
                .lines()
                .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
                .expect("the request carries a key");
            self.key = Some(key.to_owned());
            self.received.push(head.lines().next().unwrap().to_owned());
        }
        while let Some(message) = self
            .decoder
            .poll_message()
            .expect("client frames are valid")
        {
            self.received.push(match message {
                Message::Text(text) => String::from_utf8(text.to_vec()).unwrap(),
                Message::Pong(data) => format!("pong-frame {}", String::from_utf8_lossy(&data)),
                Message::Close(Some((code, reason))) => format!("close {code} {reason}"),
                other => format!("{other:?}"),
            });
        }
    }

    fn accept_response(&self) -> Vec<u8> {
        let key = self.key.as_ref().expect("the request arrived");
        crate::http::accept_response(key, Some("tether.v1"), None)
    }
}

/// A client session wired to at most one [`FakeServer`], with a virtual
/// clock, recording what the client did.
struct Harness {
    client: ClientSession,
    server: Option<FakeServer>,
    now: Instant,
    dial_pending: bool,
    dials: u32,
    /// A token was asked for and not answered.
    token_pending: bool,
    log: Vec<String>,
    received: Vec<String>,
}

const T0: Instant = Instant::from_millis(1_000);

/// The wall clock at the origin of the harness's time line, in Unix
/// milliseconds.
const UNIX_AT_ORIGIN: u64 = 1_700_000_000_000;

/// The wall clock at `at`, in Unix milliseconds.
fn unix_ms(at: Instant) -> u64 {
    UNIX_AT_ORIGIN + u64::try_from(at.since_origin().as_millis()).unwrap()
}

fn config() -> ClientConfig {
    ClientConfig {
        seed: 7,
        ..ClientConfig::new("example.com", "secret")
    }
}

fn channel(name: &str) -> Channel {
    Channel::new(name).unwrap()
}

fn raw(json: &str) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(json.to_owned()).unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

impl Harness {
    fn new(config: ClientConfig) -> Self {
        let mut harness = Harness {
            client: ClientSession::new(T0, config),
            server: None,
            now: T0,
            dial_pending: false,
            dials: 0,
            token_pending: false,
            log: Vec::new(),
            received: Vec::new(),
        };
        harness.pump();
        harness
    }

    /// A harness that is connected and authenticated, with its log cleared.
    fn open(config: ClientConfig) -> Self {
        let mut harness = Harness::new(config);
        harness.connect_and_auth();
        harness.take_log();
        harness.take_received();
        harness
    }

    /// Moves every output of the client to where it belongs, and what the
    /// server decoded to `received`.
    fn pump(&mut self) {
        while let Some(transmit) = self.client.poll_transmit() {
            match transmit {
                Transmit::Dial { host } => {
                    assert_eq!(host, "example.com");
                    assert!(!self.dial_pending && self.server.is_none());
                    self.dial_pending = true;
                    self.dials += 1;
                    self.log.push(format!("dial at {}", self.now));
                }
                Transmit::Write(bytes) => {
                    let server = self.server.as_mut();
                    let server = server.expect("writes only go to an open socket");
                    server.feed(&bytes);
                    self.received.append(&mut server.received);
                }
                Transmit::Close => {
                    self.dial_pending = false;
                    self.server = None;
                    self.log.push(format!("close at {}", self.now));
                }
            }
        }
        if self.client.poll_token_wanted() {
            self.token_pending = true;
            self.log.push(format!("token wanted at {}", self.now));
        }
        while let Some(event) = self.client.poll_event() {
            self.log.push(describe(&event));
        }
    }

    fn connect(&mut self) {
        assert!(self.dial_pending, "nothing to connect");
        self.dial_pending = false;
        self.server = Some(FakeServer::new());
        self.client.handle_connected(self.now, unix_ms(self.now));
        self.pump();
    }

    /// The provider answers the pending token request with `token`.
    fn give_token(&mut self, token: &str) {
        assert!(std::mem::take(&mut self.token_pending), "no token wanted");
        self.client.handle_token(self.now, token.to_owned());
        self.pump();
    }

    /// The provider fails the pending token request.
    fn fail_token(&mut self) {
        assert!(std::mem::take(&mut self.token_pending), "no token wanted");
        self.client.handle_token_failed(self.now);
        self.pump();
    }

    fn fail_dial(&mut self) {
        assert!(self.dial_pending, "nothing to fail");
        self.dial_pending = false;
        self.client.handle_connect_failed(self.now);
        self.pump();
    }

    fn server_bytes(&mut self, bytes: &[u8]) {
        self.client.handle_read(self.now, bytes);
        self.pump();
    }

    fn accept(&mut self) {
        let response = self.server.as_ref().unwrap().accept_response();
        self.server_bytes(&response);
    }

    fn server_send(&mut self, json: &str) {
        self.server_bytes(&text_frame(json.as_bytes()));
    }

    fn auth_ack(&mut self) {
        self.server_send(
            r#"{"type":"auth_ack","user":"ann","session":"s1","heartbeat_ms":30000,"max_payload":65536}"#,
        );
    }

    fn connect_and_auth(&mut self) {
        self.connect();
        self.accept();
        self.auth_ack();
    }

    fn drop_transport(&mut self) {
        self.pump();
        self.server = None;
        self.client.handle_transport_closed(self.now);
        self.pump();
    }

    fn advance_to(&mut self, at: Instant) {
        assert!(at >= self.now, "time goes forward");
        self.now = at;
        self.client.handle_timeout(at);
        self.pump();
    }

    /// Advances to the client's next deadline.
    fn step(&mut self) -> Instant {
        let at = self.client.poll_timeout().expect("a deadline is armed");
        self.advance_to(at);
        at
    }

    fn take_log(&mut self) -> Vec<String> {
        self.pump();
        std::mem::take(&mut self.log)
    }

    fn take_received(&mut self) -> Vec<String> {
        self.pump();
        std::mem::take(&mut self.received)
    }

    /// Publishes once and gives the key that went out.
    fn publish_keys(&mut self) -> Vec<String> {
        self.client
            .publish(self.now, channel("news"), raw("0"))
            .unwrap();
        idempotency_keys(&self.take_received())
    }
}

/// One line per event, exact enough to compare whole traces.
fn describe(event: &Event) -> String {
    match event {
        Event::Connected {
            user,
            session,
            expires_at: None,
        } => format!("connected {user} {session}"),
        Event::Connected {
            user,
            session,
            expires_at: Some(at),
        } => format!("connected {user} {session} until {at}"),
        Event::Refreshed { expires_at } => format!("refreshed until {expires_at:?}"),
        Event::RefreshFailed { code, message } => {
            format!("refresh failed {code:?} {message}")
        }
        Event::Unsubscribed { channel, reason } => format!("unsubscribed {channel} {reason:?}"),
        Event::Disconnected {
            reason,
            will_reconnect,
        } => format!("disconnected {reason} reconnect={will_reconnect}"),
        Event::Reconnecting { attempt, delay } => format!("reconnecting #{attempt} in {delay:?}"),
        Event::Subscribed {
            channel,
            epoch,
            offset,
            recovered,
            ..
        } => format!("subscribed {channel} {epoch}/{offset} recovered={recovered:?}"),
        Event::SubscribeFailed {
            channel,
            code,
            message,
        } => format!("subscribe failed {channel} {code} {message}"),
        Event::Message {
            channel,
            payload,
            sender,
            offset,
        } => format!(
            "message {channel} #{offset} {} from {sender:?}",
            payload.get()
        ),
        Event::Presence { channel, users } => format!("presence {channel} {users:?}"),
        Event::Join { channel, user } => format!("join {channel} {user}"),
        Event::Leave { channel, user } => format!("leave {channel} {user}"),
        Event::Error { id, code, message } => format!("error {id:?} {code} {message}"),
        Event::RequestDone { id, result } => match result {
            Ok(reply) => format!(
                "done {id} {}",
                String::from_utf8(encode_server_message(reply)).unwrap()
            ),
            Err(error) => format!("done {id} failed: {error}"),
        },
    }
}

/// The `Reconnecting` events of a log, as (attempt, delay).
fn reconnects(log: &[String]) -> Vec<String> {
    log.iter()
        .filter(|line| line.starts_with("reconnecting"))
        .cloned()
        .collect()
}

#[test]
fn connects_upgrades_and_authenticates_first() {
    let mut h = Harness::new(ClientConfig {
        origin: Some("https://app.example".into()),
        ..config()
    });
    assert_eq!(h.take_log(), ["dial at t+1s"]);
    assert_eq!(h.client.poll_timeout(), Some(T0 + secs(10)));
    h.connect();
    let head = String::from_utf8(h.server.as_ref().unwrap().head.clone()).unwrap();
    assert!(head.starts_with("GET /ws HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("Host: example.com\r\n"), "{head}");
    assert!(head.contains("tether.v1"), "{head}");
    assert!(head.contains("Origin: https://app.example\r\n"), "{head}");
    h.client.send(ClientMessage::Ping { id: None }).unwrap();
    h.accept();
    assert_eq!(
        h.take_received(),
        ["GET /ws HTTP/1.1", r#"{"type":"auth","token":"secret"}"#],
        "auth goes first and alone"
    );
    assert!(!h.client.is_connected());
    h.auth_ack();
    assert!(h.client.is_connected());
    assert_eq!(h.take_log(), ["connected ann s1"]);
    assert_eq!(h.take_received(), [r#"{"type":"ping"}"#]);
    assert_eq!(h.client.poll_timeout(), Some(T0 + secs(25)), "ping idle");
}

#[test]
fn upgrade_and_first_frames_may_arrive_in_one_read_or_byte_by_byte() {
    for split in [false, true] {
        let mut h = Harness::new(config());
        h.connect();
        let mut bytes = h.server.as_ref().unwrap().accept_response();
        bytes.extend_from_slice(&text_frame(br#"{"type":"pong"}"#));
        if split {
            for byte in &bytes {
                h.server_bytes(std::slice::from_ref(byte));
            }
        } else {
            h.server_bytes(&bytes);
        }
        let received = h.take_received();
        assert_eq!(received[1], r#"{"type":"auth","token":"secret"}"#);
        h.auth_ack();
        assert_eq!(h.take_log(), ["dial at t+1s", "connected ann s1"]);
    }
}

#[test]
fn reconnects_after_a_lost_connection_at_exactly_the_backoff_delay() {
    let mut h = Harness::open(config());
    h.now = T0 + secs(3);
    h.drop_transport();
    let log = h.take_log();
    assert_eq!(log[0], "disconnected 1006 connection lost reconnect=true");
    let delay = h.client.poll_timeout().unwrap() - h.now;
    assert!(delay >= secs(1) && delay < secs(2), "{delay:?}");
    assert_eq!(log[1], format!("reconnecting #1 in {delay:?}"));
    let due = h.now + delay;
    h.advance_to(due - Duration::from_nanos(1));
    assert_eq!(h.dials, 1, "no dial before the delay");
    h.advance_to(due);
    assert_eq!(h.take_log(), [format!("dial at {due}")]);
    h.advance_to(due);
    assert_eq!(h.dials, 2, "a repeated timeout does nothing");
}

#[test]
fn failed_dials_follow_the_backoff_schedule_and_auth_ack_resets_it() {
    let mut h = Harness::new(config());
    h.take_log();
    let mut delays = Vec::new();
    for attempt in 1..=7u32 {
        h.fail_dial();
        let log = h.take_log();
        assert_eq!(log[0], "disconnected 1006 connect failed reconnect=true");
        let delay = h.client.poll_timeout().unwrap() - h.now;
        assert_eq!(log[1], format!("reconnecting #{attempt} in {delay:?}"));
        let floor = Backoff::default().floor(attempt - 1);
        assert!(delay >= floor && delay < floor + secs(1), "{delay:?}");
        delays.push(delay);
        h.step();
        h.take_log();
    }
    assert!(delays[6] >= secs(30), "capped at 30 s plus jitter");
    h.connect_and_auth();
    h.drop_transport();
    assert_eq!(reconnects(&h.take_log())[0].split(' ').nth(1), Some("#1"));
}

#[test]
fn the_counter_does_not_reset_on_an_upgrade_without_auth_ack() {
    let mut h = Harness::new(config());
    h.fail_dial();
    h.step();
    h.connect();
    h.accept();
    h.server_bytes(&close_frame(CloseCode::INTERNAL_ERROR, "oops"));
    let log = h.take_log();
    assert_eq!(
        log[log.len() - 3..log.len() - 1],
        [
            format!("close at {}", h.now),
            "disconnected 1011 oops reconnect=true".to_owned()
        ]
    );
    assert!(
        log[log.len() - 1].starts_with("reconnecting #2 "),
        "{log:?}"
    );
}

#[test]
fn final_close_codes_are_reported_and_never_followed_by_a_dial() {
    for code in [1002, 1003, 1007, 1008, 1009, 4001, 4003, 4029] {
        let mut h = Harness::open(config());
        h.client.subscribe(channel("news")).unwrap();
        h.server_bytes(&close_frame(CloseCode(code), "no"));
        assert_eq!(
            h.take_received(),
            [
                r#"{"type":"subscribe","id":"r1","channel":"news"}"#.to_owned(),
                format!("close {code} ")
            ],
            "the close is echoed"
        );
        assert_eq!(
            h.take_log(),
            [
                format!("close at {}", h.now),
                format!("disconnected {code} no reconnect=false")
            ]
        );
        assert_eq!(h.client.poll_timeout(), None);
        assert!(h.client.is_closed());
        assert_eq!(h.client.subscribe(channel("x")), Err(SendError::Closed));
        h.advance_to(T0 + secs(3_600));
        assert_eq!(h.dials, 1);
    }
}

#[test]
fn retried_close_codes_and_an_unasked_normal_close_reconnect() {
    for code in [1000, 1001, 1011, 4008, 4000] {
        let mut h = Harness::open(config());
        h.server_bytes(&close_frame(CloseCode(code), "bye"));
        let log = h.take_log();
        assert_eq!(log[1], format!("disconnected {code} bye reconnect=true"));
        h.step();
        assert_eq!(h.dials, 2, "close {code}");
    }
}

#[test]
fn a_close_frame_without_a_code_is_echoed_with_1000_and_retried() {
    let mut h = Harness::open(config());
    h.server_bytes(&[0x88, 0x00]);
    assert_eq!(h.take_received(), ["close 1000 "]);
    assert_eq!(
        h.take_log()[1],
        "disconnected 1005 no status reconnect=true"
    );
}

#[test]
fn max_attempts_bounds_consecutive_retries() {
    let mut h = Harness::new(ClientConfig {
        backoff: Backoff {
            max_attempts: Some(2),
            ..Backoff::default()
        },
        ..config()
    });
    h.fail_dial();
    h.step();
    h.fail_dial();
    h.step();
    h.fail_dial();
    let log = h.take_log();
    assert_eq!(reconnects(&log).len(), 2);
    assert_eq!(
        log.last().unwrap(),
        "disconnected 1006 connect failed reconnect=false"
    );
    assert_eq!(h.client.poll_timeout(), None);
    assert!(h.client.is_closed());
    assert!(h.client.is_finished());
}

#[test]
fn the_session_is_finished_by_its_final_disconnect_and_not_before() {
    let mut h = Harness::open(config());
    h.drop_transport();
    assert!(!h.client.is_finished(), "a lost connection is retried");
    h.step();
    h.connect_and_auth();
    h.client.close(h.now);
    h.pump();
    assert!(h.client.is_closed());
    assert!(
        !h.client.is_finished(),
        "a closing session waits for the server's answer"
    );
    h.server_bytes(&close_frame(CloseCode::NORMAL, ""));
    assert!(h.client.is_finished());
    assert_eq!(
        h.take_log().last().unwrap(),
        "disconnected 1000 closed by client reconnect=false"
    );
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn handshake_refusals_are_final_for_client_errors_only() {
    for (status, retried) in [(403, false), (400, false), (429, true), (503, true)] {
        let mut h = Harness::new(config());
        h.connect();
        h.server_bytes(format!("HTTP/1.1 {status} No\r\nContent-Length: 0\r\n\r\n").as_bytes());
        let log = h.take_log();
        assert_eq!(log[1], format!("close at {T0}"));
        assert_eq!(
            log[2],
            format!(
                "disconnected 1006 handshake failed: server answered {status}, not 101 reconnect={retried}"
            )
        );
    }
}

#[test]
fn a_101_with_a_wrong_accept_is_retried() {
    let mut h = Harness::new(config());
    h.connect();
    let wrong = crate::http::accept_response("c29tZSBvdGhlciBrZXkhIQ==", Some("tether.v1"), None);
    h.server_bytes(&wrong);
    assert_eq!(
        h.take_log()[2],
        "disconnected 1006 handshake failed: wrong Sec-WebSocket-Accept reconnect=true"
    );
}

#[test]
fn connect_timeout_covers_the_dial_the_upgrade_and_the_auth() {
    let mut h = Harness::new(config());
    h.connect();
    h.accept();
    h.advance_to(T0 + secs(10) - Duration::from_millis(1));
    assert!(h.server.is_some());
    h.advance_to(T0 + secs(10));
    let log = h.take_log();
    assert_eq!(
        log[1..3],
        [
            "close at t+11s".to_owned(),
            "disconnected 1006 connect timeout reconnect=true".to_owned()
        ]
    );
}

#[test]
fn heartbeat_pings_when_idle_and_declares_death_at_the_exact_instant() {
    let mut h = Harness::open(config());
    let t1 = T0 + secs(7);
    h.now = t1;
    h.server_send(r#"{"type":"join","channel":"news","user":"bob"}"#);
    assert_eq!(h.client.poll_timeout(), Some(t1 + secs(25)));
    h.advance_to(t1 + secs(25) - Duration::from_nanos(1));
    assert!(h.take_received().is_empty(), "no ping before ping_idle");
    h.advance_to(t1 + secs(25));
    assert_eq!(h.take_received(), [r#"{"type":"ping"}"#]);
    assert_eq!(h.client.poll_timeout(), Some(t1 + secs(35)));
    h.advance_to(t1 + secs(35) - Duration::from_nanos(1));
    assert!(h.client.is_connected());
    h.advance_to(t1 + secs(35));
    let log = h.take_log();
    assert_eq!(
        log[..3],
        [
            "join news bob".to_owned(),
            "close at t+43s".to_owned(),
            "disconnected 1006 heartbeat timeout reconnect=true".to_owned()
        ]
    );
    assert!(log[3].starts_with("reconnecting #1 "));
    h.step();
    assert_eq!(h.dials, 2, "redials after the backoff");
}

#[test]
fn any_incoming_traffic_counts_as_alive() {
    let mut h = Harness::open(config());
    h.advance_to(T0 + secs(25));
    assert_eq!(h.take_received(), [r#"{"type":"ping"}"#]);
    h.now = T0 + secs(30);
    h.server_bytes(&ping_frame(b"hb"));
    assert_eq!(h.take_received(), ["pong-frame hb"], "pings are answered");
    assert_eq!(h.client.poll_timeout(), Some(T0 + secs(55)));
    h.advance_to(T0 + secs(40));
    assert!(h.client.is_connected());
}

#[test]
fn requests_get_unique_ids_and_settle_with_their_reply_or_error() {
    let mut h = Harness::open(config());
    let ping = h
        .client
        .request(h.now, ClientMessage::Ping { id: None }, secs(5))
        .unwrap();
    let publish = h
        .client
        .publish(h.now, channel("news"), raw("[1]"))
        .unwrap();
    assert_eq!((ping.as_str(), publish.as_str()), ("r1", "r2"));
    assert_eq!(
        without_keys(h.take_received()),
        [
            r#"{"type":"ping","id":"r1"}"#,
            r#"{"type":"publish","id":"r2","channel":"news","payload":[1]}"#
        ]
    );
    h.server_send(r#"{"type":"error","id":"r2","code":"FORBIDDEN","message":"no"}"#);
    h.server_send(r#"{"type":"pong","id":"r1"}"#);
    h.server_send(r#"{"type":"pong","id":"r1"}"#);
    h.server_send(r#"{"type":"error","id":"zz","code":"RATE_LIMITED","message":"slow"}"#);
    assert_eq!(
        h.take_log(),
        [
            "done r2 failed: FORBIDDEN: no",
            r#"done r1 {"type":"pong","id":"r1"}"#,
            r#"error Some(RequestId("zz")) RATE_LIMITED slow"#,
        ]
    );
    assert_eq!(
        h.client.poll_timeout(),
        Some(T0 + secs(25)),
        "settled requests leave no deadline"
    );
    assert_eq!(
        h.client.request(
            h.now,
            ClientMessage::Auth {
                id: None,
                token: "t".into()
            },
            secs(1)
        ),
        Err(SendError::NotARequest)
    );
}

#[test]
fn a_request_times_out_at_exactly_its_deadline() {
    let mut h = Harness::open(config());
    let t1 = T0 + Duration::from_millis(1_500);
    h.now = t1;
    let id = h
        .client
        .request(t1, ClientMessage::Ping { id: None }, secs(3))
        .unwrap();
    assert_eq!(h.client.poll_timeout(), Some(t1 + secs(3)));
    h.advance_to(t1 + secs(3) - Duration::from_nanos(1));
    assert!(h.take_log().is_empty());
    h.advance_to(t1 + secs(3));
    assert_eq!(
        h.take_log(),
        [format!("done {id} failed: request timed out")]
    );
    h.server_send(r#"{"type":"pong","id":"r1"}"#);
    assert!(h.take_log().is_empty(), "a late reply is dropped");
}

#[test]
fn a_drop_fails_every_request_it_carried_at_once_but_not_queued_ones() {
    let mut h = Harness::open(config());
    let a = h
        .client
        .request(h.now, ClientMessage::Ping { id: None }, secs(10))
        .unwrap();
    let unkeyed = ClientMessage::Publish {
        id: None,
        idempotency_key: None,
        channel: channel("news"),
        payload: raw("2"),
    };
    let b = h.client.request(h.now, unkeyed, secs(10)).unwrap();
    h.now = T0 + secs(2);
    h.drop_transport();
    let log = h.take_log();
    assert_eq!(
        log[..3],
        [
            "disconnected 1006 connection lost reconnect=true".to_owned(),
            format!("done {a} failed: connection dropped"),
            format!("done {b} failed: connection dropped"),
        ],
        "a publish without an idempotency key is not sent twice"
    );
    let queued = h
        .client
        .request(h.now, ClientMessage::Ping { id: None }, secs(60))
        .unwrap();
    assert_eq!(queued.as_str(), "r3", "ids never repeat across connections");
    h.take_received();
    h.step();
    h.connect_and_auth();
    assert_eq!(h.take_received()[2], r#"{"type":"ping","id":"r3"}"#);
    h.server_send(r#"{"type":"pong","id":"r3"}"#);
    assert_eq!(
        h.take_log().last().unwrap(),
        r#"done r3 {"type":"pong","id":"r3"}"#
    );
}

#[test]
fn an_rpc_settles_with_its_result_or_error_by_the_request_timeout_and_is_not_sent_twice() {
    let mut h = Harness::open(ClientConfig {
        request_timeout: secs(4),
        ..config()
    });
    let answered = h.client.rpc(h.now, "sum".into(), raw("[1,2]")).unwrap();
    let refused = h.client.rpc(h.now, "sum".into(), raw("null")).unwrap();
    assert_eq!(
        h.take_received(),
        [
            r#"{"type":"rpc","id":"r1","method":"sum","data":[1,2]}"#,
            r#"{"type":"rpc","id":"r2","method":"sum","data":null}"#,
        ]
    );
    h.server_send(r#"{"type":"rpc_result","id":"r1","data":3}"#);
    h.server_send(r#"{"type":"error","id":"r2","code":"BAD_REQUEST","message":"no numbers"}"#);
    assert_eq!(
        h.take_log(),
        [
            format!(r#"done {answered} {{"type":"rpc_result","id":"r1","data":3}}"#),
            format!("done {refused} failed: BAD_REQUEST: no numbers"),
        ]
    );
    let unanswered = h.client.rpc(h.now, "slow".into(), raw("{}")).unwrap();
    h.advance_to(T0 + secs(4) - Duration::from_nanos(1));
    assert!(h.take_log().is_empty());
    h.advance_to(T0 + secs(4));
    assert_eq!(
        h.take_log(),
        [format!("done {unanswered} failed: request timed out")]
    );
    let dropped = h.client.rpc(h.now, "pay".into(), raw("1")).unwrap();
    h.drop_transport();
    assert_eq!(
        h.take_log()[1],
        format!("done {dropped} failed: connection dropped")
    );
    h.take_received();
    h.step();
    h.connect_and_auth();
    assert!(
        !h.take_received().iter().any(|text| text.contains("rpc")),
        "an rpc that may have been carried out is not called again"
    );
}

/// The `idempotency_key` of each publish in `received`, in order.
fn idempotency_keys(received: &[String]) -> Vec<String> {
    received
        .iter()
        .filter_map(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .filter(|message| message["type"] == "publish")
        .map(|message| {
            let key = message["idempotency_key"]
                .as_str()
                .expect("a publish has a key");
            key.to_owned()
        })
        .collect()
}

/// `received` with every publish's `idempotency_key` taken out, so the
/// rest can be compared as text.
fn without_keys(received: Vec<String>) -> Vec<String> {
    const FIELD: &str = r#","idempotency_key":""#;
    received
        .into_iter()
        .map(|text| match text.find(FIELD) {
            Some(start) => {
                let value = start + FIELD.len();
                let end = value + text[value..].find('"').expect("a closing quote");
                format!("{}{}", &text[..start], &text[end + 1..])
            }
            None => text,
        })
        .collect()
}

#[test]
fn a_publication_keeps_its_idempotency_key_when_sent_again_after_a_reconnect() {
    let mut h = Harness::open(config());
    let first = h.client.publish(h.now, channel("news"), raw("1")).unwrap();
    let second = h.client.publish(h.now, channel("news"), raw("2")).unwrap();
    let keys = idempotency_keys(&h.take_received());
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1], "each publication has a key of its own");
    assert!(
        keys.iter()
            .all(|key| key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())),
        "128 random bits: {keys:?}"
    );

    h.server_send(&format!(r#"{{"type":"ack","id":"{first}","offset":1}}"#));
    h.drop_transport();
    assert_eq!(
        h.take_log(),
        [
            format!(r#"done {first} {{"type":"ack","id":"{first}","offset":1}}"#),
            "disconnected 1006 connection lost reconnect=true".to_owned(),
            "reconnecting #1 in 1.39570574s".to_owned(),
        ],
        "the unanswered publication does not fail with the connection"
    );
    h.step();
    h.connect_and_auth();
    let resent = h.take_received();
    assert_eq!(
        idempotency_keys(&resent),
        keys[1..],
        "only the unanswered one goes out again, with its key"
    );
    assert_eq!(
        without_keys(resent)[2],
        format!(r#"{{"type":"publish","id":"{second}","channel":"news","payload":2}}"#)
    );
    h.server_send(&format!(r#"{{"type":"ack","id":"{second}","offset":2}}"#));
    assert_eq!(
        h.take_log().last().unwrap(),
        &format!(r#"done {second} {{"type":"ack","id":"{second}","offset":2}}"#)
    );

    let third = Harness::open(ClientConfig {
        seed: 8,
        ..config()
    })
    .publish_keys();
    assert!(!keys.contains(&third[0]), "another session, other keys");
}

#[test]
fn a_request_that_times_out_offline_is_never_sent() {
    let mut h = Harness::new(config());
    h.client
        .request(h.now, ClientMessage::Ping { id: None }, secs(1))
        .unwrap();
    h.client.send(ClientMessage::Ping { id: None }).unwrap();
    h.advance_to(T0 + secs(1));
    assert_eq!(
        h.take_log(),
        ["dial at t+1s", "done r1 failed: request timed out"]
    );
    h.connect_and_auth();
    assert_eq!(
        h.take_received()[1..],
        [r#"{"type":"auth","token":"secret"}"#, r#"{"type":"ping"}"#]
    );
}

#[test]
fn a_request_deadline_shared_with_the_connect_timeout_fires_in_the_same_call() {
    // Found by the client_ops fuzz target: losing the connection stopped
    // every timer, the request deadline included, so a request due at the
    // same instant stayed pending until a second `handle_timeout`.
    let mut h = Harness::new(config());
    h.client
        .request(h.now, ClientMessage::Ping { id: None }, secs(10))
        .unwrap();
    h.advance_to(T0 + secs(10));
    assert!(
        h.take_log()
            .contains(&"done r1 failed: request timed out".to_owned())
    );
    assert!(h.client.poll_timeout().is_some_and(|at| at > h.now));
}

#[test]
fn the_offline_queue_keeps_order_goes_out_after_resubscriptions_and_is_bounded() {
    let mut h = Harness::new(ClientConfig {
        offline_queue: 3,
        ..config()
    });
    h.client.subscribe(channel("b")).unwrap();
    h.client.subscribe(channel("a")).unwrap();
    for n in 1..=2 {
        h.client
            .send(ClientMessage::Presence {
                id: None,
                channel: channel(&format!("q{n}")),
            })
            .unwrap();
    }
    h.client.publish(h.now, channel("q"), raw("3")).unwrap();
    assert_eq!(
        h.client.send(ClientMessage::Ping { id: None }),
        Err(SendError::QueueFull)
    );
    assert_eq!(
        h.client
            .request(h.now, ClientMessage::Ping { id: None }, secs(1)),
        Err(SendError::QueueFull)
    );
    h.connect_and_auth();
    assert_eq!(
        without_keys(h.take_received()),
        [
            "GET /ws HTTP/1.1",
            r#"{"type":"auth","token":"secret"}"#,
            r#"{"type":"subscribe","id":"r2","channel":"a"}"#,
            r#"{"type":"subscribe","id":"r3","channel":"b"}"#,
            r#"{"type":"presence","channel":"q1"}"#,
            r#"{"type":"presence","channel":"q2"}"#,
            r#"{"type":"publish","id":"r1","channel":"q","payload":3}"#,
        ]
    );
    h.client.send(ClientMessage::Ping { id: None }).unwrap();
    assert_eq!(h.take_received(), [r#"{"type":"ping"}"#], "sent at once");
}

#[test]
fn resubscribes_with_since_and_filters_duplicates_around_a_reconnect() {
    let mut h = Harness::open(config());
    h.client.subscribe(channel("news")).unwrap();
    assert_eq!(
        h.take_received(),
        [r#"{"type":"subscribe","id":"r1","channel":"news"}"#]
    );
    h.server_send(r#"{"type":"subscribed","id":"r1","channel":"news","epoch":"e1","offset":4}"#);
    h.server_send(r#"{"type":"presence","channel":"news","users":["ann"]}"#);
    h.server_send(
        r#"{"type":"message","channel":"news","payload":"five","sender":"bob","offset":5}"#,
    );
    h.server_send(r#"{"type":"message","channel":"news","payload":"six","offset":6}"#);
    assert_eq!(
        h.take_log(),
        [
            "subscribed news e1/4 recovered=None",
            r#"presence news ["ann"]"#,
            r#"message news #5 "five" from Some("bob")"#,
            r#"message news #6 "six" from None"#,
        ]
    );
    h.drop_transport();
    h.step();
    h.connect_and_auth();
    assert_eq!(
        h.take_received()[2],
        r#"{"type":"subscribe","id":"r2","channel":"news","since":{"epoch":"e1","offset":6}}"#
    );
    h.server_send(r#"{"type":"message","channel":"news","payload":"six","offset":6}"#);
    h.server_send(r#"{"type":"message","channel":"news","payload":"seven","offset":7}"#);
    h.server_send(r#"{"type":"subscribed","id":"r2","channel":"news","epoch":"e1","offset":7,"recovered":true}"#);
    h.server_send(r#"{"type":"message","channel":"news","payload":"seven","offset":7}"#);
    h.server_send(r#"{"type":"message","channel":"news","payload":"eight","offset":8}"#);
    let log = h.take_log();
    assert_eq!(
        log[log.len() - 3..],
        [
            r#"message news #7 "seven" from None"#,
            "subscribed news e1/7 recovered=Some(true)",
            r#"message news #8 "eight" from None"#,
        ]
    );
}

#[test]
fn a_lost_history_is_surfaced_and_a_new_epoch_restarts_the_offsets() {
    let mut h = Harness::open(config());
    h.client.subscribe(channel("news")).unwrap();
    h.server_send(r#"{"type":"subscribed","id":"r1","channel":"news","epoch":"e1","offset":40}"#);
    h.drop_transport();
    h.step();
    h.connect_and_auth();
    h.take_log();
    h.server_send(r#"{"type":"subscribed","id":"r2","channel":"news","epoch":"e2","offset":0,"recovered":false}"#);
    h.server_send(r#"{"type":"message","channel":"news","payload":1,"offset":1}"#);
    assert_eq!(
        h.take_log(),
        [
            "subscribed news e2/0 recovered=Some(false)",
            "message news #1 1 from None"
        ]
    );
}

#[test]
fn a_refused_subscription_is_reported_and_not_retried() {
    let mut h = Harness::open(config());
    h.client.subscribe(channel("user:bob")).unwrap();
    h.client.subscribe(channel("user:bob")).unwrap();
    assert_eq!(h.take_received().len(), 1, "subscribing twice sends once");
    h.server_send(r#"{"type":"error","id":"r1","code":"FORBIDDEN","message":"private"}"#);
    assert_eq!(
        h.take_log(),
        ["subscribe failed user:bob FORBIDDEN private"]
    );
    h.drop_transport();
    h.step();
    h.connect_and_auth();
    assert_eq!(h.take_received().len(), 2, "upgrade and auth only");
}

#[test]
fn unsubscribe_stops_tracking_the_channel() {
    let mut h = Harness::open(config());
    h.client.subscribe(channel("news")).unwrap();
    h.client.unsubscribe(channel("news")).unwrap();
    assert_eq!(
        h.take_received()[1],
        r#"{"type":"unsubscribe","channel":"news"}"#
    );
    h.drop_transport();
    h.step();
    h.connect_and_auth();
    assert_eq!(h.take_received().len(), 2, "no re-subscription");
}

#[test]
fn server_protocol_violations_close_with_their_code_and_reconnect() {
    let mut h = Harness::open(config());
    h.server_bytes(&[0x82, 0x01, 0xff]);
    assert_eq!(h.take_received(), ["close 1003 binary message"]);
    let log = h.take_log();
    assert_eq!(log[1], "disconnected 1003 binary message reconnect=true");
    let mut h = Harness::open(config());
    h.server_bytes(&[0x81, 0x81, 1, 2, 3, 4, 0]);
    assert!(h.take_received()[0].starts_with("close 1002 "));
    assert!(h.take_log()[1].ends_with("reconnect=true"));
}

#[test]
fn unknown_server_messages_are_ignored() {
    let mut h = Harness::open(config());
    h.server_send(r#"{"type":"from_the_future"}"#);
    h.server_send("not json");
    assert!(h.take_log().is_empty());
    assert!(h.client.is_connected());
}

#[test]
fn close_is_normal_waits_for_the_answer_and_never_reconnects() {
    let mut h = Harness::open(config());
    let pending = h.client.publish(h.now, channel("news"), raw("1")).unwrap();
    h.client.close(h.now);
    assert_eq!(
        h.take_received()[1],
        "close 1000 ",
        "a normal close frame goes out"
    );
    assert_eq!(
        h.client.send(ClientMessage::Ping { id: None }),
        Err(SendError::Closed)
    );
    h.server_send(r#"{"type":"ack","id":"r1","offset":3}"#);
    h.server_bytes(&close_frame(CloseCode::NORMAL, ""));
    assert_eq!(
        h.take_log(),
        [
            format!(r#"done {pending} {{"type":"ack","id":"r1","offset":3}}"#),
            format!("close at {T0}"),
            "disconnected 1000 closed by client reconnect=false".to_owned(),
        ]
    );
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn close_gives_up_waiting_at_exactly_the_close_timeout() {
    let mut h = Harness::open(config());
    h.client.close(h.now);
    assert_eq!(h.client.poll_timeout(), Some(T0 + secs(5)));
    h.advance_to(T0 + secs(5));
    assert_eq!(
        h.take_log(),
        [
            "close at t+6s",
            "disconnected 1000 closed by client reconnect=false"
        ]
    );
}

#[test]
fn close_while_waiting_to_reconnect_cancels_the_dial_and_fails_queued_requests() {
    let mut h = Harness::open(config());
    h.drop_transport();
    let id = h
        .client
        .request(h.now, ClientMessage::Ping { id: None }, secs(60))
        .unwrap();
    h.take_log();
    h.client.close(h.now);
    assert_eq!(
        h.take_log(),
        [
            "disconnected 1000 closed by client reconnect=false".to_owned(),
            format!("done {id} failed: session closed"),
        ]
    );
    assert_eq!(h.client.poll_timeout(), None);
    h.advance_to(T0 + secs(600));
    assert_eq!(h.dials, 1);
}

#[test]
fn golden_trace_for_seed_7() {
    let mut h = Harness::new(config());
    h.fail_dial();
    h.step();
    h.fail_dial();
    h.step();
    h.connect_and_auth();
    let ping = h.step();
    let dead = h.step();
    assert_eq!(dead - ping, secs(10));
    assert_eq!(h.take_log(), GOLDEN_SEED_7);
}

/// Two failed dials, a connection, and a dead server, for seed 7.
/// Every delay lies in its window (`[1 s, 2 s)`, `[2 s, 3 s)`, then `[1 s,
/// 2 s)` again after the `auth_ack`), and death comes exactly 35 s after it.
const GOLDEN_SEED_7: [&str; 11] = [
    "dial at t+1s",
    "disconnected 1006 connect failed reconnect=true",
    "reconnecting #1 in 1.39570574s",
    "dial at t+2.39570574s",
    "disconnected 1006 connect failed reconnect=true",
    "reconnecting #2 in 2.445039531s",
    "dial at t+4.840745271s",
    "connected ann s1",
    "close at t+39.840745271s",
    "disconnected 1006 heartbeat timeout reconnect=true",
    "reconnecting #1 in 1.235065929s",
];

/// One thing that can happen to a connection attempt.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    DialFails,
    Refused503,
    ClosedDuringAuth,
    AuthThenLost,
    AuthThenDead,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::DialFails),
        Just(Outcome::Refused503),
        Just(Outcome::ClosedDuringAuth),
        Just(Outcome::AuthThenLost),
        Just(Outcome::AuthThenDead),
    ]
}

/// Plays `outcome` on the pending dial, then waits for the next one.
fn play(h: &mut Harness, outcome: Outcome) {
    match outcome {
        Outcome::DialFails => h.fail_dial(),
        Outcome::Refused503 => {
            h.connect();
            h.server_bytes(b"HTTP/1.1 503 Busy\r\n\r\n");
        }
        Outcome::ClosedDuringAuth => {
            h.connect();
            h.accept();
            h.server_bytes(&close_frame(CloseCode::GOING_AWAY, ""));
        }
        Outcome::AuthThenLost => {
            h.connect_and_auth();
            h.drop_transport();
        }
        Outcome::AuthThenDead => {
            h.connect_and_auth();
            h.step();
            h.step();
        }
    }
}

proptest! {
    #[test]
    fn the_attempt_counter_resets_after_auth_ack_and_not_before(
        outcomes in proptest::collection::vec(outcome(), 1..20),
        seed in any::<u64>(),
    ) {
        let mut h = Harness::new(ClientConfig { seed, ..config() });
        let mut expected = 0;
        for outcome in outcomes {
            play(&mut h, outcome);
            expected = match outcome {
                Outcome::AuthThenLost | Outcome::AuthThenDead => 1,
                _ => expected + 1,
            };
            let log = h.take_log();
            let last = reconnects(&log).pop().unwrap();
            prop_assert!(last.starts_with(&format!("reconnecting #{expected} ")), "{}", last);
            let delay = h.client.poll_timeout().unwrap() - h.now;
            let floor = Backoff::default().floor(expected - 1);
            prop_assert!(delay >= floor && delay < floor + secs(1));
            h.step();
        }
    }

    #[test]
    fn no_dial_ever_follows_a_final_close_code(
        before in proptest::collection::vec(outcome(), 0..6),
        code in prop::sample::select(vec![1002u16, 1003, 1007, 1008, 1009, 4001, 4003, 4029]),
        during_auth in any::<bool>(),
        later in proptest::collection::vec(0u64..100_000, 0..10),
        seed in any::<u64>(),
    ) {
        let mut h = Harness::new(ClientConfig { seed, ..config() });
        for outcome in before {
            play(&mut h, outcome);
            h.step();
        }
        h.connect();
        h.accept();
        if !during_auth {
            h.auth_ack();
        }
        h.server_bytes(&close_frame(CloseCode(code), "final"));
        let dials = h.dials;
        prop_assert!(h.take_log().last().unwrap().ends_with("reconnect=false"));
        for millis in later {
            let at = h.now + Duration::from_millis(millis);
            h.advance_to(at);
            h.client.handle_transport_closed(at);
            h.client.handle_connect_failed(at);
            h.pump();
        }
        h.advance_to(h.now + secs(1_000_000));
        prop_assert_eq!(h.dials, dials);
        prop_assert_eq!(h.client.poll_timeout(), None);
    }
}
