//! PROTOCOL.md section 7: the per-connection rate limit and subscription
//! limit; section 11: the per-user bounds on connections and new channels.

use serde_json::{Value, json};
use tether_core::ServerConfig;

use crate::harness::{Runtime, config, dev_auth};
use tether_testkit::metrics::wait_for_metric;
use tether_testkit::ws::Ws;

fn a_burst_over_the_rate_limit_is_refused(runtime: Runtime) {
    const BURST: usize = 5;
    const SENT: usize = 8;
    let server = runtime.start(
        ServerConfig {
            rate_limit: 1,
            rate_burst: BURST as u32,
            ..config()
        },
        dev_auth(),
    );
    let mut ws = Ws::auth(server.addr, "alice");
    let pings: Vec<Value> = (0..SENT)
        .map(|n| json!({"type": "ping", "id": format!("p{n}")}))
        .collect();
    ws.send_batch(&pings);
    for n in 0..BURST {
        assert_eq!(ws.recv(), json!({"type": "pong", "id": format!("p{n}")}));
    }
    for n in BURST..SENT {
        let refused = ws.recv_error("RATE_LIMITED");
        assert_eq!(refused["id"], format!("p{n}"), "{refused}");
    }
}

fn subscriptions_beyond_the_limit_are_refused(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            max_subscriptions: 2,
            ..config()
        },
        dev_auth(),
    );
    let mut ws = Ws::auth(server.addr, "alice");
    ws.subscribe("one");
    ws.subscribe("two");
    // Subscribing again to a channel one is in takes no new place.
    ws.subscribe("one");
    ws.send_json(json!({"type": "subscribe", "channel": "three", "id": "s3"}));
    assert_eq!(ws.recv_error("LIMIT_EXCEEDED")["id"], "s3");
    // Leaving frees a place.
    ws.send_json(json!({"type": "unsubscribe", "channel": "two", "id": "u"}));
    ws.recv_type("unsubscribed");
    ws.subscribe("three");
}

fn a_connection_beyond_max_connections_per_user_closes_4029(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            max_connections_per_user: 2,
            ..config()
        },
        dev_auth(),
    );
    let first = Ws::auth(server.addr, "alice");
    let _second = Ws::auth(server.addr, "alice");
    let mut third = Ws::open(server.addr);
    third.send_json(json!({"type": "auth", "token": "alice"}));
    third.send_json(json!({"type": "ping", "id": "p"}));
    assert_eq!(
        third.expect_close(),
        (4029, "too many connections for this user".into())
    );
    let _bob = Ws::auth(server.addr, "bob");
    drop(first);
    wait_for_metric(server.addr, "tether_connections", |open| open == 2);
    let _again = Ws::auth(server.addr, "alice");
}

fn new_channels_beyond_max_new_channels_per_user_are_refused(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            max_new_channels_per_user: 2,
            ..config()
        },
        dev_auth(),
    );
    let mut alice = Ws::auth(server.addr, "alice");
    alice.subscribe("one");
    alice.send_json(json!({"type": "publish", "channel": "two", "payload": 2, "id": "p2"}));
    assert_eq!(alice.recv_type("ack")["id"], "p2");
    alice.send_json(json!({"type": "subscribe", "channel": "three", "id": "s3"}));
    assert_eq!(alice.recv_error("LIMIT_EXCEEDED")["id"], "s3");
    alice.send_json(json!({"type": "publish", "channel": "four", "payload": 4, "id": "p4"}));
    assert_eq!(alice.recv_error("LIMIT_EXCEEDED")["id"], "p4");
    // Channels the node holds are not new: a subscriber (one), history (two).
    alice.subscribe("two");
    alice.send_json(json!({"type": "publish", "channel": "one", "payload": 1, "id": "p1"}));
    alice.recv_type("message");
    assert_eq!(alice.recv_type("ack")["id"], "p1");
    let mut bob = Ws::auth(server.addr, "bob");
    bob.subscribe("three");
    alice.subscribe("three");
}

runtime_tests! {
    a_burst_over_the_rate_limit_is_refused => smol, blocking, tokio;
    subscriptions_beyond_the_limit_are_refused => smol, blocking, tokio;
    a_connection_beyond_max_connections_per_user_closes_4029 => smol, blocking, tokio;
    new_channels_beyond_max_new_channels_per_user_are_refused => smol, blocking, tokio;
}
