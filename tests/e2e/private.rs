//! PROTOCOL.md section 6: `user:<id>` channels belong to one user, and only
//! backends publish there.

use serde_json::json;

use crate::harness::{API_KEY, Runtime, config, dev_auth};
use tether_testkit::http::post_publish;
use tether_testkit::ws::Ws;

fn only_the_owner_subscribes_and_only_backends_publish(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut alice = Ws::auth(server.addr, "alice");
    alice.subscribe("user:alice");

    let mut bob = Ws::auth(server.addr, "bob");
    bob.send_json(json!({"type": "subscribe", "channel": "user:alice", "id": "peek"}));
    assert_eq!(bob.recv_error("FORBIDDEN")["id"], "peek");
    bob.send_json(json!({"type": "publish", "channel": "user:alice", "payload": 1, "id": "spam"}));
    assert_eq!(bob.recv_error("FORBIDDEN")["id"], "spam");
    alice
        .send_json(json!({"type": "publish", "channel": "user:alice", "payload": 1, "id": "self"}));
    assert_eq!(alice.recv_error("FORBIDDEN")["id"], "self");

    let answer = post_publish(
        server.addr,
        Some(&format!("Bearer {API_KEY}")),
        r#"{"channel":"user:alice","payload":{"note":"hello"}}"#,
    );
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, r#"{"offset":1}"#)
    );
    assert_eq!(
        alice.recv(),
        json!({"type": "message", "channel": "user:alice", "payload": {"note": "hello"}, "offset": 1})
    );
    assert_eq!(server.publish("user:alice", "2"), 2);
    assert_eq!(alice.recv_type("message")["payload"], 2);

    // Bob saw none of it: his next message answers his own ping.
    bob.send_json(json!({"type": "ping", "id": "p"}));
    assert_eq!(bob.recv(), json!({"type": "pong", "id": "p"}));
}

runtime_tests! {
    only_the_owner_subscribes_and_only_backends_publish => smol, blocking, tokio;
}
