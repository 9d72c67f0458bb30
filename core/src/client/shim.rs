//! Stand-ins for modules being written on other branches, with their agreed
//! interfaces; each goes away when the real module is merged.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::close::CloseCode;

/// A request id chosen by the client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(String);

impl RequestId {
    /// An id from its text.
    pub fn new(text: impl Into<String>) -> Self {
        RequestId(text.into())
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A channel name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Channel(String);

impl Channel {
    /// A channel from its name.
    pub fn new(name: impl Into<String>) -> Result<Self, ()> {
        Ok(Channel(name.into()))
    }

    /// The channel's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A position in a channel's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The channel's epoch.
    pub epoch: String,
    /// The offset within the epoch.
    pub offset: u64,
}

/// A message from client to server.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Authenticate.
    Auth {
        /// The token.
        token: String,
    },
    /// Application ping.
    Ping {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// Subscribe.
    Subscribe {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Channel.
        channel: Channel,
        /// Resume point.
        #[serde(skip_serializing_if = "Option::is_none")]
        since: Option<Position>,
    },
    /// Unsubscribe.
    Unsubscribe {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Channel.
        channel: Channel,
    },
    /// Publish.
    Publish {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Channel.
        channel: Channel,
        /// Payload.
        payload: serde_json::Value,
    },
    /// Presence snapshot request.
    Presence {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Channel.
        channel: Channel,
    },
}

/// Encodes a client message as JSON text.
pub fn encode_client_message(message: &ClientMessage) -> String {
    serde_json::to_string(message).unwrap_or_default()
}

/// A message from server to client.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Auth accepted.
    AuthAck {
        /// User.
        user: String,
        /// Session.
        session: String,
    },
    /// Pong.
    Pong {
        /// Request id.
        id: Option<RequestId>,
    },
    /// Subscribed.
    Subscribed {
        /// Request id.
        id: Option<RequestId>,
        /// Channel.
        channel: Channel,
        /// Epoch.
        epoch: String,
        /// Offset.
        offset: u64,
        /// Recovery outcome.
        recovered: Option<bool>,
    },
    /// Unsubscribed.
    Unsubscribed {
        /// Request id.
        id: Option<RequestId>,
        /// Channel.
        channel: Channel,
    },
    /// Publish ack.
    Ack {
        /// Request id.
        id: RequestId,
        /// Offset.
        offset: u64,
    },
    /// Presence snapshot.
    Presence {
        /// Request id.
        id: Option<RequestId>,
        /// Channel.
        channel: Channel,
        /// Users.
        users: Vec<String>,
    },
    /// Publication.
    Message {
        /// Channel.
        channel: Channel,
        /// Payload.
        payload: serde_json::Value,
        /// Sender.
        sender: Option<String>,
        /// Offset.
        offset: u64,
    },
    /// Join.
    Join {
        /// Channel.
        channel: Channel,
        /// User.
        user: String,
    },
    /// Leave.
    Leave {
        /// Channel.
        channel: Channel,
        /// User.
        user: String,
    },
    /// Error.
    Error {
        /// Request id.
        id: Option<RequestId>,
        /// Code.
        code: String,
        /// Message.
        message: String,
    },
}

/// Parses a server message.
pub fn parse_server_message(text: &str) -> Result<ServerMessage, serde_json::Error> {
    serde_json::from_str(text)
}

/// The upgrade request.
pub fn upgrade_request(host: &str, path: &str, key: &str, origin: Option<&str>) -> Vec<u8> {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether.v1\r\n"
    );
    if let Some(origin) = origin {
        request.push_str(&format!("Origin: {origin}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// A rejected handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeError {
    /// The HTTP status, when there was a parsable response.
    pub status: Option<u16>,
}

/// The accepted response and what followed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgraded {
    /// Bytes after the response head.
    pub leftover: Bytes,
}

/// Parses the upgrade response.
#[derive(Debug, Default)]
pub struct ResponseParser {
    buffer: Vec<u8>,
}

impl ResponseParser {
    /// A parser for the response to a request with `key`.
    pub fn new(_key: &str) -> Self {
        ResponseParser::default()
    }

    /// Feeds bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The verdict once the head is complete.
    pub fn poll(&mut self) -> Result<Option<Upgraded>, HandshakeError> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&self.buffer) {
            Ok(httparse::Status::Complete(len)) if response.code == Some(101) => {
                Ok(Some(Upgraded {
                    leftover: Bytes::copy_from_slice(&self.buffer[len..]),
                }))
            }
            Ok(httparse::Status::Complete(_)) => Err(HandshakeError {
                status: response.code,
            }),
            Ok(httparse::Status::Partial) => Ok(None),
            Err(_) => Err(HandshakeError { status: None }),
        }
    }
}

