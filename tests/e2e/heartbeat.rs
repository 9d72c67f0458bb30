//! PROTOCOL.md section 3: the server's heartbeat terminates a client that
//! stops answering Pings, and keeps one that answers.

use std::thread;
use std::time::Duration;

use serde_json::json;
use tether_core::ServerConfig;
use tungstenite::Message;

use crate::harness::{Runtime, config, dev_auth};
use tether_testkit::metrics::{metric, metrics};
use tether_testkit::ws::{Ws, opcodes, read_to_close};

/// The heartbeat interval of these tests.
const HEARTBEAT: Duration = Duration::from_millis(200);

/// The Ping opcode (RFC 6455 section 5.5.2).
const PING: u8 = 0x9;

fn a_client_that_stops_answering_pings_is_cut_off(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            heartbeat_interval: HEARTBEAT,
            ..config()
        },
        dev_auth(),
    );
    let mut bob = Ws::auth(server.addr, "bob");
    bob.subscribe("room");
    let mut alice = Ws::auth(server.addr, "alice");
    alice.subscribe("room");
    assert_eq!(bob.recv_type("join")["user"], "alice");

    thread::scope(|scope| {
        // Bob keeps reading, so tungstenite answers his Pings: he stays
        // connected, and sees Alice leave.
        let bob_sees = scope.spawn(|| bob.recv());
        // Alice's client stops reading, so it answers no Ping: the node
        // must close the TCP connection without a close handshake.
        let frames = opcodes(&read_to_close(alice.raw()));
        assert!(
            frames.iter().all(|&opcode| opcode == PING),
            "only Pings before the cut, got opcodes {frames:?}"
        );
        assert_eq!(metric(server.addr, "tether_heartbeat_timeouts_total"), 1);
        assert_eq!(
            bob_sees.join().expect("bob's reader"),
            json!({"type": "leave", "channel": "room", "user": "alice"})
        );
    });
    bob.send_json(json!({"type": "ping", "id": "p"}));
    assert_eq!(bob.recv(), json!({"type": "pong", "id": "p"}));
    assert_eq!(metrics(server.addr)["tether_connections"], 1);
}

fn a_client_that_answers_pings_stays_connected(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            heartbeat_interval: HEARTBEAT,
            ..config()
        },
        dev_auth(),
    );
    let mut alice = Ws::auth(server.addr, "alice");
    // Three Pings answered span more than two intervals: long enough for
    // an unanswered one to have ended the connection.
    let mut pings = 0;
    while pings < 3 {
        match alice.read().expect("a frame") {
            Message::Ping(_) => pings += 1,
            other => panic!("expected a Ping, got {other:?}"),
        }
    }
    alice.send_json(json!({"type": "ping", "id": "p"}));
    assert_eq!(alice.recv(), json!({"type": "pong", "id": "p"}));
    assert_eq!(metric(server.addr, "tether_heartbeat_timeouts_total"), 0);
}

runtime_tests! {
    a_client_that_stops_answering_pings_is_cut_off => smol, blocking, tokio;
    a_client_that_answers_pings_stays_connected => smol, blocking, tokio;
}
