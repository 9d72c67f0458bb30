//! PROTOCOL.md sections 4 and 7: malformed requests are answered with an
//! error (echoing a valid `id`) and the connection stays open.

use serde_json::json;

use crate::harness::{Runtime, config, dev_auth};
use tether_testkit::ws::Ws;

fn each_malformed_request_gets_its_error_code(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut ws = Ws::auth(server.addr, "alice");

    ws.send("this is not JSON");
    ws.recv_error("INVALID_JSON");

    for (request, code, id) in [
        (r#"{"type":"subscribe","id":"a"}"#, "INVALID_MESSAGE", "a"),
        (
            r#"{"type":"publish","channel":"room","id":"b"}"#,
            "INVALID_MESSAGE",
            "b",
        ),
        (
            r#"{"type":"subscribe","channel":7,"id":"c"}"#,
            "INVALID_MESSAGE",
            "c",
        ),
        (r#"{"id":"d","channel":"room"}"#, "MISSING_TYPE", "d"),
        (r#"{"type":"dance","id":"e"}"#, "UNKNOWN_TYPE", "e"),
        (
            r#"{"type":"subscribe","channel":"no spaces","id":"f"}"#,
            "INVALID_CHANNEL",
            "f",
        ),
        (
            r#"{"type":"subscribe","channel":"","id":"g"}"#,
            "INVALID_CHANNEL",
            "g",
        ),
    ] {
        ws.send(request);
        let error = ws.recv_error(code);
        assert_eq!(error["id"], id, "{request}: {error}");
        assert!(error["message"].is_string(), "{request}: {error}");
    }

    ws.send("[1,2,3]");
    ws.recv_error("INVALID_MESSAGE");

    let too_long = "c".repeat(129);
    ws.send_json(json!({"type": "subscribe", "channel": too_long, "id": "h"}));
    assert_eq!(ws.recv_error("INVALID_CHANNEL")["id"], "h");

    // Still open, and unknown fields are ignored.
    ws.send(r#"{"type":"ping","id":"alive","extra":{"x":1}}"#);
    assert_eq!(ws.recv(), json!({"type": "pong", "id": "alive"}));
}

fn the_longest_channel_name_and_every_allowed_character_are_valid(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut ws = Ws::auth(server.addr, "alice");
    ws.subscribe("Az09_-:.@/");
    ws.subscribe(&"c".repeat(128));
}

fn a_second_auth_is_refused_and_the_connection_stays_open(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut ws = Ws::auth(server.addr, "alice");
    ws.send_json(json!({"type": "auth", "token": "bob"}));
    ws.recv_error("INVALID_MESSAGE");
    ws.send_json(json!({"type": "ping", "id": "p"}));
    assert_eq!(ws.recv(), json!({"type": "pong", "id": "p"}));
}

runtime_tests! {
    each_malformed_request_gets_its_error_code => smol, blocking, tokio;
    the_longest_channel_name_and_every_allowed_character_are_valid => smol, blocking, tokio;
    a_second_auth_is_refused_and_the_connection_stays_open => smol, blocking, tokio;
}
