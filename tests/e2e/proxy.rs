//! PROTOCOL.md section 13, "The HTTP proxy": the standalone server asking
//! the application's backend over HTTP. The example backend
//! (`examples/backend.mjs`, on Node.js) decides for the `tether` binary;
//! test backends that are real HTTP servers (`tether_testkit::backend`)
//! play the slow, the busy and the failing backend for a node running the
//! binary's `ProxyHandler`.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tether::proxy::{MAX_ANSWER_BYTES, ProxyHandler};
use tether::settings::ProxySettings;
use tether_core::{ChannelPattern, Namespace, Rule, ServerConfig};
use tether_testkit::backend::{Received, Reply, TestBackend};
use tether_testkit::process::Process;
use tether_testkit::ws::Ws;

use crate::harness::{Runtime, TETHER, TestDir, TestServer, config, dev_auth};

/// The shared secret between the binary and the example backend.
const BACKEND_KEY: &str = "e2e-backend-key";

/// The example backend on a free port of 127.0.0.1, asking for
/// [`BACKEND_KEY`], and its address.
fn example_backend() -> (Process, SocketAddr) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/backend.mjs");
    let process = Process::start_with_env(
        "node",
        &[script, "127.0.0.1:0"],
        &[("BACKEND_KEY", BACKEND_KEY)],
    );
    let addr = process.listening_on();
    (process, addr)
}

/// The `tether` binary on `runtime`, its every decision asked of the
/// backend at `backend`.
fn binary_with_proxy(runtime: Runtime, dir: &TestDir, backend: SocketAddr) -> Process {
    let path = dir.path().join("tether.toml");
    let config = format!(
        r#"listen = "127.0.0.1:0"
runtime = "{runtime}"
forward_headers = ["cookie"]

[proxy]
connect_url = "http://{backend}/connect"
subscribe_url = "http://{backend}/subscribe"
publish_url = "http://{backend}/publish"
rpc_url = "http://{backend}/rpc"
headers = {{ "x-backend-key" = "{BACKEND_KEY}" }}

[[namespaces]]
pattern = "news:*"
subscribe = "backend"
publish = "backend"

[[namespaces]]
pattern = "premium:*"
subscribe = "backend"

[[namespaces]]
pattern = "team:*"
subscribe = "token"
"#,
        runtime = runtime.name()
    );
    fs::write(&path, config).expect("the config is written");
    Process::start(
        TETHER,
        &["serve", "--config", path.to_str().expect("a UTF-8 path")],
    )
}

