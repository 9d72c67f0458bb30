//! permessage-deflate against the `tether` binary of each runtime: a
//! client that offers it gets the server's answer, and publications
//! compressed (RSV1 set) that inflate to what was published; the binary's
//! own client (`tether connect`), which offers it by default, receives
//! them too. PROTOCOL.md section 1, "Compression".

use serde_json::{Value, json};
use tether_testkit::deflate::DeflateClient;
use tether_testkit::process::Process;
use tether_testkit::ws::Ws;

use crate::harness::{Runtime, TETHER};

/// A chat message above the default `compression_min_size`.
const CHAT: &str = r#"{"user":"alice","name":"Alice Liddell","text":"Shall we meet at the station at half past five? The train to the coast leaves at six."}"#;

fn publications_reach_deflate_clients_compressed(runtime: Runtime) {
    let node = Process::start(TETHER, &runtime.dev_binary_args());
    let addr = node.listening_on();
    let url = format!("ws://{addr}/ws");
    let mut listener = Process::start(
        TETHER,
        &["connect", &url, "--token", "carol", "--subscribe", "chat"],
    );
    listener.wait_for_line(r#""event":"subscribed""#);
    let mut subscriber = DeflateClient::open(addr);
    subscriber.send(&json!({"type": "auth", "token": "alice"}));
    subscriber.recv_type("auth_ack");
    subscriber.send(&json!({"type": "subscribe", "channel": "chat", "id": "s"}));
    subscriber.recv_type("subscribed");

    let mut publisher = Ws::auth(addr, "bob");
    let payload: Value = serde_json::from_str(CHAT).unwrap();
    publisher
        .send_json(json!({"type": "publish", "channel": "chat", "payload": payload, "id": "p"}));
    publisher.recv_type("ack");

    let (message, compressed) = subscriber.recv_type("message");
    assert_eq!(message["payload"], payload);
    assert!(compressed, "the publication arrived uncompressed");
    let line = listener.wait_for_line("Shall we meet at the station");
    assert!(line.contains("Alice Liddell"), "{line}");
    listener.signal("INT");
    assert_eq!(listener.wait().code(), Some(0));
}

runtime_tests! {
    publications_reach_deflate_clients_compressed => smol, blocking, tokio;
}
