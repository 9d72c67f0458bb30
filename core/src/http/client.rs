//! The client's side of the handshake: the upgrade request it sends and the
//! parser that checks the server's answer (RFC 6455 section 4.1).

use std::fmt;

use tungstenite::handshake::derive_accept_key;

use super::PROTOCOL;
use super::base64;
use super::extensions::{self, Deflate};
use super::headers::{has_token, single, values};

/// Headers a handshake response may carry.
const MAX_HEADERS: usize = 64;

/// A `Sec-WebSocket-Key` made from 16 bytes the caller draws from its
/// seeded generator (RFC 6455 section 4.1: a random 16-byte nonce, base64).
pub fn client_key(nonce: [u8; 16]) -> String {
    base64::encode(&nonce)
}

/// The upgrade request for `path` on `host`, offering `tether.v1`, with an
/// `Origin` when given, and offering permessage-deflate when `deflate` is
/// set (the [`ResponseParser`] must then be made with it set too).
///
/// The arguments come from the client's own configuration; any CR or LF in
/// them is dropped so that none can start a header of its own.
pub fn upgrade_request(
    host: &str,
    path: &str,
    key: &str,
    origin: Option<&str>,
    deflate: bool,
) -> Vec<u8> {
    let clean = |s: &str| s.replace(['\r', '\n'], "");
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {PROTOCOL}\r\n",
        clean(path),
        clean(host),
        clean(key),
    );
    if let Some(origin) = origin {
        head.push_str(&format!("Origin: {}\r\n", clean(origin)));
    }
    if deflate {
        head.push_str(&format!(
            "Sec-WebSocket-Extensions: {}\r\n",
            extensions::OFFER
        ));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A handshake the server accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The subprotocol the server selected: `Some("tether.v1")`, or `None`
    /// when the server named none.
    pub protocol: Option<&'static str>,
    /// permessage-deflate as the server accepted it, or `None` when it
    /// did not (or was not offered it).
    pub deflate: Option<Deflate>,
}

/// Why the server's answer does not open a WebSocket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// The response head did not end within the size limit.
    HeadTooLarge,
    /// The response is not valid HTTP/1.1.
    Malformed,
    /// The server answered with this status instead of 101.
    Status(u16),
    /// A 101 without `Upgrade: websocket` and `Connection: Upgrade`
    /// (section 4.1, items 2 and 3).
    NotWebSocket,
    /// `Sec-WebSocket-Accept` is missing or does not match the key (item 4).
    BadAccept,
    /// The server selected an extension that was not offered, or answered
    /// the permessage-deflate offer with parameters it did not offer
    /// (item 5).
    UnexpectedExtension,
    /// The server selected a subprotocol other than `tether.v1` (item 6).
    UnexpectedProtocol,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::HeadTooLarge => f.write_str("handshake response head too large"),
            HandshakeError::Malformed => f.write_str("malformed handshake response"),
            HandshakeError::Status(status) => write!(f, "server answered {status}, not 101"),
            HandshakeError::NotWebSocket => f.write_str("101 response without a websocket upgrade"),
            HandshakeError::BadAccept => f.write_str("wrong Sec-WebSocket-Accept"),
            HandshakeError::UnexpectedExtension => f.write_str("server selected an extension"),
            HandshakeError::UnexpectedProtocol => {
                f.write_str("server selected another subprotocol")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Parses and checks the server's answer to [`upgrade_request`], h11-style:
/// [`feed`](Self::feed) received bytes, [`poll`](Self::poll) after each.
///
/// Once the handshake is accepted, later polls return `Ok(None)` and the
/// bytes after the response head (frames the server sent at once) are kept
/// for [`into_remaining`](Self::into_remaining). After an error, every poll
/// returns it again and fed bytes are dropped. The parser never holds more
/// than `max_head` bytes of head plus the last read.
#[derive(Debug)]
pub struct ResponseParser {
    expected_accept: String,
    offered_deflate: bool,
    max_head: usize,
    buf: Vec<u8>,
    state: State,
}

#[derive(Debug)]
enum State {
    Head,
    Done,
    Failed(HandshakeError),
}

impl ResponseParser {
    /// A parser expecting the answer to a request sent with `key`, whose
    /// head must fit in `max_head` bytes; `offered_deflate` says whether
    /// the request offered permessage-deflate.
    pub fn new(key: &str, max_head: usize, offered_deflate: bool) -> Self {
        ResponseParser {
            expected_accept: derive_accept_key(key.as_bytes()),
            offered_deflate,
            max_head,
            buf: Vec::new(),
            state: State::Head,
        }
    }

    /// Appends bytes received from the server; dropped after an error.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !matches!(self.state, State::Failed(_)) {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The accepted handshake once the head is complete, `Ok(None)` while
    /// more bytes are needed (and after the handshake was returned), or why
    /// the server refused or misbehaved.
    pub fn poll(&mut self) -> Result<Option<Handshake>, HandshakeError> {
        let result = match &self.state {
            State::Head => self.parse(),
            State::Done => Ok(None),
            State::Failed(error) => Err(error.clone()),
        };
        match &result {
            Ok(Some(_)) => self.state = State::Done,
            Ok(None) => {}
            Err(error) => {
                self.buf = Vec::new();
                self.state = State::Failed(error.clone());
            }
        }
        result
    }

    /// The bytes that followed the response head: the server's first
    /// frames. Empty unless the handshake was returned.
    pub fn into_remaining(self) -> Vec<u8> {
        match self.state {
            State::Done => self.buf,
            _ => Vec::new(),
        }
    }

    /// Like the request parser, looks only at the first `max_head` bytes so
    /// that the outcome does not depend on how the input was split.
    fn parse(&mut self) -> Result<Option<Handshake>, HandshakeError> {
        let window = &self.buf[..self.buf.len().min(self.max_head)];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(window) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if self.buf.len() > self.max_head => {
                return Err(HandshakeError::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::HeadTooLarge),
            Err(_) => return Err(HandshakeError::Malformed),
        };
        let handshake = check(&response, &self.expected_accept, self.offered_deflate)?;
        self.buf.drain(..head_len);
        Ok(Some(handshake))
    }
}

/// RFC 6455 section 4.1, the client's checks of the server's handshake.
fn check(
    response: &httparse::Response<'_, '_>,
    expected_accept: &str,
    offered_deflate: bool,
) -> Result<Handshake, HandshakeError> {
    let headers = &*response.headers;
    match response.code {
        Some(101) => {}
        Some(status) => return Err(HandshakeError::Status(status)),
        None => return Err(HandshakeError::Malformed),
    }
    if response.version != Some(1) {
        return Err(HandshakeError::Malformed);
    }
    if !has_token(headers, "Upgrade", "websocket") || !has_token(headers, "Connection", "upgrade") {
        return Err(HandshakeError::NotWebSocket);
    }
    if single(headers, "Sec-WebSocket-Accept") != Ok(Some(expected_accept)) {
        return Err(HandshakeError::BadAccept);
    }
    let deflate = if offered_deflate {
        extensions::agreed_deflate(headers).map_err(|_| HandshakeError::UnexpectedExtension)?
    } else if values(headers, "Sec-WebSocket-Extensions").any(|v| !v.is_empty()) {
        return Err(HandshakeError::UnexpectedExtension);
    } else {
        None
    };
    let protocol = match single(headers, "Sec-WebSocket-Protocol") {
        Ok(None) => None,
        Ok(Some(PROTOCOL)) => Some(PROTOCOL),
        _ => return Err(HandshakeError::UnexpectedProtocol),
    };
    Ok(Handshake { protocol, deflate })
}

#[cfg(test)]
mod tests;
