//! A node of two shards in virtual time: each shard a [`Server`] with its
//! own connections, the [`Router`] between them, and the adapter's part
//! played by the test (requests to the router, events back, figures
//! shared after every exchange).

// The test plays the adapter, which shares the router behind a lock.
#![allow(clippy::disallowed_types)]

use std::sync::{Arc, Mutex};

use super::*;
use crate::hub::Router;
use crate::shard::{Figures, NodeShards};

/// What the adapter shares between shards: the router and each shard's
/// latest figures.
#[derive(Debug)]
struct Shared {
    shard: usize,
    router: Arc<Mutex<Router>>,
    figures: Arc<Mutex<Vec<Figures>>>,
}

impl NodeShards for Shared {
    fn with_router(&self, call: &mut dyn FnMut(&mut Router)) {
        call(&mut self.router.lock().unwrap());
    }

    fn others(&self) -> Figures {
        let figures = self.figures.lock().unwrap();
        let others = figures.iter().enumerate().filter(|(i, _)| *i != self.shard);
        others.fold(Figures::default(), |sum, (_, figures)| sum + *figures)
    }
}

struct Sharded {
    shards: Vec<Node>,
    router: Arc<Mutex<Router>>,
    figures: Arc<Mutex<Vec<Figures>>>,
}

impl Sharded {
    fn new(config: ServerConfig) -> Sharded {
        let router = Router::new(&config, 9, 2);
        Sharded::around(config, router)
    }

    /// Two shards in front of `router`.
    fn around(config: ServerConfig, router: Router) -> Sharded {
        let router = Arc::new(Mutex::new(router));
        let figures = Arc::new(Mutex::new(vec![Figures::default(); 2]));
        let shards = (0..2)
            .map(|shard| {
                let shared = Shared {
                    shard,
                    router: router.clone(),
                    figures: figures.clone(),
                };
                let server = Server::shard(config.clone(), shard as u64, Box::new(shared));
                Node::with_server(server.expect("a valid config"))
            })
            .collect();
        Sharded {
            shards,
            router,
            figures,
        }
    }

    /// Carries every shard's requests to the router and the router's
    /// events back until nothing moves, then shares the figures.
    fn exchange(&mut self) {
        loop {
            let mut moved = false;
            for (shard, node) in self.shards.iter_mut().enumerate() {
                let requests: Vec<StoreRequest> = node.store_requests.drain(..).collect();
                let mut router = self.router.lock().unwrap();
                for request in requests {
                    moved = true;
                    router.handle_request(node.now, shard, request);
                }
            }
            for (shard, node) in self.shards.iter_mut().enumerate() {
                let mut events = Vec::new();
                self.router.lock().unwrap().take_events(shard, &mut events);
                for event in events {
                    moved = true;
                    node.server.handle_store_event(node.now, event);
                    node.drain();
                }
            }
            if !moved {
                break;
            }
        }
        let mut figures = self.figures.lock().unwrap();
        for (shard, node) in self.shards.iter().enumerate() {
            figures[shard] = node.server.figures();
        }
    }

    /// The node's backplane sends `event` to the router, which hands it
    /// to the shards.
    fn backplane_says(&mut self, event: StoreEvent) {
        let now = self.shards[0].now;
        self.router.lock().unwrap().handle_store_event(now, event);
        self.exchange();
    }

    /// What the router sent its backplane since the last call.
    fn backplane_heard(&mut self) -> Vec<StoreRequest> {
        let mut router = self.router.lock().unwrap();
        std::iter::from_fn(|| router.poll_store_request()).collect()
    }

    fn send(&mut self, shard: usize, conn: ConnId, json: &str) {
        self.shards[shard].send(conn, json);
        self.exchange();
    }

    fn connect(&mut self, shard: usize, user: &str) -> ConnId {
        let conn = self.shards[shard].connect(user);
        self.exchange();
        conn
    }

    fn replies(&mut self, shard: usize, conn: ConnId) -> Vec<ServerMessage> {
        self.shards[shard].replies(conn)
    }

    fn metric(&self, shard: usize, name: &str) -> String {
        let text = self.shards[shard].server.metrics_text();
        text.lines()
            .find(|line| line.split(' ').next() == Some(name))
            .unwrap_or_default()
            .to_owned()
    }
}

fn publications(replies: &[ServerMessage]) -> Vec<(u64, String)> {
    replies
        .iter()
        .filter_map(|reply| match reply {
            ServerMessage::Message {
                offset, payload, ..
            } => Some((*offset, payload.get().to_owned())),
            _ => None,
        })
        .collect()
}