fn the_example_backend_decides_for_the_binary(runtime: Runtime) {
    let (backend_process, backend) = example_backend();
    let dir = TestDir::new(&format!("proxy-{}", runtime.name()));
    let node = binary_with_proxy(runtime, &dir, backend);
    let addr = node.listening_on();

    // Alice's token is no one's: her session cookie, forwarded, decides.
    let cookie = "theme=dark; session=s-alice";
    let (mut alice, _) = Ws::handshake(addr, "/ws", &[("cookie", cookie)]).expect("the upgrade");
    alice.send_json(json!({"type": "auth", "token": "from-the-cookie"}));
    let ack = alice.recv_type("auth_ack");
    assert_eq!(
        (&ack["user"], &ack["expires_at"]),
        (&json!("alice"), &json!(4_102_444_800_000_u64)),
        "{ack}"
    );
    let (mut bob, ack) = Ws::auth_with(addr, "bob-token");
    assert_eq!(ack["user"], "bob", "{ack}");
    let mut stranger = Ws::open(addr);
    stranger.send_json(json!({"type": "auth", "token": "nobody-token"}));
    assert_eq!(stranger.expect_close(), (4003, "forbidden".into()));

    // Subscribe: allowed with the backend's data, or refused with its
    // message; the grants of the connect answer decide `token` rules.
    let subscribed = alice.subscribe("premium:1");
    assert_eq!(subscribed["data"], json!({"welcome": "Hello, Alice"}));
    bob.send_json(json!({"type": "subscribe", "channel": "premium:1", "id": "p"}));
    assert_eq!(
        bob.recv(),
        json!({"type": "error", "id": "p", "code": "FORBIDDEN",
               "message": "premium channels are for pro users"})
    );
    let subscribed = alice.subscribe("team:1");
    assert_eq!(subscribed.get("data"), None, "{subscribed}");
    bob.send_json(json!({"type": "subscribe", "channel": "team:1", "id": "t"}));
    assert_eq!(bob.recv_error("FORBIDDEN")["id"], "t");
    let subscribed = bob.subscribe("news:chat");
    assert_eq!(subscribed["data"], json!({"welcome": "Hello, Bob"}));

    // Publish: as sent, refused, or replaced.
    let publish = |id: &str, payload: &str| json!({"type": "publish", "channel": "news:chat", "payload": payload, "id": id});
    alice.send_json(publish("p1", "hello"));
    assert_eq!(
        alice.recv(),
        json!({"type": "ack", "id": "p1", "offset": 1})
    );
    assert_eq!(
        bob.recv(),
        json!({"type": "message", "channel": "news:chat", "payload": "hello",
               "sender": "alice", "offset": 1})
    );
    alice.send_json(publish("p2", "  "));
    assert_eq!(
        alice.recv(),
        json!({"type": "error", "id": "p2", "code": "BAD_REQUEST", "message": "empty message"})
    );
    alice.send_json(publish("p3", "oh darn it"));
    assert_eq!(
        alice.recv(),
        json!({"type": "ack", "id": "p3", "offset": 2})
    );
    assert_eq!(
        bob.recv(),
        json!({"type": "message", "channel": "news:chat", "payload": "oh **** it",
               "sender": "alice", "offset": 2})
    );

    // Rpc: the result, with the connection info of the connect answer, or
    // an unknown method.
    alice.send_json(json!({"type": "rpc", "method": "whoami", "id": "r1"}));
    assert_eq!(
        alice.recv(),
        json!({"type": "rpc_result", "id": "r1",
               "data": {"user": "alice", "name": "Alice", "plan": "pro"}})
    );
    alice.send_json(json!({"type": "rpc", "method": "launch", "data": [1], "id": "r2"}));
    assert_eq!(
        alice.recv(),
        json!({"type": "error", "id": "r2", "code": "NOT_FOUND", "message": "unknown method"})
    );

    // Nothing listens any more: the next auth fails INTERNAL (1011), and
    // the warning names neither the token nor the shared secret.
    drop(backend_process);
    let mut late = Ws::open(addr);
    late.send_json(json!({"type": "auth", "token": "late-secret-token"}));
    assert_eq!(late.expect_close(), (1011, "internal error".into()));
    let warning = node.wait_for_line("proxy backend failed");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("decision=\"connect\""), "{warning}");
    assert!(!warning.contains("late-secret-token"), "{warning}");
    assert!(!warning.contains(BACKEND_KEY), "{warning}");
}

/// A node of the binary's `ProxyHandler` on `runtime`, in dev mode for
/// what the proxy does not ask.
fn proxy_node(runtime: Runtime, config: ServerConfig, proxy: ProxySettings) -> TestServer {
    runtime.start(config, Arc::new(ProxyHandler::new(&proxy, dev_auth())))
}

