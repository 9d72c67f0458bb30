//! The hub with an external store, in virtual time: the link's life, the
//! outage rules, and delivery in offset order whatever order the store's
//! events arrive in.

use super::*;
use crate::close::CloseCode;
use crate::envelope::encode_publication;

const UNAVAILABLE_MESSAGE: &str = "the backplane is unavailable; retry later";

fn unavailable(id: &str) -> String {
    format!(
        r#"{{"type":"error","id":"{id}","code":"UNAVAILABLE","message":"{UNAVAILABLE_MESSAGE}"}}"#
    )
}

/// The frame of publication `offset` on `chat`, as a store would make it.
fn message(offset: u64) -> Bytes {
    text_frame(&encode_publication(
        "chat",
        &raw(&offset.to_string()),
        None,
        offset,
    ))
}

fn publication(epoch: &str, offset: u64) -> StoreEvent {
    StoreEvent::Publication {
        channel: channel("chat"),
        epoch: epoch.into(),
        offset,
        frame: message(offset),
    }
}

fn message_json(offset: u64) -> String {
    format!(r#"{{"type":"message","channel":"chat","payload":{offset},"offset":{offset}}}"#)
}

/// A hub with an external store whose events the test writes by hand.
struct Remote {
    hub: Hub,
    out: Recorder,
    now: Instant,
}

impl Remote {
    /// A hub whose link came up at `T0`; the requests of the handshake are
    /// dropped.
    fn up(config: &ServerConfig) -> Remote {
        let mut remote = Remote {
            hub: Hub::with_external_store(config, 1),
            out: Recorder::default(),
            now: T0,
        };
        assert!(matches!(remote.requests()[..], [StoreRequest::Connect]));
        remote.event(StoreEvent::Up);
        remote.requests();
        remote
    }

    fn requests(&mut self) -> Vec<StoreRequest> {
        std::iter::from_fn(|| self.hub.poll_store_request()).collect()
    }

    fn event(&mut self, event: StoreEvent) {
        self.hub.handle_store_event(self.now, event, &mut self.out);
    }

    fn send(&mut self, conn: ConnId, text: &str) {
        self.hub
            .handle_message(self.now, conn, client(text), &mut self.out);
    }

    /// Everything sent to `conn` since the last call, as JSON values.
    fn take_for(&mut self, conn: ConnId) -> Vec<ServerMessage> {
        let sent = std::mem::take(&mut self.out.sent);
        sent.into_iter()
            .filter(|(to, _)| *to == conn)
            .map(|(_, sent)| decode(sent.frame()))
            .collect()
    }

    /// `conn` subscribes to `chat`; returns the ticket of its answer.
    fn subscribe(&mut self, conn: ConnId, text: &str) -> Ticket {
        self.send(conn, text);
        let requests = self.requests();
        requests
            .iter()
            .find_map(|request| match request {
                StoreRequest::Subscribe { ticket, .. } => Some(*ticket),
                _ => None,
            })
            .expect("a subscribe request")
    }

    fn subscribed(&mut self, ticket: Ticket, epoch: &str, offset: u64) {
        self.event(StoreEvent::Subscribed {
            ticket,
            channel: channel("chat"),
            epoch: epoch.into(),
            offset,
            recovered: None,
            replay: Vec::new(),
            users: vec!["alice".into()],
            presence_version: 1,
        });
    }
}

fn expect(texts: &[&str]) -> Vec<ServerMessage> {
    texts.iter().map(|text| server(text)).collect()
}

#[test]
fn the_link_is_retried_on_the_backplane_schedule_and_the_lease_renewed_every_quarter_ttl() {
    let config = ServerConfig::dev();
    let mut hub = Hub::with_external_store(&config, 5);
    let mut out = Recorder::default();
    assert!(matches!(
        hub.poll_store_request(),
        Some(StoreRequest::Connect)
    ));
    assert!(!hub.is_store_up());
    assert_eq!(hub.poll_timeout(), None, "nothing is due while connecting");

    hub.handle_store_event(T0, StoreEvent::Down, &mut out);
    let retry = hub.poll_timeout().expect("a retry is scheduled");
    let wait = retry - T0;
    assert!(wait >= BACKPLANE_BACKOFF.base && wait < BACKPLANE_BACKOFF.base * 2);
    assert_eq!(hub.store_failures(), 1);
    hub.handle_store_event(T0, StoreEvent::Down, &mut out);
    assert_eq!(hub.store_failures(), 1, "a repeated Down is one failure");

    hub.handle_timeout(retry - Duration::from_nanos(1));
    assert!(hub.poll_store_request().is_none(), "not a nanosecond early");
    hub.handle_timeout(retry);
    assert!(matches!(
        hub.poll_store_request(),
        Some(StoreRequest::Connect)
    ));
    hub.handle_store_event(retry, StoreEvent::Down, &mut out);
    let second = hub.poll_timeout().unwrap() - retry;
    assert!(second >= BACKPLANE_BACKOFF.base * 2, "the delay doubles");

    let up_at = retry + second;
    hub.handle_timeout(up_at);
    assert!(matches!(
        hub.poll_store_request(),
        Some(StoreRequest::Connect)
    ));
    let figures = |connections| NodeStats {
        connections,
        channels: 2,
        uptime: Duration::from_secs(3),
    };
    hub.set_node_stats(figures(1));
    hub.handle_store_event(up_at, StoreEvent::Up, &mut out);
    assert!(hub.is_store_up());
    let lease = config.presence_ttl / 2;
    assert!(matches!(
        std::iter::from_fn(|| hub.poll_store_request()).collect::<Vec<_>>()[..],
        [StoreRequest::Lease { lease: l, node }, StoreRequest::Rejoin { ref members }]
            if l == lease && node == figures(1) && members.is_empty()
    ));
    let renewal = up_at + config.presence_ttl / 4;
    assert_eq!(hub.poll_timeout(), Some(renewal));
    hub.set_node_stats(figures(5));
    hub.handle_timeout(renewal);
    assert!(matches!(
        hub.poll_store_request(),
        Some(StoreRequest::Lease { lease: l, node }) if l == lease && node == figures(5)
    ));
    assert_eq!(hub.poll_timeout(), Some(renewal + config.presence_ttl / 4));
}

#[test]
fn while_the_link_is_down_what_needs_the_store_is_refused_and_the_rest_done_locally() {
    let config = ServerConfig::dev();
    let mut hub = Hub::with_external_store(&config, 5);
    let mut out = Recorder::default();
    hub.poll_store_request();
    let alice = ConnId(1);
    hub.handle_authenticated(alice, "alice", Grants::default());
    for text in [
        r#"{"type":"subscribe","id":"s","channel":"chat"}"#,
        r#"{"type":"publish","id":"p","channel":"chat","payload":1}"#,
        r#"{"type":"presence","id":"q","channel":"chat"}"#,
        r#"{"type":"unsubscribe","id":"u","channel":"chat"}"#,
    ] {
        hub.handle_message(T0, alice, client(text), &mut out);
    }
    let api = hub.publish_from_api(T0, channel("chat"), raw("2"), None, &mut out);
    assert_eq!(api, ApiPublish::Unavailable);
    let received: Vec<ServerMessage> = out.sent.iter().map(|(_, s)| decode(s.frame())).collect();
    let expected = [
        unavailable("s"),
        unavailable("p"),
        unavailable("q"),
        r#"{"type":"unsubscribed","id":"u","channel":"chat"}"#.to_owned(),
    ];
    assert_eq!(
        received,
        expected.iter().map(|t| server(t)).collect::<Vec<_>>()
    );
    assert!(
        hub.poll_store_request().is_none(),
        "nothing goes to the store"
    );
}

#[test]
fn a_failing_link_answers_every_waiting_request_in_order_and_undoes_unanswered_subscriptions() {
    let config = ServerConfig::dev();
    let mut r = Remote::up(&config);
    let alice = ConnId(1);
    r.hub
        .handle_authenticated(alice, "alice", Grants::default());
    r.send(alice, r#"{"type":"subscribe","id":"s","channel":"chat"}"#);
    r.send(
        alice,
        r#"{"type":"publish","id":"p","channel":"news","payload":1}"#,
    );
    r.send(
        alice,
        r#"{"type":"unsubscribe","id":"u","channel":"other"}"#,
    );
    let api = r
        .hub
        .publish_from_api(r.now, channel("news"), raw("2"), None, &mut r.out);
    let ApiPublish::Pending { ticket } = api else {
        panic!("{api:?}");
    };
    assert!(r.take_for(alice).is_empty());
    r.requests();

    r.event(StoreEvent::Down);
    let received = r.take_for(alice);
    let expected = [
        unavailable("s"),
        unavailable("p"),
        r#"{"type":"unsubscribed","id":"u","channel":"other"}"#.to_owned(),
    ];
    assert_eq!(
        received,
        expected.iter().map(|t| server(t)).collect::<Vec<_>>()
    );
    assert_eq!(
        r.hub.poll_api_answer(),
        Some((ticket, ApiAnswer::Unavailable))
    );
    assert_eq!(r.hub.channel_count(), 0, "the subscription was undone");

    // Back up: the node states its (empty) presence and follows nothing.
    r.event(StoreEvent::Up);
    let requests = r.requests();
    assert!(matches!(
        requests[..],
        [StoreRequest::Lease { .. }, StoreRequest::Rejoin { ref members }] if members.is_empty()
    ));
}

#[test]
fn publications_are_delivered_in_offset_order_whatever_order_they_arrive_in() {
    let config = ServerConfig::dev();
    let mut r = Remote::up(&config);
    let alice = ConnId(1);
    r.hub
        .handle_authenticated(alice, "alice", Grants::default());
    let ticket = r.subscribe(alice, r#"{"type":"subscribe","id":"s","channel":"chat"}"#);

    // Publication 2 overtakes the answer that says the channel is at 1.
    r.event(publication("E", 2));
    assert!(r.take_for(alice).is_empty(), "nothing before `subscribed`");
    r.subscribed(ticket, "E", 1);
    assert_eq!(
        r.take_for(alice),
        expect(&[
            r#"{"type":"subscribed","id":"s","channel":"chat","epoch":"E","offset":1}"#,
            r#"{"type":"presence","channel":"chat","users":["alice"]}"#,
            &message_json(2),
        ])
    );
    assert!(r.requests().is_empty(), "no gap: nothing to ask");

    // 4 before 3: 4 waits, and the node asks for the gap once.
    r.event(publication("E", 4));
    r.event(publication("E", 5));
    assert!(r.take_for(alice).is_empty());
    let requests = r.requests();
    assert!(matches!(
        &requests[..],
        [StoreRequest::CatchUp { since, .. }] if *since == Position { epoch: "E".into(), offset: 2 }
    ));
    r.event(publication("E", 3));
    r.event(publication("E", 2));
    assert_eq!(
        r.take_for(alice),
        expect(&[&message_json(3), &message_json(4), &message_json(5)])
    );

    // The catch-up answer overlaps what arrived meanwhile: nothing twice.
    r.event(StoreEvent::CaughtUp {
        channel: channel("chat"),
        since: Position {
            epoch: "E".into(),
            offset: 2,
        },
        epoch: "E".into(),
        offset: 6,
        recovered: true,
        replay: (3..=6).map(message).collect(),
    });
    assert_eq!(r.take_for(alice), expect(&[&message_json(6)]));
    r.event(publication("E", 6));
    r.event(publication("E", 7));
    assert_eq!(r.take_for(alice), expect(&[&message_json(7)]));
    assert!(r.requests().is_empty());
}

#[test]
fn a_gap_is_filled_from_the_history_before_anything_newer() {
    let config = ServerConfig::dev();
    let mut r = Remote::up(&config);
    let alice = ConnId(1);
    r.hub
        .handle_authenticated(alice, "alice", Grants::default());
    let ticket = r.subscribe(alice, r#"{"type":"subscribe","channel":"chat"}"#);
    r.subscribed(ticket, "E", 0);
    r.take_for(alice);
    r.event(publication("E", 1));
    r.event(publication("E", 3));
    r.event(publication("E", 4));
    assert_eq!(r.take_for(alice), expect(&[&message_json(1)]));
    let requests = r.requests();
    let [StoreRequest::CatchUp { since, .. }] = &requests[..] else {
        panic!("{requests:?}");
    };
    r.event(StoreEvent::CaughtUp {
        channel: channel("chat"),
        since: since.clone(),
        epoch: "E".into(),
        offset: 4,
        recovered: true,
        replay: (2..=4).map(message).collect(),
    });
    r.event(publication("E", 5));
    assert_eq!(
        r.take_for(alice),
        expect(&[
            &message_json(2),
            &message_json(3),
            &message_json(4),
            &message_json(5)
        ])
    );
}

#[test]
fn a_subscriber_answered_ahead_of_the_node_starts_after_its_offset() {
    let config = ServerConfig::dev();
    let mut r = Remote::up(&config);
    let (alice, bob) = (ConnId(1), ConnId(2));
    r.hub
        .handle_authenticated(alice, "alice", Grants::default());
    r.hub.handle_authenticated(bob, "bob", Grants::default());
    let first = r.subscribe(alice, r#"{"type":"subscribe","channel":"chat"}"#);
    r.subscribed(first, "E", 0);
    r.take_for(alice);

    // Bob's answer says 2; the node has delivered nothing yet.
    let second = r.subscribe(bob, r#"{"type":"subscribe","id":"b","channel":"chat"}"#);
    r.subscribed(second, "E", 2);
    let requests = r.requests();
    assert!(
        matches!(&requests[..], [StoreRequest::CatchUp { .. }]),
        "the node is behind the store: {requests:?}"
    );
    for offset in 1..=3 {
        r.event(publication("E", offset));
    }
    let sent: Vec<(ConnId, ServerMessage)> = std::mem::take(&mut r.out.sent)
        .into_iter()
        .map(|(conn, sent)| (conn, decode(sent.frame())))
        .filter(|(_, message)| matches!(message, ServerMessage::Message { .. }))
        .collect();
    let expected: Vec<(ConnId, ServerMessage)> = [(alice, 1), (alice, 2), (alice, 3), (bob, 3)]
        .into_iter()
        .map(|(conn, offset)| (conn, server(&message_json(offset))))
        .collect();
    assert_eq!(sent, expected);
}

#[test]
fn an_answer_behind_the_node_announces_the_nodes_offset_or_is_asked_again_for_a_replay() {
    let config = ServerConfig::dev();
    let mut r = Remote::up(&config);
    let (alice, bob, carol) = (ConnId(1), ConnId(2), ConnId(3));
    for (conn, user) in [(alice, "alice"), (bob, "bob"), (carol, "carol")] {
        r.hub.handle_authenticated(conn, user, Grants::default());
    }
    let first = r.subscribe(alice, r#"{"type":"subscribe","channel":"chat"}"#);
    r.subscribed(first, "E", 0);
    let plain = r.subscribe(bob, r#"{"type":"subscribe","id":"b","channel":"chat"}"#);
    let since =
        r#"{"type":"subscribe","id":"c","channel":"chat","since":{"epoch":"E","offset":0}}"#;
    let replayed = r.subscribe(carol, since);
    r.event(publication("E", 1));
    r.event(publication("E", 2));
    r.take_for(alice);

    // Both answers were read when the channel was at 1.
    r.subscribed(plain, "E", 1);
    assert_eq!(
        r.take_for(bob)[0],
        server(r#"{"type":"subscribed","id":"b","channel":"chat","epoch":"E","offset":2}"#)
    );
    r.event(StoreEvent::Subscribed {
        ticket: replayed,
        channel: channel("chat"),
        epoch: "E".into(),
        offset: 1,
        recovered: Some(true),
        replay: vec![message(1)],
        users: Vec::new(),
        presence_version: 1,
    });
    assert!(r.out.sent.is_empty(), "carol's replay would miss offset 2");
    let requests = r.requests();
    assert!(matches!(
        &requests[..],
        [StoreRequest::Subscribe { ticket, since: Some(_), .. }] if *ticket == replayed
    ));
}

#[test]
fn after_an_outage_the_node_follows_again_and_delivers_what_was_missed_first() {
    let config = ServerConfig::dev();
    let mut hub = Hub::with_external_store(&config, 3);
    let mut store = MemoryStore::new(&config, "redis");
    let mut out = Recorder::default();
    exchange(T0, &mut hub, &mut store, &mut out);
    let alice = ConnId(1);
    hub.handle_authenticated(alice, "alice", Grants::default());
    let subscribe = client(r#"{"type":"subscribe","channel":"chat"}"#);
    hub.handle_message(T0, alice, subscribe, &mut out);
    exchange(T0, &mut hub, &mut store, &mut out);
    let elsewhere = |store: &mut MemoryStore, payload: &str| {
        store.handle_request(
            T0,
            StoreRequest::Publish {
                ticket: None,
                channel: channel("chat"),
                payload: raw(payload),
                sender: None,
                idempotency_key: None,
            },
        );
    };
    elsewhere(&mut store, "1");
    exchange(T0, &mut hub, &mut store, &mut out);

    hub.handle_store_event(T0, StoreEvent::Down, &mut out);
    elsewhere(&mut store, "2");
    elsewhere(&mut store, "3");
    while store.poll_event().is_some() {}
    let back = hub.poll_timeout().unwrap();
    hub.handle_timeout(back);
    exchange(back, &mut hub, &mut store, &mut out);
    elsewhere(&mut store, "4");
    exchange(back, &mut hub, &mut store, &mut out);

    let offsets: Vec<u64> = out
        .sent
        .iter()
        .filter_map(|(_, sent)| match decode(sent.frame()) {
            ServerMessage::Message { offset, .. } => Some(offset),
            _ => None,
        })
        .collect();
    assert_eq!(offsets, [1, 2, 3, 4]);
}

#[test]
fn a_lost_epoch_is_announced_unrecovered_and_the_new_one_delivered_from_its_start() {
    let config = ServerConfig::dev();
    let mut hub = Hub::with_external_store(&config, 3);
    let mut store = MemoryStore::new(&config, "old");
    let mut out = Recorder::default();
    exchange(T0, &mut hub, &mut store, &mut out);
    let alice = ConnId(1);
    hub.handle_authenticated(alice, "alice", Grants::default());
    let subscribe = client(r#"{"type":"subscribe","channel":"chat"}"#);
    hub.handle_message(T0, alice, subscribe, &mut out);
    exchange(T0, &mut hub, &mut store, &mut out);
    out.sent.clear();

    // The store restarts empty; another node publishes twice there.
    hub.handle_store_event(T0, StoreEvent::Down, &mut out);
    let mut store = MemoryStore::new(&config, "new");
    for payload in ["1", "2"] {
        let publish = StoreRequest::Publish {
            ticket: None,
            channel: channel("chat"),
            payload: raw(payload),
            sender: None,
            idempotency_key: None,
        };
        store.handle_request(T0, publish);
    }
    while store.poll_event().is_some() {}
    let back = hub.poll_timeout().unwrap();
    hub.handle_timeout(back);
    exchange(back, &mut hub, &mut store, &mut out);

    let received: Vec<ServerMessage> = out
        .sent
        .iter()
        .map(|(_, sent)| decode(sent.frame()))
        .filter(|m| !matches!(m, ServerMessage::Join { .. }))
        .collect();
    assert_eq!(
        received,
        expect(&[
            r#"{"type":"subscribed","channel":"chat","epoch":"new-1","offset":0,"recovered":false}"#,
            r#"{"type":"presence","channel":"chat","users":["alice"]}"#,
            &message_json(1),
            &message_json(2),
        ])
    );
}

#[test]
fn a_gap_the_history_no_longer_covers_is_announced_unrecovered() {
    let config = ServerConfig {
        history_size: 2,
        ..ServerConfig::dev()
    };
    let mut r = Remote::up(&config);
    let alice = ConnId(1);
    r.hub
        .handle_authenticated(alice, "alice", Grants::default());
    let ticket = r.subscribe(alice, r#"{"type":"subscribe","channel":"chat"}"#);
    r.subscribed(ticket, "E", 0);
    r.take_for(alice);
    r.event(publication("E", 1));
    r.event(publication("E", 6));
    let since = Position {
        epoch: "E".into(),
        offset: 1,
    };
    r.event(StoreEvent::CaughtUp {
        channel: channel("chat"),
        since,
        epoch: "E".into(),
        offset: 6,
        recovered: false,
        replay: Vec::new(),
    });
    r.event(publication("E", 7));
    assert_eq!(
        r.take_for(alice),
        expect(&[
            &message_json(1),
            r#"{"type":"subscribed","channel":"chat","epoch":"E","offset":6,"recovered":false}"#,
            &message_json(7),
        ])
    );
}

#[test]
fn the_node_follows_a_channel_while_it_has_local_subscribers_and_rejoins_after_a_lapse() {
    let config = ServerConfig::dev();
    let mut r = Remote::up(&config);
    let (alice, bob) = (ConnId(1), ConnId(2));
    r.hub
        .handle_authenticated(alice, "alice", Grants::default());
    r.hub.handle_authenticated(bob, "bob", Grants::default());
    r.send(alice, r#"{"type":"subscribe","channel":"chat"}"#);
    let requests = r.requests();
    assert!(matches!(
        &requests[..],
        [
            StoreRequest::Join { .. },
            StoreRequest::Follow { .. },
            StoreRequest::Subscribe { .. }
        ]
    ));
    r.send(bob, r#"{"type":"subscribe","channel":"chat"}"#);
    let requests = r.requests();
    assert!(matches!(
        &requests[..],
        [StoreRequest::Join { .. }, StoreRequest::Subscribe { .. }]
    ));

    r.event(StoreEvent::Leased { lapsed: true });
    let requests = r.requests();
    let [StoreRequest::Rejoin { members }] = &requests[..] else {
        panic!("{requests:?}");
    };
    let users: Vec<(&str, &str, u32)> = members
        .iter()
        .map(|m| (m.channel.as_str(), m.user.as_str(), m.connections))
        .collect();
    assert_eq!(users, [("chat", "alice", 1), ("chat", "bob", 1)]);

    r.hub.handle_disconnect(r.now, alice, &mut r.out);
    assert!(matches!(&r.requests()[..], [StoreRequest::Leave { .. }]));
    r.send(bob, r#"{"type":"unsubscribe","channel":"chat"}"#);
    assert!(matches!(
        &r.requests()[..],
        [StoreRequest::Leave { .. }, StoreRequest::Unfollow { .. }]
    ));
}

#[test]
fn a_publication_of_the_new_epoch_that_overtakes_the_catch_up_is_kept_for_it() {
    let config = ServerConfig::dev();
    let mut r = Remote::up(&config);
    let alice = ConnId(1);
    r.hub
        .handle_authenticated(alice, "alice", Grants::default());
    let ticket = r.subscribe(alice, r#"{"type":"subscribe","channel":"chat"}"#);
    r.subscribed(ticket, "old", 2);
    r.take_for(alice);

    r.event(StoreEvent::Down);
    r.event(StoreEvent::Up);
    let requests = r.requests();
    let Some(StoreRequest::CatchUp { since, .. }) = requests
        .iter()
        .find(|request| matches!(request, StoreRequest::CatchUp { .. }))
    else {
        panic!("{requests:?}");
    };
    let since = since.clone();
    // The store restarted: its answer was read at offset 0 of a new epoch,
    // and the first publication of that epoch overtakes it.
    r.event(publication("new", 1));
    r.event(StoreEvent::CaughtUp {
        channel: channel("chat"),
        since,
        epoch: "new".into(),
        offset: 0,
        recovered: false,
        replay: Vec::new(),
    });
    assert_eq!(
        r.take_for(alice),
        expect(&[
            r#"{"type":"subscribed","channel":"chat","epoch":"new","offset":0,"recovered":false}"#,
            &message_json(1),
        ])
    );
}

fn joined(user: &str, version: u64) -> StoreEvent {
    StoreEvent::Joined {
        channel: channel("chat"),
        user: user.into(),
        version,
    }
}

fn subscribed_with(ticket: Ticket, users: &[&str], presence_version: u64) -> StoreEvent {
    StoreEvent::Subscribed {
        ticket,
        channel: channel("chat"),
        epoch: "E".into(),
        offset: 0,
        recovered: None,
        replay: Vec::new(),
        users: users.iter().map(|&user| user.to_owned()).collect(),
        presence_version,
    }
}

#[test]
fn presence_changes_and_snapshots_on_crossing_paths_tell_each_change_once() {
    let mut r = Remote::up(&ServerConfig::dev());
    let (bob, dave) = (ConnId(1), ConnId(2));
    r.hub.handle_authenticated(bob, "bob", Grants::default());
    r.hub.handle_authenticated(dave, "dave", Grants::default());
    let first = r.subscribe(bob, r#"{"type":"subscribe","id":"b","channel":"chat"}"#);

    // A change newer than bob's snapshot overtakes it; an older one repeats it.
    r.event(joined("carol", 4));
    r.event(joined("bob", 3));
    r.event(subscribed_with(first, &["alice", "bob"], 3));
    assert_eq!(
        r.take_for(bob),
        expect(&[
            r#"{"type":"subscribed","id":"b","channel":"chat","epoch":"E","offset":0}"#,
            r#"{"type":"presence","channel":"chat","users":["alice","bob","carol"]}"#,
        ])
    );

    // Dave's snapshot is ahead of the node: he is told what bob knows, and
    // both hear the change in between once it arrives.
    let second = r.subscribe(dave, r#"{"type":"subscribe","id":"d","channel":"chat"}"#);
    r.event(subscribed_with(
        second,
        &["alice", "bob", "carol", "dave", "erin"],
        6,
    ));
    assert_eq!(
        r.take_for(dave),
        expect(&[
            r#"{"type":"subscribed","id":"d","channel":"chat","epoch":"E","offset":0}"#,
            r#"{"type":"presence","channel":"chat","users":["alice","bob","carol"]}"#,
        ])
    );
    r.event(joined("dave", 5));
    r.event(joined("erin", 6));
    r.event(joined("erin", 6));
    let changes = expect(&[
        r#"{"type":"join","channel":"chat","user":"dave"}"#,
        r#"{"type":"join","channel":"chat","user":"erin"}"#,
    ]);
    let sent = std::mem::take(&mut r.out.sent);
    for conn in [bob, dave] {
        let heard: Vec<ServerMessage> = sent
            .iter()
            .filter(|(to, _)| *to == conn)
            .map(|(_, sent)| decode(sent.frame()))
            .collect();
        assert_eq!(heard, changes);
    }

    // A current view answers a presence request without the store.
    r.send(bob, r#"{"type":"presence","id":"q","channel":"chat"}"#);
    assert!(r.requests().is_empty());
    assert_eq!(
        r.take_for(bob),
        expect(&[
            r#"{"type":"presence","id":"q","channel":"chat","users":["alice","bob","carol","dave","erin"]}"#
        ])
    );
}

#[test]
fn after_an_outage_presence_is_restated_from_a_refresh_with_what_followed_it() {
    let config = ServerConfig::dev();
    let mut r = Remote::up(&config);
    let bob = ConnId(1);
    r.hub.handle_authenticated(bob, "bob", Grants::default());
    let ticket = r.subscribe(bob, r#"{"type":"subscribe","id":"b","channel":"chat"}"#);
    r.event(subscribed_with(ticket, &["alice", "bob"], 2));
    r.take_for(bob);

    r.event(StoreEvent::Down);
    r.now = r.hub.poll_timeout().expect("a retry");
    r.hub.handle_timeout(r.now);
    r.requests();
    r.event(StoreEvent::Up);
    let refresh = r
        .requests()
        .into_iter()
        .find_map(|request| match request {
            StoreRequest::Presence { ticket, .. } => Some(ticket),
            _ => None,
        })
        .expect("a presence refresh");
    // Heard before the refresh, newer than it: kept for it.
    r.event(joined("carol", 9));
    assert!(r.take_for(bob).is_empty());
    r.event(StoreEvent::Presence {
        ticket: refresh,
        channel: channel("chat"),
        users: vec!["bob".into()],
        version: 8,
    });
    assert_eq!(
        r.take_for(bob),
        expect(&[r#"{"type":"presence","channel":"chat","users":["bob","carol"]}"#])
    );
}

#[test]
fn a_refused_request_answers_only_its_asker_and_the_link_stays_up() {
    let config = ServerConfig::dev();
    let mut r = Remote::up(&config);
    let alice = ConnId(1);
    r.hub
        .handle_authenticated(alice, "alice", Grants::default());
    let subscribe = r.subscribe(alice, r#"{"type":"subscribe","id":"s","channel":"chat"}"#);
    r.send(
        alice,
        r#"{"type":"publish","id":"p","channel":"news","payload":1}"#,
    );
    let publish = r
        .requests()
        .iter()
        .find_map(|request| match request {
            StoreRequest::Publish { ticket, .. } => *ticket,
            _ => None,
        })
        .expect("a publish with a ticket");

    r.event(StoreEvent::Refused(Refusal::Ticket(subscribe)));
    assert_eq!(r.take_for(alice), expect(&[&unavailable("s")]));
    assert_eq!(r.hub.channel_count(), 0, "the subscription was undone");
    assert!(matches!(
        &r.requests()[..],
        [StoreRequest::Leave { channel: c, user }, StoreRequest::Unfollow { channel: u }]
            if c.as_str() == "chat" && user == "alice" && u.as_str() == "chat"
    ));
    r.event(StoreEvent::Refused(Refusal::Ticket(publish)));
    assert_eq!(r.take_for(alice), expect(&[&unavailable("p")]));
    assert!(r.hub.is_store_up(), "the link stays up");
    assert_eq!((r.hub.store_failures(), r.hub.store_refusals()), (0, 2));

    // A refused presence change is restated once the store takes writes
    // again, which the next granted lease shows.
    r.event(StoreEvent::Refused(Refusal::Unanswered));
    assert!(r.requests().is_empty());
    r.event(StoreEvent::Leased { lapsed: false });
    assert!(matches!(&r.requests()[..], [StoreRequest::Rejoin { members }] if members.is_empty()));
    r.event(StoreEvent::Leased { lapsed: false });
    assert!(r.requests().is_empty(), "restated once");

    let again = r.subscribe(alice, r#"{"type":"subscribe","id":"t","channel":"chat"}"#);
    r.subscribed(again, "E", 0);
    assert_eq!(
        r.take_for(alice),
        expect(&[
            r#"{"type":"subscribed","id":"t","channel":"chat","epoch":"E","offset":0}"#,
            r#"{"type":"presence","channel":"chat","users":["alice"]}"#,
        ])
    );
}

#[test]
fn a_refused_catch_up_is_asked_again_when_the_store_takes_writes_again() {
    let config = ServerConfig::dev();
    let mut r = Remote::up(&config);
    let alice = ConnId(1);
    r.hub
        .handle_authenticated(alice, "alice", Grants::default());
    let ticket = r.subscribe(alice, r#"{"type":"subscribe","id":"s","channel":"chat"}"#);
    r.subscribed(ticket, "E", 0);
    r.take_for(alice);
    r.event(publication("E", 2));
    assert!(matches!(
        &r.requests()[..],
        [StoreRequest::CatchUp { since, .. }] if since.offset == 0
    ));
    r.event(StoreEvent::Refused(Refusal::CatchUp(channel("chat"))));
    assert!(r.requests().is_empty(), "not asked again at once");
    r.event(StoreEvent::Leased { lapsed: false });
    let requests = r.requests();
    assert!(
        requests.iter().any(
            |request| matches!(request, StoreRequest::CatchUp { since, .. } if since.offset == 0)
        ),
        "{requests:?}"
    );
}

#[test]
fn with_a_backplane_only_a_subscribe_without_local_subscribers_brings_a_new_channel() {
    let config = ServerConfig {
        max_new_channels_per_user: 1,
        ..ServerConfig::dev()
    };
    let mut remote = Remote::up(&config);
    let alice = ConnId(1);
    remote
        .hub
        .handle_authenticated(alice, "alice", Grants::default());
    let ticket = remote.subscribe(alice, r#"{"type":"subscribe","id":"s","channel":"chat"}"#);
    remote.subscribed(ticket, "e", 0);
    // The channels a publish reaches are kept in the store, not here.
    for name in ["one", "two"] {
        let text = format!(r#"{{"type":"publish","channel":"{name}","payload":1}}"#);
        remote.send(alice, &text);
        let requests = remote.requests();
        assert!(matches!(requests[..], [StoreRequest::Publish { .. }]));
    }
    remote.send(alice, r#"{"type":"subscribe","id":"s2","channel":"other"}"#);
    assert!(remote.requests().is_empty(), "a refusal asks nothing");
    let bob = ConnId(2);
    remote
        .hub
        .handle_authenticated(bob, "bob", Grants::default());
    remote.subscribe(bob, r#"{"type":"subscribe","id":"s3","channel":"other"}"#);
    remote.subscribe(alice, r#"{"type":"subscribe","id":"s4","channel":"other"}"#);
    let errors: Vec<ServerMessage> = remote
        .take_for(alice)
        .into_iter()
        .filter(|message| matches!(message, ServerMessage::Error { .. }))
        .collect();
    let refused = r#"{"type":"error","id":"s2","code":"LIMIT_EXCEEDED","message":"too many new channels for this user; retry later"}"#;
    assert_eq!(errors, expect(&[refused]));
}

#[test]
fn an_order_of_the_http_api_acts_on_this_nodes_connections_of_the_user_only() {
    let mut r = Remote::up(&ServerConfig::dev());
    let (alice, alice_too, bob) = (ConnId(1), ConnId(2), ConnId(3));
    r.hub
        .handle_authenticated(alice, "alice", Grants::default());
    r.hub
        .handle_authenticated(alice_too, "alice", Grants::default());
    r.hub.handle_authenticated(bob, "bob", Grants::default());
    let ticket = r.subscribe(alice, r#"{"type":"subscribe","channel":"chat"}"#);
    r.subscribed(ticket, "e", 0);
    r.take_for(alice);

    r.event(StoreEvent::Control(Control::Unsubscribe {
        user: "alice".into(),
        channel: channel("chat"),
    }));
    assert_eq!(
        r.take_for(alice),
        expect(&[r#"{"type":"unsubscribed","channel":"chat","reason":"server"}"#])
    );
    assert!(matches!(
        &r.requests()[..],
        [StoreRequest::Leave { channel: c, user }, StoreRequest::Unfollow { channel: u }]
            if c.as_str() == "chat" && user == "alice" && u.as_str() == "chat"
    ));
    r.event(publication("e", 1));
    assert_eq!(r.take_for(alice), [], "nothing of the channel after it");

    r.event(StoreEvent::Control(Control::Disconnect {
        user: "alice".into(),
        code: 4500,
        reason: "bye".into(),
    }));
    let closes: Vec<_> = std::iter::from_fn(|| r.hub.poll_close()).collect();
    let bye = CloseReason::new(CloseCode(4500), "bye");
    assert_eq!(closes, [(alice, bye.clone()), (alice_too, bye)]);
    r.event(StoreEvent::Control(Control::Disconnect {
        user: "carol".into(),
        code: 4100,
        reason: "bye".into(),
    }));
    assert_eq!(r.hub.poll_close(), None, "no connection of carol here");
}

#[test]
fn api_requests_go_to_the_store_with_tickets_and_their_answers_come_out_by_ticket() {
    let mut r = Remote::up(&ServerConfig {
        history_size: 5,
        api_max_channels: 7,
        ..ServerConfig::dev()
    });
    let stats = NodeStats {
        connections: 2,
        channels: 1,
        uptime: Duration::from_secs(9),
    };
    let asked = [
        ApiRequest::Presence(channel("chat")),
        ApiRequest::PresenceStats(channel("chat")),
        ApiRequest::History {
            channel: channel("chat"),
            since: None,
            limit: usize::MAX,
            reverse: true,
        },
        ApiRequest::Channels(None),
        ApiRequest::Control(Control::Unsubscribe {
            user: "alice".into(),
            channel: channel("chat"),
        }),
        ApiRequest::Info(stats),
    ];
    let mut tickets = Vec::new();
    for request in asked {
        let outcome = r.hub.api_request(r.now, request, &mut r.out);
        let ApiOutcome::Pending(ticket) = outcome else {
            panic!("answered at once: {outcome:?}");
        };
        tickets.push(ticket);
    }
    let requests = r.requests();
    assert!(matches!(
        &requests[..],
        [
            StoreRequest::Presence { ticket: t0, .. },
            StoreRequest::PresenceStats { ticket: t1, .. },
            StoreRequest::History { ticket: t2, limit: 5, reverse: true, since: None, .. },
            StoreRequest::Channels { ticket: t3, limit: 7, pattern: None },
            StoreRequest::Control { ticket: t4, .. },
            StoreRequest::Info { ticket: t5, node },
        ] if [*t0, *t1, *t2, *t3, *t4, *t5] == tickets[..] && *node == stats
    ));
    let node = NodeInfo {
        id: "n1".into(),
        stats,
    };
    let answers = [
        (
            StoreEvent::Presence {
                ticket: tickets[0],
                channel: channel("chat"),
                users: vec!["alice".into()],
                version: 3,
            },
            ApiAnswer::Presence(vec!["alice".into()]),
        ),
        (
            StoreEvent::PresenceStats {
                ticket: tickets[1],
                users: 1,
                connections: 2,
            },
            ApiAnswer::PresenceStats {
                users: 1,
                connections: 2,
            },
        ),
        (
            StoreEvent::History {
                ticket: tickets[2],
                epoch: "e".into(),
                offset: 4,
                publications: vec![Bytes::from_static(b"{}")],
            },
            ApiAnswer::History {
                epoch: "e".into(),
                offset: 4,
                publications: vec![Bytes::from_static(b"{}")],
            },
        ),
        (
            StoreEvent::Channels {
                ticket: tickets[3],
                channels: vec![channel("chat")],
                total: 1,
            },
            ApiAnswer::Channels {
                channels: vec![channel("chat")],
                total: 1,
            },
        ),
        (
            StoreEvent::ControlSent { ticket: tickets[4] },
            ApiAnswer::Sent,
        ),
        (
            StoreEvent::Info {
                ticket: tickets[5],
                nodes: vec![node.clone()],
            },
            ApiAnswer::Info(vec![node]),
        ),
    ];
    for (event, answer) in answers.into_iter().rev() {
        let ticket = tickets.pop().expect("one ticket per answer");
        r.event(event);
        assert_eq!(r.hub.poll_api_answer(), Some((ticket, answer)));
    }

    let outcome = r
        .hub
        .api_request(r.now, ApiRequest::Channels(None), &mut r.out);
    let ApiOutcome::Pending(ticket) = outcome else {
        panic!("answered at once: {outcome:?}");
    };
    r.event(StoreEvent::Down);
    assert_eq!(
        r.hub.poll_api_answer(),
        Some((ticket, ApiAnswer::Unavailable))
    );
    assert_eq!(
        r.hub
            .api_request(r.now, ApiRequest::Channels(None), &mut r.out),
        ApiOutcome::Answered(ApiAnswer::Unavailable),
        "refused at once while the link is down"
    );
}

/// The frame of publication `offset` on `name`, as a store would make it.
fn message_on(name: &str, offset: u64) -> Bytes {
    text_frame(&encode_publication(
        name,
        &raw(&offset.to_string()),
        None,
        offset,
    ))
}

fn publication_on(name: &str, epoch: &str, offset: u64) -> StoreEvent {
    StoreEvent::Publication {
        channel: channel(name),
        epoch: epoch.into(),
        offset,
        frame: message_on(name, offset),
    }
}

fn replayed(ticket: Ticket, name: &str, epoch: &str, offset: u64) -> StoreEvent {
    StoreEvent::Subscribed {
        ticket,
        channel: channel(name),
        epoch: epoch.into(),
        offset,
        recovered: Some(true),
        replay: (1..=offset).map(|at| message_on(name, at)).collect(),
        users: Vec::new(),
        presence_version: 1,
    }
}

/// The messages and `subscribed` answers `sent` holds, in order, as
/// `(kind, channel, offset)`.
fn deliveries(sent: &[ServerMessage]) -> Vec<(&'static str, String, u64)> {
    sent.iter()
        .filter_map(|message| match message {
            ServerMessage::Message {
                channel, offset, ..
            } => Some(("message", channel.as_str().to_owned(), *offset)),
            ServerMessage::Subscribed {
                channel, offset, ..
            } => Some(("subscribed", channel.as_str().to_owned(), *offset)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_answer_held_behind_an_earlier_reply_lets_its_subscriber_in_only_when_its_turn_comes() {
    let config = ServerConfig::dev();
    let mut r = Remote::up(&config);
    let (alice, bob) = (ConnId(1), ConnId(2));
    r.hub.handle_authenticated(bob, "bob", Grants::default());
    for name in ["chat", "news"] {
        let text = format!(r#"{{"type":"subscribe","channel":"{name}"}}"#);
        let ticket = r.subscribe(bob, &text);
        r.event(replayed(ticket, name, "E", 0));
    }
    r.event(publication_on("chat", "E", 1));
    r.event(publication_on("chat", "E", 2));
    r.event(publication_on("news", "E", 1));

    // Alice recovers both channels from their start, in one go.
    r.hub
        .handle_authenticated(alice, "alice", Grants::default());
    let since = |name: &str| {
        format!(
            r#"{{"type":"subscribe","id":"{name}","channel":"{name}","since":{{"epoch":"E","offset":0}}}}"#
        )
    };
    let chat = r.subscribe(alice, &since("chat"));
    let news = r.subscribe(alice, &since("news"));
    // The chat answer was read at 1, the node is at 2: it is asked again.
    r.event(replayed(chat, "chat", "E", 1));
    assert!(matches!(
        &r.requests()[..],
        [StoreRequest::Subscribe { ticket, .. }] if *ticket == chat
    ));
    // The news answer is current, but its reply waits behind chat's; news
    // goes on meanwhile.
    r.event(replayed(news, "news", "E", 1));
    r.event(publication_on("news", "E", 2));
    assert_eq!(
        deliveries(&r.take_for(alice)),
        [],
        "nothing before chat's answer"
    );

    // Chat's answer lets alice into chat; news' held answer now lags the
    // node and is asked again.
    r.event(replayed(chat, "chat", "E", 2));
    assert!(matches!(
        &r.requests()[..],
        [StoreRequest::Subscribe { ticket, .. }] if *ticket == news
    ));
    r.event(replayed(news, "news", "E", 2));
    let expected = [
        ("message", "chat", 1),
        ("message", "chat", 2),
        ("subscribed", "chat", 2),
        ("message", "news", 1),
        ("message", "news", 2),
        ("subscribed", "news", 2),
    ]
    .map(|(kind, name, offset)| (kind, name.to_owned(), offset));
    assert_eq!(deliveries(&r.take_for(alice)), expected);
}

#[test]
fn a_failing_link_refuses_a_held_answer_in_its_turn_and_undoes_its_subscription() {
    let config = ServerConfig::dev();
    let mut r = Remote::up(&config);
    let alice = ConnId(1);
    r.hub
        .handle_authenticated(alice, "alice", Grants::default());
    let first = r.subscribe(alice, r#"{"type":"subscribe","id":"a","channel":"chat"}"#);
    let second = r.subscribe(alice, r#"{"type":"subscribe","id":"b","channel":"news"}"#);
    assert!(first < second);
    // News is answered first: held behind chat.
    r.event(replayed(second, "news", "E", 0));
    r.event(publication_on("news", "E", 1));
    assert!(r.take_for(alice).is_empty());

    r.event(StoreEvent::Down);
    assert_eq!(
        r.take_for(alice),
        [unavailable("a"), unavailable("b")].map(|t| server(&t))
    );
    assert_eq!(r.hub.channel_count(), 0, "both subscriptions were undone");
}