/// A decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Text.
    Text(Bytes),
    /// Binary.
    Binary(Bytes),
    /// Ping.
    Ping(Bytes),
    /// Pong.
    Pong(Bytes),
    /// Close.
    Close(Option<(CloseCode, String)>),
}

/// A decoding failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(CloseCode);

impl DecodeError {
    /// The close code to send.
    pub fn close_code(&self) -> CloseCode {
        self.0
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad frame")
    }
}

/// Which end decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A client's decoder.
    Client,
}

/// Decodes unfragmented frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    max_payload: usize,
}

impl FrameDecoder {
    /// A decoder.
    pub fn new(_role: Role, max_payload: usize) -> Self {
        FrameDecoder {
            buffer: Vec::new(),
            max_payload,
        }
    }

    /// Feeds bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next message.
    pub fn poll_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if self.buffer.len() < 2 {
            return Ok(None);
        }
        let opcode = self.buffer[0] & 0x0f;
        let masked = self.buffer[1] & 0x80 != 0;
        let (len, mut at) = match self.buffer[1] & 0x7f {
            126 if self.buffer.len() >= 4 => (
                usize::from(u16::from_be_bytes([self.buffer[2], self.buffer[3]])),
                4,
            ),
            127 if self.buffer.len() >= 10 => {
                let mut eight = [0; 8];
                eight.copy_from_slice(&self.buffer[2..10]);
                (u64::from_be_bytes(eight) as usize, 10)
            }
            126 | 127 => return Ok(None),
            len => (usize::from(len), 2),
        };
        if len > self.max_payload {
            return Err(DecodeError(CloseCode::MESSAGE_TOO_BIG));
        }
        let mut mask = None;
        if masked {
            if self.buffer.len() < at + 4 {
                return Ok(None);
            }
            mask = Some([
                self.buffer[at],
                self.buffer[at + 1],
                self.buffer[at + 2],
                self.buffer[at + 3],
            ]);
            at += 4;
        }
        if self.buffer.len() < at + len {
            return Ok(None);
        }
        let mut payload: Vec<u8> = self.buffer[at..at + len].to_vec();
        if let Some(mask) = mask {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[i % 4];
            }
        }
        self.buffer.drain(..at + len);
        let payload = Bytes::from(payload);
        Ok(Some(match opcode {
            1 => Message::Text(payload),
            2 => Message::Binary(payload),
            8 if payload.len() >= 2 => Message::Close(Some((
                CloseCode(u16::from_be_bytes([payload[0], payload[1]])),
                String::from_utf8_lossy(&payload[2..]).into_owned(),
            ))),
            8 => Message::Close(None),
            9 => Message::Ping(payload),
            10 => Message::Pong(payload),
            _ => return Err(DecodeError(CloseCode::PROTOCOL_ERROR)),
        }))
    }
}

fn masked(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Bytes {
    let mut frame = BytesMut::new();
    frame.put_u8(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        frame.put_u8(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        frame.put_u8(0x80 | 126);
        frame.put_u16(len as u16);
    } else {
        frame.put_u8(0x80 | 127);
        frame.put_u64(len as u64);
    }
    frame.put_slice(&mask);
    for (i, byte) in payload.iter().enumerate() {
        frame.put_u8(byte ^ mask[i % 4]);
    }
    frame.freeze()
}

/// A masked text frame.
pub fn masked_text_frame(payload: &[u8], mask: [u8; 4]) -> Bytes {
    masked(1, payload, mask)
}

/// A masked pong frame.
pub fn masked_pong_frame(payload: &[u8], mask: [u8; 4]) -> Bytes {
    masked(10, payload, mask)
}

/// A masked close frame.
pub fn masked_close_frame(code: CloseCode, reason: &str, mask: [u8; 4]) -> Bytes {
    let mut payload = code.0.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    masked(8, &payload, mask)
}
