//! PROTOCOL.md section 3 (and its decisions in section 11): auth on the
//! first message, its deadline, token verdicts and pipelining.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};
use tether_core::{
    Authorizer, ChannelRequest, ConnectRequest, Handler, Identity, Rejection, ServerConfig,
};

use crate::harness::{
    JWT_SECRET, Runtime, TETHER, backend_config, config, dev_auth, jwt_auth, mint_jwt, unix_now,
};
use tether_testkit::metrics::metric;
use tether_testkit::process::Process;
use tether_testkit::ws::Ws;

/// `count` application pings with ids `p0`, `p1`, ...
fn pings(count: usize) -> Vec<Value> {
    (0..count)
        .map(|n| json!({"type": "ping", "id": format!("p{n}")}))
        .collect()
}

/// How long [`HeldAuthorizer`] holds the token `slow` at most.
const HOLD: Duration = Duration::from_secs(2);

/// The dev authorizer, except that the check of the token `slow`, and the
/// application's decision on channel `app:slow`, take until the test
/// releases them, 2 s at most, as a database lookup might. Of the other
/// `app:` channels, the application allows user `alice` only.
struct HeldAuthorizer {
    started: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
    /// The hold ran out before the release: the test could not go on
    /// while the check was held.
    ran_out: AtomicBool,
}

#[tether_core::async_trait]
impl Handler for HeldAuthorizer {
    async fn connect(&self, request: ConnectRequest) -> Result<Identity, Rejection> {
        if request.token == "slow" {
            self.hold();
        }
        dev_auth()
            .authenticate(&request.token)
            .ok_or_else(Rejection::forbidden)
    }

    async fn subscribe(&self, request: ChannelRequest) -> Result<Option<String>, Rejection> {
        self.channel(&request)
    }

    async fn publish(&self, request: ChannelRequest) -> Result<Option<String>, Rejection> {
        self.channel(&request)
    }

    fn authorize_api(&self, authorization: Option<&str>) -> bool {
        Authorizer::authorize_api(&*dev_auth(), authorization)
    }

    /// The holds block the thread they run on.
    fn may_block(&self) -> bool {
        true
    }
}

impl HeldAuthorizer {
    fn new() -> (Arc<HeldAuthorizer>, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (started, check_started) = mpsc::channel();
        let (release, released) = mpsc::channel();
        let authorizer = Arc::new(HeldAuthorizer {
            started: Mutex::new(started),
            release: Mutex::new(released),
            ran_out: AtomicBool::new(false),
        });
        (authorizer, check_started, release)
    }

    /// The application's decision on an `app:` channel request.
    fn channel(&self, request: &ChannelRequest) -> Result<Option<String>, Rejection> {
        if request.channel.as_str() == "app:slow" {
            self.hold();
        }
        match request.user == "alice" {
            true => Ok(None),
            false => Err(Rejection::forbidden()),
        }
    }

    /// Says that a check started, and waits for the test's release.
    fn hold(&self) {
        let _ = self.started.lock().unwrap().send(());
        if self.release.lock().unwrap().recv_timeout(HOLD).is_err() {
            self.ran_out.store(true, Ordering::SeqCst);
        }
    }
}

fn a_slow_token_check_delays_no_other_connection(runtime: Runtime) {
    let (authorizer, check_started, release) = HeldAuthorizer::new();
    let server = runtime.start(config(), authorizer.clone());
    let mut slow = Ws::open(server.addr);
    slow.send_json(json!({"type": "auth", "token": "slow"}));
    check_started
        .recv_timeout(HOLD)
        .expect("the slow check started");

    let mut fast = Ws::auth(server.addr, "fast");
    for n in 0..20 {
        fast.send_json(json!({"type": "ping", "id": format!("p{n}")}));
        assert_eq!(fast.recv_type("pong")["id"], format!("p{n}"));
    }
    release.send(()).expect("the check waits");
    assert_eq!(slow.recv_type("auth_ack")["user"], "slow");
    assert!(
        !authorizer.ran_out.load(Ordering::SeqCst),
        "the other connection's round trips waited for the slow check"
    );
}