#[test]
fn subscribers_on_two_shards_get_every_publication_once_in_order_at_the_same_offsets() {
    let mut node = Sharded::new(ServerConfig::dev());
    let left = node.connect(0, "alice");
    let right = node.connect(1, "bob");
    node.send(0, left, r#"{"type":"subscribe","id":"s","channel":"news"}"#);
    node.send(
        1,
        right,
        r#"{"type":"subscribe","id":"s","channel":"news"}"#,
    );
    node.replies(0, left);
    node.replies(1, right);
    for n in 1..=3 {
        let shard = n % 2;
        let conn = [left, right][shard];
        let text = format!(r#"{{"type":"publish","id":"p{n}","channel":"news","payload":{n}}}"#);
        node.send(shard, conn, &text);
    }
    let expected: Vec<(u64, String)> = (1..=3).map(|n| (n, n.to_string())).collect();
    assert_eq!(publications(&node.replies(0, left)), expected);
    assert_eq!(publications(&node.replies(1, right)), expected);
}

#[test]
fn a_user_with_connections_on_two_shards_joins_once_and_leaves_with_its_last() {
    let mut node = Sharded::new(ServerConfig::dev());
    let watcher = node.connect(0, "watcher");
    node.send(
        0,
        watcher,
        r#"{"type":"subscribe","id":"w","channel":"room"}"#,
    );
    let first = node.connect(0, "carol");
    let second = node.connect(1, "carol");
    node.send(
        0,
        first,
        r#"{"type":"subscribe","id":"a","channel":"room"}"#,
    );
    node.send(
        1,
        second,
        r#"{"type":"subscribe","id":"b","channel":"room"}"#,
    );
    let presence = |replies: Vec<ServerMessage>| -> Vec<String> {
        replies
            .into_iter()
            .filter_map(|reply| match reply {
                ServerMessage::Join { user, .. } => Some(format!("join {user}")),
                ServerMessage::Leave { user, .. } => Some(format!("leave {user}")),
                _ => None,
            })
            .collect()
    };
    assert_eq!(presence(node.replies(0, watcher)), ["join carol"]);

    node.shards[0].server.handle_transport_closed(T0, first);
    node.shards[0].drain();
    node.exchange();
    assert_eq!(presence(node.replies(0, watcher)), Vec::<String>::new());
    node.shards[1].server.handle_transport_closed(T0, second);
    node.shards[1].drain();
    node.exchange();
    assert_eq!(presence(node.replies(0, watcher)), ["leave carol"]);
}

#[test]
fn max_connections_per_user_counts_the_connections_of_every_shard() {
    let config = ServerConfig {
        max_connections_per_user: 2,
        ..ServerConfig::dev()
    };
    let mut node = Sharded::new(config);
    let first = node.connect(0, "carol");
    node.connect(1, "carol");
    let refused = node.shards[0].open_as("carol", &[]);
    assert_eq!(
        node.shards[0].close_frame(refused),
        Some(CloseCode::TOO_MANY_CONNECTIONS)
    );
    let refused = node.shards[1].open_as("carol", &[]);
    assert_eq!(
        node.shards[1].close_frame(refused),
        Some(CloseCode::TOO_MANY_CONNECTIONS)
    );

    node.shards[0].server.handle_transport_closed(T0, first);
    node.shards[0].drain();
    node.connect(1, "carol");
}

#[test]
fn max_new_channels_per_user_counts_the_channels_a_user_creates_on_every_shard() {
    let config = ServerConfig {
        max_new_channels_per_user: 2,
        ..ServerConfig::dev()
    };
    let mut node = Sharded::new(config);
    let left = node.connect(0, "carol");
    let right = node.connect(1, "carol");
    node.send(0, left, r#"{"type":"subscribe","id":"a","channel":"a"}"#);
    node.send(1, right, r#"{"type":"subscribe","id":"b","channel":"b"}"#);
    node.send(1, right, r#"{"type":"subscribe","id":"a","channel":"a"}"#);
    node.send(0, left, r#"{"type":"subscribe","id":"c","channel":"c"}"#);
    let codes = |replies: Vec<ServerMessage>| -> Vec<String> {
        replies
            .into_iter()
            .filter_map(|reply| match reply {
                ServerMessage::Subscribed { channel, .. } => Some(channel.as_str().to_owned()),
                ServerMessage::Error { code, .. } => Some(code.as_str().to_owned()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(codes(node.replies(0, left)), ["a", "LIMIT_EXCEEDED"]);
    assert_eq!(
        codes(node.replies(1, right)),
        ["b", "a"],
        "a is not new: subscribed on the other shard"
    );
}

#[test]
fn metrics_on_any_shard_are_the_whole_nodes() {
    let mut node = Sharded::new(ServerConfig::dev());
    let left = node.connect(0, "alice");
    node.connect(1, "bob");
    node.connect(1, "carol");
    node.send(0, left, r#"{"type":"subscribe","id":"s","channel":"news"}"#);
    let right = node.connect(1, "dave");
    node.send(
        1,
        right,
        r#"{"type":"subscribe","id":"s","channel":"news"}"#,
    );
    node.send(
        1,
        right,
        r#"{"type":"subscribe","id":"t","channel":"other"}"#,
    );
    node.send(
        0,
        left,
        r#"{"type":"publish","channel":"news","payload":1}"#,
    );
    for shard in 0..2 {
        assert_eq!(
            node.metric(shard, "tether_history_channels"),
            "tether_history_channels 1"
        );
        assert_eq!(
            node.metric(shard, "tether_connections"),
            "tether_connections 4"
        );
        assert_eq!(
            node.metric(shard, "tether_connections_total"),
            "tether_connections_total 4"
        );
        assert_eq!(node.metric(shard, "tether_channels"), "tether_channels 2");
    }
}

#[test]
fn max_connections_counts_the_connections_of_every_shard() {
    let config = ServerConfig {
        max_connections: 2,
        ..ServerConfig::dev()
    };
    let mut node = Sharded::new(config);
    let first = node.shards[0].open();
    node.shards[1].open();
    let refused = node.shards[1].http("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    let refused = node.shards[0].http("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");

    node.shards[0].server.handle_transport_closed(T0, first);
    node.shards[0].drain();
    let served = node.shards[1].http("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
}

#[test]
fn api_info_on_a_shard_tells_the_whole_nodes_connections() {
    let mut node = Sharded::new(ServerConfig::dev());
    node.connect(0, "alice");
    node.connect(1, "bob");
    node.connect(1, "carol");
    node.exchange();
    let body = "{}";
    let request = format!(
        "POST /api/info HTTP/1.1\r\nHost: x\r\nAuthorization: {API_KEY}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let conn = node.shards[0].open();
    node.shards[0].read(conn, request.as_bytes());
    node.exchange();
    let answer = String::from_utf8_lossy(&node.shards[0].wires[&conn].http).into_owned();
    assert!(answer.contains(r#""connections":3"#), "{answer}");
}

#[test]
fn a_connection_the_acceptor_counted_is_served_and_one_it_found_no_room_for_gets_503() {
    let mut node = Sharded::new(ServerConfig {
        max_connections: 1,
        ..ServerConfig::dev()
    });
    let counted = node.router.lock().unwrap().open_socket(1);
    assert!(counted);
    let refused = node.router.lock().unwrap().open_socket(1);
    assert!(!refused, "the node holds max_connections");
    let shard = &mut node.shards[1];
    let served = shard.server.accept_counted(shard.now, counted);
    shard.wires.insert(served, Wire::default());
    let turned_away = shard.server.accept_counted(shard.now, refused);
    shard.wires.insert(turned_away, Wire::default());
    shard.drain();
    let healthz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    shard.read(served, healthz.as_bytes());
    assert!(String::from_utf8_lossy(&shard.wires[&served].http).starts_with("HTTP/1.1 200"));
    let answer = String::from_utf8_lossy(&shard.wires[&turned_away].http).into_owned();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

    shard.server.shutdown(shard.now);
    shard.drain();
    assert!(node.router.lock().unwrap().open_socket(2));
    let shard = &mut node.shards[1];
    let draining = shard.server.accept_counted(shard.now, true);
    shard.wires.insert(draining, Wire::default());
    shard.drain();
    assert!(
        node.router.lock().unwrap().open_socket(2),
        "a draining shard gives back the place the acceptor counted"
    );
}

#[test]
fn shards_in_front_of_a_backplane_serve_while_the_node_s_link_is_up_and_hear_its_failure() {
    let config = ServerConfig::dev();
    let router = Router::with_backplane(&config, 9, 2);
    let mut node = Sharded::around(config, router);
    let subscribe = r#"{"type":"subscribe","id":"s","channel":"news"}"#;
    let conn = node.connect(1, "alice");
    node.send(1, conn, subscribe);
    let refused = node.replies(1, conn);
    assert!(
        matches!(
            &refused[..],
            [ServerMessage::Error {
                code: ErrorCode::Unavailable,
                ..
            }]
        ),
        "the link is not up yet: {refused:?}"
    );
    assert!(matches!(
        node.backplane_heard()[..],
        [StoreRequest::Connect]
    ));

    node.backplane_says(StoreEvent::Up);
    assert!(
        node.shards
            .iter()
            .all(|shard| shard.server.is_backplane_up())
    );
    node.send(1, conn, subscribe);
    assert!(node.replies(1, conn).is_empty(), "waiting for the store");
    let sent = node.backplane_heard();
    assert!(
        sent.iter()
            .any(|request| matches!(request, StoreRequest::Subscribe { .. })),
        "{sent:?}"
    );

    node.backplane_says(StoreEvent::Down);
    let answered = node.replies(1, conn);
    assert!(
        matches!(
            &answered[..],
            [ServerMessage::Error {
                code: ErrorCode::Unavailable,
                ..
            }]
        ),
        "the request in flight is answered: {answered:?}"
    );
    assert!(
        node.shards
            .iter()
            .all(|shard| !shard.server.is_backplane_up())
    );
}
