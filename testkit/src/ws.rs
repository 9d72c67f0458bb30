//! A test's WebSocket client: tungstenite, an independent implementation of
//! RFC 6455, over a blocking socket whose reads time out.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Response;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::frame::Frame;
use tungstenite::{Message, WebSocket};

/// The longest a test waits for any one frame or byte from the server.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A TCP connection to `addr` whose reads fail after [`READ_TIMEOUT`].
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("the node accepts");
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("a read timeout");
    stream
        .set_write_timeout(Some(READ_TIMEOUT))
        .expect("a write timeout");
    stream
}

/// One WebSocket connection to a node, over a TCP socket or, for the TLS
/// tests, over TLS on one (`tls::Wss`).
pub struct Ws<S = TcpStream> {
    socket: WebSocket<S>,
}

impl Ws {
    /// Upgrades a connection to `path` with extra request `headers`; the
    /// server's refusal is the error.
    pub fn handshake(
        addr: SocketAddr,
        path: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<(Ws, Response), tungstenite::Error> {
        Ws::upgrade(&format!("ws://{addr}{path}"), tcp(addr), headers)
    }

    /// An upgraded, not yet authenticated, connection to `/ws`.
    pub fn open(addr: SocketAddr) -> Ws {
        Ws::handshake(addr, "/ws", &[]).expect("the upgrade").0
    }

    /// A connection authenticated with `token`, and the `auth_ack` that
    /// accepted it.
    pub fn auth_with(addr: SocketAddr, token: &str) -> (Ws, Value) {
        Ws::open(addr).authenticate(token)
    }

    /// A connection authenticated on a dev-mode node, where the token is
    /// the user id, after checking that the `auth_ack` names the user.
    pub fn auth(addr: SocketAddr, user: &str) -> Ws {
        Ws::open(addr).authenticate_dev(user)
    }

    /// The socket under the WebSocket, to read or write bytes that
    /// tungstenite would not.
    pub fn raw(&mut self) -> &mut TcpStream {
        self.socket.get_mut()
    }
}

impl<S: Read + Write> Ws<S> {
    /// Upgrades `stream`, a connection to the node at `url`, with extra
    /// request `headers`; the server's refusal is the error.
    pub fn upgrade(
        url: &str,
        stream: S,
        headers: &[(&'static str, &str)],
    ) -> Result<(Ws<S>, Response), tungstenite::Error> {
        let mut request = url.into_client_request().expect("a valid request");
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).expect("a valid header value");
            request.headers_mut().insert(*name, value);
        }
        let (socket, response) =
            tungstenite::client(request, stream).map_err(|error| match error {
                tungstenite::HandshakeError::Failure(error) => error,
                tungstenite::HandshakeError::Interrupted(_) => {
                    panic!("the handshake timed out")
                }
            })?;
        Ok((Ws { socket }, response))
    }

    /// The stream under the WebSocket (with TLS: the certificate the node
    /// presented).
    pub fn stream(&self) -> &S {
        self.socket.get_ref()
    }

    /// Sends `auth` with `token`; the connection and the `auth_ack` that
    /// accepted it.
    pub fn authenticate(mut self, token: &str) -> (Ws<S>, Value) {
        self.send_json(json!({"type": "auth", "token": token}));
        let ack = self.recv_type("auth_ack");
        (self, ack)
    }

    /// Authenticates on a dev-mode node, where the token is the user id,
    /// after checking that the `auth_ack` names the user.
    pub fn authenticate_dev(self, user: &str) -> Ws<S> {
        let (ws, ack) = self.authenticate(user);
        assert_eq!(ack["user"], user, "{ack}");
        ws
    }

    /// Sends one text message.
    pub fn send(&mut self, text: &str) {
        self.socket
            .send(Message::text(text))
            .expect("the message is sent");
    }

    /// Sends `message` as one text message.
    pub fn send_json(&mut self, message: Value) {
        self.send(&message.to_string());
    }

    /// Sends every message, one text frame each, in one write: the node
    /// receives them together.
    pub fn send_batch(&mut self, messages: &[Value]) {
        for message in messages {
            self.socket
                .write(Message::text(message.to_string()))
                .expect("the message is buffered");
        }
        self.socket.flush().expect("the batch is sent");
    }

    /// Sends one frame as it is (masked, as a client must).
    pub fn send_frame(&mut self, frame: Frame) {
        self.socket
            .send(Message::Frame(frame))
            .expect("the frame is sent");
    }

