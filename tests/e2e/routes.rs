//! PROTOCOL.md sections 1, 2 and 9: the plain HTTP routes on the WebSocket
//! port, the publish API and the metrics; and the limits on requests that
//! section 11 decides.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use tether_core::ServerConfig;

use crate::harness::{API_KEY, Runtime, TestServer, config, dev_auth};
use tether_testkit::http::{get, post_publish, send};
use tether_testkit::metrics::{metrics, wait_for_metric};
use tether_testkit::ws::{End, Ws, read_to_close, read_to_end, tcp};

/// Every metric section 9 requires.
const REQUIRED_METRICS: [&str; 10] = [
    "tether_connections",
    "tether_connections_total",
    "tether_messages_received_total",
    "tether_messages_sent_total",
    "tether_messages_dropped_total",
    "tether_heartbeat_timeouts_total",
    "tether_auth_failures_total",
    "tether_slow_consumer_closes_total",
    "tether_channels",
    "tether_backplane_errors_total",
];

fn healthz_answers_ok(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let answer = get(server.addr, "/healthz");
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok"));
    assert!(
        answer
            .head
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{answer:?}"
    );
}

fn other_paths_are_not_found(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    for path in ["/", "/nope", "/healthz/extra", "/api/publish/x"] {
        assert_eq!(get(server.addr, path).status, 404, "GET {path}");
    }
}

fn a_plain_get_of_the_websocket_endpoint_needs_an_upgrade(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    assert_eq!(get(server.addr, "/ws").status, 426);
}

fn metrics_name_every_required_metric_and_count_traffic(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let before = metrics(server.addr);
    for name in REQUIRED_METRICS {
        assert!(before.contains_key(name), "{name} missing from {before:?}");
    }
    assert_eq!(before["tether_connections"], 0);
    assert_eq!(before["tether_channels"], 0);

    let mut alice = Ws::auth(server.addr, "alice");
    alice.subscribe("room");
    alice.send_json(json!({"type": "ping", "id": "p"}));
    alice.recv_type("pong");

    let during = metrics(server.addr);
    assert_eq!(during["tether_connections"], 1);
    assert_eq!(during["tether_connections_total"], 1);
    assert_eq!(during["tether_channels"], 1);
    // auth, subscribe, ping
    assert_eq!(during["tether_messages_received_total"], 3);
    // auth_ack, subscribed, presence, pong
    assert!(during["tether_messages_sent_total"] >= 4, "{during:?}");

    drop(alice);
    wait_for_metric(server.addr, "tether_connections", |open| open == 0);
    wait_for_metric(server.addr, "tether_channels", |channels| channels == 0);
    assert_eq!(metrics(server.addr)["tether_connections_total"], 1);
}

fn the_publish_api_needs_the_key_and_a_valid_body(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut bob = Ws::auth(server.addr, "bob");
    bob.subscribe("news");
    let bearer = format!("Bearer {API_KEY}");
    let body = r#"{"channel":"news","payload":{"n":1}}"#;

    let published = post_publish(server.addr, Some(&bearer), body);
    assert_eq!(published.status, 200, "{published:?}");
    let answer: Value = serde_json::from_str(&published.body).expect("a JSON body");
    assert_eq!(answer, json!({"offset": 1}));
    assert_eq!(
        bob.recv(),
        json!({"type": "message", "channel": "news", "payload": {"n": 1}, "offset": 1})
    );

    assert_eq!(post_publish(server.addr, None, body).status, 401);
    let wrong = post_publish(server.addr, Some("Bearer not-the-key-at-all"), body);
    assert_eq!(wrong.status, 401);
    let basic = post_publish(server.addr, Some(&format!("Basic {API_KEY}")), body);
    assert_eq!(basic.status, 401);

    for (bad, code) in [
        ("not json", "INVALID_JSON"),
        (r#"{"payload":1}"#, "INVALID_MESSAGE"),
        (r#"{"channel":"no spaces","payload":1}"#, "INVALID_CHANNEL"),
    ] {
        let refused = post_publish(server.addr, Some(&bearer), bad);
        assert_eq!(refused.status, 400, "{bad}: {refused:?}");
        let error: Value = serde_json::from_str(&refused.body).expect("a JSON error body");
        assert_eq!(error["code"], code, "{bad}: {error}");
    }

    // Nothing refused was published: the next offset is 2.
    let again = post_publish(
        server.addr,
        Some(&format!("bearer {API_KEY}")),
        r#"{"channel":"news","payload":"two"}"#,
    );
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body, r#"{"offset":2}"#);
    assert_eq!(
        bob.recv(),
        json!({"type": "message", "channel": "news", "payload": "two", "offset": 2})
    );
}

fn a_publish_api_request_retried_with_its_idempotency_key_publishes_once(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut bob = Ws::auth(server.addr, "bob");
    bob.subscribe("news");
    let bearer = format!("Bearer {API_KEY}");
    let body = r#"{"channel":"news","payload":"once","idempotency_key":"notice-1"}"#;
    for attempt in ["first", "retry"] {
        let answer = post_publish(server.addr, Some(&bearer), body);
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, r#"{"offset":1}"#),
            "{attempt}"
        );
    }
    // A user's key is not the API's, and a refused key says why.
    let mut alice = Ws::auth(server.addr, "alice");
    alice.send_json(json!({"type": "publish", "channel": "news", "payload": "own", "id": "r1", "idempotency_key": "notice-1"}));
    assert_eq!(
        alice.recv(),
        json!({"type": "ack", "id": "r1", "offset": 2})
    );
    let refused = post_publish(
        server.addr,
        Some(&bearer),
        r#"{"channel":"news","payload":1,"idempotency_key":""}"#,
    );
    assert_eq!(refused.status, 400, "{refused:?}");
    let error: Value = serde_json::from_str(&refused.body).expect("a JSON error body");
    assert_eq!(error["code"], "INVALID_MESSAGE", "{error}");
    let payloads: Vec<Value> = (0..2)
        .map(|_| bob.recv_type("message")["payload"].clone())
        .collect();
    assert_eq!(payloads, [json!("once"), json!("own")]);
}

fn a_known_path_with_another_method_names_the_allowed_one(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let answer = send(server.addr, "DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(answer.status, 405, "{answer:?}");
    assert!(answer.head.contains("Allow: GET"), "{answer:?}");
    assert_eq!(get(server.addr, "/api/publish").status, 405);
}

fn oversized_requests_are_refused(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            max_payload: 1024,
            max_http_head: 1024,
            ..config()
        },
        dev_auth(),
    );
    let body = format!(r#"{{"channel":"news","payload":"{}"}}"#, "x".repeat(1024));
    let answer = post_publish(server.addr, Some(&format!("Bearer {API_KEY}")), &body);
    assert_eq!(answer.status, 413, "{answer:?}");
    let long_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "x".repeat(2048)
    );
    assert_eq!(send(server.addr, &long_header).status, 431);
}

