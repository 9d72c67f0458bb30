//! The connection machine in virtual time: a scripted client feeds bytes and
//! instants, and every assertion names an exact instant.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::envelope::{ServerMessage, parse_server_message};
use crate::frame::{FrameDecoder, Message, Role};
use crate::testkit::{UPGRADE, client_frame, client_frame_fin, find, text, written_all};

const T0: Instant = Instant::from_millis(1_000);
/// One connection and the client end of its wire.
struct Harness {
    config: ServerConfig,
    conn: Connection,
    now: Instant,
    /// Bytes the server wrote that are not yet decoded.
    http: Vec<u8>,
    upgraded: bool,
    decoder: FrameDecoder,
    /// Every frame the client received, in order.
    received: Vec<Message>,
    /// Every event the connection emitted, in order.
    events: Vec<Event>,
}

impl Harness {
    fn new(config: ServerConfig) -> Self {
        let conn = Connection::new(&config, T0);
        Harness {
            decoder: FrameDecoder::new(Role::Client, 16 * 1024 * 1024),
            config,
            conn,
            now: T0,
            http: Vec::new(),
            upgraded: false,
            received: Vec::new(),
            events: Vec::new(),
        }
    }

    fn upgraded(config: ServerConfig) -> Self {
        let mut harness = Harness::new(config);
        harness.send(UPGRADE.as_bytes());
        assert_eq!(harness.events, vec![Event::Upgraded]);
        harness.events.clear();
        harness
    }

    fn authenticated(config: ServerConfig) -> Self {
        let mut harness = Harness::upgraded(config);
        harness.send(&text(r#"{"type":"auth","token":"t"}"#));
        harness.accept("alice");
        assert!(matches!(
            harness.replies().as_slice(),
            [ServerMessage::AuthAck { .. }]
        ));
        harness.events.clear();
        harness
    }

    fn send(&mut self, bytes: &[u8]) {
        self.conn.handle_read(&self.config, self.now, bytes);
        self.drain();
    }

    fn accept(&mut self, user: &str) {
        let verdict = AuthVerdict::Accept {
            user: user.into(),
            session: "s1".into(),
            expiry: None,
        };
        self.conn
            .handle_auth_verdict(&self.config, self.now, verdict);
        self.drain();
    }

    fn at(&mut self, now: Instant) {
        self.now = now;
        self.conn.handle_timeout(&self.config, now);
        self.drain();
    }

    /// The drain loop every driver runs: events, then bytes, all of them.
    fn drain(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            self.events.push(event);
        }
        let mut frames = Vec::new();
        written_all(&self.config, &mut self.conn, &mut frames);
        let written = frames.concat();
        if self.upgraded {
            self.decoder.feed(&written);
        } else {
            self.http.extend_from_slice(&written);
            if let Some(end) = find(&self.http, b"\r\n\r\n")
                && self.http.starts_with(b"HTTP/1.1 101")
            {
                self.upgraded = true;
                let rest = self.http.split_off(end + 4);
                self.decoder.feed(&rest);
            }
        }
        while let Ok(Some(message)) = self.decoder.poll_message() {
            self.received.push(message);
        }
    }

    /// The application messages received since the last call.
    fn replies(&mut self) -> Vec<ServerMessage> {
        let texts: Vec<Message> = self.received.drain(..).collect();
        texts
            .into_iter()
            .filter_map(|message| match message {
                Message::Text(text) => Some(
                    parse_server_message(std::str::from_utf8(&text).unwrap())
                        .expect("server sent a valid message"),
                ),
                _ => None,
            })
            .collect()
    }

    fn close_received(&self) -> Option<(CloseCode, String)> {
        self.received.iter().find_map(|message| match message {
            Message::Close(close) => close.clone(),
            _ => None,
        })
    }

    fn closed_event(&self) -> Option<(CloseCode, ClosedBy)> {
        self.events.iter().find_map(|event| match event {
            Event::Closed { reason, by } => Some((reason.code, *by)),
            _ => None,
        })
    }

    fn error_codes(&mut self) -> Vec<(ErrorCode, Option<String>)> {
        self.replies()
            .into_iter()
            .filter_map(|reply| match reply {
                ServerMessage::Error { code, id, .. } => {
                    Some((code, id.map(|id| id.as_str().to_owned())))
                }
                _ => None,
            })
            .collect()
    }

    fn assert_server_closed_with(&mut self, code: CloseCode) {
        let (received, _) = self.close_received().expect("a close frame");
        assert_eq!(received, code);
        assert_eq!(self.closed_event(), Some((code, ClosedBy::Server)));
    }
}

fn config() -> ServerConfig {
    ServerConfig::dev()
}

// ---- auth gate -----------------------------------------------------------

#[test]
fn auth_timeout_closes_at_exactly_t0_plus_auth_timeout() {
    let mut h = Harness::upgraded(config());
    let deadline = T0 + config().auth_timeout;
    assert_eq!(h.conn.poll_timeout(), Some(deadline));
    h.at(deadline - Duration::from_nanos(1));
    assert_eq!(h.close_received(), None);
    h.at(deadline);
    let (code, reason) = h.close_received().expect("closed at the deadline");
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::AUTH_REQUIRED, "auth timeout")
    );
    assert_eq!(
        h.closed_event(),
        Some((CloseCode::AUTH_REQUIRED, ClosedBy::Server))
    );
}

