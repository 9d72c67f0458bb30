//! A stand-in for the HTTP upgrade module being written on another branch,
//! with its agreed interface; it goes away when the real module is merged.

use bytes::Bytes;

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
