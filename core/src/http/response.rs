//! Writing HTTP/1.1 responses: plain answers, refusals and the 101 that
//! opens a WebSocket.
//!
//! Every response other than the 101 carries `Connection: close`: Tether
//! serves one request per TCP connection, so the parser never has to find
//! where a second request starts, and a slow or hostile client cannot hold a
//! connection open between requests.

use std::fmt;

use tungstenite::handshake::derive_accept_key;

/// The reason phrase of `status`, or an empty one (which HTTP allows) for a
/// status Tether never sends.
pub fn status_text(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A complete response with `status`, a body of `content_type`, and
/// `Connection: close`.
pub fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    write_response(status, &[], content_type, body)
}

/// The 101 response that accepts a WebSocket handshake with client `key`
/// (RFC 6455 section 4.2.2), naming the selected subprotocol and the
/// accepted extensions (`Sec-WebSocket-Extensions`) if any.
pub fn accept_response(key: &str, protocol: Option<&str>, extensions: Option<&str>) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        derive_accept_key(key.as_bytes())
    );
    if let Some(protocol) = protocol {
        head.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    if let Some(extensions) = extensions {
        head.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Why a request is refused, with the status that says so.
///
/// Its [`response`](HttpError::response) is the complete answer to write
/// before closing the connection; the body is the short reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    status: u16,
    reason: &'static str,
    allow: Option<&'static str>,
}

impl HttpError {
    /// A refusal with `status` and a short plain-text `reason`.
    pub const fn new(status: u16, reason: &'static str) -> Self {
        HttpError {
            status,
            reason,
            allow: None,
        }
    }

    /// A 405 for a path that only answers `allow` (RFC 9110 section 15.5.6:
    /// the response lists the allowed methods).
    pub const fn method_not_allowed(allow: &'static str) -> Self {
        HttpError {
            status: 405,
            reason: "method not allowed",
            allow: Some(allow),
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The short reason, also the response body.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The header fields the refusal carries beside its body: a 426 names
    /// the WebSocket version it wants (RFC 6455 section 4.4), a 405 lists
    /// the allowed methods. A server that writes the answer itself (an
    /// upgrade checked with [`crate::Server::check_upgrade`]) sends them.
    pub fn headers(&self) -> Vec<(&'static str, &'static str)> {
        let mut extra = Vec::new();
        if self.status == 426 {
            extra.push(("Upgrade", "websocket"));
            extra.push(("Sec-WebSocket-Version", "13"));
        }
        if let Some(allow) = self.allow {
            extra.push(("Allow", allow));
        }
        extra
    }

    /// The complete response: the status, [`HttpError::headers`], and the
    /// reason as a plain-text body.
    pub fn response(&self) -> Vec<u8> {
        write_response(
            self.status,
            &self.headers(),
            "text/plain; charset=utf-8",
            self.reason.as_bytes(),
        )
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for HttpError {}

fn write_response(status: u16, extra: &[(&str, &str)], content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", status_text(status));
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_the_rfc_example() {
        // RFC 6455 section 1.3.
        let bytes = accept_response("dGhlIHNhbXBsZSBub25jZQ==", Some("tether.v1"), None);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Protocol: tether.v1\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        let plain =
            String::from_utf8(accept_response("dGhlIHNhbXBsZSBub25jZQ==", None, None)).unwrap();
        assert!(!plain.contains("Sec-WebSocket-Protocol"));
        assert!(!plain.contains("Sec-WebSocket-Extensions"));
    }

    #[test]
    fn plain_response_closes_and_counts_its_body() {
        let bytes = response(200, "text/plain", b"ok");
        assert_eq!(
            bytes,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\
              Connection: close\r\n\r\nok"
        );
    }

    #[test]
    fn refusals_carry_their_extra_headers() {
        let upgrade =
            String::from_utf8(HttpError::new(426, "upgrade required").response()).unwrap();
        assert!(upgrade.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(upgrade.contains("\r\nUpgrade: websocket\r\n"));
        assert!(upgrade.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(upgrade.ends_with("\r\n\r\nupgrade required"));
        let method = String::from_utf8(HttpError::method_not_allowed("POST").response()).unwrap();
        assert!(method.starts_with("HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\n"));
        let plain = String::from_utf8(HttpError::new(404, "not found").response()).unwrap();
        assert!(!plain.contains("Allow") && !plain.contains("Upgrade"));
        assert!(plain.contains("Content-Length: 9\r\n"));
    }
}
