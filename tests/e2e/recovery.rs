//! PROTOCOL.md sections 4 and 6: recovering missed publications with
//! `since`.

use serde_json::{Value, json};

use crate::harness::{Runtime, config, dev_auth};
use crate::ws::Ws;

/// The publication with offset `n` as the node sends it (HTTP API style:
/// no sender).
fn publication(n: u64) -> Value {
    json!({"type": "message", "channel": "news", "payload": {"n": n}, "offset": n})
}

fn a_reconnect_with_since_gets_exactly_the_missed_publications(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut alice = Ws::auth(server.addr, "alice");
    let epoch = alice.subscribe("news")["epoch"].clone();
    for n in 1..=3 {
        server.publish("news", &json!({"n": n}).to_string());
        assert_eq!(alice.recv(), publication(n));
    }
    drop(alice);
    for n in 4..=6 {
        server.publish("news", &json!({"n": n}).to_string());
    }

    let mut alice = Ws::auth(server.addr, "alice");
    alice.send_json(json!({"type": "subscribe", "channel": "news", "id": "re", "since": {"epoch": epoch, "offset": 3}}));
    for n in 4..=6 {
        assert_eq!(alice.recv(), publication(n));
    }
    let subscribed = alice.recv_type("subscribed");
    assert_eq!(subscribed["id"], "re", "{subscribed}");
    assert_eq!(subscribed["epoch"], epoch, "{subscribed}");
    assert_eq!(subscribed["offset"], 6, "{subscribed}");
    assert_eq!(subscribed["recovered"], true, "{subscribed}");
    alice.recv_type("presence");

    // Live again after the replay.
    server.publish("news", r#"{"n":7}"#);
    assert_eq!(alice.recv(), publication(7));
}

fn since_the_current_offset_replays_nothing(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut alice = Ws::auth(server.addr, "alice");
    let epoch = alice.subscribe("news")["epoch"].clone();
    server.publish("news", r#"{"n":1}"#);
    assert_eq!(alice.recv(), publication(1));
    let mut again = Ws::auth(server.addr, "alice");
    again.send_json(
        json!({"type": "subscribe", "channel": "news", "since": {"epoch": epoch, "offset": 1}}),
    );
    let subscribed = again.recv_type("subscribed");
    assert_eq!(
        (
            subscribed["offset"].clone(),
            subscribed["recovered"].clone()
        ),
        (json!(1), json!(true)),
        "{subscribed}"
    );
}

fn a_wrong_epoch_is_not_recovered(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    for n in 1..=2 {
        server.publish("news", &json!({"n": n}).to_string());
    }
    let mut alice = Ws::auth(server.addr, "alice");
    alice.send_json(json!({"type": "subscribe", "channel": "news", "id": "re", "since": {"epoch": "an-epoch-of-another-life", "offset": 1}}));
    let subscribed = alice.recv_type("subscribed");
    assert_eq!(subscribed["recovered"], false, "{subscribed}");
    assert_eq!(subscribed["offset"], 2, "{subscribed}");
    assert_ne!(subscribed["epoch"], "an-epoch-of-another-life");
    alice.recv_type("presence");
}

runtime_tests! {
    a_reconnect_with_since_gets_exactly_the_missed_publications => smol, blocking;
    since_the_current_offset_replays_nothing => smol, blocking;
    a_wrong_epoch_is_not_recovered => smol, blocking;
}
