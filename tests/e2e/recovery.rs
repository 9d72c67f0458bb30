//! PROTOCOL.md sections 4 and 6: recovering missed publications with
//! `since`.

use serde_json::{Value, json};
use tether_core::ServerConfig;

use crate::harness::{Runtime, config, dev_auth};
use tether_testkit::metrics::metrics;
use tether_testkit::ws::Ws;

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

/// The issue's flood in small: one user publishing sizeable payloads to
/// ever-new channels that nobody subscribes to. The node's history stays
/// within its bounds, whatever the flood's length.
fn a_flood_to_new_channels_keeps_the_history_within_its_bounds(runtime: Runtime) {
    const CHANNELS: u64 = 20;
    const BYTES: u64 = 64 * 1024;
    let server = runtime.start(
        ServerConfig {
            history_max_channels: CHANNELS as usize,
            history_max_bytes: BYTES as usize,
            ..config()
        },
        dev_auth(),
    );
    let mut flooder = Ws::auth(server.addr, "flooder");
    let payload = "x".repeat(1024);
    let mut first_epoch = Value::Null;
    for n in 0..150 {
        let mut publish =
            json!({"type": "publish", "channel": format!("flood-{n}"), "payload": payload});
        if n == 0 || n == 149 {
            publish["id"] = json!(format!("p{n}"));
        }
        flooder.send_json(publish);
        if n == 0 {
            flooder.recv_type("ack");
            let mut probe = Ws::auth(server.addr, "probe");
            first_epoch = probe.subscribe("flood-0")["epoch"].clone();
        }
    }
    assert_eq!(flooder.recv_type("ack")["id"], "p149");

    let after = metrics(server.addr);
    let (channels, bytes) = (
        after["tether_history_channels"],
        after["tether_history_bytes"],
    );
    assert!(
        channels <= CHANNELS && bytes <= BYTES,
        "{channels} channels, {bytes} bytes"
    );
    assert!(
        channels > 0 && bytes > 1024 * channels,
        "the newest history stays: {channels} channels, {bytes} bytes"
    );

    let mut late = Ws::auth(server.addr, "late");
    late.send_json(json!({"type": "subscribe", "channel": "flood-0", "since": {"epoch": first_epoch, "offset": 0}}));
    let subscribed = late.recv_type("subscribed");
    assert_eq!(subscribed["recovered"], false, "{subscribed}");
}

runtime_tests! {
    a_flood_to_new_channels_keeps_the_history_within_its_bounds => smol, smol2, blocking, tokio, tokio2;
    a_reconnect_with_since_gets_exactly_the_missed_publications => smol, smol2, blocking, tokio, tokio2;
    since_the_current_offset_replays_nothing => smol, smol2, blocking, tokio, tokio2;
    a_wrong_epoch_is_not_recovered => smol, smol2, blocking, tokio, tokio2;
}