fn a_slow_channel_decision_delays_no_other_connection(runtime: Runtime) {
    let (authorizer, check_started, release) = HeldAuthorizer::new();
    let server = runtime.start(backend_config(), authorizer.clone());
    let mut alice = Ws::auth(server.addr, "alice");
    alice.send_json(json!({"type": "subscribe", "channel": "app:slow", "id": "s"}));
    alice.send_json(json!({"type": "ping", "id": "p"}));
    check_started
        .recv_timeout(HOLD)
        .expect("the slow decision started");
    let mut other = Ws::auth(server.addr, "other");
    for n in 0..20 {
        other.send_json(json!({"type": "ping", "id": format!("p{n}")}));
        assert_eq!(other.recv_type("pong")["id"], format!("p{n}"));
    }
    release.send(()).expect("the decision waits");
    assert_eq!(alice.recv_type("subscribed")["id"], "s");
    alice.recv_type("presence");
    assert_eq!(alice.recv_type("pong")["id"], "p");
    assert!(
        !authorizer.ran_out.load(Ordering::SeqCst),
        "the other connection's round trips waited for the slow decision"
    );
}

fn the_application_refuses_a_channel_request_forbidden(runtime: Runtime) {
    let (authorizer, _, _) = HeldAuthorizer::new();
    let server = runtime.start(backend_config(), authorizer);
    let mut bob = Ws::auth(server.addr, "bob");
    bob.send_json(json!({"type": "subscribe", "channel": "app:x", "id": "s"}));
    let refused = bob.recv_type("error");
    assert_eq!(
        (refused["id"].as_str(), refused["code"].as_str()),
        (Some("s"), Some("FORBIDDEN"))
    );
    bob.send_json(json!({"type": "publish", "channel": "app:x", "payload": 1, "id": "p"}));
    assert_eq!(bob.recv_type("error")["id"], "p");
    let mut alice = Ws::auth(server.addr, "alice");
    alice.send_json(json!({"type": "publish", "channel": "app:x", "payload": 1, "id": "p"}));
    assert_eq!(alice.recv_type("ack")["offset"], 1);
}

fn the_first_message_must_be_auth(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut ws = Ws::open(server.addr);
    ws.send_json(json!({"type": "subscribe", "channel": "room", "id": "s"}));
    assert_eq!(ws.expect_close(), (4001, "auth required".into()));
    assert_eq!(metric(server.addr, "tether_auth_failures_total"), 1);
}

fn a_token_in_the_query_string_is_not_read(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let (mut ws, _) = Ws::handshake(server.addr, "/ws?token=alice", &[]).expect("the upgrade");
    ws.send_json(json!({"type": "ping", "id": "p"}));
    ws.recv_type("pong");
    ws.send_json(json!({"type": "presence", "channel": "room"}));
    assert_eq!(ws.expect_close(), (4001, "auth required".into()));
}

fn no_auth_in_time_closes_4001(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            auth_timeout: Duration::from_millis(300),
            ..config()
        },
        dev_auth(),
    );
    let mut ws = Ws::open(server.addr);
    assert_eq!(ws.expect_close(), (4001, "auth timeout".into()));
    assert_eq!(metric(server.addr, "tether_auth_failures_total"), 1);
}

fn a_token_that_is_not_a_valid_jwt_closes_4003(runtime: Runtime) {
    let server = runtime.start(config(), jwt_auth());
    let forged = mint_jwt(
        "another-secret-that-is-32-bytes-long!",
        "mallory",
        unix_now() + 600,
    );
    for token in ["not-a-jwt", forged.as_str()] {
        let mut ws = Ws::open(server.addr);
        ws.send_json(json!({"type": "auth", "token": token}));
        assert_eq!(ws.expect_close(), (4003, "forbidden".into()), "{token}");
    }
    assert_eq!(metric(server.addr, "tether_auth_failures_total"), 2);
}

