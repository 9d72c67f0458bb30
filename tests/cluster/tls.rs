//! A cluster whose Redis speaks TLS only (`rediss://`, `redis_ca_file`):
//! the backplane works over it as over plain Redis.

use serde_json::{Value, json};

use crate::support::{Cluster, publications, publish, subscribers};
use tether_testkit::tls::TestCa;
use tether_testkit::ws::Ws;

#[test]
fn a_publication_crosses_nodes_through_a_redis_speaking_tls() {
    let ca = TestCa::new("cluster-rediss");
    let cluster = Cluster::with_tls(&ca);
    assert!(cluster.redis.url().starts_with("rediss://"));
    let (mut subscribers, _) = subscribers(&cluster.nodes, "news");
    let mut publisher = Ws::auth(cluster.nodes[0].addr, "publisher");
    for n in 1..=3 {
        let ack = publish(&mut publisher, "news", json!({"n": n}), &format!("p{n}"));
        assert_eq!(ack["offset"], n);
    }
    let expected: Vec<Value> = (1..=3)
        .map(|n| {
            json!({"type": "message", "channel": "news", "payload": {"n": n},
                   "sender": "publisher", "offset": n})
        })
        .collect();
    for subscriber in &mut subscribers {
        assert_eq!(publications(subscriber, 3), expected);
    }
}