/// A node with `max_connections = 1`, and the connection that fills it.
fn a_node_at_capacity(runtime: Runtime) -> (TestServer, Ws) {
    let server = runtime.start(
        ServerConfig {
            max_connections: 1,
            ..config()
        },
        dev_auth(),
    );
    let alice = Ws::auth(server.addr, "alice");
    (server, alice)
}

fn connections_beyond_max_connections_get_503(runtime: Runtime) {
    let (server, _alice) = a_node_at_capacity(runtime);
    let refused = get(server.addr, "/healthz");
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (503, "too many connections")
    );
}

/// A burst of 1,000 connections beyond `max_connections`, each sending its
/// request at once: every one gets its `503` whole and then the end of the
/// stream, never a reset that destroys the answer (the core half-closes and
/// lingers on every runtime).
fn a_burst_beyond_max_connections_gets_every_503_whole(runtime: Runtime) {
    let (server, _alice) = a_node_at_capacity(runtime);
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut burst: Vec<TcpStream> = (0..1_000)
        .map(|_| {
            let mut stream = tcp(server.addr);
            stream.write_all(request).expect("the request is sent");
            stream
        })
        .collect();
    for (n, stream) in burst.iter_mut().enumerate() {
        let (bytes, end) = read_to_end(stream);
        let answer = String::from_utf8_lossy(&bytes);
        assert!(
            answer.starts_with("HTTP/1.1 503") && answer.ends_with("\r\n\r\ntoo many connections"),
            "connection {n}: {answer:?}"
        );
        assert_eq!(end, End::Eof, "connection {n} was reset");
    }
}

fn an_incomplete_request_head_is_dropped_at_the_handshake_timeout(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            handshake_timeout: Duration::from_millis(300),
            ..config()
        },
        dev_auth(),
    );
    let mut stream = tcp(server.addr);
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .expect("a partial head");
    assert_eq!(read_to_close(&mut stream), b"", "closed without an answer");
}

runtime_tests! {
    healthz_answers_ok => smol, smol2, blocking, tokio, tokio2, example;
    other_paths_are_not_found => smol, blocking, tokio;
    a_plain_get_of_the_websocket_endpoint_needs_an_upgrade => smol, blocking, tokio;
    metrics_name_every_required_metric_and_count_traffic => smol, smol2, blocking, tokio, tokio2, example;
    the_publish_api_needs_the_key_and_a_valid_body => smol, blocking, tokio;
    a_publish_api_request_retried_with_its_idempotency_key_publishes_once => smol, blocking, tokio;
    a_known_path_with_another_method_names_the_allowed_one => smol, blocking, tokio;
    oversized_requests_are_refused => smol, blocking, tokio;
    connections_beyond_max_connections_get_503 => smol, blocking, tokio;
    a_burst_beyond_max_connections_gets_every_503_whole => smol, blocking, tokio;
    an_incomplete_request_head_is_dropped_at_the_handshake_timeout => smol, blocking, tokio;
}
