//! A scripted WebSocket server on 127.0.0.1: each test plays the server's
//! side by hand, message by message, so that it can check exactly what the
//! client sends and break the connection exactly where it wants.
//!
//! The server is plain `std::net`, so that it depends on neither client's
//! runtime; a script runs on a thread of its own (see
//! [`together`](crate::harness::together)). Every read is bounded by
//! [`PATIENCE`]; waiting for a connection is bounded by the test's limit.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};
use tether_core::wire::FrameDecoder;
use tether_core::wire::Message;
use tether_core::wire::PROTOCOL;
use tether_core::wire::Role;
use tether_core::wire::accept_response;
use tether_core::wire::close_frame;
use tether_core::wire::text_frame;
use tether_core::{Backoff, ClientConfig, CloseCode};

use crate::harness::PATIENCE;

/// The token every test client authenticates with.
pub const TOKEN: &str = "token-1";

/// Largest message the scripted server accepts.
const MAX_PAYLOAD: usize = 64 * 1024;

/// A listening socket on a loopback port.
pub struct Server {
    listener: TcpListener,
}

impl Server {
    /// Listens on 127.0.0.1 on a port the system picks.
    pub fn bind() -> Server {
        Server::bind_at(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Listens on `addr`.
    fn bind_at(addr: SocketAddr) -> Server {
        let listener = TcpListener::bind(addr).expect("bind");
        Server { listener }
    }

    /// The address the server listens on.
    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("address")
    }

    /// Stops listening, so that dials to the port are refused, and returns
    /// the port to listen on it again with [`Server::restart`].
    pub fn stop(self) -> SocketAddr {
        self.addr()
    }

    /// Listens again on the port a stopped server had.
    pub fn restart(addr: SocketAddr) -> Server {
        Server::bind_at(addr)
    }

    /// A client config for this server with a fast, jitter-free backoff
    /// (10 ms, 20 ms, ...) and a fixed seed.
    pub fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(self.addr().to_string(), TOKEN);
        config.backoff = Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(80),
            jitter: Duration::ZERO,
            max_attempts: None,
        };
        config.seed = 7;
        config
    }

    /// Accepts the next connection and completes its WebSocket handshake,
    /// checking the request the client sent.
    pub fn accept(&self) -> Peer {
        let (stream, _) = self.listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(PATIENCE))
            .expect("write timeout");
        let mut peer = Peer {
            stream,
            decoder: FrameDecoder::new(Role::Server, MAX_PAYLOAD),
        };
        peer.handshake();
        peer
    }

    /// Whether a connection is waiting to be accepted right now.
    pub fn has_pending_connection(&self) -> bool {
        self.listener.set_nonblocking(true).expect("non-blocking");
        let pending = match self.listener.accept() {
            Ok(_) => true,
            Err(error) if error.kind() == ErrorKind::WouldBlock => false,
            Err(error) => panic!("accept failed: {error}"),
        };
        self.listener.set_nonblocking(false).expect("blocking");
        pending
    }
}

/// The server's side of one connection.
pub struct Peer {
    stream: TcpStream,
    decoder: FrameDecoder,
}

impl Peer {
    /// Reads the upgrade request and answers `101`.
    fn handshake(&mut self) {
        let mut head = Vec::new();
        let end = loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let read = self.read(&mut head);
            assert!(read > 0, "connection closed during the handshake");
        };
        let text = std::str::from_utf8(&head[..end]).expect("UTF-8 head");
        assert!(text.starts_with("GET /ws HTTP/1.1\r\n"), "{text}");
        let key = text
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .expect("Sec-WebSocket-Key");
        self.decoder.feed(&head[end..]);
        self.write(&accept_response(&key, Some(PROTOCOL), None));
    }

    /// Appends what the socket has to `into`, waiting at most [`PATIENCE`]:
    /// the number of bytes read, 0 at the end of the stream (or when the
    /// client reset the connection).
    fn read(&mut self, into: &mut Vec<u8>) -> usize {
        let mut chunk = [0; 4096];
        match self.stream.read(&mut chunk) {
            Ok(read) => {
                into.extend_from_slice(&chunk[..read]);
                read
            }
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the client sent nothing within {PATIENCE:?}")
            }
            Err(_) => 0,
        }
    }

    /// The next message from the client, `None` at end of stream.
    pub fn recv(&mut self) -> Option<Message> {
        let mut bytes = Vec::new();
        loop {
            if let Some(message) = self.decoder.poll_message().expect("valid frames") {
                return Some(message);
            }
            if self.read(&mut bytes) == 0 {
                return None;
            }
            self.decoder.feed(&bytes);
            bytes.clear();
        }
    }

    /// The next message from the client, which must be JSON text.
    pub fn recv_json(&mut self) -> Value {
        match self.recv() {
            Some(Message::Text(text)) => serde_json::from_slice(&text).expect("JSON"),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Sends `value` as a text message.
    pub fn send_json(&mut self, value: Value) {
        self.write(&text_frame(value.to_string().as_bytes()));
    }

    /// Sends a close frame with `code`.
    pub fn send_close(&mut self, code: CloseCode) {
        self.write(&close_frame(code, "bye"));
    }

    /// Expects the client's `auth` with the test token and accepts it as
    /// `user`.
    pub fn authenticate(&mut self, user: &str) {
        let auth = self.recv_json();
        assert_eq!(auth, json!({"type": "auth", "token": TOKEN}));
        self.send_json(json!({
            "type": "auth_ack", "user": user, "session": "s1",
            "heartbeat_ms": 25_000, "max_payload": MAX_PAYLOAD,
        }));
    }

    /// Expects a close frame with `code`, answers it, and expects the client
    /// to end the connection.
    pub fn finish_close(&mut self, code: CloseCode) {
        self.expect_close(code);
        self.send_close(code);
        self.expect_end();
    }

    /// Expects a close frame with `code`.
    pub fn expect_close(&mut self, code: CloseCode) {
        match self.recv() {
            Some(Message::Close(Some((got, _)))) => assert_eq!(got, code),
            other => panic!("expected a close frame with {code}, got {other:?}"),
        }
    }

    /// Expects the client to end the connection without sending more.
    pub fn expect_end(&mut self) {
        let next = self.recv();
        assert!(
            next.is_none(),
            "expected the end of the stream, got {next:?}"
        );
    }

    /// Writes `bytes`, ignoring failures: the client may already have
    /// dropped the socket (after a close it had no reason to wait for);
    /// what the test checks is what it read.
    fn write(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }
}
