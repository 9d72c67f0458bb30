//! Plain HTTP/1.1 requests, written by hand: one request per connection,
//! answered with `Connection: close`, so the answer ends where the stream
//! does.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::ws::{READ_TIMEOUT, read_to_close, tcp};

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
    let authorization = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    send(
        addr,
        &format!(
            "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\n{authorization}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Every sample of `/metrics`, by name.
pub fn metrics(addr: SocketAddr) -> BTreeMap<String, u64> {
    let answer = get(addr, "/metrics");
    assert_eq!(answer.status, 200, "{answer:?}");
    answer
        .body
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (name, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample: {line:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("not a whole number: {line:?}"));
            (name.to_owned(), value)
        })
        .collect()
}

/// The value of the metric `name`, which must be present.
pub fn metric(addr: SocketAddr, name: &str) -> u64 {
    *metrics(addr)
        .get(name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// Reads the metric `name` until `wanted` holds for its value, which it
/// returns; panics after [`READ_TIMEOUT`]. For what a test cannot see on
/// any socket it holds (the node's own bookkeeping after a peer is gone),
/// `/metrics` is the only observable, so it is polled.
pub fn wait_for_metric(addr: SocketAddr, name: &str, wanted: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let value = metric(addr, name);
        if wanted(value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed at {value} for {READ_TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}