fn an_expired_jwt_closes_4003(runtime: Runtime) {
    let server = runtime.start(config(), jwt_auth());
    let expired = mint_jwt(JWT_SECRET, "alice", unix_now() - 60);
    let mut ws = Ws::open(server.addr);
    ws.send_json(json!({"type": "auth", "token": expired}));
    assert_eq!(ws.expect_close(), (4003, "forbidden".into()));
}

fn a_user_id_that_cannot_name_its_private_channel_closes_4003(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    for user in ["jane doe", "ann\u{200b}", "\u{202e}nna", "é"] {
        let mut ws = Ws::open(server.addr);
        ws.send_json(json!({"type": "auth", "token": user}));
        assert_eq!(
            ws.expect_close(),
            (4003, "invalid user id".into()),
            "{user:?}"
        );
    }
    assert_eq!(metric(server.addr, "tether_auth_failures_total"), 4);
    let longest = "u".repeat(123);
    Ws::auth(server.addr, &longest).subscribe(&format!("user:{longest}"));
}

fn a_jwt_subject_that_cannot_be_a_user_id_closes_4003(runtime: Runtime) {
    let server = runtime.start(config(), jwt_auth());
    let spaced = mint_jwt(JWT_SECRET, "jane doe", unix_now() + 600);
    let mut ws = Ws::open(server.addr);
    ws.send_json(json!({"type": "auth", "token": spaced}));
    assert_eq!(ws.expect_close(), (4003, "invalid user id".into()));
    assert_eq!(metric(server.addr, "tether_auth_failures_total"), 1);
}

fn the_binary_logs_a_refused_user_id(runtime: Runtime) {
    let process = Process::start(TETHER, &runtime.dev_binary_args());
    let addr = process.listening_on();
    let mut ws = Ws::open(addr);
    ws.send_json(json!({"type": "auth", "token": "jane doe"}));
    assert_eq!(ws.expect_close(), (4003, "invalid user id".into()));
    let line = process.wait_for_line("invalid user id");
    assert!(line.contains("4003"), "{line}");
    assert!(
        !line.contains("jane doe"),
        "the token stays out of logs: {line}"
    );
}

fn a_second_auth_is_answered_with_its_id(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut ws = Ws::auth(server.addr, "alice");
    ws.send_json(json!({"type": "auth", "token": "alice", "id": "again"}));
    let error = ws.recv_error("INVALID_MESSAGE");
    assert_eq!(error["id"], "again", "{error}");
}

fn a_valid_jwt_is_acknowledged_with_the_settings(runtime: Runtime) {
    let settings = ServerConfig {
        heartbeat_interval: Duration::from_millis(4_500),
        max_payload: 12_345,
        ..config()
    };
    let server = runtime.start(settings, jwt_auth());
    let token = mint_jwt(JWT_SECRET, "alice", unix_now() + 600);
    let mut ws = Ws::open(server.addr);
    ws.send_json(json!({"type": "auth", "token": token}));
    let ack = ws.recv_type("auth_ack");
    assert_eq!(ack["user"], "alice", "{ack}");
    assert_eq!(ack["heartbeat_ms"], 4_500, "{ack}");
    assert_eq!(ack["max_payload"], 12_345, "{ack}");
    assert!(
        ack["session"]
            .as_str()
            .is_some_and(|session| !session.is_empty()),
        "{ack}"
    );
}

fn a_ping_before_auth_is_answered(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut ws = Ws::open(server.addr);
    ws.send_json(json!({"type": "ping", "id": "early"}));
    assert_eq!(ws.recv(), json!({"type": "pong", "id": "early"}));
    ws.send_json(json!({"type": "auth", "token": "alice"}));
    assert_eq!(ws.recv_type("auth_ack")["user"], "alice");
}

