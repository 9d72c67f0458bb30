//! The smol node over real loopback sockets, driven by an independent
//! WebSocket client (tungstenite).

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use tether_core::auth::Authorizer;
use tether_core::config::ServerConfig;
use tether_smol::{Server, ServerOptions};
use tungstenite::{Message, WebSocket};

struct AnyToken;

impl Authorizer for AnyToken {
    fn authenticate(&self, token: &str) -> Option<String> {
        (token != "bad").then(|| token.to_owned())
    }
    fn authorize_api(&self, authorization: Option<&str>) -> bool {
        authorization == Some("Bearer k")
    }
}

fn start() -> (
    std::net::SocketAddr,
    tether_smol::Handle,
    std::thread::JoinHandle<()>,
) {
    let server = Server::bind(ServerOptions {
        config: ServerConfig::default(),
        listen: "127.0.0.1:0".parse().unwrap(),
        authorizer: Arc::new(AnyToken),
        epoch_prefix: Some("e".into()),
    })
    .unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let thread = std::thread::spawn(move || tether_smol::block_on(server.run()).unwrap());
    (addr, handle, thread)
}

fn client(addr: std::net::SocketAddr, user: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws"), stream).unwrap();
    ws.send(Message::text(format!(
        r#"{{"type":"auth","token":"{user}"}}"#
    )))
    .unwrap();
    let ack = ws.read().unwrap();
    assert!(ack.to_text().unwrap().contains("auth_ack"), "{ack}");
    ws
}

fn next_text(ws: &mut WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().unwrap() {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn publish_reaches_a_subscriber_and_shutdown_sends_1001() {
    let (addr, handle, thread) = start();
    let mut alice = client(addr, "alice");
    let mut bob = client(addr, "bob");
    bob.send(Message::text(
        r#"{"type":"subscribe","channel":"chat","id":"s"}"#,
    ))
    .unwrap();
    assert!(next_text(&mut bob).contains(r#""type":"subscribed""#));
    assert!(next_text(&mut bob).contains(r#""type":"presence""#));
    alice
        .send(Message::text(
            r#"{"type":"publish","channel":"chat","payload":"hi","id":"m"}"#,
        ))
        .unwrap();
    assert_eq!(
        next_text(&mut alice),
        r#"{"type":"ack","id":"m","offset":1}"#
    );
    let message = next_text(&mut bob);
    assert!(
        message.contains(r#""payload":"hi""#) && message.contains(r#""sender":"alice""#),
        "{message}"
    );
    let offset = smol::block_on(handle.publish("chat", r#"{"n":2}"#)).unwrap();
    assert_eq!(offset, 2);
    assert!(next_text(&mut bob).contains(r#""offset":2"#));
    handle.shutdown();
    match bob.read().unwrap() {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close, got {other:?}"),
    }
    drop(alice);
    drop(bob);
    thread.join().unwrap();
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn gauge(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from {metrics}"))
}

/// A consumer that never reads fills the kernel's buffers until the node's
/// write blocks; the node must still cut it once the core says so, without
/// waiting for the peer to read again.
#[test]
fn a_write_blocked_on_a_peer_that_never_reads_is_abandoned_when_the_core_closes() {
    let config = ServerConfig {
        high_water: 64 * 1024,
        hard_limit: 1024 * 1024,
        slow_timeout: Duration::from_millis(200),
        close_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let server = Server::bind(ServerOptions {
        config,
        listen: "127.0.0.1:0".parse().unwrap(),
        authorizer: Arc::new(AnyToken),
        epoch_prefix: Some("e".into()),
    })
    .unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let thread = std::thread::spawn(move || tether_smol::block_on(server.run()).unwrap());
    let mut slow = client(addr, "slow");
    slow.send(Message::text(
        r#"{"type":"subscribe","channel":"firehose"}"#,
    ))
    .unwrap();
    assert!(next_text(&mut slow).contains("subscribed"));
    let payload = format!(r#""{}""#, "x".repeat(32 * 1024));
    let bound = std::time::Instant::now() + Duration::from_secs(10);
    // A steady stream: the slow consumer is closed 4008, and its socket is
    // cut even though its write is stuck, with no read from the client.
    loop {
        for _ in 0..50 {
            smol::block_on(handle.publish("firehose", &payload)).unwrap();
        }
        let metrics = http_get(addr, "/metrics");
        // The /metrics request itself is the one socket left.
        if gauge(&metrics, "tether_sockets") == 1 {
            assert_eq!(gauge(&metrics, "tether_slow_consumer_closes_total"), 1);
            assert!(gauge(&metrics, "tether_messages_dropped_total") > 0);
            break;
        }
        assert!(
            std::time::Instant::now() < bound,
            "the slow socket was never cut: {metrics}"
        );
    }
    handle.shutdown();
    drop(slow);
    thread.join().unwrap();
}
