//! Presence across nodes, and what happens to the users and clients of a
//! node that dies.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Cluster, PRESENCE_TTL, join, offsets, presence, publications, until};
use tether_testkit::ws::Ws;

/// Whether `message` is the presence change `kind` (`join`, `leave`) of
/// `user`.
fn change(kind: &'static str, user: &'static str) -> impl Fn(&Value) -> bool {
    move |message| message["type"] == kind && message["user"] == user
}

#[test]
fn presence_and_join_leave_span_the_nodes() {
    let cluster = Cluster::start();
    let [a, b, c] = &cluster.nodes;
    let mut alice = Ws::auth(a.addr, "alice");
    assert_eq!(join(&mut alice, "room").1, ["alice"]);
    let mut bob = Ws::auth(b.addr, "bob");
    assert_eq!(join(&mut bob, "room").1, ["alice", "bob"]);
    until(&mut alice, change("join", "bob"));
    let mut carol = Ws::auth(c.addr, "carol");
    assert_eq!(join(&mut carol, "room").1, ["alice", "bob", "carol"]);
    until(&mut alice, change("join", "carol"));
    until(&mut bob, change("join", "carol"));

    bob.send_json(json!({"type": "unsubscribe", "channel": "room", "id": "u"}));
    until(&mut bob, |message| message["type"] == "unsubscribed");
    until(&mut alice, change("leave", "bob"));
    until(&mut carol, change("leave", "bob"));
    assert_eq!(presence(&mut bob, "room"), ["alice", "carol"]);

    drop(carol);
    until(&mut alice, change("leave", "carol"));
    assert_eq!(presence(&mut alice, "room"), ["alice"]);
    assert_eq!(presence(&mut bob, "room"), ["alice"]);
}

#[test]
fn a_killed_node_s_users_leave_within_presence_ttl_and_its_clients_recover_on_another_node() {
    let mut cluster = Cluster::start();
    let [a, b, c] = &mut cluster.nodes;
    let mut alice = Ws::auth(a.addr, "alice");
    let (subscribed, _) = join(&mut alice, "room");
    let mut bob = Ws::auth(b.addr, "bob");
    join(&mut bob, "room");
    let mut carol = Ws::auth(c.addr, "carol");
    assert_eq!(join(&mut carol, "room").1, ["alice", "bob", "carol"]);
    assert_eq!(c.api_publish_ok("room", json!("1")), 1);
    assert_eq!(b.api_publish_ok("room", json!("2")), 2);
    let seen = publications(&mut alice, 2);
    assert_eq!(offsets(&seen), [1, 2]);

    a.kill();
    let killed = Instant::now();
    assert_eq!(b.api_publish_ok("room", json!("3")), 3);
    assert_eq!(c.api_publish_ok("room", json!("4")), 4);
    for watcher in [&mut bob, &mut carol] {
        watcher
            .raw()
            .set_read_timeout(Some(PRESENCE_TTL))
            .expect("a read timeout");
        until(watcher, change("leave", "alice"));
        assert!(
            killed.elapsed() < PRESENCE_TTL,
            "alice left after {:?}",
            killed.elapsed()
        );
    }
    assert_eq!(presence(&mut carol, "room"), ["bob", "carol"]);

    // Alice comes back on node b with the last position she saw.
    let mut moved = Ws::auth(b.addr, "alice");
    moved.send_json(json!({"type": "subscribe", "channel": "room", "id": "r",
                           "since": {"epoch": subscribed["epoch"], "offset": 2}}));
    let replay = publications(&mut moved, 2);
    assert_eq!(
        replay.iter().map(|m| &m["payload"]).collect::<Vec<_>>(),
        ["3", "4"]
    );
    assert_eq!(offsets(&replay), [3, 4]);
    let answer = moved.recv_type("subscribed");
    assert_eq!(
        (&answer["recovered"], &answer["offset"], &answer["epoch"]),
        (&json!(true), &json!(4), &subscribed["epoch"]),
        "{answer}"
    );
    moved.recv_type("presence");
    until(&mut carol, change("join", "alice"));
    assert_eq!(c.api_publish_ok("room", json!("5")), 5);
    assert_eq!(offsets(&publications(&mut moved, 1)), [5]);
}

#[test]
fn a_node_stopped_gracefully_announces_its_users_departures_on_every_node() {
    // Leases that outlive the test: only the node itself can announce.
    let ttl = Duration::from_secs(600);
    let mut cluster = Cluster::with_presence_ttl(ttl);
    let [a, b, c] = &mut cluster.nodes;
    let mut alice = Ws::auth(a.addr, "alice");
    join(&mut alice, "room");
    let mut bob = Ws::auth(b.addr, "bob");
    join(&mut bob, "room");
    let mut carol = Ws::auth(c.addr, "carol");
    assert_eq!(join(&mut carol, "room").1, ["alice", "bob", "carol"]);
    until(&mut alice, change("join", "carol"));
    until(&mut bob, change("join", "carol"));

    b.stop();
    assert_eq!(bob.expect_close().0, 1001);
    until(&mut alice, change("leave", "bob"));
    until(&mut carol, change("leave", "bob"));
    assert_eq!(presence(&mut alice, "room"), ["alice", "carol"]);

    // The same from a node on another runtime.
    c.stop();
    assert_eq!(carol.expect_close().0, 1001);
    until(&mut alice, change("leave", "carol"));
    assert_eq!(presence(&mut alice, "room"), ["alice"]);
}
