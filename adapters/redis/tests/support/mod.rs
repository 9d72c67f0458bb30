//! What the backplane tests run: a private `redis-server` on a free
//! loopback port without persistence, smol nodes in this process, and
//! blocking WebSocket and HTTP clients.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_lite::future;
use serde_json::Value;
use tether_core::ServerConfig;
use tether_redis::RedisBackplane;
use tether_smol::{Server, ServerOptions};
use tether_testkit::TestAuthorizer;
use tether_testkit::authorizer::AUTHORIZATION;
use tungstenite::{Message, WebSocket};

pub use tether_testkit::redis::Redis;

/// How long any one wait of a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A smol node on its own thread, sharing `redis`.
pub struct Node {
    /// Where it listens.
    pub addr: SocketAddr,
    crash: smol::channel::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
    /// Starts node `name` and waits until its backplane is up.
    pub fn start(redis: &Redis, name: &str, config: &ServerConfig) -> Node {
        let backplane = RedisBackplane::new(&redis.url(), config).expect("a Redis URL");
        let server = Server::bind(ServerOptions {
            config: config.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            handler: Arc::new(TestAuthorizer),
            seed: Some(
                name.bytes()
                    .fold(0, |seed, byte| seed * 257 + u64::from(byte)),
            ),
        })
        .expect("a loopback port")
        .with_backplane(backplane);
        let addr = server.local_addr().unwrap();
        let (crash, crashed) = smol::channel::bounded(1);
        let thread = std::thread::spawn(move || {
            tether_smol::block_on(future::or(
                async {
                    server.run().await.expect("the node runs");
                },
                async {
                    let _ = crashed.recv().await;
                },
            ));
        });
        let node = Node {
            addr,
            crash,
            thread: Some(thread),
        };
        node.wait_health(true);
        node
    }

    /// The node dies: its tasks, sockets and Redis connections vanish at
    /// once, without a goodbye to anyone.
    pub fn crash(&mut self) {
        let _ = self.crash.try_send(());
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the node thread ends");
        }
    }

    /// Waits until `/healthz` says the backplane is up (200) or down (503).
    pub fn wait_health(&self, up: bool) {
        let deadline = Instant::now() + PATIENCE;
        while self.healthy() != up {
            assert!(Instant::now() < deadline, "healthz never turned {up}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether `/healthz` answers 200.
    pub fn healthy(&self) -> bool {
        self.http("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .starts_with("HTTP/1.1 200")
    }

    /// One HTTP exchange; the whole answer.
    pub fn http(&self, request: &str) -> String {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// `POST /api/publish`; the offset it answers.
    pub fn api_publish(&self, channel: &str, payload: &str) -> u64 {
        let body = format!(r#"{{"channel":"{channel}","payload":{payload}}}"#);
        let answer = self.http(&format!(
            "POST /api/publish HTTP/1.1\r\nHost: t\r\nAuthorization: {AUTHORIZATION}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let json: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        json["offset"].as_u64().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.crash();
    }
}

/// A WebSocket client, authenticated.
pub struct Client {
    ws: WebSocket<TcpStream>,
}

impl Client {
    /// Connects to `node` as `user` and waits for `auth_ack`.
    pub fn connect(node: &Node, user: &str) -> Client {
        let stream = TcpStream::connect(node.addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let (ws, _) = tungstenite::client(format!("ws://{}/ws", node.addr), stream).unwrap();
        let mut client = Client { ws };
        client.send(&format!(r#"{{"type":"auth","token":"{user}"}}"#));
        assert_eq!(client.next()["type"], "auth_ack");
        client
    }

    /// Fails the next reads after `timeout` without a message.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.ws.get_ref().set_read_timeout(Some(timeout)).unwrap();
    }

    /// Sends one message.
    pub fn send(&mut self, json: &str) {
        self.ws.send(Message::text(json)).unwrap();
    }

    /// The next message (pings and pongs are skipped).
    pub fn next(&mut self) -> Value {
        loop {
            match self.ws.read().expect("a message in time") {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The next message of type `kind`; others are skipped.
    pub fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let message = self.next();
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// The next `count` publications (presence changes are skipped).
    pub fn messages(&mut self, count: usize) -> Vec<Value> {
        (0..count).map(|_| self.next_of("message")).collect()
    }

    /// Subscribes to `channel` and returns the `subscribed` answer, after
    /// the presence snapshot that follows it.
    pub fn subscribe(&mut self, channel: &str) -> Value {
        self.send(&format!(
            r#"{{"type":"subscribe","channel":"{channel}","id":"sub-{channel}"}}"#
        ));
        let subscribed = self.next_of("subscribed");
        assert_eq!(self.next()["type"], "presence");
        subscribed
    }
}

/// The offsets of publications.
pub fn offsets(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|message| message["offset"].as_u64().unwrap())
        .collect()
}
