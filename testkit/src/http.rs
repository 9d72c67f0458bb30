//! Plain HTTP/1.1 requests, written by hand: one request per connection,
//! answered with `Connection: close`, so the answer ends where the stream
//! does. Every read times out after
//! [`READ_TIMEOUT`](crate::ws::READ_TIMEOUT).

use std::io::Write;
use std::net::SocketAddr;

use crate::ws::{read_to_close, tcp};

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The header block, as sent.
    pub head: String,
    /// The body, as text.
    pub body: String,
}

/// Sends `request` (a complete HTTP request) and reads the answer.
pub fn send(addr: SocketAddr, request: &str) -> Answer {
    let mut stream = tcp(addr);
    stream
        .write_all(request.as_bytes())
        .expect("the request is sent");
    let bytes = read_to_close(&mut stream);
    let text = String::from_utf8(bytes).expect("a UTF-8 answer");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str) -> Answer {
    send(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
    )
}

/// `POST /api/publish` with `body` and, when given, an `Authorization`
/// header.
pub fn post_publish(addr: SocketAddr, authorization: Option<&str>, body: &str) -> Answer {
    post_api(addr, "/api/publish", authorization, body)
}

/// `POST path` (a method of the server API) with `body` and, when given,
/// an `Authorization` header.
pub fn post_api(addr: SocketAddr, path: &str, authorization: Option<&str>, body: &str) -> Answer {
    let authorization = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    send(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}
