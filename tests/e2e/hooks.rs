//! PROTOCOL.md section 13 on every runtime: an application's [`Handler`]
//! in the node's process decides tokens, `backend` channel requests and
//! `rpc` calls, and observes notifications, while real clients speak to
//! the node over 127.0.0.1.
//!
//! The handler, [`App`], is plain async code that knows no runtime: what
//! it waits for (a release by the test) is an `async-channel`, and what it
//! reports (notifications, held decisions) goes out on `std` channels that
//! the test reads with bounded waits.

use std::sync::{Arc, mpsc};
use std::time::Duration;

use serde_json::{Value, json};
use tether_core::{
    ChannelRequest, CloseCode, ConnectRequest, ErrorCode, Handler, Identity, Notification,
    Rejection, RpcRequest, ServerConfig,
};
use tether_testkit::ws::{READ_TIMEOUT, Ws};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::Frame;

use crate::harness::{Runtime, TestServer, backend_config};

/// The tokens the application knows: token, user, the user's plan (which
/// it attaches as the connection info).
const TOKENS: &[(&str, &str, &str)] = &[("tok-ann", "ann", "pro"), ("tok-bob", "bob", "free")];

/// The `decision_timeout` of the tests that let a decision run out.
const DECISION_TIMEOUT: Duration = Duration::from_millis(300);

/// The application of these tests.
///
/// - `connect`: a token of [`TOKENS`] is its user, with `{"plan": ..}` as
///   the connection info; the token `cookie` is the user its `session`
///   cookie names, with the forwarded headers as the info; the token
///   `held` is held until the test releases it; any other is refused.
/// - `subscribe` (`app:` channels): `app:welcome` is allowed with data
///   naming the user and plan, `app:vip` only on the `pro` plan,
///   `app:gone` is refused `NOT_FOUND`, the others allowed.
/// - `publish` (`app:` channels): a payload without a `text` string is
///   refused `BAD_REQUEST`; any other is replaced with its trimmed text and
///   the publisher's plan.
/// - `rpc`: `echo` answers its data, `whoami` the user and connection info,
///   `panic` panics, `hold` is held until the test releases it; no other
///   method exists.
struct App {
    /// Every notification, in the order the node delivered them.
    notified: mpsc::Sender<Notification>,
    /// `connect` or `rpc`: a decision is held; `released` once it was.
    held: mpsc::Sender<&'static str>,
    /// What releases a held decision; closed when the test ends.
    release: async_channel::Receiver<()>,
}

/// The test's side of an [`App`].
struct Controls {
    notified: mpsc::Receiver<Notification>,
    held: mpsc::Receiver<&'static str>,
    release: async_channel::Sender<()>,
}

impl Controls {
    /// The next notification, within [`READ_TIMEOUT`].
    fn notification(&self) -> Notification {
        self.notified
            .recv_timeout(READ_TIMEOUT)
            .expect("a notification")
    }

    /// Waits, within [`READ_TIMEOUT`], for the handler to hold a decision
    /// of `kind`.
    fn expect_held(&self, kind: &str) {
        assert_eq!(self.held.recv_timeout(READ_TIMEOUT), Ok(kind));
    }

    /// Releases the decision held, and waits for the handler to let it go.
    fn release(&self) {
        self.release.try_send(()).expect("the handler listens");
        self.expect_held("released");
    }
}

#[tether_core::async_trait]
impl Handler for App {
    async fn connect(&self, request: ConnectRequest) -> Result<Identity, Rejection> {
        match request.token.as_str() {
            "held" => {
                self.hold("connect").await;
                Err(Rejection::forbidden())
            }
            "cookie" => {
                let session = request
                    .headers
                    .iter()
                    .find(|(name, _)| name == "cookie")
                    .and_then(|(_, value)| value.strip_prefix("session="))
                    .ok_or_else(Rejection::forbidden)?;
                Ok(Identity {
                    info: Some(json!({ "headers": request.headers }).to_string()),
                    ..Identity::user(session)
                })
            }
            token => {
                let (_, user, plan) = TOKENS
                    .iter()
                    .find(|(known, _, _)| *known == token)
                    .ok_or_else(Rejection::forbidden)?;
                Ok(Identity {
                    info: Some(json!({ "plan": plan }).to_string()),
                    ..Identity::user(*user)
                })
            }
        }
    }

    async fn subscribe(&self, request: ChannelRequest) -> Result<Option<String>, Rejection> {
        let plan = plan(request.info.as_deref());
        match request.channel.as_str() {
            "app:welcome" => Ok(Some(
                json!({ "welcome": request.user, "plan": plan }).to_string(),
            )),
            "app:vip" if plan != "pro" => {
                Err(Rejection::new(ErrorCode::Forbidden, "pro plan only"))
            }
            "app:gone" => Err(Rejection::new(ErrorCode::NotFound, "no such room")),
            _ => Ok(None),
        }
    }