/// A backend for the tests below: a connect answer with the token as the
/// user, an rpc `ping` answered `"pong"`, and whatever `special` says for
/// the rest.
fn backend(special: impl Fn(&Received) -> Option<Reply> + Send + 'static) -> TestBackend {
    TestBackend::start(move |received| {
        special(received).unwrap_or_else(|| match received.path.as_str() {
            "/connect" => {
                Reply::ok(json!({"result": {"user": received.body["token"]}}).to_string())
            }
            _ => Reply::ok(r#"{"result":{"data":"pong"}}"#),
        })
    })
}

/// `{"type":"rpc",...}` of `method` with `id`.
fn rpc(method: &str, id: &str) -> Value {
    json!({"type": "rpc", "method": method, "id": id})
}

/// The body a backend received, without the connection's name (which the
/// node picks), after checking the name's form.
fn without_conn(mut received: Received) -> Value {
    let conn = received.body["conn"].take();
    assert!(
        conn.as_str().is_some_and(|conn| conn.starts_with("conn#")),
        "{conn}"
    );
    received
        .body
        .as_object_mut()
        .expect("a body")
        .remove("conn");
    received.body
}

fn a_backend_past_the_proxy_timeout_is_unavailable(runtime: Runtime) {
    let backend = backend(|received| {
        let held = received.body["method"] == "hold" || received.body["token"] == "hold";
        held.then_some(Reply::Hold)
    });
    let server = proxy_node(
        runtime,
        ServerConfig {
            decision_timeout: Duration::from_secs(25),
            ..config()
        },
        ProxySettings {
            connect_url: Some(backend.url("/connect")),
            rpc_url: Some(backend.url("/rpc")),
            timeout: Duration::from_millis(200),
            ..ProxySettings::default()
        },
    );
    let mut alice = Ws::auth(server.addr, "alice");
    alice.send_json(json!({"type": "rpc", "method": "hold", "data": {"n": 1}, "id": "r1"}));
    let held = backend.next_held();
    assert_eq!(held.path, "/rpc");
    assert_eq!(
        without_conn(held),
        json!({"user": "alice", "info": null, "method": "hold", "data": {"n": 1}})
    );
    assert_eq!(
        alice.recv(),
        json!({"type": "error", "id": "r1", "code": "UNAVAILABLE",
               "message": "the application's backend did not answer in time"})
    );
    alice.send_json(rpc("ping", "r2"));
    assert_eq!(
        alice.recv(),
        json!({"type": "rpc_result", "id": "r2", "data": "pong"})
    );

    let mut held_auth = Ws::open(server.addr);
    held_auth.send_json(json!({"type": "auth", "token": "hold"}));
    assert_eq!(
        without_conn(backend.next_held()),
        json!({"token": "hold", "headers": {}, "refresh": false})
    );
    assert_eq!(held_auth.expect_close(), (1013, "try again later".into()));
}

fn a_held_request_delays_no_other_connection_and_the_bound_answers_at_once(runtime: Runtime) {
    let backend = backend(|received| (received.body["method"] == "hold").then_some(Reply::Hold));
    let server = proxy_node(
        runtime,
        ServerConfig {
            decision_timeout: Duration::from_secs(20),
            ..config()
        },
        ProxySettings {
            rpc_url: Some(backend.url("/rpc")),
            timeout: Duration::from_secs(20),
            max_concurrency: 2,
            ..ProxySettings::default()
        },
    );
    let mut alice = Ws::auth(server.addr, "alice");
    let mut bob = Ws::auth(server.addr, "bob");
    let mut carol = Ws::auth(server.addr, "carol");
    let mut dave = Ws::auth(server.addr, "dave");

    alice.send_json(rpc("hold", "a"));
    assert_eq!(backend.next_held().body["user"], "alice");
    // Answered while alice's request is out (it gets its own answer below).
    bob.send_json(rpc("ping", "b"));
    assert_eq!(
        bob.recv(),
        json!({"type": "rpc_result", "id": "b", "data": "pong"})
    );
    carol.send_json(rpc("hold", "c"));
    assert_eq!(backend.next_held().body["user"], "carol");
    // Two requests out: a third is not sent, and not queued.
    dave.send_json(rpc("ping", "d1"));
    assert_eq!(
        dave.recv(),
        json!({"type": "error", "id": "d1", "code": "UNAVAILABLE",
               "message": "the application is busy"})
    );
    let pings = |backend: &TestBackend| {
        let received = backend.received();
        received
            .iter()
            .filter(|r| r.body["method"] == "ping")
            .count()
    };
    assert_eq!(pings(&backend), 1, "dave's ping reached the backend");

    assert_eq!(backend.release(200, r#"{"result":{"data":"late"}}"#), 2);
    assert_eq!(
        alice.recv(),
        json!({"type": "rpc_result", "id": "a", "data": "late"})
    );
    assert_eq!(
        carol.recv(),
        json!({"type": "rpc_result", "id": "c", "data": "late"})
    );
    dave.send_json(rpc("ping", "d2"));
    assert_eq!(
        dave.recv(),
        json!({"type": "rpc_result", "id": "d2", "data": "pong"})
    );
}

/// A port of 127.0.0.1 where nothing listens.
fn dead_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("a bound address")
}

fn a_failing_backend_fails_that_request_only_with_internal(runtime: Runtime) {
    let oversized = format!(
        r#"{{"result":{{"data":"{}"}}}}"#,
        "x".repeat(usize::try_from(MAX_ANSWER_BYTES).expect("a small bound"))
    );
    let backend = backend(move |received| match received.body["method"].as_str() {
        Some("status500") => Some(Reply::Answer(500, r#"{"result":{"data":1}}"#.into())),
        Some("redirect") => Some(Reply::Answer(307, String::new())),
        Some("garbage") => Some(Reply::ok(r#"{"result": nope"#)),
        Some("oversized") => Some(Reply::ok(oversized.clone())),
        Some("teapot") => Some(Reply::ok(
            r#"{"error":{"code":"TEAPOT","message":"short and stout"}}"#,
        )),
        _ if received.body["token"] == "crash" => Some(Reply::Answer(500, String::new())),
        _ => None,
    });
    let dead = dead_port();
    let server = proxy_node(
        runtime,
        ServerConfig {
            namespaces: [
                vec![Namespace {
                    pattern: ChannelPattern::new("dead:*").expect("a pattern"),
                    subscribe: Rule::Backend,
                    publish: Rule::Nobody,
                    presence: Rule::Nobody,
                    history: Rule::Nobody,
                }],
                config().namespaces,
            ]
            .concat(),
            ..config()
        },
        ProxySettings {
            connect_url: Some(backend.url("/connect")),
            subscribe_url: Some(format!("http://{dead}/subscribe")),
            rpc_url: Some(backend.url("/rpc")),
            ..ProxySettings::default()
        },
    );
    let mut alice = Ws::auth(server.addr, "alice");
    for (method, message) in [
        ("status500", "the application failed"),
        ("redirect", "the application failed"),
        ("garbage", "the application failed"),
        ("oversized", "the application failed"),
        ("teapot", "short and stout"),
    ] {
        alice.send_json(rpc(method, method));
        assert_eq!(
            alice.recv(),
            json!({"type": "error", "id": method, "code": "INTERNAL", "message": message}),
            "{method}"
        );
    }
    alice.send_json(json!({"type": "subscribe", "channel": "dead:1", "id": "s"}));
    assert_eq!(
        alice.recv(),
        json!({"type": "error", "id": "s", "code": "INTERNAL", "message": "the application failed"})
    );
    let mut crashed = Ws::open(server.addr);
    crashed.send_json(json!({"type": "auth", "token": "crash"}));
    assert_eq!(crashed.expect_close(), (1011, "internal error".into()));

    alice.send_json(rpc("ping", "after"));
    assert_eq!(
        alice.recv(),
        json!({"type": "rpc_result", "id": "after", "data": "pong"})
    );
}

runtime_tests! {
    the_example_backend_decides_for_the_binary => smol, blocking, tokio;
    a_backend_past_the_proxy_timeout_is_unavailable => smol, blocking, tokio;
    a_held_request_delays_no_other_connection_and_the_bound_answers_at_once => smol, blocking, tokio;
    a_failing_backend_fails_that_request_only_with_internal => smol, blocking, tokio;
}
