//! A cluster whose Redis speaks TLS only (`rediss://`, `redis_ca_file`):
//! the backplane works over it as over plain Redis; a Redis whose
//! certificate the CA file does not vouch for is a backplane that stays
//! down, with the reason in the log.

use serde_json::{Value, json};

use crate::support::{Cluster, publications, publish, subscribers};
use tether_testkit::http::get;
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

#[test]
fn a_redis_certificate_of_another_authority_keeps_the_link_down_and_says_why() {
    let signer = TestCa::new("cluster-rediss-signer");
    let trusted = TestCa::new("cluster-rediss-trusted");
    let cluster = Cluster::on_untrusted_tls(&signer, &trusted);
    for node in &cluster.nodes {
        let failed = node.await_connection_failed();
        assert!(
            failed.contains("invalid peer certificate") && failed.contains("UnknownIssuer"),
            "{failed}"
        );
        let health = get(node.addr, "/healthz");
        assert_eq!(
            (health.status, health.body.as_str()),
            (503, "backplane down")
        );
        let refused = node.api_publish("news", json!("lost"));
        assert_eq!(refused.status, 503, "{refused:?}");
        assert!(refused.body.contains("UNAVAILABLE"), "{refused:?}");
        let mut publisher = Ws::auth(node.addr, "publisher");
        let answer = publish(&mut publisher, "news", json!("lost"), "p");
        assert_eq!(answer["code"], "UNAVAILABLE", "{answer}");
        let again = node.await_connection_failed();
        assert!(
            again.contains("UnknownIssuer"),
            "a retry fails alike: {again}"
        );
    }
}
