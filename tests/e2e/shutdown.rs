//! PROTOCOL.md section 3 (and the draining decision of section 11):
//! graceful shutdown through the embedding API and, for the `tether`
//! binary, through SIGTERM.

use std::time::Duration;

use serde_json::json;
use tether_core::ServerConfig;
use tungstenite::Message;

use crate::harness::{Runtime, TETHER, config, dev_auth};
use tether_testkit::http::get;
use tether_testkit::process::Process;
use tether_testkit::ws::Ws;

fn shutdown_flushes_queued_messages_then_closes_1001(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            close_timeout: Duration::from_secs(5),
            ..config()
        },
        dev_auth(),
    );
    let mut alice = Ws::auth(server.addr, "alice");
    alice.subscribe("news");
    for n in 1..=20 {
        server.publish("news", &n.to_string());
    }
    server.shutdown();
    for n in 1..=20 {
        assert_eq!(
            alice.recv(),
            json!({"type": "message", "channel": "news", "payload": n, "offset": n})
        );
    }
    match alice.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }

    // Alice has not answered the close yet, so the node is still draining.
    let health = get(server.addr, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (503, "draining"));
    match Ws::handshake(server.addr, "/ws", &[]) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status().as_u16(), 503),
        Err(other) => panic!("expected 503, got {other}"),
        Ok(_) => panic!("a WebSocket was opened while draining"),
    }

    alice.finish_close();
    server.join().expect("run returns Ok");
}

fn an_idle_node_stops_at_once(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    assert_eq!(get(server.addr, "/healthz").status, 200);
    server.shutdown();
    server.join().expect("run returns Ok");
}

fn shutdown_closes_every_websocket_1001_and_the_node_stops(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut alice = Ws::auth(server.addr, "alice");
    alice.subscribe("room");
    server.shutdown();
    assert_eq!(alice.expect_close(), (1001, "going away".into()));
    server.join().expect("run returns Ok");
}

fn sigterm_drains_the_binary_and_it_exits_0(runtime: Runtime) {
    let mut process = Process::start(TETHER, &runtime.dev_binary_args());
    let addr = process.listening_on();
    let mut alice = Ws::auth(addr, "alice");
    alice.subscribe("room");
    process.signal("TERM");
    assert_eq!(alice.expect_close().0, 1001);
    assert_eq!(process.wait().code(), Some(0));
}

runtime_tests! {
    shutdown_flushes_queued_messages_then_closes_1001 => smol, blocking, tokio;
    an_idle_node_stops_at_once => smol, smol2, blocking, tokio, tokio2, example;
    shutdown_closes_every_websocket_1001_and_the_node_stops => smol, smol2, blocking, tokio, tokio2, example;
    sigterm_drains_the_binary_and_it_exits_0 => smol, blocking, tokio;
}
