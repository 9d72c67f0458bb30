//! PROTOCOL.md sections 4, 5 and 6: publications, offsets, acks, fan-out
//! order, subscription replies, and idempotency keys (request ids only
//! correlate replies).

use std::thread;

use serde_json::{Value, json};

use crate::harness::{Runtime, config, dev_auth};
use tether_testkit::ws::Ws;

/// Reads `count` channel messages from `ws`.
fn messages(ws: &mut Ws, count: usize) -> Vec<Value> {
    (0..count).map(|_| ws.recv_type("message")).collect()
}

fn offsets_grow_by_one_and_every_subscriber_gets_each_publication(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut bob = Ws::auth(server.addr, "bob");
    let mut carol = Ws::auth(server.addr, "carol");
    for ws in [&mut bob, &mut carol] {
        let subscribed = ws.subscribe("chat");
        assert_eq!(subscribed["offset"], 0, "{subscribed}");
        assert!(subscribed["epoch"].is_string(), "{subscribed}");
    }
    assert_eq!(bob.recv_type("join")["user"], "carol");
    // The publisher need not be subscribed.
    let mut alice = Ws::auth(server.addr, "alice");
    for n in 1..=5 {
        alice.send_json(json!({"type": "publish", "channel": "chat", "payload": {"n": n}, "id": format!("m{n}")}));
        assert_eq!(
            alice.recv(),
            json!({"type": "ack", "id": format!("m{n}"), "offset": n})
        );
    }
    for ws in [&mut bob, &mut carol] {
        let expected: Vec<Value> = (1..=5)
            .map(|n| json!({"type": "message", "channel": "chat", "payload": {"n": n}, "sender": "alice", "offset": n}))
            .collect();
        assert_eq!(messages(ws, 5), expected);
    }
    // A publish without an id is published, and not acknowledged.
    alice.send_json(json!({"type": "publish", "channel": "chat", "payload": "quiet"}));
    assert_eq!(bob.recv_type("message")["offset"], 6);
    alice.send_json(json!({"type": "ping", "id": "after"}));
    assert_eq!(alice.recv(), json!({"type": "pong", "id": "after"}));
}

fn the_publisher_gets_its_own_publication_when_subscribed(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut alice = Ws::auth(server.addr, "alice");
    alice.subscribe("chat");
    alice.send_json(json!({"type": "publish", "channel": "chat", "payload": [1, 2], "id": "own"}));
    let mut replies = vec![alice.recv(), alice.recv()];
    replies.sort_by_key(|reply| reply["type"].as_str().map(str::to_owned));
    assert_eq!(
        replies,
        vec![
            json!({"type": "ack", "id": "own", "offset": 1}),
            json!({"type": "message", "channel": "chat", "payload": [1, 2], "sender": "alice", "offset": 1}),
        ]
    );
}

fn every_subscriber_sees_the_same_order_of_concurrent_publications(runtime: Runtime) {
    const EACH: u64 = 100;
    let server = runtime.start(config(), dev_auth());
    let mut bob = Ws::auth(server.addr, "bob");
    let mut carol = Ws::auth(server.addr, "carol");
    bob.subscribe("race");
    carol.subscribe("race");
    assert_eq!(bob.recv_type("join")["user"], "carol");
    let mut alice = Ws::auth(server.addr, "alice");
    thread::scope(|scope| {
        scope.spawn(|| {
            for n in 0..EACH {
                server.publish("race", &json!({"api": n}).to_string());
            }
        });
        for n in 0..EACH {
            alice.send_json(json!({"type": "publish", "channel": "race", "payload": {"ws": n}}));
        }
    });
    let total = usize::try_from(2 * EACH).expect("a small count");
    let seen_by_bob = messages(&mut bob, total);
    let seen_by_carol = messages(&mut carol, total);
    assert_eq!(seen_by_bob, seen_by_carol);
    let offsets: Vec<u64> = seen_by_bob
        .iter()
        .map(|message| message["offset"].as_u64().expect("an offset"))
        .collect();
    assert_eq!(offsets, (1..=2 * EACH).collect::<Vec<_>>());
    // Each publisher's own publications keep their order.
    for source in ["api", "ws"] {
        let sequence: Vec<u64> = seen_by_bob
            .iter()
            .filter_map(|message| message["payload"][source].as_u64())
            .collect();
        assert_eq!(sequence, (0..EACH).collect::<Vec<_>>(), "{source}");
    }
}

