//! PROTOCOL.md section 1: what the WebSocket handshake accepts and refuses.

use serde_json::json;

use crate::harness::{Runtime, config, dev_auth};
use tether_testkit::ws::Ws;

/// The HTTP status of a refused upgrade; panics if it was accepted.
fn refusal(
    result: Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error>,
) -> u16 {
    match result {
        Ok((_, response)) => panic!("the upgrade was accepted: {response:?}"),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// The subprotocol a successful upgrade selected, if any.
fn selected(response: &tungstenite::handshake::client::Response) -> Option<String> {
    response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|value| value.to_str().expect("an ASCII header").to_owned())
}

fn tether_v1_is_selected_when_offered(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let offers = [("Sec-WebSocket-Protocol", "chat, tether.v1")];
    let (mut ws, response) = Ws::handshake(server.addr, "/ws", &offers).expect("the upgrade");
    assert_eq!(response.status().as_u16(), 101);
    assert_eq!(selected(&response).as_deref(), Some("tether.v1"));
    ws.send_json(json!({"type": "auth", "token": "alice"}));
    ws.recv_type("auth_ack");
}

fn only_other_subprotocols_are_refused(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let offers = [("Sec-WebSocket-Protocol", "chat, superchat")];
    assert_eq!(refusal(Ws::handshake(server.addr, "/ws", &offers)), 400);
}

fn no_subprotocol_offer_is_accepted(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let (_, response) = Ws::handshake(server.addr, "/ws", &[]).expect("the upgrade");
    assert_eq!(response.status().as_u16(), 101);
    assert_eq!(selected(&response), None);
}

fn origins_off_the_allow_list_are_refused(runtime: Runtime) {
    let allowed = "https://app.example";
    let server = runtime.start(
        tether_core::ServerConfig {
            allowed_origins: vec![allowed.into()],
            ..config()
        },
        dev_auth(),
    );
    let evil = [("Origin", "https://evil.example")];
    assert_eq!(refusal(Ws::handshake(server.addr, "/ws", &evil)), 403);
    let good = [("Origin", allowed)];
    let (mut ws, _) = Ws::handshake(server.addr, "/ws", &good).expect("an allowed origin");
    ws.send_json(json!({"type": "auth", "token": "alice"}));
    ws.recv_type("auth_ack");
    // Not a browser: nothing to check.
    Ws::handshake(server.addr, "/ws", &[]).expect("no Origin header");
}

fn any_origin_is_accepted_without_an_allow_list(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let origin = [("Origin", "https://anywhere.example")];
    Ws::handshake(server.addr, "/ws", &origin).expect("any origin");
}

runtime_tests! {
    tether_v1_is_selected_when_offered => smol, smol2, blocking, tokio, tokio2, example;
    only_other_subprotocols_are_refused => smol, blocking, tokio;
    no_subprotocol_offer_is_accepted => smol, blocking, tokio;
    origins_off_the_allow_list_are_refused => smol, blocking, tokio;
    any_origin_is_accepted_without_an_allow_list => smol, blocking, tokio;
}
