//! PROTOCOL.md section 2: every method of the server API over real
//! sockets, the same on every runtime.

use serde_json::{Value, json};

use crate::harness::{API_KEY, Runtime, config, dev_auth};
use tether_testkit::http::{Answer, post_api};
use tether_testkit::ws::Ws;

/// `POST path` with the API key; the status and the body as JSON.
fn call(addr: std::net::SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let answer: Answer = post_api(
        addr,
        path,
        Some(&format!("Bearer {API_KEY}")),
        &body.to_string(),
    );
    let json = serde_json::from_str(&answer.body)
        .unwrap_or_else(|_| panic!("a JSON body from {path}: {answer:?}"));
    (answer.status, json)
}

fn every_method_answers_on_a_node(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let addr = server.addr;
    let mut alice = Ws::auth(addr, "alice");
    alice.subscribe("room");

    let (status, broadcast) = call(
        addr,
        "/api/broadcast",
        json!({"channels": ["room", "news"], "payload": {"n": 1}}),
    );
    assert_eq!(status, 200, "{broadcast}");
    assert_eq!(
        broadcast,
        json!({"results": [{"channel": "room", "offset": 1}, {"channel": "news", "offset": 1}]})
    );
    let message = alice.recv_type("message");
    assert_eq!(
        message,
        json!({"type": "message", "channel": "room", "payload": {"n": 1}, "offset": 1})
    );
    let room = json!({"channel": "room"});
    assert_eq!(
        call(addr, "/api/presence", room.clone()),
        (200, json!({"users": ["alice"]}))
    );
    assert_eq!(
        call(addr, "/api/presence_stats", room.clone()),
        (200, json!({"users": 1, "connections": 1}))
    );
    let (status, history) = call(addr, "/api/history", room.clone());
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["offset"], 1);
    assert_eq!(history["publications"], json!([message]));
    assert_eq!(
        call(addr, "/api/channels", json!({"pattern": "r*"})),
        (200, json!({"channels": ["room"], "total": 1}))
    );
    let (status, info) = call(addr, "/api/info", json!({}));
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        info["totals"],
        json!({"nodes": 1, "connections": 1, "channels": 1})
    );
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));

    assert_eq!(
        call(
            addr,
            "/api/unsubscribe",
            json!({"user": "alice", "channel": "room"})
        ),
        (200, json!({}))
    );
    assert_eq!(
        alice.recv(),
        json!({"type": "unsubscribed", "channel": "room", "reason": "server"})
    );
    assert_eq!(
        call(addr, "/api/channels", json!({})),
        (200, json!({"channels": [], "total": 0}))
    );

    let refused = post_api(addr, "/api/info", None, "{}");
    assert_eq!(refused.status, 401, "{refused:?}");
    let (status, error) = call(addr, "/api/nope", json!({}));
    assert_eq!((status, &error["code"]), (404, &json!("NOT_FOUND")));
    let (status, error) = call(
        addr,
        "/api/history",
        json!({"channel": "room", "limit": "all"}),
    );
    assert_eq!((status, &error["code"]), (400, &json!("INVALID_MESSAGE")));
}

fn disconnect_closes_every_connection_of_the_user_with_its_code(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let addr = server.addr;
    let mut alice = Ws::auth(addr, "alice");
    let mut again = Ws::auth(addr, "alice");
    let mut bob = Ws::auth(addr, "bob");
    assert_eq!(
        call(
            addr,
            "/api/disconnect",
            json!({"user": "alice", "reconnect": false})
        ),
        (200, json!({}))
    );
    assert_eq!(alice.expect_close(), (4500, "disconnected".to_owned()));
    assert_eq!(again.expect_close(), (4500, "disconnected".to_owned()));
    bob.send_json(json!({"type": "ping"}));
    assert_eq!(bob.recv(), json!({"type": "pong"}), "bob stays");
    let body = json!({"user": "bob", "reconnect": true, "code": 4200, "reason": "rebalance"});
    assert_eq!(call(addr, "/api/disconnect", body), (200, json!({})));
    assert_eq!(bob.expect_close(), (4200, "rebalance".to_owned()));
}

runtime_tests! {
    every_method_answers_on_a_node => smol, smol2, blocking, tokio, tokio2;
    disconnect_closes_every_connection_of_the_user_with_its_code => smol, smol2, blocking, tokio, tokio2;
}