    async fn publish(&self, request: ChannelRequest) -> Result<Option<String>, Rejection> {
        let payload: Value = serde_json::from_str(request.data.as_deref().unwrap_or("null"))
            .map_err(|_| Rejection::internal())?;
        let Some(text) = payload["text"].as_str() else {
            return Err(Rejection::new(
                ErrorCode::BadRequest,
                "a message needs a text",
            ));
        };
        let plan = plan(request.info.as_deref());
        Ok(Some(
            json!({ "text": text.trim(), "plan": plan }).to_string(),
        ))
    }

    async fn rpc(&self, request: RpcRequest) -> Result<String, Rejection> {
        match request.method.as_str() {
            "echo" => Ok(request.data),
            "whoami" => {
                let info: Value = serde_json::from_str(request.info.as_deref().unwrap_or("null"))
                    .map_err(|_| Rejection::internal())?;
                Ok(json!({ "user": request.user, "info": info }).to_string())
            }
            "panic" => panic!("a bug in the application's method"),
            "hold" => {
                self.hold("rpc").await;
                Ok(json!("released").to_string())
            }
            _ => Err(Rejection::unknown_method()),
        }
    }

    fn authorize_api(&self, _: Option<&str>) -> bool {
        false
    }

    fn notify(&self, notification: Notification) {
        let _ = self.notified.send(notification);
    }
}

impl App {
    /// Starts a node on `runtime` with this application and `config`.
    fn start(runtime: Runtime, config: ServerConfig) -> (TestServer, Controls) {
        let (notified, notifications) = mpsc::channel();
        let (held, holds) = mpsc::channel();
        let (release, released) = async_channel::unbounded();
        let app = App {
            notified,
            held,
            release: released,
        };
        let controls = Controls {
            notified: notifications,
            held: holds,
            release,
        };
        (runtime.start(config, Arc::new(app)), controls)
    }

    /// Says that a decision of `kind` is held, and waits until the test
    /// releases it (or ends).
    async fn hold(&self, kind: &'static str) {
        let _ = self.held.send(kind);
        let _ = self.release.recv().await;
        let _ = self.held.send("released");
    }
}