    /// Subscribes to `channel`, returning the `subscribed` reply after
    /// checking that a `presence` snapshot follows it.
    pub fn subscribe(&mut self, channel: &str) -> Value {
        self.send_json(json!({"type": "subscribe", "channel": channel, "id": "sub"}));
        let subscribed = self.recv_type("subscribed");
        assert_eq!(subscribed["channel"], channel, "{subscribed}");
        assert_eq!(subscribed["id"], "sub", "{subscribed}");
        let presence = self.recv_type("presence");
        assert_eq!(presence["channel"], channel, "{presence}");
        subscribed
    }

    /// The next text message as JSON, answering Pings on the way (and
    /// reading again after an interrupted read); panics on a close, a
    /// binary message or a silence of [`READ_TIMEOUT`].
    pub fn recv(&mut self) -> Value {
        loop {
            match self.socket.read() {
                Ok(Message::Text(text)) => {
                    return serde_json::from_str(&text)
                        .unwrap_or_else(|error| panic!("not JSON ({error}): {text}"));
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(Message::Close(frame)) => {
                    panic!("closed while a message was expected: {frame:?}")
                }
                Ok(other) => panic!("expected a text message, got {other:?}"),
                // A read with a timeout is not restarted after a signal
                // (signal(7)); nothing was consumed, so read again.
                Err(tungstenite::Error::Io(error))
                    if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => panic!("no message: {error}"),
            }
        }
    }

    /// The next text message, which must be of type `kind`.
    pub fn recv_type(&mut self, kind: &str) -> Value {
        let message = self.recv();
        assert_eq!(message["type"], kind, "{message}");
        message
    }

    /// The next text message, which must be an `error` with `code`.
    pub fn recv_error(&mut self, code: &str) -> Value {
        let error = self.recv_type("error");
        assert_eq!(error["code"], code, "{error}");
        error
    }

    /// The server's close frame as (code, reason), which must come before
    /// any text message; the close is then answered.
    pub fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.socket.read() {
                Ok(Message::Close(Some(frame))) => {
                    // Answer the close, as tungstenite queued it; the server
                    // may already have gone.
                    let _ = self.socket.flush();
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(other) => panic!("expected a close frame, got {other:?}"),
                Err(error) => panic!("no close frame: {error}"),
            }
        }
    }

    /// Reads the next message or close without interpreting it.
    pub fn read(&mut self) -> Result<Message, tungstenite::Error> {
        self.socket.read()
    }

    /// Answers a close frame already read, as [`Ws::expect_close`] does.
    pub fn finish_close(&mut self) {
        let _ = self.socket.flush();
    }
}

/// How the server ended a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// End of stream: the server closed (or half-closed) it.
    Eof,
    /// A reset: the server aborted it.
    Reset,
}

/// The shard part of the session id in an `auth_ack` (PROTOCOL.md
/// section 10, `threads`): the id of the shard that holds the connection.
pub fn shard_of(ack: &Value) -> String {
    let session = ack["session"].as_str().expect("a session id");
    let (shard, _) = session.rsplit_once('-').expect("<shard>-<connection>");
    shard.to_owned()
}

/// Reads `stream` until the server ends it and gives every byte received
/// and how it ended; panics after [`READ_TIMEOUT`] of silence.
pub fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, End) {
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (received, End::Eof),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                return (received, End::Reset);
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => panic!("the server did not close the connection: {error}"),
        }
    }
}

/// Reads `stream` until the server closes it (end of stream or a reset)
/// and gives every byte received; panics after [`READ_TIMEOUT`] of silence.
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    read_to_end(stream).0
}

/// The opcodes of the server frames in `bytes` (unmasked, as a server's
/// are); panics on a truncated frame.
pub fn opcodes(mut bytes: &[u8]) -> Vec<u8> {
    let mut found = Vec::new();
    while !bytes.is_empty() {
        let length = server_frame_len(bytes).expect("a truncated frame");
        found.push(bytes[0] & 0x0f);
        bytes = &bytes[length..];
    }
    found
}

/// The length, header included, of the server frame (unmasked) that
/// `bytes` starts with; `None` until all of it is there.
pub fn server_frame_len(bytes: &[u8]) -> Option<usize> {
    let (length, header) = match bytes.get(1)? & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => {
            let wide = u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?);
            (usize::try_from(wide).expect("a frame that fits"), 10)
        }
        short => (usize::from(short), 2),
    };
    (bytes.len() >= header + length).then_some(header + length)
}
