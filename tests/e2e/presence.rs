//! PROTOCOL.md sections 3, 4 and 5: presence snapshots, `join`/`leave`
//! deltas once per user, and cleanup when a connection ends.

use serde_json::json;

use crate::harness::{Runtime, TestServer, config, dev_auth};
use tether_testkit::ws::Ws;

/// Publishes a marker on `channel` and checks that it is the next thing
/// `ws` receives: nothing (no presence delta) came before it.
fn next_is_marker(server: &TestServer, ws: &mut Ws, channel: &str, marker: &str) {
    server.publish(channel, &json!(marker).to_string());
    let next = ws.recv();
    assert_eq!(
        (next["type"].clone(), next["payload"].clone()),
        (json!("message"), json!(marker)),
        "{next}"
    );
}

fn snapshots_on_subscribe_and_deltas_once_per_user(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut alice = Ws::auth(server.addr, "alice");
    alice.send_json(json!({"type": "subscribe", "channel": "room"}));
    alice.recv_type("subscribed");
    assert_eq!(
        alice.recv(),
        json!({"type": "presence", "channel": "room", "users": ["alice"]})
    );

    let mut bob = Ws::auth(server.addr, "bob");
    bob.send_json(json!({"type": "subscribe", "channel": "room"}));
    bob.recv_type("subscribed");
    let snapshot = bob.recv_type("presence");
    let mut users: Vec<String> = serde_json::from_value(snapshot["users"].clone()).expect("users");
    users.sort();
    assert_eq!(users, ["alice", "bob"], "{snapshot}");
    assert_eq!(
        alice.recv(),
        json!({"type": "join", "channel": "room", "user": "bob"})
    );

    // Bob's second connection: no second join.
    let mut bob_again = Ws::auth(server.addr, "bob");
    bob_again.subscribe("room");
    next_is_marker(&server, &mut alice, "room", "after second join");
    assert_eq!(bob.recv_type("message")["payload"], "after second join");

    // One of Bob's connections leaves: Bob is still present.
    bob.send_json(json!({"type": "unsubscribe", "channel": "room", "id": "u"}));
    bob.recv_type("unsubscribed");
    next_is_marker(&server, &mut alice, "room", "after first leave");

    // The last one goes away without a word: Bob leaves.
    drop(bob_again);
    assert_eq!(
        alice.recv(),
        json!({"type": "leave", "channel": "room", "user": "bob"})
    );
    alice.send_json(json!({"type": "presence", "channel": "room", "id": "q"}));
    assert_eq!(
        alice.recv(),
        json!({"type": "presence", "channel": "room", "users": ["alice"], "id": "q"})
    );
}

fn presence_of_a_channel_one_is_not_in_can_be_asked(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut alice = Ws::auth(server.addr, "alice");
    alice.subscribe("room");
    let mut bob = Ws::auth(server.addr, "bob");
    bob.send_json(json!({"type": "presence", "channel": "room", "id": "q"}));
    assert_eq!(
        bob.recv(),
        json!({"type": "presence", "channel": "room", "users": ["alice"], "id": "q"})
    );
    bob.send_json(json!({"type": "presence", "channel": "empty", "id": "r"}));
    assert_eq!(
        bob.recv(),
        json!({"type": "presence", "channel": "empty", "users": [], "id": "r"})
    );
}

runtime_tests! {
    snapshots_on_subscribe_and_deltas_once_per_user => smol, smol2, blocking, tokio, tokio2;
    presence_of_a_channel_one_is_not_in_can_be_asked => smol, smol2, blocking, tokio, tokio2, example;
}