fn requests_pipelined_behind_auth_are_answered_in_order(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut ws = Ws::open(server.addr);
    ws.send_batch(&[
        json!({"type": "auth", "token": "alice"}),
        json!({"type": "subscribe", "channel": "room", "id": "s"}),
        json!({"type": "ping", "id": "p"}),
        json!({"type": "presence", "channel": "room", "id": "q"}),
    ]);
    assert_eq!(ws.recv_type("auth_ack")["user"], "alice");
    let subscribed = ws.recv_type("subscribed");
    assert_eq!(subscribed["id"], "s", "{subscribed}");
    assert_eq!(ws.recv_type("presence")["users"], json!(["alice"]));
    assert_eq!(ws.recv(), json!({"type": "pong", "id": "p"}));
    let asked = ws.recv_type("presence");
    assert_eq!(asked["id"], "q", "{asked}");
    assert_eq!(asked["users"], json!(["alice"]), "{asked}");
}

fn thirty_two_messages_before_the_verdict_are_kept(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut ws = Ws::open(server.addr);
    let mut batch = vec![json!({"type": "auth", "token": "alice"})];
    batch.extend(pings(32));
    ws.send_batch(&batch);
    ws.recv_type("auth_ack");
    for n in 0..32 {
        assert_eq!(ws.recv(), json!({"type": "pong", "id": format!("p{n}")}));
    }
}

fn a_thirty_third_message_before_the_verdict_closes_1008(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut ws = Ws::open(server.addr);
    // One write of about a kilobyte reaches the node in one read over
    // loopback: every message is in before the verdict can be.
    let mut batch = vec![json!({"type": "auth", "token": "alice"})];
    batch.extend(pings(33));
    ws.send_batch(&batch);
    assert_eq!(ws.expect_close().0, 1008);
}

fn messages_behind_a_rejected_token_are_discarded(runtime: Runtime) {
    let server = runtime.start(config(), jwt_auth());
    let mut ws = Ws::open(server.addr);
    let mut batch = vec![json!({"type": "auth", "token": "not-a-jwt"})];
    batch.extend(pings(3));
    ws.send_batch(&batch);
    assert_eq!(ws.expect_close(), (4003, "forbidden".into()));
}

runtime_tests! {
    a_slow_token_check_delays_no_other_connection => smol, blocking, tokio;
    a_slow_channel_decision_delays_no_other_connection => smol, blocking, tokio;
    the_application_refuses_a_channel_request_forbidden => smol, blocking, tokio;
    the_first_message_must_be_auth => smol, smol2, blocking, tokio, tokio2, example;
    a_token_in_the_query_string_is_not_read => smol, blocking, tokio;
    no_auth_in_time_closes_4001 => smol, blocking, tokio;
    a_token_that_is_not_a_valid_jwt_closes_4003 => smol, blocking, tokio;
    an_expired_jwt_closes_4003 => smol, blocking, tokio;
    a_user_id_that_cannot_name_its_private_channel_closes_4003 => smol, smol2, blocking, tokio, tokio2, example;
    a_jwt_subject_that_cannot_be_a_user_id_closes_4003 => smol, blocking, tokio;
    the_binary_logs_a_refused_user_id => smol, blocking, tokio;
    a_second_auth_is_answered_with_its_id => smol, blocking, tokio;
    a_valid_jwt_is_acknowledged_with_the_settings => smol, blocking, tokio;
    a_ping_before_auth_is_answered => smol, smol2, blocking, tokio, tokio2, example;
    requests_pipelined_behind_auth_are_answered_in_order => smol, blocking, tokio;
    thirty_two_messages_before_the_verdict_are_kept => smol, blocking, tokio;
    a_thirty_third_message_before_the_verdict_closes_1008 => smol, blocking, tokio;
    messages_behind_a_rejected_token_are_discarded => smol, blocking, tokio;
}
