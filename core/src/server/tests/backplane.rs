//! A node with a backplane, in virtual time: a memory store stands in for
//! the shared one, and the test decides when the link fails.

use super::*;
use crate::hub::{MemoryStore, StoreEvent};

/// A node made with [`Server::with_backplane`] and the store behind it.
pub(super) struct Cluster {
    pub(super) node: Node,
    store: MemoryStore,
}

impl Cluster {
    pub(super) fn new() -> Cluster {
        let config = ServerConfig::dev();
        Cluster {
            node: Node::with_server(
                Server::with_backplane(config.clone(), 1).expect("a valid config"),
            ),
            store: MemoryStore::new(&config, "redis"),
        }
    }

    /// Carries requests to the store and events back until nothing moves.
    pub(super) fn exchange(&mut self) {
        loop {
            let mut moved = false;
            while let Some(request) = self.node.store_requests.pop_front() {
                moved = true;
                self.store.handle_request(self.node.now, request);
            }
            while let Some(event) = self.store.poll_event() {
                moved = true;
                self.node.server.handle_store_event(self.node.now, event);
                self.node.drain();
            }
            if !moved {
                return;
            }
        }
    }

    pub(super) fn down(&mut self) {
        self.node
            .server
            .handle_store_event(self.node.now, StoreEvent::Down);
        self.node.drain();
    }

    fn healthz(&mut self) -> String {
        self.node.http("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    }

    fn metric(&mut self, name: &str) -> String {
        let text = self.node.server.metrics_text();
        text.lines()
            .find(|line| line.split(' ').next() == Some(name))
            .unwrap_or_default()
            .to_owned()
    }
}

#[test]
fn healthz_and_metrics_say_when_the_backplane_is_down_and_connections_stay_open() {
    let mut cluster = Cluster::new();
    assert!(cluster.healthz().starts_with("HTTP/1.1 503"));
    assert!(cluster.healthz().ends_with("backplane down"));
    assert_eq!(
        cluster.metric("tether_backplane_up"),
        "tether_backplane_up 0"
    );

    cluster.exchange();
    assert!(cluster.healthz().starts_with("HTTP/1.1 200"));
    assert_eq!(
        cluster.metric("tether_backplane_up"),
        "tether_backplane_up 1"
    );
    let alice = cluster.node.connect("alice");
    cluster
        .node
        .send(alice, r#"{"type":"subscribe","channel":"chat","id":"s"}"#);
    cluster.exchange();
    assert!(matches!(
        cluster.node.replies(alice)[..],
        [
            ServerMessage::Subscribed { .. },
            ServerMessage::Presence { .. }
        ]
    ));

    cluster.down();
    assert!(cluster.healthz().ends_with("backplane down"));
    assert_eq!(
        cluster.metric("tether_backplane_up"),
        "tether_backplane_up 0"
    );
    assert_eq!(
        cluster.metric("tether_backplane_errors_total"),
        "tether_backplane_errors_total 1"
    );
    cluster.node.send(
        alice,
        r#"{"type":"publish","channel":"chat","payload":1,"id":"p"}"#,
    );
    assert!(matches!(
        &cluster.node.replies(alice)[..],
        [ServerMessage::Error { id: Some(id), code: ErrorCode::Unavailable, .. }] if id.as_str() == "p"
    ));
    assert_eq!(cluster.node.server.transport(alice), Transport::Open);
    assert!(cluster.node.closed.is_empty(), "no connection was closed");
}

#[test]
fn the_publish_api_waits_for_the_backplane_and_answers_503_without_it() {
    let mut cluster = Cluster::new();
    let body = r#"{"channel":"news","payload":1}"#;
    let refused = cluster.node.http(&api_request(Some(API_KEY), body));
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("UNAVAILABLE"), "{refused}");
    cluster.exchange();

    let conn = cluster.node.open();
    cluster
        .node
        .read(conn, api_request(Some(API_KEY), body).as_bytes());
    assert!(
        cluster.node.wires[&conn].http.is_empty(),
        "waits for the store"
    );
    cluster.exchange();
    let answer = String::from_utf8_lossy(&cluster.node.wires[&conn].http).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"offset":1}"#), "{answer}");

    let conn = cluster.node.open();
    cluster
        .node
        .read(conn, api_request(Some(API_KEY), body).as_bytes());
    cluster.down();
    let answer = String::from_utf8_lossy(&cluster.node.wires[&conn].http).into_owned();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
}

#[test]
fn an_application_publish_is_answered_when_the_backplane_answers() {
    let mut cluster = Cluster::new();
    assert_eq!(
        cluster.node.publish("news", "1"),
        Err(PublishError::Unavailable),
        "the link is not up yet"
    );
    cluster.exchange();
    let token = cluster.node.start_publish("news", "1");
    assert_eq!(
        cluster.node.published.get(&token),
        None,
        "waits for the store"
    );
    cluster.exchange();
    assert_eq!(cluster.node.published.remove(&token), Some(Ok(1)));
    assert!(matches!(
        cluster.node.publish("no good", "1"),
        Err(PublishError::InvalidChannel(_))
    ));
}

#[test]
fn a_new_node_asks_to_connect_and_its_drain_ends_after_every_departure() {
    let config = ServerConfig {
        close_timeout: Duration::from_secs(60),
        ..ServerConfig::dev()
    };
    let mut cluster = Cluster {
        node: Node::with_server(Server::with_backplane(config.clone(), 1).expect("a valid config")),
        store: MemoryStore::new(&config, "redis"),
    };
    cluster.node.drain();
    assert!(
        matches!(
            cluster.node.store_requests.front(),
            Some(StoreRequest::Connect)
        ),
        "before any input"
    );
    cluster.exchange();
    let alice = cluster.node.connect("alice");
    cluster
        .node
        .send(alice, r#"{"type":"subscribe","channel":"room"}"#);
    cluster.exchange();

    cluster.node.server.shutdown(cluster.node.now);
    cluster.node.drain();
    cluster.node.at(cluster.node.now + config.shutdown_timeout);
    assert!(cluster.node.drained, "alice never answered the 1001");
    assert_eq!(cluster.node.server.transport(alice), Transport::Open);
    let left = cluster.node.store_requests.iter().any(|request| {
        matches!(request, StoreRequest::Leave { channel, user }
            if channel.as_str() == "room" && user == "alice")
    });
    assert!(
        left,
        "the session ended with the 1001, its socket still open: {:?}",
        cluster.node.store_requests
    );
}
