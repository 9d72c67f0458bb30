//! What only the blocking adapter has, on real sockets on 127.0.0.1: its
//! own client against a node, the small stacks of its connection threads,
//! and the connection bound its threads allow. Every other rule of the
//! node is checked on both runtimes by the end-to-end suite (`tests/e2e`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_blocking::{Client, Handle, Server, ServerOptions};
use tether_core::{Backoff, ClientConfig, Event, ServerConfig};
use tether_testkit::TestAuthorizer;
use tether_testkit::ws::Ws;

/// Upper bound of every wait in these tests: far above what any step needs
/// on a loaded machine, low enough that a hang fails the test.
const PATIENCE: Duration = Duration::from_secs(10);

/// A node running on a thread of its own.
struct TestServer {
    addr: SocketAddr,
    handle: Handle,
    done: Receiver<io::Result<()>>,
}

impl TestServer {
    /// Starts a node with the default settings on a free loopback port.
    fn start() -> TestServer {
        let server = Server::bind(options(ServerConfig::dev())).expect("bind");
        let addr = server.local_addr();
        let handle = server.handle();
        let (sender, done) = mpsc::channel();
        thread::spawn(move || sender.send(server.run()));
        TestServer { addr, handle, done }
    }

    /// Shuts down and waits, at most [`PATIENCE`], for `run` to return.
    fn stop(self) {
        self.handle.shutdown();
        self.done
            .recv_timeout(PATIENCE)
            .expect("run() returns in time")
            .expect("run() succeeds");
    }
}

/// A node's options: `config`, a free loopback port, the test authorizer.
fn options(config: ServerConfig) -> ServerOptions {
    ServerOptions {
        config,
        listen: "127.0.0.1:0".parse().unwrap(),
        handler: Arc::new(TestAuthorizer),
        seed: None,
    }
}

/// A client config for `addr` with fast, short reconnects.
fn client_config(addr: SocketAddr, token: &str) -> ClientConfig {
    let mut config = ClientConfig::new(addr.to_string(), token);
    config.backoff = Backoff {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(200),
        jitter: Duration::from_millis(10),
        max_attempts: None,
    };
    config
}

/// Waits for the first event `pick` maps to something, skipping others.
fn expect_event<T>(client: &Client, what: &str, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = client
            .next_event(left)
            .unwrap_or_else(|| panic!("no {what} within {PATIENCE:?}"));
        if let Some(found) = pick(event) {
            return found;
        }
    }
}

#[test]
fn the_adapter_s_client_and_another_exchange_publications_in_offset_order() {
    let server = TestServer::start();
    let alice = Client::connect(client_config(server.addr, "alice")).unwrap();
    let user = expect_event(&alice, "connected", |event| match event {
        Event::Connected { user, .. } => Some(user),
        _ => None,
    });
    assert_eq!(user, "alice");
    alice.subscribe("chat").unwrap();
    expect_event(&alice, "subscribed", |event| {
        matches!(event, Event::Subscribed { .. }).then_some(())
    });

    let mut bob = Ws::auth(server.addr, "bob");
    assert_eq!(bob.subscribe("chat")["offset"], 0);
    bob.send_json(
        json!({"type": "publish", "channel": "chat", "payload": {"text": "hi"}, "id": "p1"}),
    );
    let (payload, sender, offset) = expect_event(&alice, "bob's message", |event| match event {
        Event::Message {
            payload,
            sender,
            offset,
            ..
        } => Some((payload.get().to_owned(), sender, offset)),
        _ => None,
    });
    assert_eq!(
        serde_json::from_str::<Value>(&payload).unwrap(),
        json!({"text": "hi"})
    );
    assert_eq!((sender.as_deref(), offset), (Some("bob"), 1));

    assert_eq!(alice.publish("chat", r#"{"text":"hello"}"#), Ok(2));
    let mut seen = Vec::new();
    let mut acked = None;
    while seen.len() < 2 || acked.is_none() {
        let message = bob.recv();
        match message["type"].as_str() {
            Some("ack") => acked = Some(message),
            Some("message") => seen.push((message["sender"].clone(), message["offset"].clone())),
            _ => {}
        }
    }
    assert_eq!(
        acked.unwrap(),
        json!({"type": "ack", "id": "p1", "offset": 1})
    );
    assert_eq!(seen, [(json!("bob"), json!(1)), (json!("alice"), json!(2))]);
    drop((alice, bob));
    server.stop();
}

#[test]
fn a_payload_nested_30000_deep_is_handled_on_the_small_connection_stacks() {
    let server = TestServer::start();
    let mut ws = Ws::auth(server.addr, "deep");
    let depth = 30000;
    let payload = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    ws.send(&format!(
        r#"{{"type":"publish","channel":"deep","id":"d","payload":{payload}}}"#
    ));
    assert_eq!(ws.recv(), json!({"type": "ack", "id": "d", "offset": 1}));
    drop(ws);
    server.stop();
}

#[test]
fn max_connections_is_lowered_to_what_the_process_s_threads_allow() {
    let options = |max_connections| {
        options(ServerConfig {
            max_connections,
            ..ServerConfig::dev()
        })
    };
    let modest = Server::bind(options(100)).expect("bind");
    assert_eq!(modest.max_connections(), 100);
    let Ok(maps) = std::fs::read_to_string("/proc/sys/vm/max_map_count") else {
        return;
    };
    let maps: usize = maps.trim().parse().expect("a number");
    let huge = Server::bind(options(usize::MAX)).expect("bind");
    assert!(
        huge.max_connections() * 8 < maps,
        "{} connections would take more than {maps} memory maps",
        huge.max_connections()
    );
}
