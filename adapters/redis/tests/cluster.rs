//! Several smol nodes sharing one real Redis (PROTOCOL.md section 6): order
//! and offsets across nodes, recovery on another node, idempotency, the
//! HTTP API on any node, presence of a dead node, and Redis outages.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use tether_core::ServerConfig;
use tether_testkit::metrics::metric;

use support::{Client, Node, Redis, offsets};

fn payloads(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|message| message["payload"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn publications_on_every_node_reach_every_node_in_one_order_with_offsets_from_redis() {
    let redis = Redis::start();
    let config = ServerConfig::dev();
    let a = Node::start(&redis, "a", &config);
    let b = Node::start(&redis, "b", &config);
    let mut alice = Client::connect(&a, "alice");
    let mut bob = Client::connect(&b, "bob");
    alice.subscribe("chat");
    bob.subscribe("chat");
    let mut carol = Client::connect(&a, "carol");
    let mut dave = Client::connect(&b, "dave");
    for i in 0..25 {
        carol.send(&format!(
            r#"{{"type":"publish","channel":"chat","payload":"c{i}","id":"c{i}"}}"#
        ));
        dave.send(&format!(
            r#"{{"type":"publish","channel":"chat","payload":"d{i}","id":"d{i}"}}"#
        ));
    }
    let carol_acks: Vec<u64> = (0..25)
        .map(|_| carol.next_of("ack")["offset"].as_u64().unwrap())
        .collect();
    assert!(
        carol_acks.windows(2).all(|pair| pair[0] < pair[1]),
        "one publisher's offsets follow its order: {carol_acks:?}"
    );

    let on_a = alice.messages(50);
    let on_b = bob.messages(50);
    assert_eq!(offsets(&on_a), (1..=50).collect::<Vec<u64>>());
    assert_eq!(on_a, on_b, "both nodes deliver one order");
    let sent_by = |prefix: char| -> Vec<String> {
        payloads(&on_a)
            .into_iter()
            .filter(|payload| payload.starts_with(prefix))
            .collect()
    };
    assert_eq!(
        sent_by('c'),
        (0..25).map(|i| format!("c{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        sent_by('d'),
        (0..25).map(|i| format!("d{i}")).collect::<Vec<_>>()
    );
}

#[test]
fn a_client_recovers_on_another_node_with_since_and_the_http_api_publishes_on_any_node() {
    let redis = Redis::start();
    let config = ServerConfig::dev();
    let a = Node::start(&redis, "a", &config);
    let b = Node::start(&redis, "b", &config);
    let mut alice = Client::connect(&a, "alice");
    let subscribed = alice.subscribe("news");
    let epoch = subscribed["epoch"].as_str().unwrap().to_owned();
    assert_eq!(a.api_publish("news", r#""1""#), 1);
    assert_eq!(b.api_publish("news", r#""2""#), 2);
    assert_eq!(payloads(&alice.messages(2)), ["1", "2"]);
    drop(alice);

    assert_eq!(b.api_publish("news", r#""3""#), 3);
    assert_eq!(a.api_publish("news", r#""4""#), 4);
    let mut moved = Client::connect(&b, "alice");
    moved.send(&format!(
        r#"{{"type":"subscribe","channel":"news","id":"r","since":{{"epoch":"{epoch}","offset":2}}}}"#
    ));
    let replay = [moved.next(), moved.next()];
    assert_eq!(payloads(&replay), ["3", "4"]);
    let answer = moved.next();
    assert_eq!(answer["type"], "subscribed");
    assert_eq!(answer["recovered"], true);
    assert_eq!(answer["offset"], 4);
    assert_eq!(answer["epoch"], epoch.as_str());
    assert_eq!(a.api_publish("news", r#""5""#), 5);
    assert_eq!(payloads(&moved.messages(1)), ["5"]);
}

#[test]
fn a_retried_publish_is_recognised_on_any_node() {
    let redis = Redis::start();
    let config = ServerConfig::dev();
    let a = Node::start(&redis, "a", &config);
    let b = Node::start(&redis, "b", &config);
    let mut watcher = Client::connect(&b, "watcher");
    watcher.subscribe("orders");
    let mut alice = Client::connect(&a, "alice");
    alice.send(
        r#"{"type":"publish","channel":"orders","payload":"once","id":"p","idempotency_key":"k"}"#,
    );
    assert_eq!(alice.next_of("ack")["offset"], 1);

    let mut again = Client::connect(&b, "alice");
    again.send(
        r#"{"type":"publish","channel":"orders","payload":"once","id":"r","idempotency_key":"k"}"#,
    );
    assert_eq!(again.next_of("ack")["offset"], 1, "the original ack");
    again.send(r#"{"type":"publish","channel":"orders","payload":"next","id":"p"}"#);
    assert_eq!(again.next_of("ack")["offset"], 2, "a request id is no key");
    assert_eq!(payloads(&watcher.messages(2)), ["once", "next"]);
}

#[test]
fn the_users_of_a_dead_node_leave_on_every_node_within_presence_ttl() {
    let redis = Redis::start();
    let config = ServerConfig {
        presence_ttl: Duration::from_secs(4),
        ..ServerConfig::dev()
    };
    let mut a = Node::start(&redis, "a", &config);
    let b = Node::start(&redis, "b", &config);
    let mut bob = Client::connect(&b, "bob");
    bob.subscribe("room");
    let mut alice = Client::connect(&a, "alice");
    alice.subscribe("room");
    let join = bob.next_of("join");
    assert_eq!(join["user"], "alice");

    a.crash();
    let died = Instant::now();
    bob.set_timeout(config.presence_ttl);
    let leave = bob.next_of("leave");
    assert!(died.elapsed() < config.presence_ttl);
    assert_eq!(leave["user"], "alice");
    bob.send(r#"{"type":"presence","channel":"room","id":"p"}"#);
    assert_eq!(bob.next_of("presence")["users"], serde_json::json!(["bob"]));
}

#[test]
fn while_redis_is_down_publishes_are_unavailable_and_after_it_returns_the_new_epoch_is_announced() {
    let mut redis = Redis::start();
    let config = ServerConfig::dev();
    let a = Node::start(&redis, "a", &config);
    let b = Node::start(&redis, "b", &config);
    let mut alice = Client::connect(&a, "alice");
    let before = alice.subscribe("chat");
    let mut bob = Client::connect(&b, "bob");
    assert_eq!(b.api_publish("chat", r#""1""#), 1);
    assert_eq!(payloads(&alice.messages(1)), ["1"]);

    redis.kill();
    a.wait_health(false);
    b.wait_health(false);
    assert_eq!(metric(a.addr, "tether_backplane_up"), 0);
    bob.send(r#"{"type":"publish","channel":"chat","payload":"lost","id":"x"}"#);
    let refused = bob.next();
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "UNAVAILABLE");
    assert_eq!(refused["id"], "x");
    alice.send(r#"{"type":"ping","id":"still-there"}"#);
    assert_eq!(alice.next()["type"], "pong", "connections stay open");

    redis.restart();
    a.wait_health(true);
    b.wait_health(true);
    bob.send(r#"{"type":"publish","channel":"chat","payload":"after","id":"y"}"#);
    assert_eq!(bob.next_of("ack")["offset"], 1, "a new epoch starts at 1");
    let announced = alice.next();
    assert_eq!(announced["type"], "subscribed");
    assert_eq!(announced["recovered"], false);
    assert_eq!(announced["offset"], 0);
    assert_ne!(announced["epoch"], before["epoch"]);
    // The node also refreshes its subscribers' presence once the link is
    // back; nothing else may come before the publication.
    let mut after = alice.next();
    while after["type"] == "presence" && after.get("id").is_none() {
        after = alice.next();
    }
    assert_eq!(
        (after["payload"].as_str(), after["offset"].as_u64()),
        (Some("after"), Some(1))
    );
}

#[test]
fn a_node_cut_from_redis_delivers_what_it_missed_in_order_before_anything_new() {
    let redis = Redis::start();
    let config = ServerConfig::dev();
    let a = Node::start(&redis, "a", &config);
    let b = Node::start(&redis, "b", &config);
    let mut alice = Client::connect(&a, "alice");
    alice.subscribe("chat");
    let mut bob = Client::connect(&b, "bob");
    let publish = |bob: &mut Client, payload: &str| {
        bob.send(&format!(
            r#"{{"type":"publish","channel":"chat","payload":"{payload}","id":"{payload}"}}"#
        ));
        bob.next_of("ack")["offset"].as_u64().unwrap()
    };
    publish(&mut bob, "1");
    publish(&mut bob, "2");
    assert_eq!(payloads(&alice.messages(2)), ["1", "2"]);

    // Cut node a (the only node following a channel: its pub/sub
    // connection follows chat and the control topic, b's only the control
    // topic) and keep it out.
    let mut admin = redis.admin();
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    let connected = clients.lines().count();
    let a_pubsub: Vec<&str> = clients
        .lines()
        .filter(|line| line.split(' ').any(|field| field == "sub=2"))
        .filter_map(|line| line.split(' ').next()?.strip_prefix("id="))
        .collect();
    assert_eq!(a_pubsub.len(), 1, "{clients}");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(connected - 2)
        .exec(&mut admin)
        .unwrap();
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(a_pubsub[0])
        .exec(&mut admin)
        .unwrap();
    a.wait_health(false);
    for payload in ["3", "4", "5"] {
        publish(&mut bob, payload);
    }
    assert!(!a.healthy(), "node a missed 3, 4 and 5");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(1000)
        .exec(&mut admin)
        .unwrap();
    a.wait_health(true);
    publish(&mut bob, "6");

    let received = alice.messages(4);
    assert_eq!(payloads(&received), ["3", "4", "5", "6"]);
    assert_eq!(offsets(&received), [3, 4, 5, 6]);
}

/// Fills Redis beyond its `maxmemory`, with `noeviction`: every script
/// that writes is then answered with an error.
fn fill(redis: &Redis) {
    let mut admin = redis.admin();
    for n in 0..32 {
        redis::cmd("SET")
            .arg(format!("filler:{n}"))
            .arg(vec![b'x'; 64 << 10])
            .exec(&mut admin)
            .unwrap();
    }
    let info: String = redis::cmd("INFO").arg("memory").query(&mut admin).unwrap();
    let used: u64 = info
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("used_memory in INFO");
    for (key, value) in [
        ("maxmemory-policy", "noeviction".to_owned()),
        ("maxmemory", (used - (1 << 20)).to_string()),
    ] {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(key)
            .arg(value)
            .exec(&mut admin)
            .unwrap();
    }
}

/// Frees what [`fill`] took.
fn free(redis: &Redis) {
    let mut admin = redis.admin();
    for n in 0..32 {
        redis::cmd("DEL")
            .arg(format!("filler:{n}"))
            .exec(&mut admin)
            .unwrap();
    }
}

#[test]
fn an_error_reply_of_a_full_redis_fails_its_request_not_the_link() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &ServerConfig::dev());
    let mut alice = Client::connect(&a, "alice");
    alice.subscribe("chat");

    // A new channel's scripts write first what makes Redis refuse them.
    fill(&redis);
    alice.send(r#"{"type":"publish","channel":"fresh","payload":"1","id":"p1"}"#);
    let refused = alice.next_of("error");
    assert_eq!(
        (refused["id"].as_str(), refused["code"].as_str()),
        (Some("p1"), Some("UNAVAILABLE")),
        "{refused}"
    );
    let mut bob = Client::connect(&a, "bob");
    bob.send(r#"{"type":"subscribe","channel":"news","id":"s1"}"#);
    let refused = bob.next_of("error");
    assert_eq!(
        (refused["id"].as_str(), refused["code"].as_str()),
        (Some("s1"), Some("UNAVAILABLE")),
        "{refused}"
    );
    assert!(a.healthy(), "/healthz stays 200");
    assert_eq!(metric(a.addr, "tether_backplane_up"), 1);
    assert_eq!(
        metric(a.addr, "tether_backplane_errors_total"),
        0,
        "the link never failed"
    );
    let request_errors = metric(a.addr, "tether_backplane_request_errors_total");
    assert!(request_errors >= 2, "{request_errors}");

    free(&redis);
    alice.send(r#"{"type":"publish","channel":"chat","payload":"2","id":"p2"}"#);
    assert_eq!(alice.next_of("ack")["id"], "p2");
    assert_eq!(offsets(&alice.messages(1)), [1]);
    assert_eq!(bob.subscribe("news")["offset"], 0);
    assert_eq!(metric(a.addr, "tether_backplane_errors_total"), 0);
}

#[test]
fn a_flood_to_new_channels_keeps_a_bounded_number_of_channels_in_redis() {
    let redis = Redis::start();
    let config = ServerConfig {
        history_max_channels: 5,
        ..ServerConfig::dev()
    };
    let a = Node::start(&redis, "a", &config);
    let mut alice = Client::connect(&a, "alice");
    let epoch = alice.subscribe("flood-0")["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 0..50 {
        assert_eq!(a.api_publish(&format!("flood-{n}"), r#""x""#), 1);
    }
    let mut admin = redis.admin();
    let mut count = |pattern: &str| -> usize {
        let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut admin).unwrap();
        keys.len()
    };
    assert_eq!(count("tether:{*}:history"), 5);
    assert_eq!(count("tether:{*}:meta"), 5);
    let kept: Vec<String> = redis::cmd("ZRANGE")
        .arg("tether:channels")
        .arg(0)
        .arg(-1)
        .query(&mut admin)
        .unwrap();
    assert_eq!(
        kept,
        ["flood-45", "flood-46", "flood-47", "flood-48", "flood-49"]
    );

    let mut late = Client::connect(&a, "late");
    late.send(&format!(
        r#"{{"type":"subscribe","channel":"flood-0","id":"r","since":{{"epoch":"{epoch}","offset":0}}}}"#
    ));
    let subscribed = late.next_of("subscribed");
    assert_eq!(subscribed["recovered"], false, "{subscribed}");
    assert_ne!(subscribed["epoch"], epoch.as_str(), "{subscribed}");
}
