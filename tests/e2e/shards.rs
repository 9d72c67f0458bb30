//! PROTOCOL.md section 10, `threads`: a node of two shards. Connections
//! are handed to the shards in turn, so consecutive connections sit on
//! different shards (their session ids start with different shard ids);
//! channels, presence, limits and metrics are the whole node's.

use std::thread;

use serde_json::{Value, json};
use tether_core::ServerConfig;

use crate::harness::{Runtime, config, dev_auth};
use tether_testkit::metrics::{metric, wait_for_metric};
use tether_testkit::ws::{Ws, shard_of};

/// Two connections of `users` on different shards, authenticated.
fn on_two_shards(addr: std::net::SocketAddr, users: [&str; 2]) -> (Ws, Ws) {
    let (first, first_ack) = Ws::auth_with(addr, users[0]);
    let (second, second_ack) = Ws::auth_with(addr, users[1]);
    assert_ne!(shard_of(&first_ack), shard_of(&second_ack));
    (first, second)
}

fn subscribers_on_two_shards_get_every_publication_once_in_order(runtime: Runtime) {
    const EACH: u64 = 100;
    let server = runtime.start(config(), dev_auth());
    let (mut bob, mut carol) = on_two_shards(server.addr, ["bob", "carol"]);
    bob.subscribe("race");
    carol.subscribe("race");
    assert_eq!(bob.recv_type("join")["user"], "carol");
    let (mut alice, mut dave) = on_two_shards(server.addr, ["alice", "dave"]);
    thread::scope(|scope| {
        scope.spawn(|| {
            for n in 0..EACH {
                server.publish("race", &json!({"api": n}).to_string());
            }
        });
        for (ws, name) in [(&mut alice, "alice"), (&mut dave, "dave")] {
            scope.spawn(move || {
                for n in 0..EACH {
                    ws.send_json(
                        json!({"type": "publish", "channel": "race", "payload": {name: n}}),
                    );
                }
                ws.send_json(json!({"type": "ping", "id": "done"}));
                assert_eq!(ws.recv_type("pong")["id"], "done");
            });
        }
    });
    let total = 3 * EACH;
    let received =
        |ws: &mut Ws| -> Vec<Value> { (0..total).map(|_| ws.recv_type("message")).collect() };
    let seen_by_bob = received(&mut bob);
    let seen_by_carol = received(&mut carol);
    assert_eq!(seen_by_bob, seen_by_carol, "one order, the same offsets");
    let offsets: Vec<u64> = seen_by_bob
        .iter()
        .map(|message| message["offset"].as_u64().expect("an offset"))
        .collect();
    assert_eq!(
        offsets,
        (1..=total).collect::<Vec<_>>(),
        "no loss, no duplicate"
    );
    for publisher in ["api", "alice", "dave"] {
        let own: Vec<&Value> = seen_by_bob
            .iter()
            .filter_map(|message| message["payload"].get(publisher))
            .collect();
        let expected: Vec<Value> = (0..EACH).map(|n| json!(n)).collect();
        assert_eq!(
            own,
            expected.iter().collect::<Vec<_>>(),
            "{publisher}'s order"
        );
    }
}

fn a_user_on_two_shards_is_present_once_and_leaves_with_its_last_connection(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let (mut watcher, mut first) = on_two_shards(server.addr, ["watcher", "carol"]);
    // The third connection is the first shard's again: carol is on both.
    let mut second = Ws::auth(server.addr, "carol");
    watcher.subscribe("room");
    first.subscribe("room");
    assert_eq!(watcher.recv_type("join")["user"], "carol");
    second.subscribe("room");
    watcher.send_json(json!({"type": "presence", "channel": "room", "id": "p"}));
    let presence = watcher.recv_type("presence");
    assert_eq!(presence["users"], json!(["carol", "watcher"]), "{presence}");

    drop(first);
    wait_for_metric(server.addr, "tether_connections", |open| open == 2);
    watcher.send_json(json!({"type": "ping", "id": "still"}));
    assert_eq!(
        watcher.recv(),
        json!({"type": "pong", "id": "still"}),
        "no leave while carol has a connection on the other shard"
    );
    drop(second);
    assert_eq!(watcher.recv_type("leave")["user"], "carol");
}

fn max_connections_per_user_counts_every_shard(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            max_connections_per_user: 2,
            ..config()
        },
        dev_auth(),
    );
    let (first, _second) = on_two_shards(server.addr, ["alice", "alice"]);
    for _ in 0..2 {
        let mut refused = Ws::open(server.addr);
        refused.send_json(json!({"type": "auth", "token": "alice"}));
        assert_eq!(
            refused.expect_close(),
            (4029, "too many connections for this user".into())
        );
    }
    drop(first);
    wait_for_metric(server.addr, "tether_connections", |open| open == 1);
    let _again = Ws::auth(server.addr, "alice");
}

fn metrics_are_the_whole_nodes_on_every_shard(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let (mut alice, mut bob) = on_two_shards(server.addr, ["alice", "bob"]);
    let _carol = Ws::auth(server.addr, "carol");
    alice.subscribe("news");
    bob.subscribe("news");
    bob.subscribe("other");
    // Each request is a connection of its own: consecutive ones are served
    // by different shards.
    for _ in 0..2 {
        assert_eq!(metric(server.addr, "tether_connections"), 3);
        assert_eq!(metric(server.addr, "tether_connections_total"), 3);
        assert_eq!(metric(server.addr, "tether_channels"), 2);
    }
}

runtime_tests! {
    subscribers_on_two_shards_get_every_publication_once_in_order => smol2, tokio2;
    a_user_on_two_shards_is_present_once_and_leaves_with_its_last_connection => smol2, tokio2;
    max_connections_per_user_counts_every_shard => smol2, tokio2;
    metrics_are_the_whole_nodes_on_every_shard => smol2, tokio2;
}