/// The `plan` in a connection info, empty when there is none.
fn plan(info: Option<&str>) -> String {
    info.and_then(|info| serde_json::from_str::<Value>(info).ok())
        .and_then(|info| info["plan"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A connection that authenticated with `token`.
fn login(server: &TestServer, token: &str) -> Ws {
    let (ws, ack) = Ws::auth_with(server.addr, token);
    assert_eq!(ack["type"], "auth_ack", "{ack}");
    ws
}

/// Sends an `rpc` of `method` with `data` and id `id`, and gives the next
/// message.
fn call(ws: &mut Ws, id: &str, method: &str, data: Value) -> Value {
    ws.send_json(json!({"type": "rpc", "id": id, "method": method, "data": data}));
    ws.recv()
}

fn an_rpc_is_answered_with_the_application_s_data(runtime: Runtime) {
    let (server, _app) = App::start(runtime, backend_config());
    let mut ann = login(&server, "tok-ann");
    let data = json!({"list": [1, "two", null], "nested": {"ok": true}});
    assert_eq!(
        call(&mut ann, "1", "echo", data.clone()),
        json!({"type": "rpc_result", "id": "1", "data": data})
    );
    ann.send_json(json!({"type": "rpc", "id": "2", "method": "echo"}));
    assert_eq!(
        ann.recv(),
        json!({"type": "rpc_result", "id": "2", "data": null}),
        "data defaults to null"
    );
}

fn an_unknown_method_is_not_found(runtime: Runtime) {
    let (server, _app) = App::start(runtime, backend_config());
    let mut ann = login(&server, "tok-ann");
    assert_eq!(
        call(&mut ann, "1", "orders.delete", json!(7)),
        json!({"type": "error", "id": "1", "code": "NOT_FOUND", "message": "unknown method"})
    );
}

fn an_rpc_without_an_id_or_with_a_bad_method_is_invalid_and_asks_nothing(runtime: Runtime) {
    let (server, app) = App::start(runtime, backend_config());
    let mut ann = login(&server, "tok-ann");
    ann.send_json(json!({"type": "rpc", "method": "hold"}));
    let error = ann.recv_error("INVALID_MESSAGE");
    assert!(error.get("id").is_none(), "{error}");
    let error = call(&mut ann, "2", "no spaces", json!(null));
    assert_eq!(
        (&error["code"], &error["id"]),
        (&json!("INVALID_MESSAGE"), &json!("2"))
    );
    // A decision asked for either would hold this one behind it.
    assert_eq!(call(&mut ann, "3", "echo", json!(3))["data"], 3);
    assert_eq!(app.held.try_recv(), Err(mpsc::TryRecvError::Empty));
}

fn a_backend_subscribe_is_allowed_with_data_or_refused_with_the_application_s_code(
    runtime: Runtime,
) {
    let (server, _app) = App::start(runtime, backend_config());
    let mut ann = login(&server, "tok-ann");
    let mut bob = login(&server, "tok-bob");
    ann.send_json(json!({"type": "subscribe", "channel": "app:welcome", "id": "s1"}));
    let subscribed = ann.recv_type("subscribed");
    assert_eq!(subscribed["id"], "s1", "{subscribed}");
    assert_eq!(
        subscribed["data"],
        json!({"welcome": "ann", "plan": "pro"}),
        "{subscribed}"
    );
    assert_eq!(ann.recv_type("presence")["users"], json!(["ann"]));
    ann.send_json(json!({"type": "subscribe", "channel": "app:gone", "id": "s2"}));
    assert_eq!(
        ann.recv(),
        json!({"type": "error", "id": "s2", "code": "NOT_FOUND", "message": "no such room"})
    );
    bob.send_json(json!({"type": "subscribe", "channel": "app:vip", "id": "s3"}));
    assert_eq!(
        bob.recv(),
        json!({"type": "error", "id": "s3", "code": "FORBIDDEN", "message": "pro plan only"})
    );
    let subscribed = ann.subscribe("app:vip");
    assert!(subscribed.get("data").is_none(), "{subscribed}");
}

fn a_backend_publish_is_validated_or_replaced(runtime: Runtime) {
    let (server, _app) = App::start(runtime, backend_config());
    let mut ann = login(&server, "tok-ann");
    let mut bob = login(&server, "tok-bob");
    bob.subscribe("app:room");
    ann.send_json(
        json!({"type": "publish", "channel": "app:room", "payload": {"text": 5}, "id": "p1"}),
    );
    assert_eq!(
        ann.recv(),
        json!({"type": "error", "id": "p1", "code": "BAD_REQUEST", "message": "a message needs a text"})
    );
    let payload = json!({"text": "  hello  ", "html": "<script>"});
    ann.send_json(
        json!({"type": "publish", "channel": "app:room", "payload": payload, "id": "p2"}),
    );
    assert_eq!(ann.recv(), json!({"type": "ack", "id": "p2", "offset": 1}));
    assert_eq!(
        bob.recv(),
        json!({
            "type": "message", "channel": "app:room",
            "payload": {"text": "hello", "plan": "pro"}, "sender": "ann", "offset": 1,
        }),
        "the refused publication never went out, the replacement did"
    );
}

fn the_connection_info_from_connect_reaches_later_decisions(runtime: Runtime) {
    let (server, _app) = App::start(runtime, backend_config());
    for (token, user, plan) in TOKENS {
        let mut ws = login(&server, token);
        assert_eq!(
            call(&mut ws, "w", "whoami", json!(null))["data"],
            json!({"user": user, "info": {"plan": plan}})
        );
    }
}

fn a_panicking_handler_fails_only_that_request(runtime: Runtime) {
    let (server, _app) = App::start(runtime, backend_config());
    let mut ann = login(&server, "tok-ann");
    assert_eq!(
        call(&mut ann, "1", "panic", json!(null)),
        json!({"type": "error", "id": "1", "code": "INTERNAL", "message": "the application failed"})
    );
    assert_eq!(
        call(&mut ann, "2", "echo", json!("still here")),
        json!({"type": "rpc_result", "id": "2", "data": "still here"})
    );
}

fn a_slow_rpc_delays_no_other_connection(runtime: Runtime) {
    let (server, app) = App::start(runtime, backend_config());
    let mut ann = login(&server, "tok-ann");
    let mut bob = login(&server, "tok-bob");
    ann.send_json(json!({"type": "rpc", "id": "h", "method": "hold"}));
    ann.send_json(json!({"type": "ping", "id": "p"}));
    app.expect_held("rpc");
    for n in 0..20 {
        let id = format!("e{n}");
        assert_eq!(call(&mut bob, &id, "echo", json!(n))["id"], id);
    }
    app.release();
    assert_eq!(
        ann.recv(),
        json!({"type": "rpc_result", "id": "h", "data": "released"})
    );
    assert_eq!(
        ann.recv(),
        json!({"type": "pong", "id": "p"}),
        "the ping waited behind the rpc"
    );
}

fn an_rpc_not_decided_in_time_is_unavailable(runtime: Runtime) {
    let config = ServerConfig {
        decision_timeout: DECISION_TIMEOUT,
        ..backend_config()
    };
    let (server, app) = App::start(runtime, config);
    let mut ann = login(&server, "tok-ann");
    let timed_out = call(&mut ann, "h", "hold", json!(null));
    assert_eq!(
        (&timed_out["id"], &timed_out["code"]),
        (&json!("h"), &json!("UNAVAILABLE")),
        "{timed_out}"
    );
    app.expect_held("rpc");
    assert_eq!(
        call(&mut ann, "1", "echo", json!(1)),
        json!({"type": "rpc_result", "id": "1", "data": 1})
    );
    app.release();
    assert_eq!(
        call(&mut ann, "2", "echo", json!(2)),
        json!({"type": "rpc_result", "id": "2", "data": 2}),
        "the late answer is dropped"
    );
}

fn an_auth_never_decided_closes_1013(runtime: Runtime) {
    let config = ServerConfig {
        decision_timeout: DECISION_TIMEOUT,
        ..backend_config()
    };
    let (server, app) = App::start(runtime, config);
    let mut held = Ws::open(server.addr);
    held.send_json(json!({"type": "auth", "token": "held"}));
    app.expect_held("connect");
    assert_eq!(held.expect_close(), (1013, "try again later".into()));
    let mut ann = login(&server, "tok-ann");
    assert_eq!(call(&mut ann, "1", "echo", json!(1))["data"], 1);
}

fn a_forwarded_upgrade_header_reaches_connect(runtime: Runtime) {
    let config = ServerConfig {
        forward_headers: vec!["cookie".into()],
        ..backend_config()
    };
    let (server, _app) = App::start(runtime, config);
    let headers = [("cookie", "session=carol"), ("x-secret", "not forwarded")];
    let (mut ws, _) = Ws::handshake(server.addr, "/ws", &headers).expect("the upgrade");
    ws.send_json(json!({"type": "auth", "token": "cookie"}));
    assert_eq!(ws.recv_type("auth_ack")["user"], "carol");
    assert_eq!(
        call(&mut ws, "w", "whoami", json!(null))["data"],
        json!({"user": "carol", "info": {"headers": [["cookie", "session=carol"]]}}),
        "only the listed header reached the application"
    );
}

fn notifications_are_observed_in_order(runtime: Runtime) {
    let (server, app) = App::start(runtime, backend_config());
    let mut ann = login(&server, "tok-ann");
    ann.subscribe("room");
    ann.send_json(json!({"type": "unsubscribe", "channel": "room", "id": "u"}));
    ann.recv_type("unsubscribed");
    ann.send_frame(Frame::close(Some(CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    })));
    assert_eq!(ann.expect_close().0, 1000);
    let Notification::Connected { conn, user, info } = app.notification() else {
        panic!("the connection is announced first");
    };
    assert_eq!(
        (user.as_str(), info.as_deref()),
        ("ann", Some(r#"{"plan":"pro"}"#))
    );
    let room = tether_core::Channel::new("room").expect("a channel");
    assert_eq!(
        app.notification(),
        Notification::Subscribed {
            conn,
            user: "ann".into(),
            channel: room.clone(),
        }
    );
    assert_eq!(
        app.notification(),
        Notification::Unsubscribed {
            conn,
            user: "ann".into(),
            channel: room,
        }
    );
    let Notification::Disconnected {
        conn: gone,
        user,
        reason,
    } = app.notification()
    else {
        panic!("the disconnect comes last");
    };
    assert_eq!(
        (gone, user.as_str(), reason.code),
        (conn, "ann", CloseCode::NORMAL)
    );
    assert_eq!(
        app.notified.try_recv(),
        Err(mpsc::TryRecvError::Empty),
        "one notification each"
    );
}

runtime_tests! {
    an_rpc_is_answered_with_the_application_s_data => smol, blocking, tokio;
    an_unknown_method_is_not_found => smol, blocking, tokio;
    an_rpc_without_an_id_or_with_a_bad_method_is_invalid_and_asks_nothing => smol, blocking, tokio;
    a_backend_subscribe_is_allowed_with_data_or_refused_with_the_application_s_code => smol, blocking, tokio;
    a_backend_publish_is_validated_or_replaced => smol, blocking, tokio;
    the_connection_info_from_connect_reaches_later_decisions => smol, blocking, tokio;
    a_panicking_handler_fails_only_that_request => smol, blocking, tokio;
    a_slow_rpc_delays_no_other_connection => smol, blocking, tokio;
    an_rpc_not_decided_in_time_is_unavailable => smol, blocking, tokio;
    an_auth_never_decided_closes_1013 => smol, blocking, tokio;
    a_forwarded_upgrade_header_reaches_connect => smol, blocking, tokio;
    notifications_are_observed_in_order => smol, blocking, tokio;
}
