//! A scripted WebSocket server on 127.0.0.1: each test plays the server's
//! side by hand, message by message, so that it can check exactly what the
//! client sends and break the connection exactly where it wants.

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use async_io::Async;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use serde_json::{Value, json};
use tether_core::backoff::Backoff;
use tether_core::client::ClientConfig;
use tether_core::close::CloseCode;
use tether_core::frame::{FrameDecoder, Message, Role, close_frame, text_frame};
use tether_core::http::{PROTOCOL, accept_response};

/// The token every test client authenticates with.
pub const TOKEN: &str = "token-1";

/// Largest message the scripted server accepts.
const MAX_PAYLOAD: usize = 64 * 1024;

/// A listening socket on an ephemeral loopback port.
pub struct Server {
    listener: Async<TcpListener>,
}

impl Server {
    /// Listens on 127.0.0.1 on a port the system picks.
    pub fn bind() -> Server {
        let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
        Server { listener }
    }

    /// A client config for this server with a fast, jitter-free backoff
    /// (10 ms, 20 ms, ...) and a fixed seed.
    pub fn config(&self) -> ClientConfig {
        let port = self
            .listener
            .get_ref()
            .local_addr()
            .expect("address")
            .port();
        let mut config = ClientConfig::new(format!("127.0.0.1:{port}"), TOKEN);
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
    pub async fn accept(&self) -> Peer {
        let (stream, _) = self.listener.accept().await.expect("accept");
        let mut peer = Peer {
            stream,
            decoder: FrameDecoder::new(Role::Server, MAX_PAYLOAD),
        };
        peer.handshake().await;
        peer
    }

    /// Whether a connection is waiting to be accepted right now.
    pub fn has_pending_connection(&self) -> bool {
        match self.listener.get_ref().accept() {
            Ok(_) => true,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(error) => panic!("accept failed: {error}"),
        }
    }
}

/// The server's side of one connection.
pub struct Peer {
    stream: Async<TcpStream>,
    decoder: FrameDecoder,
}

impl Peer {
    /// Reads the upgrade request and answers `101`.
    async fn handshake(&mut self) {
        let mut head = Vec::new();
        let end = loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0; 1024];
            let read = self.stream.read(&mut chunk).await.expect("read head");
            assert!(read > 0, "connection closed during the handshake");
            head.extend_from_slice(&chunk[..read]);
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
        self.write(&accept_response(&key, Some(PROTOCOL))).await;
    }

    /// The next message from the client, `None` at end of stream.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            if let Some(message) = self.decoder.poll_message().expect("valid frames") {
                return Some(message);
            }
            let mut chunk = [0; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(read) => self.decoder.feed(&chunk[..read]),
            }
        }
    }

    /// The next message from the client, which must be JSON text.
    pub async fn recv_json(&mut self) -> Value {
        match self.recv().await {
            Some(Message::Text(text)) => serde_json::from_slice(&text).expect("JSON"),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Sends `value` as a text message.
    pub async fn send_json(&mut self, value: Value) {
        self.write(&text_frame(value.to_string().as_bytes())).await;
    }

    /// Sends a close frame with `code`.
    pub async fn send_close(&mut self, code: u16) {
        self.write(&close_frame(CloseCode(code), "bye")).await;
    }

    /// Expects the client's `auth` with the test token and accepts it as
    /// `user`.
    pub async fn authenticate(&mut self, user: &str) {
        let auth = self.recv_json().await;
        assert_eq!(auth, json!({"type": "auth", "token": TOKEN}));
        self.send_json(json!({
            "type": "auth_ack", "user": user, "session": "s1",
            "heartbeat_ms": 25_000, "max_payload": MAX_PAYLOAD,
        }))
        .await;
    }

    /// Expects a close frame with `code`, answers it, and expects the client
    /// to end the connection.
    pub async fn finish_close(&mut self, code: u16) {
        match self.recv().await {
            Some(Message::Close(Some((got, _)))) => assert_eq!(got, CloseCode(code)),
            other => panic!("expected a close frame, got {other:?}"),
        }
        self.send_close(code).await;
        self.expect_end().await;
    }

    /// Expects the client to end the connection without sending more.
    pub async fn expect_end(&mut self) {
        let next = self.recv().await;
        assert!(
            next.is_none(),
            "expected the end of the stream, got {next:?}"
        );
    }

    async fn write(&mut self, bytes: &[u8]) {
        // The client may already have dropped the socket (after a close it
        // had no reason to wait for); what the test checks is what it read.
        let _ = self.stream.write_all(bytes).await;
    }
}
