//! Two nodes of two shards each on one Redis (PROTOCOL.md section 11,
//! "Shards on a Redis backplane"): each node is one node to Redis, with
//! subscribers of one channel on both shards of both nodes.
//!
//! A node hands consecutive connections to different shards, so the two
//! connections a test opens one after the other on a fresh node sit on
//! its two shards.

use serde_json::{Value, json};
use tether_testkit::ws::Ws;

use crate::support::{ShardedPair, join, offsets, presence, publications, until};

/// `POST /api/presence_stats` of `channel` on `node`: users and
/// connections over all nodes.
fn presence_stats(pair: &ShardedPair, node: usize, channel: &str) -> (u64, u64) {
    let (status, body) = pair.nodes[node].api("/api/presence_stats", json!({"channel": channel}));
    assert_eq!(status, 200, "{body}");
    let count = |key: &str| {
        body[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {body}"))
    };
    (count("users"), count("connections"))
}

/// The payloads of publications.
fn payloads(messages: &[Value]) -> Vec<Value> {
    messages
        .iter()
        .map(|message| message["payload"].clone())
        .collect()
}

#[test]
fn sharded_nodes_keep_one_order_one_presence_and_come_back_whole_after_a_redis_restart() {
    let mut pair = ShardedPair::start(2);
    let (a, b) = (pair.nodes[0].addr, pair.nodes[1].addr);
    // alice on both shards of the smol node and once on the tokio node;
    // bob on the tokio node's other shard.
    let mut subscribers = [
        Ws::auth(a, "alice"),
        Ws::auth(a, "alice"),
        Ws::auth(b, "alice"),
        Ws::auth(b, "bob"),
    ];
    for ws in &mut subscribers {
        join(ws, "chat");
    }
    assert_eq!(presence(&mut subscribers[3], "chat"), ["alice", "bob"]);
    assert_eq!(presence_stats(&pair, 0, "chat"), (2, 4));

    for n in 1..=10u64 {
        let node = &pair.nodes[(n % 2) as usize];
        assert_eq!(node.api_publish_ok("chat", json!(n)), n);
    }
    let sent: Vec<Value> = (1..=10).map(|n| json!(n)).collect();
    for ws in &mut subscribers {
        let received = publications(ws, 10);
        assert_eq!(offsets(&received), (1..=10).collect::<Vec<_>>());
        assert_eq!(payloads(&received), sent, "once each, in order");
    }

    pair.redis.kill();
    for node in &pair.nodes {
        node.await_link_failed();
    }
    pair.redis.restart();
    for node in &pair.nodes {
        node.await_link_up();
    }
    // Redis lost everything: every subscriber, on either shard, is told
    // that its channel began anew.
    for ws in &mut subscribers {
        let announced = until(ws, |message| message["type"] == "subscribed");
        assert_eq!(announced["recovered"], json!(false), "{announced}");
    }
    assert_eq!(
        presence_stats(&pair, 1, "chat"),
        (2, 4),
        "each node restated the members of both its shards"
    );

    for n in 1..=3u64 {
        assert_eq!(pair.nodes[1].api_publish_ok("chat", json!(n)), n);
    }
    for ws in &mut subscribers {
        assert_eq!(offsets(&publications(ws, 3)), [1, 2, 3]);
    }

    let [first, second, third, mut bob] = subscribers;
    drop(first);
    drop(second);
    drop(third);
    let left = until(&mut bob, |message| message["type"] == "leave");
    assert_eq!(left["user"], "alice", "{left}");
    assert_eq!(presence(&mut bob, "chat"), ["bob"]);
    for node in &mut pair.nodes {
        node.stop();
    }
}
