//! Publications across nodes: offsets assigned by Redis, identical on
//! every node, one order for concurrent publishers, and the HTTP publish
//! API on any node.

use std::collections::BTreeMap;
use std::thread;

use serde_json::{Value, json};

use crate::support::{Cluster, offsets, publications, publish, subscribers};
use tether_testkit::ws::Ws;

#[test]
fn a_publication_on_one_node_reaches_the_other_nodes_with_identical_offsets() {
    let cluster = Cluster::start();
    let (mut subscribers, answers) = subscribers(&cluster.nodes, "news");
    assert!(answers[0]["epoch"].is_string(), "{}", answers[0]);
    for answer in &answers {
        assert_eq!(
            (&answer["epoch"], &answer["offset"]),
            (&answers[0]["epoch"], &json!(0)),
            "one epoch on every node: {answers:?}"
        );
    }

    let mut publisher = Ws::auth(cluster.nodes[0].addr, "publisher");
    for n in 1..=10 {
        let ack = publish(&mut publisher, "news", json!({"n": n}), &format!("p{n}"));
        assert_eq!((&ack["type"], &ack["offset"]), (&json!("ack"), &json!(n)));
    }
    let expected: Vec<Value> = (1..=10)
        .map(|n| {
            json!({"type": "message", "channel": "news", "payload": {"n": n},
                   "sender": "publisher", "offset": n})
        })
        .collect();
    for subscriber in &mut subscribers {
        assert_eq!(publications(subscriber, 10), expected);
    }
}

#[test]
fn concurrent_publishers_on_every_node_yield_one_order_seen_on_every_node() {
    const EACH: u64 = 40;
    let cluster = Cluster::start();
    let (mut subscribers, _) = subscribers(&cluster.nodes, "chat");

    // Each publisher sends all its messages in one write, then reads its
    // acks: the three streams reach Redis interleaved.
    let acks: Vec<Vec<u64>> = thread::scope(|scope| {
        let publishers: Vec<_> = cluster
            .nodes
            .iter()
            .map(|node| node.addr)
            .enumerate()
            .map(|(i, addr)| {
                scope.spawn(move || {
                    let mut ws = Ws::auth(addr, &format!("pub-{i}"));
                    let batch: Vec<Value> = (0..EACH)
                        .map(|n| {
                            json!({"type": "publish", "channel": "chat",
                                   "payload": {"n": n}, "id": format!("{n}")})
                        })
                        .collect();
                    ws.send_batch(&batch);
                    (0..EACH)
                        .map(|n| {
                            let ack = ws.recv_type("ack");
                            assert_eq!(ack["id"], format!("{n}"), "acks in order: {ack}");
                            ack["offset"].as_u64().expect("an offset")
                        })
                        .collect()
                })
            })
            .collect();
        publishers
            .into_iter()
            .map(|publisher| publisher.join().expect("the publisher finishes"))
            .collect()
    });

    // Every offset from 1 on went to exactly one publication, and each
    // publisher's own publications kept their order.
    let mut by_offset = BTreeMap::new();
    for (i, offsets) in acks.iter().enumerate() {
        assert!(
            offsets.windows(2).all(|pair| pair[0] < pair[1]),
            "pub-{i}: {offsets:?}"
        );
        for (n, offset) in offsets.iter().enumerate() {
            assert_eq!(by_offset.insert(*offset, (format!("pub-{i}"), n)), None);
        }
    }
    let total = 3 * EACH;
    assert_eq!(
        by_offset.keys().copied().collect::<Vec<u64>>(),
        (1..=total).collect::<Vec<u64>>()
    );

    let seen: Vec<Vec<Value>> = subscribers
        .iter_mut()
        .map(|subscriber| publications(subscriber, total as usize))
        .collect();
    for message in &seen[0] {
        let (sender, n) = &by_offset[&message["offset"].as_u64().expect("an offset")];
        assert_eq!(
            (&message["sender"], &message["payload"]),
            (&json!(sender), &json!({"n": n})),
            "the publication acked with this offset"
        );
    }
    assert_eq!(offsets(&seen[0]), (1..=total).collect::<Vec<u64>>());
    assert_eq!(seen[1], seen[0], "node b delivers node a's order");
    assert_eq!(seen[2], seen[0], "node c delivers node a's order");
}

#[test]
fn the_http_publish_api_works_on_every_node() {
    let cluster = Cluster::start();
    let (mut subscribers, _) = subscribers(&cluster.nodes, "alerts");
    for (i, node) in cluster.nodes.iter().enumerate() {
        assert_eq!(
            node.api_publish_ok("alerts", json!({"from": i})),
            i as u64 + 1
        );
    }
    let expected: Vec<Value> = (0..3)
        .map(|i| {
            json!({"type": "message", "channel": "alerts", "payload": {"from": i},
                   "offset": i + 1})
        })
        .collect();
    for subscriber in &mut subscribers {
        assert_eq!(publications(subscriber, 3), expected);
    }
}
