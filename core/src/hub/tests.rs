use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::value::RawValue;

use super::*;
use crate::envelope::{parse_client_message, parse_server_message};

mod backplane;
mod bounds;
mod users;

/// One frame the hub handed to the outbox.
#[derive(Clone, Debug)]
enum Sent {
    Control(Bytes),
    Publication(Bytes, Option<CoalesceKey>),
}

impl Sent {
    fn frame(&self) -> &Bytes {
        match self {
            Sent::Control(frame) | Sent::Publication(frame, _) => frame,
        }
    }
}

/// An outbox that records everything, in order.
#[derive(Default)]
struct Recorder {
    sent: Vec<(ConnId, Sent)>,
}

impl Outbox for Recorder {
    fn send_control(&mut self, conn: ConnId, frame: Bytes) {
        self.sent.push((conn, Sent::Control(frame)));
    }

    fn send_publication(&mut self, conn: ConnId, frame: &Bytes, latest_only: Option<CoalesceKey>) {
        self.sent
            .push((conn, Sent::Publication(frame.clone(), latest_only)));
    }
}

/// The message inside a server text frame.
fn decode(frame: &[u8]) -> ServerMessage {
    assert_eq!(frame[0], 0x81, "a final unmasked text frame");
    let (len, start) = match frame[1] {
        126 => (usize::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
        127 => (
            usize::try_from(u64::from_be_bytes(frame[2..10].try_into().unwrap())).unwrap(),
            10,
        ),
        len => (usize::from(len), 2),
    };
    assert_eq!(frame.len(), start + len);
    parse_server_message(std::str::from_utf8(&frame[start..]).unwrap()).unwrap()
}

fn server(text: &str) -> ServerMessage {
    parse_server_message(text).unwrap()
}

fn client(text: &str) -> ClientMessage {
    parse_client_message(text).unwrap()
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

fn channel(name: &str) -> Channel {
    Channel::new(name).unwrap()
}

const T0: Instant = Instant::from_millis(1_000);

/// A hub in memory mode, its recorded output and a virtual clock.
struct Harness {
    hub: Hub,
    out: Recorder,
    now: Instant,
}

impl Harness {
    fn new(config: ServerConfig) -> Harness {
        Harness {
            hub: Hub::new(&config, "e"),
            out: Recorder::default(),
            now: T0,
        }
    }

    fn connect(&mut self, conn: u64, user: &str) -> ConnId {
        self.hub
            .handle_authenticated(ConnId(conn), user, Grants::default());
        ConnId(conn)
    }

    fn send(&mut self, conn: ConnId, text: &str) {
        self.hub
            .handle_message(self.now, conn, client(text), &mut self.out);
    }

    fn api(&mut self, channel_name: &str, payload: &str) -> ApiPublish {
        self.hub.publish_from_api(
            self.now,
            channel(channel_name),
            raw(payload),
            None,
            &mut self.out,
        )
    }

    fn disconnect(&mut self, conn: ConnId) {
        self.hub.handle_disconnect(self.now, conn, &mut self.out);
    }

    /// Everything sent since the last call, decoded.
    fn take(&mut self) -> Vec<(ConnId, ServerMessage)> {
        self.out
            .sent
            .drain(..)
            .map(|(conn, sent)| (conn, decode(sent.frame())))
            .collect()
    }

    /// Everything sent to `conn` since the last call; the rest is dropped.
    fn take_for(&mut self, conn: ConnId) -> Vec<ServerMessage> {
        self.take()
            .into_iter()
            .filter(|(to, _)| *to == conn)
            .map(|(_, message)| message)
            .collect()
    }
}

fn sent_to(conn: ConnId, texts: &[&str]) -> Vec<(ConnId, ServerMessage)> {
    texts.iter().map(|text| (conn, server(text))).collect()
}

#[test]
fn subscribe_replies_then_snapshots_and_others_hear_one_join_per_user() {
    let mut h = Harness::new(ServerConfig::dev());
    let alice = h.connect(1, "alice");
    let bob = h.connect(2, "bob");
    let bob_again = h.connect(3, "bob");

    h.send(alice, r#"{"type":"subscribe","id":"s1","channel":"chat"}"#);
    assert_eq!(
        h.take(),
        sent_to(
            alice,
            &[
                r#"{"type":"subscribed","id":"s1","channel":"chat","epoch":"e-1","offset":0}"#,
                r#"{"type":"presence","channel":"chat","users":["alice"]}"#,
            ]
        )
    );

    h.send(bob, r#"{"type":"subscribe","channel":"chat"}"#);
    let mut expected = sent_to(alice, &[r#"{"type":"join","channel":"chat","user":"bob"}"#]);
    expected.extend(sent_to(
        bob,
        &[
            r#"{"type":"subscribed","channel":"chat","epoch":"e-1","offset":0}"#,
            r#"{"type":"presence","channel":"chat","users":["alice","bob"]}"#,
        ],
    ));
    assert_eq!(h.take(), expected);

    h.send(bob_again, r#"{"type":"subscribe","channel":"chat"}"#);
    assert_eq!(
        h.take(),
        sent_to(
            bob_again,
            &[
                r#"{"type":"subscribed","channel":"chat","epoch":"e-1","offset":0}"#,
                r#"{"type":"presence","channel":"chat","users":["alice","bob"]}"#,
            ]
        ),
        "a second connection of bob is not a second join"
    );

    h.send(
        bob_again,
        r#"{"type":"unsubscribe","id":"u","channel":"chat"}"#,
    );
    assert_eq!(
        h.take(),
        sent_to(
            bob_again,
            &[r#"{"type":"unsubscribed","id":"u","channel":"chat"}"#]
        ),
        "bob is still there through his other connection"
    );

    h.disconnect(bob);
    assert_eq!(
        h.take(),
        sent_to(
            alice,
            &[r#"{"type":"leave","channel":"chat","user":"bob"}"#]
        )
    );

    h.send(alice, r#"{"type":"presence","id":"q","channel":"chat"}"#);
    assert_eq!(
        h.take(),
        sent_to(
            alice,
            &[r#"{"type":"presence","id":"q","channel":"chat","users":["alice"]}"#]
        )
    );
}

#[test]
fn subscribing_twice_and_unsubscribing_a_stranger_are_not_errors() {
    let mut h = Harness::new(ServerConfig::dev());
    let alice = h.connect(1, "alice");
    let bob = h.connect(2, "bob");
    h.send(bob, r#"{"type":"subscribe","channel":"chat"}"#);
    h.send(alice, r#"{"type":"subscribe","channel":"chat"}"#);
    h.take();

    h.send(
        alice,
        r#"{"type":"subscribe","id":"again","channel":"chat"}"#,
    );
    assert_eq!(
        h.take(),
        sent_to(
            alice,
            &[
                r#"{"type":"subscribed","id":"again","channel":"chat","epoch":"e-1","offset":0}"#,
                r#"{"type":"presence","channel":"chat","users":["alice","bob"]}"#,
            ]
        ),
        "no second join for bob to hear"
    );

    h.send(
        alice,
        r#"{"type":"unsubscribe","id":"u","channel":"elsewhere"}"#,
    );
    assert_eq!(
        h.take(),
        sent_to(
            alice,
            &[r#"{"type":"unsubscribed","id":"u","channel":"elsewhere"}"#]
        )
    );
}

#[test]
fn publications_reach_every_subscriber_and_the_publisher_gets_its_ack() {
    let mut h = Harness::new(ServerConfig::dev());
    let alice = h.connect(1, "alice");
    let bob = h.connect(2, "bob");
    let carol = h.connect(3, "carol");
    h.send(alice, r#"{"type":"subscribe","channel":"chat"}"#);
    h.send(bob, r#"{"type":"subscribe","channel":"chat"}"#);
    h.take();

    h.send(
        alice,
        r#"{"type":"publish","id":"p1","channel":"chat","payload":{"t":"hi"}}"#,
    );
    let message =
        r#"{"type":"message","channel":"chat","payload":{"t":"hi"},"sender":"alice","offset":1}"#;
    let mut expected = sent_to(alice, &[message]);
    expected.extend(sent_to(bob, &[message]));
    expected.extend(sent_to(alice, &[r#"{"type":"ack","id":"p1","offset":1}"#]));
    assert_eq!(h.take(), expected);

    h.send(carol, r#"{"type":"publish","channel":"chat","payload":2}"#);
    let message = r#"{"type":"message","channel":"chat","payload":2,"sender":"carol","offset":2}"#;
    let mut expected = sent_to(alice, &[message]);
    expected.extend(sent_to(bob, &[message]));
    assert_eq!(
        h.take(),
        expected,
        "no ack without an id; carol is not subscribed"
    );

    assert_eq!(h.api("chat", "[3]"), ApiPublish::Published { offset: 3 });
    let message = r#"{"type":"message","channel":"chat","payload":[3],"offset":3}"#;
    let mut expected = sent_to(alice, &[message]);
    expected.extend(sent_to(bob, &[message]));
    assert_eq!(
        h.take(),
        expected,
        "the HTTP API publishes without a sender"
    );
}

#[test]
fn private_channels_are_for_their_user_and_the_api_only() {
    let mut h = Harness::new(ServerConfig::dev());
    let alice = h.connect(1, "alice");
    h.send(
        alice,
        r#"{"type":"subscribe","id":"s","channel":"user:bob"}"#,
    );
    h.send(
        alice,
        r#"{"type":"presence","id":"q","channel":"user:bob"}"#,
    );
    h.send(
        alice,
        r#"{"type":"publish","id":"p","channel":"user:alice","payload":1}"#,
    );
    let errors: Vec<_> = h
        .take_for(alice)
        .into_iter()
        .map(|message| match message {
            ServerMessage::Error { id, code, .. } => (id.unwrap().to_string(), code),
            other => panic!("not an error: {other:?}"),
        })
        .collect();
    assert_eq!(
        errors,
        [
            ("s".to_owned(), ErrorCode::Forbidden),
            ("q".to_owned(), ErrorCode::Forbidden),
            ("p".to_owned(), ErrorCode::Forbidden),
        ]
    );
    assert_eq!(
        h.hub.channel_count(),
        0,
        "a refused subscription leaves no trace"
    );

    h.send(alice, r#"{"type":"subscribe","channel":"user:alice"}"#);
    h.take();
    assert_eq!(
        h.api("user:alice", r#""ping""#),
        ApiPublish::Published { offset: 1 }
    );
    assert_eq!(
        h.take(),
        sent_to(
            alice,
            &[r#"{"type":"message","channel":"user:alice","payload":"ping","offset":1}"#]
        )
    );
}

#[test]
fn the_subscription_limit_counts_channels_not_requests() {
    let mut h = Harness::new(ServerConfig::dev());
    let alice = h.connect(1, "alice");
    for n in 0..128 {
        h.send(
            alice,
            &format!(r#"{{"type":"subscribe","channel":"c{n}"}}"#),
        );
    }
    h.take();
    h.send(alice, r#"{"type":"subscribe","id":"x","channel":"c128"}"#);
    match h.take_for(alice).as_slice() {
        [ServerMessage::Error { id, code, .. }] => {
            assert_eq!(*code, ErrorCode::LimitExceeded);
            assert_eq!(id.as_ref().map(RequestId::as_str), Some("x"));
        }
        other => panic!("expected one error, got {other:?}"),
    }
    h.send(alice, r#"{"type":"subscribe","id":"y","channel":"c0"}"#);
    assert!(matches!(
        h.take_for(alice).first(),
        Some(ServerMessage::Subscribed { .. })
    ));
    h.send(alice, r#"{"type":"unsubscribe","channel":"c0"}"#);
    h.send(alice, r#"{"type":"subscribe","channel":"c128"}"#);
    assert!(matches!(
        h.take_for(alice).get(1),
        Some(ServerMessage::Subscribed { .. })
    ));
    assert_eq!(h.hub.channel_count(), 128);
}

/// Publishes `count` messages to `chat` through the API, one per second
/// from `h.now`, and drops what they produced.
fn publish_series(h: &mut Harness, count: u64) {
    for n in 0..count {
        h.api("chat", &n.to_string());
        h.now += Duration::from_secs(1);
    }
    h.take();
}

fn offsets_and_verdict(messages: &[ServerMessage]) -> (Vec<u64>, Option<bool>) {
    let mut offsets = Vec::new();
    let mut verdict = None;
    for message in messages {
        match message {
            ServerMessage::Message { offset, .. } => offsets.push(*offset),
            ServerMessage::Subscribed { recovered, .. } => verdict = *recovered,
            _ => {}
        }
    }
    (offsets, verdict)
}

fn recover(h: &mut Harness, conn: u64, epoch: &str, offset: u64) -> (Vec<u64>, Option<bool>) {
    let conn = h.connect(conn, "late");
    h.send(
        conn,
        &format!(
            r#"{{"type":"subscribe","channel":"chat","since":{{"epoch":"{epoch}","offset":{offset}}}}}"#
        ),
    );
    let messages = h.take_for(conn);
    h.disconnect(conn);
    h.take();
    offsets_and_verdict(&messages)
}

#[test]
fn recovery_replays_the_gap_in_order_before_subscribed() {
    let mut h = Harness::new(ServerConfig::dev());
    let keeper = h.connect(1, "keeper");
    h.send(keeper, r#"{"type":"subscribe","channel":"chat"}"#);
    publish_series(&mut h, 5);

    let late = h.connect(2, "late");
    h.send(
        late,
        r#"{"type":"subscribe","id":"r","channel":"chat","since":{"epoch":"e-1","offset":2}}"#,
    );
    let expected: Vec<ServerMessage> = [
        r#"{"type":"message","channel":"chat","payload":2,"offset":3}"#,
        r#"{"type":"message","channel":"chat","payload":3,"offset":4}"#,
        r#"{"type":"message","channel":"chat","payload":4,"offset":5}"#,
        r#"{"type":"subscribed","id":"r","channel":"chat","epoch":"e-1","offset":5,"recovered":true}"#,
        r#"{"type":"presence","channel":"chat","users":["keeper","late"]}"#,
    ]
    .iter()
    .map(|text| server(text))
    .collect();
    assert_eq!(h.take_for(late), expected);
    h.disconnect(late);

    assert_eq!(recover(&mut h, 3, "e-1", 5), (vec![], Some(true)));
    assert_eq!(
        recover(&mut h, 4, "e-1", 0),
        (vec![1, 2, 3, 4, 5], Some(true))
    );
}

/// `history = "subscribers"`: the subscribe with `since` that makes the
/// connection a subscriber recovers; history `nobody` subscribes without
/// replay.
#[test]
fn a_subscribe_with_since_recovers_when_history_is_for_subscribers() {
    use crate::access::{ChannelPattern, Namespace, Rule};
    let namespace = |pattern: &str, history| Namespace {
        history,
        ..Namespace::open(ChannelPattern::new(pattern).unwrap())
    };
    let config = ServerConfig {
        namespaces: vec![
            namespace("chat", Rule::Subscribers),
            namespace("news", Rule::Nobody),
        ],
        ..ServerConfig::default()
    };
    let mut h = Harness::new(config);
    for name in ["chat", "news"] {
        h.api(name, "1");
        h.api(name, "2");
    }
    h.take();
    let late = h.connect(1, "late");
    h.send(
        late,
        r#"{"type":"subscribe","id":"r","channel":"chat","since":{"epoch":"e-1","offset":0}}"#,
    );
    assert_eq!(
        offsets_and_verdict(&h.take_for(late)),
        (vec![1, 2], Some(true))
    );
    h.send(
        late,
        r#"{"type":"subscribe","id":"n","channel":"news","since":{"epoch":"e-2","offset":0}}"#,
    );
    let expected: Vec<ServerMessage> = [
        r#"{"type":"subscribed","id":"n","channel":"news","epoch":"e-2","offset":2,"recovered":false}"#,
        r#"{"type":"presence","channel":"news","users":["late"]}"#,
    ]
    .iter()
    .map(|text| server(text))
    .collect();
    assert_eq!(h.take_for(late), expected, "the epoch was right: no replay");
}

#[test]
fn recovery_fails_whole_when_the_history_cannot_cover_the_gap() {
    let config = ServerConfig {
        history_size: 3,
        ..ServerConfig::dev()
    };
    let mut h = Harness::new(config);
    let keeper = h.connect(1, "keeper");
    h.send(keeper, r#"{"type":"subscribe","channel":"chat"}"#);
    publish_series(&mut h, 5);

    assert_eq!(
        recover(&mut h, 2, "e-1", 1),
        (vec![], Some(false)),
        "offset 2 was evicted"
    );
    assert_eq!(recover(&mut h, 3, "e-1", 2), (vec![3, 4, 5], Some(true)));
    assert_eq!(
        recover(&mut h, 4, "e0", 4),
        (vec![], Some(false)),
        "another epoch"
    );
    assert_eq!(
        recover(&mut h, 5, "e-1", 9),
        (vec![], Some(false)),
        "an offset from the future"
    );
}

#[test]
fn history_expires_at_exactly_its_ttl() {
    let config = ServerConfig {
        history_ttl: Duration::from_secs(10),
        ..ServerConfig::dev()
    };
    let mut h = Harness::new(config);
    let keeper = h.connect(1, "keeper");
    h.send(keeper, r#"{"type":"subscribe","channel":"chat"}"#);
    publish_series(&mut h, 2);
    assert_eq!(h.hub.poll_timeout(), Some(Instant::from_millis(11_000)));

    h.now = Instant::from_millis(10_999);
    h.hub.handle_timeout(h.now);
    assert_eq!(recover(&mut h, 2, "e-1", 0), (vec![1, 2], Some(true)));

    h.now = Instant::from_millis(11_000);
    assert_eq!(
        recover(&mut h, 3, "e-1", 0),
        (vec![], Some(false)),
        "offset 1 is gone at its deadline even before the timeout is handled"
    );
    assert_eq!(recover(&mut h, 4, "e-1", 1), (vec![2], Some(true)));
    h.hub.handle_timeout(h.now);
    h.hub.handle_timeout(h.now);
    assert_eq!(h.hub.poll_timeout(), Some(Instant::from_millis(12_000)));

    h.now = Instant::from_millis(12_000);
    h.hub.handle_timeout(h.now);
    assert_eq!(h.hub.poll_timeout(), None);
    assert_eq!(recover(&mut h, 5, "e-1", 1), (vec![], Some(false)));
    assert_eq!(
        recover(&mut h, 6, "e-1", 2),
        (vec![], Some(true)),
        "nothing was missed: the channel lives on with its subscriber"
    );

    h.disconnect(keeper);
    assert_eq!(h.hub.channel_count(), 0);
    let Store::Memory(memory) = &h.hub.store else {
        panic!("memory mode");
    };
    assert_eq!(
        memory.channel_count(),
        0,
        "no subscriber and no history left"
    );
    let newcomer = h.connect(7, "newcomer");
    h.send(newcomer, r#"{"type":"subscribe","channel":"chat"}"#);
    assert_eq!(
        h.take_for(newcomer)[0],
        server(r#"{"type":"subscribed","channel":"chat","epoch":"e-2","offset":0}"#),
        "history lost, new epoch"
    );
}

#[test]
fn two_publishes_with_the_same_request_id_from_one_user_are_both_published() {
    let mut h = Harness::new(ServerConfig::dev());
    let first = h.connect(1, "alice");
    let second = h.connect(2, "alice");
    let watcher = h.connect(3, "watcher");
    h.send(watcher, r#"{"type":"subscribe","channel":"chat"}"#);
    h.take();

    h.send(
        first,
        r#"{"type":"publish","id":"r1","channel":"chat","payload":"a"}"#,
    );
    h.now = T0 + Duration::from_millis(300);
    h.send(
        second,
        r#"{"type":"publish","id":"r1","channel":"chat","payload":"b"}"#,
    );
    h.send(
        second,
        r#"{"type":"publish","id":"r1","channel":"chat","payload":"c"}"#,
    );
    let message = |payload: &str, offset: u64| {
        server(&format!(
            r#"{{"type":"message","channel":"chat","payload":"{payload}","sender":"alice","offset":{offset}}}"#
        ))
    };
    let ack = |offset: u64| server(&format!(r#"{{"type":"ack","id":"r1","offset":{offset}}}"#));
    assert_eq!(
        h.take(),
        [
            (watcher, message("a", 1)),
            (first, ack(1)),
            (watcher, message("b", 2)),
            (second, ack(2)),
            (watcher, message("c", 3)),
            (second, ack(3)),
        ],
        "a request id only correlates the reply: two sessions (or one \
         session reusing an id) publish twice"
    );
}

#[test]
fn a_repeated_idempotency_key_gets_the_original_ack_and_is_not_delivered_again() {
    let mut h = Harness::new(ServerConfig::dev());
    let alice = h.connect(1, "alice");
    let watcher = h.connect(2, "watcher");
    h.send(watcher, r#"{"type":"subscribe","channel":"chat"}"#);
    h.take();

    h.send(
        alice,
        r#"{"type":"publish","id":"r1","idempotency_key":"k1","channel":"chat","payload":1}"#,
    );
    assert_eq!(h.take().len(), 2, "delivered once, acknowledged once");

    h.disconnect(alice);
    let alice = h.connect(3, "alice");
    h.now = T0 + Duration::from_millis(59_999);
    h.send(
        alice,
        r#"{"type":"publish","id":"r7","idempotency_key":"k1","channel":"chat","payload":1}"#,
    );
    assert_eq!(
        h.take(),
        sent_to(alice, &[r#"{"type":"ack","id":"r7","offset":1}"#]),
        "a retry after a reconnect, within the window: the original offset, \
         under the retry's own request id"
    );
    h.send(
        alice,
        r#"{"type":"publish","idempotency_key":"k1","channel":"chat","payload":1}"#,
    );
    assert_eq!(h.take(), [], "a retry without an id: nothing at all");

    let bob = h.connect(4, "bob");
    h.send(
        bob,
        r#"{"type":"publish","id":"r1","idempotency_key":"k1","channel":"chat","payload":1}"#,
    );
    assert_eq!(
        h.take_for(bob),
        [server(r#"{"type":"ack","id":"r1","offset":2}"#)],
        "another user's key is another publication"
    );

    h.now = T0 + Duration::from_secs(60);
    h.send(
        alice,
        r#"{"type":"publish","id":"r8","idempotency_key":"k1","channel":"chat","payload":1}"#,
    );
    let delivered = h.take();
    assert_eq!(
        delivered,
        [
            (
                watcher,
                server(
                    r#"{"type":"message","channel":"chat","payload":1,"sender":"alice","offset":3}"#
                )
            ),
            (alice, server(r#"{"type":"ack","id":"r8","offset":3}"#)),
        ],
        "the window is over at exactly 60 s"
    );
}

#[test]
fn the_http_api_has_an_idempotency_scope_of_its_own() {
    let mut h = Harness::new(ServerConfig::dev());
    let alice = h.connect(1, "alice");
    h.send(alice, r#"{"type":"subscribe","channel":"news"}"#);
    h.take();

    let key = || Some(IdempotencyKey::new("k1").unwrap());
    let published = h
        .hub
        .publish_from_api(h.now, channel("news"), raw("1"), key(), &mut h.out);
    assert_eq!(published, ApiPublish::Published { offset: 1 });
    let retried = h
        .hub
        .publish_from_api(h.now, channel("news"), raw("1"), key(), &mut h.out);
    assert_eq!(retried, ApiPublish::Published { offset: 1 }, "a retry");
    assert_eq!(h.take().len(), 1, "delivered once");

    h.send(
        alice,
        r#"{"type":"publish","id":"r1","idempotency_key":"k1","channel":"news","payload":2}"#,
    );
    assert_eq!(
        h.take_for(alice).last(),
        Some(&server(r#"{"type":"ack","id":"r1","offset":2}"#)),
        "a user's key is not the API's"
    );
}

#[test]
fn fan_out_hands_every_subscriber_the_same_buffer() {
    let config = ServerConfig {
        latest_only: vec!["ticker:*".into()],
        ..ServerConfig::dev()
    };
    let mut h = Harness::new(config);
    let conns: Vec<ConnId> = (1..=4).map(|n| h.connect(n, &format!("u{n}"))).collect();
    for &conn in &conns {
        h.send(conn, r#"{"type":"subscribe","channel":"chat"}"#);
        h.send(conn, r#"{"type":"subscribe","channel":"ticker:X"}"#);
    }
    h.out.sent.clear();

    h.api("chat", r#"{"big":"payload"}"#);
    h.api("ticker:X", "1");
    let publications: Vec<(Bytes, Option<CoalesceKey>)> = h
        .out
        .sent
        .drain(..)
        .map(|(_, sent)| match sent {
            Sent::Publication(frame, key) => (frame, key),
            Sent::Control(frame) => panic!("not a publication: {:?}", decode(&frame)),
        })
        .collect();
    assert_eq!(publications.len(), 8);
    let (chat, ticker) = publications.split_at(4);
    for group in [chat, ticker] {
        let (first, key) = &group[0];
        for (frame, other_key) in group {
            assert_eq!(frame.as_ptr(), first.as_ptr(), "one buffer for all");
            assert_eq!(frame.len(), first.len());
            assert_eq!(other_key, key);
        }
    }
    assert_eq!(chat[0].1, None, "chat is not latest-only");
    let ticker_key = ticker[0].1.expect("ticker:X is latest-only");

    let late = h.connect(9, "late");
    h.send(
        late,
        r#"{"type":"subscribe","channel":"chat","since":{"epoch":"e-1","offset":0}}"#,
    );
    let (_, replayed) = h
        .out
        .sent
        .iter()
        .find(|(conn, _)| *conn == late)
        .expect("the replay");
    assert!(matches!(
        decode(replayed.frame()),
        ServerMessage::Message { offset: 1, .. }
    ));
    let replayed = replayed.frame();
    assert_eq!(
        replayed.as_ptr(),
        chat[0].0.as_ptr(),
        "the replay shares the buffer too"
    );

    for &conn in &conns {
        h.send(conn, r#"{"type":"unsubscribe","channel":"ticker:X"}"#);
    }
    h.send(conns[0], r#"{"type":"subscribe","channel":"ticker:X"}"#);
    h.out.sent.clear();
    h.api("ticker:X", "2");
    match h.out.sent.as_slice() {
        [(_, Sent::Publication(_, Some(key)))] => {
            assert_ne!(*key, ticker_key, "keys are never reused")
        }
        other => panic!("expected one publication, got {other:?}"),
    }
}

/// Carries requests to the store and its events back until neither moves.
fn exchange(now: Instant, hub: &mut Hub, store: &mut MemoryStore, out: &mut Recorder) {
    loop {
        let mut moved = false;
        while let Some(request) = hub.poll_store_request() {
            moved = true;
            store.handle_request(now, request);
        }
        while let Some(event) = store.poll_event() {
            moved = true;
            hub.handle_store_event(now, event, out);
        }
        if !moved {
            return;
        }
    }
}

#[test]
fn an_external_store_answers_later_and_replies_keep_request_order() {
    let config = ServerConfig::dev();
    let mut hub = Hub::with_external_store(&config, 7);
    let mut store = MemoryStore::new(&config, "remote");
    let mut out = Recorder::default();
    exchange(T0, &mut hub, &mut store, &mut out);
    assert!(hub.is_store_up());
    let alice = ConnId(1);
    hub.handle_authenticated(alice, "alice", Grants::default());

    // Another node publishes before alice's subscription reaches the store.
    let other_node = StoreRequest::Publish {
        ticket: None,
        channel: channel("chat"),
        payload: raw("0"),
        sender: Some("bob".into()),
        idempotency_key: None,
    };
    store.handle_request(T0, other_node);

    hub.handle_message(
        T0,
        alice,
        client(r#"{"type":"subscribe","id":"s","channel":"chat"}"#),
        &mut out,
    );
    hub.handle_message(
        T0,
        alice,
        client(r#"{"type":"publish","id":"p","channel":"chat","payload":1}"#),
        &mut out,
    );
    hub.handle_message(
        T0,
        alice,
        client(r#"{"type":"unsubscribe","id":"u","channel":"other"}"#),
        &mut out,
    );
    let api = hub.publish_from_api(T0, channel("chat"), raw("2"), None, &mut out);
    let ApiPublish::Pending { ticket } = api else {
        panic!("the store has not answered: {api:?}");
    };
    assert!(out.sent.is_empty(), "every reply waits for the store");

    while let Some(event) = store.poll_event() {
        hub.handle_store_event(T0, event, &mut out);
    }
    assert!(
        out.sent.is_empty(),
        "offset 1 was sequenced before alice subscribed"
    );
    while let Some(request) = hub.poll_store_request() {
        store.handle_request(T0, request);
    }
    while let Some(event) = store.poll_event() {
        hub.handle_store_event(T0, event, &mut out);
    }
    let received: Vec<ServerMessage> = out
        .sent
        .iter()
        .map(|(_, sent)| decode(sent.frame()))
        .collect();
    let expected: Vec<ServerMessage> = [
        r#"{"type":"subscribed","id":"s","channel":"chat","epoch":"remote-1","offset":1}"#,
        r#"{"type":"presence","channel":"chat","users":["alice"]}"#,
        r#"{"type":"message","channel":"chat","payload":1,"sender":"alice","offset":2}"#,
        r#"{"type":"ack","id":"p","offset":2}"#,
        r#"{"type":"unsubscribed","id":"u","channel":"other"}"#,
        r#"{"type":"message","channel":"chat","payload":2,"offset":3}"#,
    ]
    .iter()
    .map(|text| server(text))
    .collect();
    assert_eq!(received, expected);
    assert_eq!(
        hub.poll_api_answer(),
        Some((ticket, ApiAnswer::Published(3)))
    );
    assert_eq!(hub.poll_api_answer(), None);
}

/// The model's view of one channel of the store.
#[derive(Debug, Default)]
struct ModelChannel {
    offset: u64,
    epoch: Option<String>,
    /// Offsets by idempotency scope (a user, `None` for the API) and key.
    retries: BTreeMap<(Option<String>, String), u64>,
}

/// A plain model of the hub and its memory store, with no time passing.
#[derive(Debug, Default)]
struct Model {
    conns: BTreeMap<ConnId, (String, BTreeSet<String>)>,
    channels: BTreeMap<String, ModelChannel>,
    epochs_seen: BTreeSet<String>,
    published: u64,
}

const MODEL_USERS: [&str; 3] = ["u0", "u1", "u2"];
const MODEL_CHANNELS: [&str; 5] = ["a", "b", "c", "user:u0", "user:u1"];
const MODEL_LIMIT: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Connect {
        slot: usize,
        user: usize,
    },
    Subscribe {
        slot: usize,
        channel: usize,
    },
    Unsubscribe {
        slot: usize,
        channel: usize,
    },
    Publish {
        slot: usize,
        channel: usize,
        id: Option<u8>,
        key: Option<u8>,
    },
    Api {
        channel: usize,
        key: Option<u8>,
    },
    Presence {
        slot: usize,
        channel: usize,
    },
    Disconnect {
        slot: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..6usize;
    let channel = 0..MODEL_CHANNELS.len();
    proptest::strategy::Union::new(vec![
        (slot.clone(), 0..MODEL_USERS.len())
            .prop_map(|(slot, user)| Op::Connect { slot, user })
            .boxed(),
        (slot.clone(), channel.clone())
            .prop_map(|(slot, channel)| Op::Subscribe { slot, channel })
            .boxed(),
        (slot.clone(), channel.clone())
            .prop_map(|(slot, channel)| Op::Subscribe { slot, channel })
            .boxed(),
        (slot.clone(), channel.clone())
            .prop_map(|(slot, channel)| Op::Unsubscribe { slot, channel })
            .boxed(),
        (
            slot.clone(),
            channel.clone(),
            proptest::option::of(0..3u8),
            proptest::option::of(0..3u8),
        )
            .prop_map(|(slot, channel, id, key)| Op::Publish {
                slot,
                channel,
                id,
                key,
            })
            .boxed(),
        (channel.clone(), proptest::option::of(0..3u8))
            .prop_map(|(channel, key)| Op::Api { channel, key })
            .boxed(),
        (slot.clone(), channel)
            .prop_map(|(slot, channel)| Op::Presence { slot, channel })
            .boxed(),
        slot.prop_map(|slot| Op::Disconnect { slot }).boxed(),
    ])
}

type Expected = BTreeMap<ConnId, Vec<ServerMessage>>;

fn push(expected: &mut Expected, conn: ConnId, text: String) {
    expected.entry(conn).or_default().push(server(&text));
}

impl Model {
    fn members(&self, channel: &str) -> BTreeSet<String> {
        self.conns
            .values()
            .filter(|(_, channels)| channels.contains(channel))
            .map(|(user, _)| user.clone())
            .collect()
    }

    fn subscribers(&self, channel: &str) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, (_, channels))| channels.contains(channel))
            .map(|(conn, _)| *conn)
            .collect()
    }

    fn users_json(&self, channel: &str) -> String {
        serde_json::to_string(&self.members(channel)).unwrap()
    }

    /// The store forgets a channel with no member and no publication.
    fn forget_if_idle(&mut self, channel: &str) {
        if self.members(channel).is_empty()
            && self.channels.get(channel).is_some_and(|c| c.offset == 0)
        {
            self.channels.remove(channel);
        }
    }

    fn subscribe(&mut self, conn: ConnId, name: &str, expected: &mut Expected) {
        let (user, channels) = &self.conns[&conn];
        let user = user.clone();
        if name
            .strip_prefix("user:")
            .is_some_and(|owner| owner != user)
        {
            return push(expected, conn, error_json("s", "FORBIDDEN"));
        }
        let is_new = !channels.contains(name);
        if is_new && channels.len() >= MODEL_LIMIT {
            return push(expected, conn, error_json("s", "LIMIT_EXCEEDED"));
        }
        if is_new {
            let joins = !self.members(name).contains(&user);
            if joins {
                for other in self.subscribers(name) {
                    push(
                        expected,
                        other,
                        format!(r#"{{"type":"join","channel":"{name}","user":"{user}"}}"#),
                    );
                }
            }
            self.conns.get_mut(&conn).unwrap().1.insert(name.to_owned());
        }
        let offset = self.channels.entry(name.to_owned()).or_default().offset;
        push(
            expected,
            conn,
            format!(
                r#"{{"type":"subscribed","id":"s","channel":"{name}","epoch":"","offset":{offset}}}"#
            ),
        );
        let users = self.users_json(name);
        push(
            expected,
            conn,
            format!(r#"{{"type":"presence","channel":"{name}","users":{users}}}"#),
        );
    }

    fn leave(&mut self, conn: ConnId, name: &str, expected: &mut Expected) {
        let user = self.conns[&conn].0.clone();
        self.conns.get_mut(&conn).unwrap().1.remove(name);
        if !self.members(name).contains(&user) {
            for other in self.subscribers(name) {
                push(
                    expected,
                    other,
                    format!(r#"{{"type":"leave","channel":"{name}","user":"{user}"}}"#),
                );
            }
        }
        self.forget_if_idle(name);
    }

    /// The offset of a publication with idempotency key `key` (`k0`, ...)
    /// from `sender` (`None`: the API): the original one when the key was
    /// used in that scope before, otherwise a new publication's.
    fn publish_keyed(
        &mut self,
        name: &str,
        sender: Option<&str>,
        key: Option<u8>,
        expected: &mut Expected,
    ) -> u64 {
        let Some(key) = key else {
            return self.publish(name, sender, expected);
        };
        let scoped = (sender.map(str::to_owned), format!("k{key}"));
        let retried = self
            .channels
            .get(name)
            .and_then(|channel| channel.retries.get(&scoped).copied());
        if let Some(offset) = retried {
            return offset;
        }
        let offset = self.publish(name, sender, expected);
        let channel = self.channels.get_mut(name).expect("just published");
        channel.retries.insert(scoped, offset);
        offset
    }

    /// Sequences a publication and predicts its deliveries.
    fn publish(&mut self, name: &str, sender: Option<&str>, expected: &mut Expected) -> u64 {
        self.published += 1;
        let channel = self.channels.entry(name.to_owned()).or_default();
        channel.offset += 1;
        let offset = channel.offset;
        let sender = sender.map_or_else(String::new, |user| format!(r#","sender":"{user}""#));
        let payload = self.published;
        for conn in self.subscribers(name) {
            push(
                expected,
                conn,
                format!(
                    r#"{{"type":"message","channel":"{name}","payload":{payload},"offset":{offset}{sender}}}"#
                ),
            );
        }
        offset
    }
}

fn error_json(id: &str, code: &str) -> String {
    format!(r#"{{"type":"error","id":"{id}","code":"{code}","message":""}}"#)
}

/// What the hub sent, grouped per connection, with the parts the model does
/// not predict (epochs, error texts) checked or blanked.
fn observed(out: &mut Recorder, model: &mut Model) -> Expected {
    let mut observed = Expected::new();
    for (conn, sent) in out.sent.drain(..) {
        let mut message = decode(sent.frame());
        assert_eq!(
            matches!(sent, Sent::Publication(..)),
            matches!(message, ServerMessage::Message { .. }),
            "publications, and only they, may be dropped"
        );
        match &mut message {
            ServerMessage::Subscribed { channel, epoch, .. } => {
                let known = &mut model.channels.get_mut(channel.as_str()).unwrap().epoch;
                match known {
                    Some(known) => assert_eq!(epoch, known, "epoch changed while history lived"),
                    None => {
                        assert!(
                            model.epochs_seen.insert(epoch.clone()),
                            "epoch {epoch} reused"
                        );
                        *known = Some(epoch.clone());
                    }
                }
                epoch.clear();
            }
            ServerMessage::Error { message, .. } => message.clear(),
            _ => {}
        }
        observed.entry(conn).or_default().push(message);
    }
    observed
}

fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let config = ServerConfig {
        max_subscriptions: MODEL_LIMIT,
        ..ServerConfig::dev()
    };
    let mut hub = Hub::new(&config, "model");
    let mut out = Recorder::default();
    let mut model = Model::default();
    let mut slots: [Option<ConnId>; 6] = [None; 6];
    let mut conns_issued = 0;
    let mut last_offsets: BTreeMap<(ConnId, Channel), u64> = BTreeMap::new();
    let now = T0;

    for op in ops {
        let mut expected = Expected::new();
        match op {
            Op::Connect { slot, user } => {
                if slots[slot].is_some() {
                    continue;
                }
                conns_issued += 1;
                let conn = ConnId(conns_issued);
                slots[slot] = Some(conn);
                hub.handle_authenticated(conn, MODEL_USERS[user], Grants::default());
                model
                    .conns
                    .insert(conn, (MODEL_USERS[user].to_owned(), BTreeSet::new()));
            }
            Op::Subscribe { slot, channel } => {
                let Some(conn) = slots[slot] else { continue };
                let name = MODEL_CHANNELS[channel];
                model.subscribe(conn, name, &mut expected);
                let text = format!(r#"{{"type":"subscribe","id":"s","channel":"{name}"}}"#);
                hub.handle_message(now, conn, client(&text), &mut out);
            }
            Op::Unsubscribe { slot, channel } => {
                let Some(conn) = slots[slot] else { continue };
                let name = MODEL_CHANNELS[channel];
                if model.conns[&conn].1.contains(name) {
                    model.leave(conn, name, &mut expected);
                }
                push(
                    &mut expected,
                    conn,
                    format!(r#"{{"type":"unsubscribed","channel":"{name}"}}"#),
                );
                let text = format!(r#"{{"type":"unsubscribe","channel":"{name}"}}"#);
                hub.handle_message(now, conn, client(&text), &mut out);
            }
            Op::Publish {
                slot,
                channel,
                id,
                key,
            } => {
                let Some(conn) = slots[slot] else { continue };
                let name = MODEL_CHANNELS[channel];
                let user = model.conns[&conn].0.clone();
                let id_json = id.map_or_else(String::new, |id| format!(r#","id":"p{id}""#));
                let key_json =
                    key.map_or_else(String::new, |key| format!(r#","idempotency_key":"k{key}""#));
                if name.starts_with("user:") {
                    if let Some(id) = id {
                        push(
                            &mut expected,
                            conn,
                            error_json(&format!("p{id}"), "FORBIDDEN"),
                        );
                    } else {
                        push(
                            &mut expected,
                            conn,
                            r#"{"type":"error","code":"FORBIDDEN","message":""}"#.to_owned(),
                        );
                    }
                } else {
                    let offset = model.publish_keyed(name, Some(&user), key, &mut expected);
                    if let Some(id) = id {
                        push(
                            &mut expected,
                            conn,
                            format!(r#"{{"type":"ack","id":"p{id}","offset":{offset}}}"#),
                        );
                    }
                }
                let payload = if name.starts_with("user:") {
                    0
                } else {
                    model.published
                };
                let text = format!(
                    r#"{{"type":"publish","channel":"{name}","payload":{payload}{id_json}{key_json}}}"#
                );
                hub.handle_message(now, conn, client(&text), &mut out);
            }
            Op::Api { channel, key } => {
                let name = MODEL_CHANNELS[channel];
                let offset = model.publish_keyed(name, None, key, &mut expected);
                let payload = raw(&model.published.to_string());
                let key = key.map(|key| IdempotencyKey::new(format!("k{key}")).unwrap());
                let result =
                    hub.publish_from_api(now, Channel::new(name).unwrap(), payload, key, &mut out);
                prop_assert_eq!(result, ApiPublish::Published { offset });
            }
            Op::Presence { slot, channel } => {
                let Some(conn) = slots[slot] else { continue };
                let name = MODEL_CHANNELS[channel];
                let user = &model.conns[&conn].0;
                if name
                    .strip_prefix("user:")
                    .is_some_and(|owner| owner != user)
                {
                    push(&mut expected, conn, error_json("q", "FORBIDDEN"));
                } else {
                    let users = model.users_json(name);
                    push(
                        &mut expected,
                        conn,
                        format!(
                            r#"{{"type":"presence","id":"q","channel":"{name}","users":{users}}}"#
                        ),
                    );
                }
                let text = format!(r#"{{"type":"presence","id":"q","channel":"{name}"}}"#);
                hub.handle_message(now, conn, client(&text), &mut out);
            }
            Op::Disconnect { slot } => {
                let Some(conn) = slots[slot].take() else {
                    continue;
                };
                let channels = model.conns[&conn].1.clone();
                for name in channels {
                    model.leave(conn, &name, &mut expected);
                }
                model.conns.remove(&conn);
                hub.handle_disconnect(now, conn, &mut out);
            }
        }
        let observed = observed(&mut out, &mut model);
        for (conn, messages) in &observed {
            for message in messages {
                if let ServerMessage::Message {
                    channel, offset, ..
                } = message
                {
                    let last = last_offsets.entry((*conn, channel.clone())).or_insert(0);
                    prop_assert!(*offset > *last, "offsets strictly increase per subscriber");
                    *last = *offset;
                }
            }
        }
        prop_assert_eq!(observed, expected);
    }

    for slot in slots.iter_mut() {
        if let Some(conn) = slot.take() {
            hub.handle_disconnect(now, conn, &mut out);
        }
    }
    prop_assert_eq!(hub.connection_count(), 0);
    prop_assert_eq!(hub.channel_count(), 0);
    prop_assert!(hub.waiting.is_empty());
    let later = now + config.history_ttl.max(config.idempotency_window);
    hub.handle_timeout(later);
    prop_assert_eq!(hub.poll_timeout(), None);
    let Store::Memory(memory) = &hub.store else {
        panic!("memory mode");
    };
    prop_assert_eq!(memory.channel_count(), 0);
    Ok(())
}

proptest! {
    #[test]
    fn the_hub_behaves_like_a_plain_model(ops in prop::collection::vec(op(), 0..120)) {
        run_model(ops)?;
    }
}
