//! The server API across nodes: a request to any node answers for, or
//! acts on, the users of every node.

use serde_json::json;

use crate::support::{Cluster, join, until};
use tether_testkit::ws::Ws;

#[test]
fn api_disconnect_on_one_node_closes_the_users_connections_held_on_another() {
    let cluster = Cluster::start();
    let [a, b, c] = &cluster.nodes;
    let mut alice = Ws::auth(b.addr, "alice");
    let mut alice_too = Ws::auth(c.addr, "alice");
    let mut bob = Ws::auth(b.addr, "bob");
    let body = json!({"user": "alice", "reconnect": false, "reason": "banned"});
    assert_eq!(a.api("/api/disconnect", body), (200, json!({})));
    assert_eq!(alice.expect_close(), (4500, "banned".to_owned()));
    assert_eq!(alice_too.expect_close(), (4500, "banned".to_owned()));
    bob.send_json(json!({"type": "ping"}));
    assert_eq!(bob.recv(), json!({"type": "pong"}), "bob stays");
}

#[test]
fn api_presence_history_and_channels_on_one_node_see_every_node() {
    let cluster = Cluster::start();
    let [a, b, c] = &cluster.nodes;
    let mut alice = Ws::auth(b.addr, "alice");
    join(&mut alice, "room");
    let mut bob = Ws::auth(c.addr, "bob");
    join(&mut bob, "room");
    let mut bob_too = Ws::auth(b.addr, "bob");
    join(&mut bob_too, "room");
    let room = json!({"channel": "room"});
    assert_eq!(
        a.api("/api/presence", room.clone()),
        (200, json!({"users": ["alice", "bob"]}))
    );
    assert_eq!(
        a.api("/api/presence_stats", room.clone()),
        (200, json!({"users": 2, "connections": 3}))
    );
    assert_eq!(
        a.api("/api/channels", json!({"pattern": "ro*"})),
        (200, json!({"channels": ["room"], "total": 1}))
    );
    assert_eq!(c.api_publish_ok("room", json!("hi")), 1);
    let (status, history) = a.api("/api/history", room);
    assert_eq!(status, 200, "{history}");
    assert_eq!(
        history["publications"],
        json!([{"type": "message", "channel": "room", "payload": "hi", "offset": 1}])
    );
    let (status, broadcast) = b.api(
        "/api/broadcast",
        json!({"channels": ["room", "hall"], "payload": 2}),
    );
    assert_eq!(status, 200, "{broadcast}");
    assert_eq!(
        broadcast["results"],
        json!([{"channel": "room", "offset": 2}, {"channel": "hall", "offset": 1}])
    );
}

#[test]
fn api_unsubscribe_on_one_node_ends_a_subscription_held_on_another() {
    let cluster = Cluster::start();
    let [a, b, c] = &cluster.nodes;
    let mut alice = Ws::auth(b.addr, "alice");
    join(&mut alice, "room");
    let mut carol = Ws::auth(c.addr, "carol");
    join(&mut carol, "room");
    let body = json!({"user": "alice", "channel": "room"});
    assert_eq!(a.api("/api/unsubscribe", body), (200, json!({})));
    until(&mut alice, |message| {
        *message == json!({"type": "unsubscribed", "channel": "room", "reason": "server"})
    });
    until(&mut carol, |message| {
        message["type"] == "leave" && message["user"] == "alice"
    });
    assert_eq!(
        a.api("/api/presence", json!({"channel": "room"})),
        (200, json!({"users": ["carol"]}))
    );
}

#[test]
fn api_info_lists_every_node() {
    let cluster = Cluster::start();
    let _alice = Ws::auth(cluster.nodes[1].addr, "alice");
    // Each node's own answer comes after its registration, which it sends
    // first when its link comes up.
    for node in &cluster.nodes {
        assert_eq!(node.api("/api/info", json!({})).0, 200);
    }
    let (status, info) = cluster.nodes[0].api("/api/info", json!({}));
    assert_eq!(status, 200, "{info}");
    let nodes = info["nodes"].as_array().expect("a list of nodes");
    let mut ids: Vec<&str> = nodes
        .iter()
        .map(|node| node["id"].as_str().expect("an id"))
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "{info}");
    assert!(
        nodes.iter().all(|node| node["uptime_ms"].is_u64()),
        "{info}"
    );
    assert_eq!(info["totals"]["nodes"], 3);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
}
