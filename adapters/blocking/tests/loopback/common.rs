//! Helpers for the loopback tests: a server on 127.0.0.1 with a test
//! authorizer, an independent WebSocket client (tungstenite), raw HTTP, and
//! bounded waits for events.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_blocking::{Client, Handle, Server, ServerOptions};
use tether_core::auth::Authorizer;
use tether_core::backoff::Backoff;
use tether_core::client::{ClientConfig, Event};
use tether_core::config::ServerConfig;
use tungstenite::{Message, WebSocket};

/// Upper bound of every wait in these tests: far above what any step needs
/// on a loaded machine, low enough that a hang fails the test.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Any token is its own user id except "bad"; the API key is "k".
pub struct TestAuthorizer;

impl Authorizer for TestAuthorizer {
    fn authenticate(&self, token: &str) -> Option<String> {
        (token != "bad").then(|| token.to_owned())
    }

    fn authorize_api(&self, authorization: Option<&str>) -> bool {
        authorization == Some("Bearer k")
    }
}

/// A server running on its own thread.
pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: Handle,
    done: Receiver<io::Result<()>>,
}

impl TestServer {
    /// Starts a server with `config` on a free loopback port.
    pub fn start(config: ServerConfig) -> TestServer {
        TestServer::start_on("127.0.0.1:0".parse().unwrap(), config)
    }

    /// Starts a server with `config` on `addr`.
    pub fn start_on(addr: SocketAddr, config: ServerConfig) -> TestServer {
        let options = ServerOptions {
            config,
            listen: addr,
            authorizer: Arc::new(TestAuthorizer),
            epoch_prefix: None,
        };
        let server = Server::bind(options).expect("bind");
        let addr = server.local_addr();
        let handle = server.handle();
        let (sender, done) = channel();
        thread::spawn(move || sender.send(server.run()));
        TestServer { addr, handle, done }
    }

    /// Waits for `run` to return, at most `PATIENCE`.
    pub fn wait_for_exit(&self) -> io::Result<()> {
        self.done
            .recv_timeout(PATIENCE)
            .expect("run() did not return in time")
    }

    /// Shuts down and waits for `run` to return.
    pub fn stop(self) {
        self.handle.shutdown();
        self.wait_for_exit().expect("run() failed");
    }
}

/// Settings for the tests: short heartbeats are opted into per test.
pub fn config() -> ServerConfig {
    ServerConfig::default()
}

/// A client config for `addr` with fast, short reconnects.
pub fn client_config(addr: SocketAddr, token: &str) -> ClientConfig {
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
pub fn expect_event<T>(client: &Client, what: &str, mut pick: impl FnMut(Event) -> Option<T>) -> T {
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

/// A tungstenite connection over a plain TCP stream whose reads time out.
pub type Ws = WebSocket<TcpStream>;

/// Opens a WebSocket to `addr` with tungstenite, without authenticating.
pub fn ws_connect(addr: SocketAddr) -> Ws {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    let (ws, _) = tungstenite::client(format!("ws://{addr}/ws"), stream).expect("handshake");
    ws
}

/// Opens a WebSocket and authenticates as `token`; returns the `auth_ack`.
pub fn ws_auth(addr: SocketAddr, token: &str) -> (Ws, Value) {
    let mut ws = ws_connect(addr);
    ws_send(&mut ws, json!({"type": "auth", "token": token}));
    let ack = ws_recv(&mut ws);
    assert_eq!(ack["type"], "auth_ack", "{ack}");
    (ws, ack)
}

/// Sends one JSON message.
pub fn ws_send(ws: &mut Ws, message: Value) {
    ws.send(Message::text(message.to_string())).expect("send");
}

/// The next JSON message, skipping control frames.
pub fn ws_recv(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("read") {
            Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// The next JSON message of type `kind`, skipping others.
pub fn ws_recv_type(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let message = ws_recv(ws);
        if message["type"] == kind {
            return message;
        }
    }
}

/// Subscribes `ws` to `channel` and returns the `subscribed` reply.
pub fn ws_subscribe(ws: &mut Ws, channel: &str) -> Value {
    ws_send(
        ws,
        json!({"type": "subscribe", "channel": channel, "id": "s"}),
    );
    ws_recv_type(ws, "subscribed")
}

/// Sends one HTTP/1.1 request and returns the status and body.
pub fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let text = String::from_utf8(response).expect("UTF-8 response");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `GET path` over HTTP.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, &format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"))
}

/// A metric's value from `/metrics`.
pub fn metric(addr: SocketAddr, name: &str) -> u64 {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}