fn subscribing_twice_and_unsubscribing_are_answered(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut alice = Ws::auth(server.addr, "alice");
    let first = alice.subscribe("chat");
    server.publish("chat", "1");
    assert_eq!(alice.recv_type("message")["offset"], 1);
    let second = alice.subscribe("chat");
    assert_eq!(second["epoch"], first["epoch"]);
    assert_eq!(second["offset"], 1);

    alice.send_json(json!({"type": "unsubscribe", "channel": "chat", "id": "u"}));
    assert_eq!(
        alice.recv(),
        json!({"type": "unsubscribed", "channel": "chat", "id": "u"})
    );
    alice.send_json(json!({"type": "unsubscribe", "channel": "elsewhere", "id": "v"}));
    assert_eq!(
        alice.recv(),
        json!({"type": "unsubscribed", "channel": "elsewhere", "id": "v"})
    );

    // Nothing more from the channel left: the next message is from another.
    alice.subscribe("other");
    server.publish("chat", "2");
    server.publish("other", r#""marker""#);
    let next = alice.recv_type("message");
    assert_eq!(
        (next["channel"].clone(), next["payload"].clone()),
        (json!("other"), json!("marker"))
    );
}

fn two_sessions_of_one_user_reusing_a_request_id_both_publish(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut bob = Ws::auth(server.addr, "bob");
    bob.subscribe("chat");
    // A restarted client and a second tab both number their requests from
    // r1; within a second of each other, both publications count.
    let mut first_tab = Ws::auth(server.addr, "alice");
    let mut second_tab = Ws::auth(server.addr, "alice");
    first_tab.send_json(
        json!({"type": "publish", "channel": "chat", "payload": "from the first", "id": "r1"}),
    );
    assert_eq!(
        first_tab.recv(),
        json!({"type": "ack", "id": "r1", "offset": 1})
    );
    second_tab.send_json(
        json!({"type": "publish", "channel": "chat", "payload": "from the second", "id": "r1"}),
    );
    assert_eq!(
        second_tab.recv(),
        json!({"type": "ack", "id": "r1", "offset": 2})
    );
    let payloads: Vec<Value> = messages(&mut bob, 2)
        .into_iter()
        .map(|message| message["payload"].clone())
        .collect();
    assert_eq!(
        payloads,
        [json!("from the first"), json!("from the second")]
    );
}

fn a_repeated_idempotency_key_is_published_once(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut bob = Ws::auth(server.addr, "bob");
    bob.subscribe("orders");
    let mut alice = Ws::auth(server.addr, "alice");
    alice.send_json(json!({"type": "publish", "channel": "orders", "payload": {"buy": 1}, "id": "r1", "idempotency_key": "order-1"}));
    assert_eq!(
        alice.recv(),
        json!({"type": "ack", "id": "r1", "offset": 1})
    );
    // A retry, even from another connection of the same user, with its own
    // request id.
    let mut alice_again = Ws::auth(server.addr, "alice");
    alice_again.send_json(json!({"type": "publish", "channel": "orders", "payload": {"buy": 1}, "id": "r9", "idempotency_key": "order-1"}));
    assert_eq!(
        alice_again.recv(),
        json!({"type": "ack", "id": "r9", "offset": 1})
    );
    alice.send_json(json!({"type": "publish", "channel": "orders", "payload": {"buy": 2}, "id": "r2", "idempotency_key": "order-2"}));
    assert_eq!(
        alice.recv(),
        json!({"type": "ack", "id": "r2", "offset": 2})
    );
    assert_eq!(bob.recv_type("message")["payload"], json!({"buy": 1}));
    let second = bob.recv_type("message");
    assert_eq!(
        (second["payload"].clone(), second["offset"].clone()),
        (json!({"buy": 2}), json!(2))
    );
}

fn the_same_key_from_another_user_is_another_publication(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut alice = Ws::auth(server.addr, "alice");
    let mut bob = Ws::auth(server.addr, "bob");
    let publish = json!({"type": "publish", "channel": "orders", "payload": 1, "id": "same", "idempotency_key": "same"});
    alice.send_json(publish.clone());
    assert_eq!(alice.recv()["offset"], 1);
    bob.send_json(publish);
    assert_eq!(
        bob.recv(),
        json!({"type": "ack", "id": "same", "offset": 2})
    );
}

runtime_tests! {
    offsets_grow_by_one_and_every_subscriber_gets_each_publication => smol, smol2, blocking, tokio, tokio2, example;
    the_publisher_gets_its_own_publication_when_subscribed => smol, blocking, tokio;
    every_subscriber_sees_the_same_order_of_concurrent_publications => smol, blocking, tokio;
    subscribing_twice_and_unsubscribing_are_answered => smol, blocking, tokio;
    two_sessions_of_one_user_reusing_a_request_id_both_publish => smol, blocking, tokio;
    a_repeated_idempotency_key_is_published_once => smol, blocking, tokio;
    the_same_key_from_another_user_is_another_publication => smol, blocking, tokio;
}