#[test]
fn a_message_other_than_auth_first_closes_4001_auth_required() {
    let mut h = Harness::upgraded(config());
    h.send(&text(r#"{"type":"subscribe","channel":"chat"}"#));
    let (code, reason) = h.close_received().unwrap();
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::AUTH_REQUIRED, "auth required")
    );
    assert!(!h.events.iter().any(|e| matches!(e, Event::Request(_))));
}

#[test]
fn invalid_json_first_closes_4001() {
    let mut h = Harness::upgraded(config());
    h.send(&text("not json"));
    h.assert_server_closed_with(CloseCode::AUTH_REQUIRED);
}

#[test]
fn ping_is_answered_before_auth() {
    let mut h = Harness::upgraded(config());
    h.send(&text(r#"{"type":"ping","id":"p"}"#));
    assert_eq!(
        h.replies(),
        vec![ServerMessage::Pong {
            id: Some(RequestId::new("p").unwrap())
        }]
    );
    assert_eq!(h.close_received(), None);
}

#[test]
fn rejected_token_closes_4003_and_discards_kept_messages() {
    let mut h = Harness::upgraded(config());
    h.send(&text(r#"{"type":"auth","token":"bad"}"#));
    h.send(&text(r#"{"type":"subscribe","channel":"chat"}"#));
    assert_eq!(
        h.events,
        vec![Event::Authenticate {
            token: "bad".into(),
            headers: Vec::new()
        }]
    );
    h.conn.handle_auth_verdict(
        &h.config,
        h.now,
        AuthVerdict::Reject(Rejection::forbidden()),
    );
    h.drain();
    let (code, reason) = h.close_received().unwrap();
    assert_eq!((code, reason.as_str()), (CloseCode::FORBIDDEN, "forbidden"));
    assert!(!h.events.iter().any(|e| matches!(e, Event::Request(_))));
}

#[test]
fn messages_pipelined_behind_auth_are_handled_in_order_after_auth_ack() {
    let mut h = Harness::upgraded(config());
    let mut burst = text(r#"{"type":"auth","token":"t"}"#);
    burst.extend(text(r#"{"type":"subscribe","channel":"a"}"#));
    burst.extend(text(r#"{"type":"ping","id":"p"}"#));
    burst.extend(text(r#"{"type":"subscribe","channel":"b"}"#));
    h.send(&burst);
    assert_eq!(
        h.replies(),
        vec![],
        "nothing is answered before the verdict"
    );
    h.accept("alice");
    let replies = h.replies();
    assert!(
        matches!(replies.as_slice(), [ServerMessage::AuthAck { .. }]),
        "the pong waits behind the first subscribe: {replies:?}"
    );
    let order: Vec<&str> = h
        .events
        .iter()
        .map(|event| match event {
            Event::Authenticate { .. } => "authenticate",
            Event::Authenticated => "authenticated",
            Event::Request(ClientMessage::Subscribe { channel, .. }) => channel.as_str(),
            Event::Reply(frame) if frame.ends_with(br#"{"type":"pong","id":"p"}"#) => "pong",
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(order, ["authenticate", "authenticated", "a", "pong", "b"]);
}

#[test]
fn a_reply_made_by_the_connection_never_overtakes_a_request_for_the_hub() {
    let mut h = Harness::authenticated(config());
    let mut burst = text(r#"{"type":"subscribe","channel":"a","id":"s"}"#);
    burst.extend(text(r#"{"type":"ping","id":"p"}"#));
    burst.extend(text("not json"));
    h.send(&burst);
    assert_eq!(h.replies(), vec![], "both replies wait for the subscribe");
    let held: Vec<Bytes> = h
        .events
        .drain(..)
        .filter_map(|event| match event {
            Event::Reply(frame) => Some(frame),
            _ => None,
        })
        .collect();
    assert_eq!(held.len(), 2);
    for frame in held {
        h.conn.send_control(&h.config, h.now, frame);
    }
    h.drain();
    let replies = h.replies();
    assert!(
        matches!(
            replies.as_slice(),
            [
                ServerMessage::Pong { .. },
                ServerMessage::Error {
                    code: ErrorCode::InvalidJson,
                    ..
                }
            ]
        ),
        "{replies:?}"
    );
    h.send(&text(r#"{"type":"ping","id":"q"}"#));
    assert!(
        matches!(h.replies().as_slice(), [ServerMessage::Pong { .. }]),
        "with no request out, a pong leaves at once"
    );
}

#[test]
fn auth_ack_carries_user_session_heartbeat_and_max_payload() {
    let mut h = Harness::upgraded(config());
    h.send(&text(r#"{"type":"auth","token":"t"}"#));
    h.events.clear();
    h.accept("alice");
    assert_eq!(
        h.replies(),
        vec![ServerMessage::AuthAck {
            user: "alice".into(),
            session: "s1".into(),
            heartbeat_ms: 30_000,
            expires_at: None,
            max_payload: 65_536,
        }]
    );
    assert_eq!(h.events, vec![Event::Authenticated]);
}

#[test]
fn a_thirty_third_message_before_the_verdict_closes_1008() {
    let mut h = Harness::upgraded(config());
    h.send(&text(r#"{"type":"auth","token":"t"}"#));
    for _ in 0..32 {
        h.send(&text(r#"{"type":"ping"}"#));
    }
    assert_eq!(h.close_received(), None);
    h.send(&text(r#"{"type":"ping"}"#));
    h.assert_server_closed_with(CloseCode::POLICY_VIOLATION);
}

#[test]
fn a_second_auth_is_an_invalid_message_answered_with_its_id() {
    let mut h = Harness::authenticated(config());
    h.send(&text(r#"{"type":"auth","token":"t"}"#));
    h.send(&text(r#"{"type":"auth","token":"t","id":"a2"}"#));
    assert_eq!(
        h.error_codes(),
        vec![
            (ErrorCode::InvalidMessage, None),
            (ErrorCode::InvalidMessage, Some("a2".into()))
        ]
    );
}

/// The close a connection gets when its token proves `user`.
fn verdict_for_user(user: &str) -> Option<(CloseCode, String)> {
    let mut h = Harness::upgraded(config());
    h.send(&text(r#"{"type":"auth","token":"t"}"#));
    h.accept(user);
    h.close_received()
}

#[test]
fn a_user_id_that_cannot_name_its_private_channel_is_refused_4003() {
    let longest = "u".repeat(123);
    for user in ["alice", "a-b_c.d@example.com", "team/x:1", longest.as_str()] {
        assert_eq!(verdict_for_user(user), None, "{user:?} is accepted");
    }
    let too_long = "u".repeat(124);
    let refused = [
        "",
        "jane doe",
        "a+b",
        "é",
        "zero\u{200b}width",
        "\u{202e}evil",
        "tab\tbed",
        too_long.as_str(),
    ];
    for user in refused {
        assert_eq!(
            verdict_for_user(user),
            Some((CloseCode::FORBIDDEN, "invalid user id".into())),
            "{user:?} is refused"
        );
    }
    let mut h = Harness::upgraded(config());
    h.send(&text(r#"{"type":"auth","token":"t"}"#));
    h.send(&text(r#"{"type":"subscribe","channel":"chat"}"#));
    h.accept("a b");
    assert_eq!(
        h.closed_event(),
        Some((CloseCode::FORBIDDEN, ClosedBy::Server))
    );
    assert!(
        !h.events
            .iter()
            .any(|e| matches!(e, Event::Authenticated | Event::Request(_))),
        "the hub never hears of the connection"
    );
}

// ---- heartbeat -------------------------------------------------------------

#[test]
fn a_silent_peer_is_terminated_exactly_at_the_second_heartbeat_tick() {
    let mut h = Harness::authenticated(config());
    let interval = config().heartbeat_interval;
    assert_eq!(h.conn.poll_timeout(), Some(T0 + interval));
    h.at(T0 + interval);
    assert!(matches!(h.received.as_slice(), [Message::Ping(_)]));
    h.at(T0 + interval * 2 - Duration::from_nanos(1));
    assert_eq!(h.closed_event(), None);
    h.at(T0 + interval * 2);
    assert_eq!(
        h.closed_event(),
        Some((CloseCode::ABNORMAL, ClosedBy::HeartbeatTimeout))
    );
    assert_eq!(h.conn.transport(), Transport::CloseNow);
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn a_peer_that_answers_pings_stays_open() {
    let mut h = Harness::authenticated(config());
    let interval = config().heartbeat_interval;
    for tick in 1..=5 {
        h.at(T0 + interval * tick);
        h.send(&client_frame(0xA, b""));
    }
    assert_eq!(h.closed_event(), None);
    let pings = h
        .received
        .iter()
        .filter(|m| matches!(m, Message::Ping(_)))
        .count();
    assert_eq!(pings, 5);
    assert_eq!(h.conn.poll_timeout(), Some(T0 + interval * 6));
}

#[test]
fn application_traffic_does_not_count_as_a_pong() {
    let mut h = Harness::authenticated(config());
    let interval = config().heartbeat_interval;
    h.at(T0 + interval);
    h.send(&text(r#"{"type":"ping"}"#));
    h.at(T0 + interval * 2);
    assert_eq!(
        h.closed_event(),
        Some((CloseCode::ABNORMAL, ClosedBy::HeartbeatTimeout))
    );
}

#[test]
fn a_ping_frame_is_answered_with_a_pong_carrying_its_payload() {
    let mut h = Harness::authenticated(config());
    h.send(&client_frame(0x9, b"hello"));
    assert_eq!(
        h.received,
        vec![Message::Pong(Bytes::from_static(b"hello"))]
    );
}

// ---- rate limit --------------------------------------------------------------

#[test]
fn rate_limit_admits_exactly_the_burst_then_the_rate() {
    let mut h = Harness::authenticated(config());
    for i in 0..201 {
        h.send(&text(&format!(r#"{{"type":"ping","id":"p{i}"}}"#)));
    }
    let replies = h.replies();
    let pongs = replies
        .iter()
        .filter(|r| matches!(r, ServerMessage::Pong { .. }))
        .count();
    assert_eq!(pongs, 200);
    assert!(matches!(
        replies.last(),
        Some(ServerMessage::Error { code: ErrorCode::RateLimited, id: Some(id), .. }) if id.as_str() == "p200"
    ));
    h.now = T0 + Duration::from_millis(10);
    h.send(&text(r#"{"type":"ping"}"#));
    assert_eq!(h.replies(), vec![ServerMessage::Pong { id: None }]);
    h.send(&text(r#"{"type":"ping"}"#));
    assert_eq!(h.error_codes(), vec![(ErrorCode::RateLimited, None)]);
}

#[test]
fn a_refused_message_that_does_not_parse_still_gets_its_id_back() {
    let mut h = Harness::authenticated(ServerConfig {
        rate_limit: 1,
        rate_burst: 1,
        ..config()
    });
    h.send(&text(r#"{"type":"ping","id":"p"}"#));
    h.send(&text(r#"{"type":"rpc","method":"not a method","id":"m"}"#));
    h.send(&text(
        r#"{"type":"subscribe","channel":"no spaces","id":"c"}"#,
    ));
    assert_eq!(
        h.error_codes(),
        vec![
            (ErrorCode::RateLimited, Some("m".into())),
            (ErrorCode::RateLimited, Some("c".into())),
        ],
        "every message with an id gets one reply with that id"
    );
}

// ---- envelope errors ------------------------------------------------------------

#[test]
fn each_envelope_error_code_is_answered_and_the_connection_stays_open() {
    let cases = [
        ("{", ErrorCode::InvalidJson, None),
        ("[1,2]", ErrorCode::InvalidMessage, None),
        (r#"{"id":"a"}"#, ErrorCode::MissingType, Some("a")),
        (
            r#"{"type":"teleport","id":"b"}"#,
            ErrorCode::UnknownType,
            Some("b"),
        ),
        (
            r#"{"type":"subscribe","id":"c"}"#,
            ErrorCode::InvalidMessage,
            Some("c"),
        ),
        (
            r#"{"type":"subscribe","channel":"no spaces","id":"d"}"#,
            ErrorCode::InvalidChannel,
            Some("d"),
        ),
    ];
    for (json, code, id) in cases {
        let mut h = Harness::authenticated(config());
        h.send(&text(json));
        assert_eq!(
            h.error_codes(),
            vec![(code, id.map(str::to_owned))],
            "for {json}"
        );
        assert_eq!(h.close_received(), None);
        assert!(h.conn.is_open());
    }
}

#[test]
fn a_valid_request_goes_to_the_hub() {
    let mut h = Harness::authenticated(config());
    h.send(&text(
        r#"{"type":"publish","channel":"chat","payload":{"x":1},"id":"m1"}"#,
    ));
    assert!(matches!(
        h.events.as_slice(),
        [Event::Request(ClientMessage::Publish { channel, .. })] if channel.as_str() == "chat"
    ));
}

// ---- close codes ------------------------------------------------------------------

#[test]
fn a_binary_message_closes_1003() {
    let mut h = Harness::authenticated(config());
    h.send(&client_frame(0x2, b"\x00\x01"));
    h.assert_server_closed_with(CloseCode::UNSUPPORTED_DATA);
}

#[test]
fn invalid_utf8_closes_1007() {
    let mut h = Harness::authenticated(config());
    h.send(&client_frame(0x1, b"{\"type\":\"ping\",\"x\":\"\xff\"}"));
    h.assert_server_closed_with(CloseCode::INVALID_PAYLOAD);
}

#[test]
fn a_message_over_max_payload_closes_1009_and_one_at_the_limit_does_not() {
    let limit = config().max_payload;
    let at_limit = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(limit - 24));
    assert_eq!(at_limit.len(), limit);
    let mut h = Harness::authenticated(config());
    h.send(&text(&at_limit));
    assert_eq!(h.replies(), vec![ServerMessage::Pong { id: None }]);
    let over = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(limit - 23));
    h.send(&text(&over));
    h.assert_server_closed_with(CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn too_big_is_detected_from_the_header_before_the_payload_arrives() {
    let mut h = Harness::authenticated(config());
    let frame = client_frame(0x1, &vec![b' '; config().max_payload + 1]);
    h.send(&frame[..14]);
    h.assert_server_closed_with(CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn an_unmasked_client_frame_closes_1002() {
    let mut h = Harness::authenticated(config());
    h.send(b"\x81\x02{}");
    h.assert_server_closed_with(CloseCode::PROTOCOL_ERROR);
}

#[test]
fn a_failed_connection_half_closes_once_its_close_frame_is_out() {
    let mut h = Harness::authenticated(config());
    h.conn
        .send_control(&h.config, h.now, crate::frame::text_frame(b"{}"));
    h.conn.handle_read(&h.config, h.now, b"\x81\x02{}");
    assert_eq!(
        h.conn.transport(),
        Transport::CloseAfterFlush,
        "the reply and the close frame go out first"
    );
    h.drain();
    h.assert_server_closed_with(CloseCode::PROTOCOL_ERROR);
    assert_eq!(h.conn.transport(), Transport::HalfClose);
    // What the client sends after its failed frame is never read as frames.
    h.send(&client_frame(0x8, &1000u16.to_be_bytes()));
    assert_eq!(h.conn.transport(), Transport::HalfClose);
    assert_eq!(h.conn.poll_timeout(), Some(T0 + config().close_timeout));
    h.at(T0 + config().close_timeout);
    assert_eq!(h.conn.transport(), Transport::CloseNow);
}

#[test]
fn a_failed_frame_while_closing_half_closes_without_waiting_for_the_peer() {
    let mut h = Harness::authenticated(config());
    h.conn
        .close(h.now, CloseCode::GOING_AWAY, "going away", &h.config);
    h.drain();
    assert_eq!(h.conn.transport(), Transport::Open);
    h.send(b"\x81\x02{}");
    assert_eq!(h.conn.transport(), Transport::HalfClose);
    assert_eq!(
        h.events
            .iter()
            .filter(|e| matches!(e, Event::Closed { .. }))
            .count(),
        1
    );
    h.at(T0 + config().close_timeout);
    assert_eq!(h.conn.transport(), Transport::CloseNow);
}

#[test]
fn a_client_close_is_echoed_and_ends_the_connection() {
    let mut h = Harness::authenticated(config());
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    h.send(&client_frame(0x8, &payload));
    assert_eq!(
        h.close_received().map(|(code, _)| code),
        Some(CloseCode::NORMAL)
    );
    assert_eq!(
        h.closed_event(),
        Some((CloseCode::NORMAL, ClosedBy::Client))
    );
    assert_eq!(
        h.conn.transport(),
        Transport::CloseNow,
        "flushed, then closed"
    );
}

#[test]
fn server_close_waits_for_the_peer_close_then_for_at_most_close_timeout() {
    let mut h = Harness::authenticated(config());
    h.conn
        .close(h.now, CloseCode::GOING_AWAY, "going away", &h.config);
    h.drain();
    h.assert_server_closed_with(CloseCode::GOING_AWAY);
    assert_eq!(
        h.conn.transport(),
        Transport::Open,
        "waits for the peer's close"
    );
    h.at(T0 + config().close_timeout);
    assert_eq!(h.conn.transport(), Transport::CloseNow);

    let mut h = Harness::authenticated(config());
    h.conn
        .close(h.now, CloseCode::GOING_AWAY, "going away", &h.config);
    h.drain();
    h.send(&client_frame(0x8, &1001u16.to_be_bytes()));
    assert_eq!(h.conn.transport(), Transport::CloseNow);
    assert_eq!(
        h.events
            .iter()
            .filter(|e| matches!(e, Event::Closed { .. }))
            .count(),
        1
    );
}

#[test]
fn queued_messages_are_flushed_before_the_shutdown_close_frame() {
    let mut h = Harness::authenticated(config());
    let frame = crate::frame::text_frame(br#"{"type":"pong"}"#);
    h.conn.send_control(&h.config, h.now, frame);
    h.conn
        .close(h.now, CloseCode::GOING_AWAY, "going away", &h.config);
    h.drain();
    assert!(matches!(h.received[0], Message::Text(_)));
    assert!(matches!(h.received[1], Message::Close(_)));
}

#[test]
fn transport_loss_is_reported_once_as_1006() {
    let mut h = Harness::authenticated(config());
    h.conn.handle_transport_closed();
    h.drain();
    assert_eq!(
        h.closed_event(),
        Some((CloseCode::ABNORMAL, ClosedBy::TransportLost))
    );
    h.conn.handle_transport_closed();
    h.drain();
    assert_eq!(
        h.events
            .iter()
            .filter(|e| matches!(e, Event::Closed { .. }))
            .count(),
        1
    );
}

// ---- backpressure -------------------------------------------------------------------

fn small_queue_config() -> ServerConfig {
    ServerConfig {
        high_water: 1_000,
        hard_limit: 4_000,
        ..config()
    }
}

#[test]
fn a_queue_above_high_water_for_slow_timeout_closes_4008_at_that_instant() {
    let config = small_queue_config();
    let mut h = Harness::authenticated(config.clone());
    let frame = crate::frame::text_frame(&[b'x'; 600]);
    let t1 = T0 + Duration::from_secs(1);
    h.now = t1;
    assert_eq!(
        h.conn.send_publication(&h.config, t1, &frame, None),
        FrameAdmission::Queued
    );
    assert_eq!(
        h.conn.send_publication(&h.config, t1, &frame, None),
        FrameAdmission::Queued
    );
    assert_eq!(
        h.conn.send_publication(&h.config, t1, &frame, None),
        FrameAdmission::Dropped
    );
    assert_eq!(h.conn.queue_stats().dropped_messages, 1);
    assert_eq!(h.conn.poll_timeout(), Some(t1 + config.slow_timeout));
    h.conn.handle_timeout(&h.config, t1 + config.slow_timeout);
    let closed: Vec<Event> = std::iter::from_fn(|| h.conn.poll_event()).collect();
    assert!(matches!(
        closed.as_slice(),
        [Event::Closed { reason, by: ClosedBy::Server }] if reason.code == CloseCode::SLOW_CONSUMER
    ));
    assert_eq!(h.conn.transport(), Transport::Abort);
}

#[test]
fn dipping_just_below_high_water_does_not_disarm_the_slow_consumer_timer() {
    let config = small_queue_config();
    let mut h = Harness::authenticated(config.clone());
    let frame = crate::frame::text_frame(&[b'x'; 600]);
    h.conn.send_publication(&h.config, h.now, &frame, None);
    h.conn.send_publication(&h.config, h.now, &frame, None);
    let mut batch = Vec::new();
    let first = h.conn.poll_transmit(600, &mut batch);
    h.conn.handle_written(&h.config, first);
    h.conn.poll_transmit(600, &mut batch);
    assert!(h.conn.queued_bytes() > config.high_water / 2);
    assert!(h.conn.queued_bytes() <= config.high_water);
    h.at(T0 + config.slow_timeout);
    assert_eq!(
        h.closed_event(),
        Some((CloseCode::SLOW_CONSUMER, ClosedBy::Server))
    );
}

#[test]
fn draining_below_half_high_water_disarms_the_slow_consumer_timer() {
    let config = small_queue_config();
    let mut h = Harness::authenticated(config.clone());
    let frame = crate::frame::text_frame(&[b'x'; 600]);
    h.conn.send_publication(&h.config, h.now, &frame, None);
    h.conn.send_publication(&h.config, h.now, &frame, None);
    h.drain();
    h.at(T0 + config.slow_timeout);
    assert_eq!(h.closed_event(), None);
}

#[test]
fn replies_past_the_hard_limit_close_4008() {
    let config = small_queue_config();
    let mut h = Harness::authenticated(config);
    let frame = crate::frame::text_frame(&[b'x'; 1_500]);
    for _ in 0..3 {
        h.conn.send_control(&h.config, h.now, frame.clone());
    }
    let events: Vec<Event> = std::iter::from_fn(|| h.conn.poll_event()).collect();
    assert!(matches!(
        events.as_slice(),
        [Event::Closed { reason, .. }] if reason.code == CloseCode::SLOW_CONSUMER
    ));
    assert!(h.conn.queued_bytes() <= 4_000);
}

#[test]
fn a_slow_consumer_is_aborted_with_nothing_more_written() {
    // Behind a peer that does not read, a close frame would never arrive:
    // the connection is cut with a reset instead, its queue dropped.
    let config = small_queue_config();
    let mut h = Harness::authenticated(config);
    let frame = crate::frame::text_frame(&[b'x'; 1_500]);
    h.conn.send_control(&h.config, h.now, frame.clone());
    let mut batch = Vec::new();
    h.conn.poll_transmit(usize::MAX, &mut batch);
    for _ in 0..3 {
        h.conn.send_control(&h.config, h.now, frame.clone());
    }
    assert_eq!(h.conn.transport(), Transport::Abort);
    assert_eq!(h.conn.queued_bytes(), 0);
    assert_eq!(h.conn.poll_transmit(usize::MAX, &mut batch), 0);
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn latest_only_publications_coalesce_in_the_queue() {
    let mut h = Harness::authenticated(config());
    let key = Some(CoalesceKey(1));
    let first = crate::frame::text_frame(br#"{"n":1}"#);
    let second = crate::frame::text_frame(br#"{"n":2}"#);
    h.conn.send_publication(&h.config, h.now, &first, key);
    assert_eq!(
        h.conn.send_publication(&h.config, h.now, &second, key),
        FrameAdmission::Coalesced
    );
    h.drain();
    assert_eq!(
        h.received,
        vec![Message::Text(Bytes::from_static(br#"{"n":2}"#))]
    );
}

#[test]
fn nothing_is_written_to_a_connection_that_is_not_open() {
    let mut h = Harness::upgraded(config());
    h.send(&client_frame(0x8, &1000u16.to_be_bytes()));
    let before = h.conn.queued_bytes();
    let frame = crate::frame::text_frame(b"{}");
    assert_eq!(
        h.conn.send_publication(&h.config, h.now, &frame, None),
        FrameAdmission::Dropped
    );
    h.conn.send_control(&h.config, h.now, frame);
    assert_eq!(h.conn.queued_bytes(), before);
}

// ---- HTTP side ---------------------------------------------------------------------

#[test]
fn the_upgrade_selects_tether_v1() {
    let mut h = Harness::new(config());
    h.send(UPGRADE.as_bytes());
    let response = String::from_utf8_lossy(&h.http).into_owned();
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(response.contains("Sec-WebSocket-Protocol: tether.v1\r\n"));
}

#[test]
fn a_frame_pipelined_with_the_upgrade_request_is_not_lost() {
    let mut h = Harness::new(config());
    let mut bytes = UPGRADE.as_bytes().to_vec();
    bytes.extend(text(r#"{"type":"auth","token":"t"}"#));
    h.send(&bytes);
    assert_eq!(
        h.events,
        vec![
            Event::Upgraded,
            Event::Authenticate {
                token: "t".into(),
                headers: Vec::new()
            }
        ]
    );
}

fn http_status(config: ServerConfig, request: &str) -> String {
    let mut h = Harness::new(config);
    h.send(request.as_bytes());
    let head = String::from_utf8_lossy(&h.http).into_owned();
    assert_eq!(
        h.conn.transport(),
        Transport::CloseNow,
        "answered, then closed"
    );
    head.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn an_origin_off_the_allow_list_gets_403_and_on_it_101() {
    let config = ServerConfig {
        allowed_origins: vec!["https://app.example".into()],
        ..config()
    };
    let with_origin =
        |origin: &str| UPGRADE.replace("\r\n\r\n", &format!("\r\nOrigin: {origin}\r\n\r\n"));
    assert!(http_status(config.clone(), &with_origin("https://evil.example")).contains("403"));
    let mut h = Harness::new(config);
    h.send(with_origin("https://app.example").as_bytes());
    assert_eq!(h.events, vec![Event::Upgraded]);
}

#[test]
fn a_plain_get_on_ws_gets_426() {
    let status = http_status(config(), "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(status.contains("426"), "{status}");
}

#[test]
fn only_foreign_subprotocols_get_400() {
    let request = UPGRADE.replace("tether.v1", "mqtt");
    assert!(http_status(config(), &request).contains("400"));
}

#[test]
fn plain_routes_become_events_and_are_answered_once() {
    let mut h = Harness::new(config());
    h.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(matches!(
        h.events.as_slice(),
        [Event::HttpRequest(request)] if request.route == crate::http::Route::Health
    ));
    h.conn.respond(&h.config, h.now, 200, "text/plain", b"ok");
    h.drain();
    assert!(String::from_utf8_lossy(&h.http).starts_with("HTTP/1.1 200"));
    assert_eq!(h.conn.transport(), Transport::CloseNow);
}

#[test]
fn a_client_that_never_finishes_its_request_is_dropped_at_the_handshake_timeout() {
    let mut h = Harness::new(config());
    h.send(b"GET /ws HTTP/1.1\r\n");
    h.at(T0 + config().handshake_timeout);
    assert_eq!(h.conn.transport(), Transport::CloseNow);
    assert!(h.http.is_empty());
}

// ---- byte-level equivalence ---------------------------------------------------------

fn session_bytes() -> Vec<u8> {
    let mut bytes = UPGRADE.as_bytes().to_vec();
    for json in [
        r#"{"type":"ping","id":"early"}"#,
        r#"{"type":"auth","token":"t"}"#,
        r#"{"type":"subscribe","channel":"chat","id":"s"}"#,
        r#"{"type":"publish","channel":"chat","payload":[1,2,3],"id":"m"}"#,
        r#"{"type":"bogus"}"#,
    ] {
        bytes.extend(text(json));
    }
    bytes.extend(client_frame_fin(false, 0x1, br#"{"type":"pi"#));
    bytes.extend(client_frame(0x9, b"hb"));
    bytes.extend(client_frame_fin(true, 0x0, br#"ng"}"#));
    bytes
}

/// Feeds `bytes` in the given pieces, then the verdict, then a close, and
/// returns everything observable.
fn run_split(pieces: &[&[u8]]) -> (Vec<Event>, Vec<Message>, Vec<u8>) {
    let mut h = Harness::new(config());
    for piece in pieces {
        h.send(piece);
    }
    h.accept("alice");
    h.send(&client_frame(0x8, &1000u16.to_be_bytes()));
    let http = h.http.clone();
    (h.events, h.received, http)
}

#[test]
fn a_whole_session_gives_identical_results_whole_and_byte_by_byte() {
    let bytes = session_bytes();
    let whole = run_split(&[&bytes]);
    let single: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run_split(&single), whole);
    assert!(whole.0.contains(&Event::Authenticated));
    assert_eq!(
        whole
            .0
            .iter()
            .filter(|e| matches!(e, Event::Request(_)))
            .count(),
        2
    );
}

proptest! {
    #[test]
    fn a_whole_session_gives_identical_results_at_random_split_points(
        cuts in proptest::collection::btree_set(1usize..560, 0..20)
    ) {
        let bytes = session_bytes();
        let whole = run_split(&[&bytes]);
        let mut pieces = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().filter(|&c| c < bytes.len()) {
            pieces.push(&bytes[start..cut]);
            start = cut;
        }
        pieces.push(&bytes[start..]);
        prop_assert_eq!(run_split(&pieces), whole);
    }

    /// Arbitrary bytes after an authenticated handshake never panic, and
    /// the queue never passes the hard limit.
    #[test]
    fn arbitrary_bytes_never_panic_or_overfill(bytes in proptest::collection::vec(any::<u8>(), 0..2_000)) {
        let mut h = Harness::authenticated(small_queue_config());
        h.send(&bytes);
        prop_assert!(h.conn.queued_bytes() <= 4_000);
    }
}

// ---- memory --------------------------------------------------------------------------

#[test]
fn an_idle_connection_stays_small() {
    let size = std::mem::size_of::<Connection>();
    assert!(size <= 512, "Connection is {size} bytes");
}

/// Publishes until one is dropped, then lets the socket take everything, as
/// a trickle reader behind a large socket buffer does.
fn overflow_then_drain(h: &mut Harness, at: Instant) {
    let frame = crate::frame::text_frame(&[b'x'; 600]);
    h.now = at;
    while h.conn.send_publication(&h.config, at, &frame, None) != FrameAdmission::Dropped {}
    written_all(&h.config, &mut h.conn, &mut Vec::new());
}

#[test]
fn a_consumer_still_losing_messages_is_closed_even_though_each_write_empties_its_queue() {
    let config = small_queue_config();
    let mut h = Harness::authenticated(config.clone());
    let step = config.slow_timeout / 4;
    for i in 0..4 {
        overflow_then_drain(&mut h, T0 + step * i);
    }
    assert_eq!(h.conn.queued_bytes(), 0);
    assert_eq!(h.conn.poll_timeout(), Some(T0 + config.slow_timeout));
    h.at(T0 + config.slow_timeout);
    assert_eq!(
        h.closed_event(),
        Some((CloseCode::SLOW_CONSUMER, ClosedBy::Server))
    );
}

#[test]
fn a_consumer_whose_drops_stopped_in_the_first_half_of_the_spell_is_forgiven() {
    let config = small_queue_config();
    let mut h = Harness::authenticated(config.clone());
    overflow_then_drain(&mut h, T0);
    overflow_then_drain(
        &mut h,
        T0 + config.slow_timeout / 2 - Duration::from_nanos(1),
    );
    h.at(T0 + config.slow_timeout);
    assert_eq!(h.closed_event(), None);
    assert!(h.conn.is_open());
}

// ---- token lifetime ------------------------------------------------------

const LIFETIME: Duration = Duration::from_secs(5);

fn expiry(unix_ms: u64) -> Option<Expiry> {
    Some(Expiry {
        unix_ms,
        remaining: LIFETIME,
    })
}

fn accepted_until(unix_ms: u64) -> AuthVerdict {
    AuthVerdict::Accept {
        user: "alice".into(),
        session: "s1".into(),
        expiry: expiry(unix_ms),
    }
}

/// A connection authenticated at `T0` with a token that has [`LIFETIME`]
/// left, whose `exp` is Unix ms 1,000,000.
fn expiring() -> Harness {
    let mut h = Harness::upgraded(config());
    h.send(&text(r#"{"type":"auth","token":"t"}"#));
    h.conn
        .handle_auth_verdict(&h.config, h.now, accepted_until(1_000_000));
    h.drain();
    match h.replies().as_slice() {
        [ServerMessage::AuthAck { expires_at, .. }] => assert_eq!(*expires_at, Some(1_000_000)),
        other => panic!("expected auth_ack, got {other:?}"),
    }
    h.events.clear();
    h
}

#[test]
fn a_token_expires_at_exactly_its_exp_and_not_a_nanosecond_before() {
    let mut h = expiring();
    assert_eq!(h.conn.poll_timeout(), Some(T0 + LIFETIME));
    h.at(T0 + LIFETIME - Duration::from_nanos(1));
    assert_eq!(h.close_received(), None);
    h.at(T0 + LIFETIME);
    let (code, reason) = h.close_received().expect("closed at exp");
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::TOKEN_EXPIRED, "token expired")
    );
    assert_eq!(
        h.closed_event(),
        Some((CloseCode::TOKEN_EXPIRED, ClosedBy::Server))
    );
    assert!(!CloseCode::TOKEN_EXPIRED.is_final());
}

#[test]
fn a_refresh_accepted_before_exp_moves_the_expiry() {
    let mut h = expiring();
    h.at(T0 + LIFETIME - Duration::from_nanos(1));
    h.send(&text(r#"{"type":"refresh","token":"t2","id":"r"}"#));
    assert_eq!(h.events, vec![Event::Refresh { token: "t2".into() }]);
    h.conn
        .handle_auth_verdict(&h.config, h.now, accepted_until(2_000_000));
    h.drain();
    assert_eq!(
        h.replies(),
        vec![ServerMessage::Refreshed {
            id: Some(RequestId::new("r").unwrap()),
            expires_at: Some(2_000_000),
        }]
    );
    let new_exp = T0 + LIFETIME - Duration::from_nanos(1) + LIFETIME;
    h.at(T0 + LIFETIME);
    assert_eq!(h.close_received(), None);
    h.at(new_exp - Duration::from_nanos(1));
    assert_eq!(h.close_received(), None);
    h.at(new_exp);
    h.assert_server_closed_with(CloseCode::TOKEN_EXPIRED);
}

#[test]
fn a_refresh_still_pending_at_exp_loses_the_race_and_its_verdict_is_ignored() {
    let mut h = expiring();
    h.send(&text(r#"{"type":"refresh","token":"t2","id":"r"}"#));
    h.at(T0 + LIFETIME);
    h.assert_server_closed_with(CloseCode::TOKEN_EXPIRED);
    h.received.clear();
    h.conn
        .handle_auth_verdict(&h.config, h.now, accepted_until(2_000_000));
    h.drain();
    assert_eq!(h.replies(), vec![]);
}

#[test]
fn a_refused_refresh_is_forbidden_and_the_old_token_still_expires() {
    let mut h = expiring();
    h.send(&text(r#"{"type":"refresh","token":"other","id":"r"}"#));
    h.conn.handle_auth_verdict(
        &h.config,
        h.now,
        AuthVerdict::Reject(Rejection::forbidden()),
    );
    h.drain();
    assert_eq!(
        h.error_codes(),
        vec![(ErrorCode::Forbidden, Some("r".to_owned()))]
    );
    assert_eq!(h.close_received(), None);
    h.at(T0 + LIFETIME);
    h.assert_server_closed_with(CloseCode::TOKEN_EXPIRED);
}

#[test]
fn messages_behind_a_refresh_wait_for_its_verdict_in_order() {
    let mut h = Harness::authenticated(config());
    let mut burst = text(r#"{"type":"refresh","token":"t2","id":"r"}"#);
    burst.extend(text(r#"{"type":"ping","id":"p"}"#));
    burst.extend(text(r#"{"type":"subscribe","channel":"a","id":"s"}"#));
    h.send(&burst);
    assert_eq!(h.events, vec![Event::Refresh { token: "t2".into() }]);
    assert_eq!(h.replies(), vec![]);
    h.events.clear();
    h.accept("alice");
    let replies = h.replies();
    assert!(
        matches!(
            replies.as_slice(),
            [
                ServerMessage::Refreshed {
                    expires_at: None,
                    ..
                },
                ServerMessage::Pong { .. }
            ]
        ),
        "{replies:?}"
    );
    assert!(matches!(
        h.events.as_slice(),
        [Event::Request(ClientMessage::Subscribe { .. })]
    ));
}

#[test]
fn a_token_without_expiry_never_closes_4004() {
    let h = Harness::authenticated(config());
    let next = h.conn.poll_timeout().expect("the heartbeat");
    assert_eq!(next, T0 + config().heartbeat_interval);
}

#[test]
fn messages_kept_behind_a_refresh_count_against_the_rate_limit() {
    let mut h = Harness::authenticated(ServerConfig {
        rate_limit: 1,
        rate_burst: 2,
        ..config()
    });
    // The refresh takes one token of the burst; of the three pings kept
    // behind it, one takes the other and two are refused.
    let mut burst = text(r#"{"type":"refresh","token":"t2","id":"r"}"#);
    for i in 0..3 {
        burst.extend(text(&format!(r#"{{"type":"ping","id":"p{i}"}}"#)));
    }
    h.send(&burst);
    h.accept("alice");
    let id = |id: &str| Some(RequestId::new(id).unwrap());
    let limited = |at: &str| ServerMessage::Error {
        id: id(at),
        code: ErrorCode::RateLimited,
        message: "rate limit exceeded".into(),
    };
    assert_eq!(
        h.replies(),
        vec![
            ServerMessage::Refreshed {
                id: id("r"),
                expires_at: None,
            },
            ServerMessage::Pong { id: id("p0") },
            limited("p1"),
            limited("p2"),
        ]
    );
}
