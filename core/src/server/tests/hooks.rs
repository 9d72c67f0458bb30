//! The application in the loop (PROTOCOL.md section 13): `rpc`, channel
//! decisions with data, refusals with a code, the decision timeout, the
//! connect decision's forwarded headers, and notifications.

use super::*;
use crate::access::{Namespace, Rule};
use crate::envelope::{RequestId, UnsubscribeReason};

const TIMEOUT: Duration = Duration::from_secs(5);

fn backend_node() -> Node {
    let mut namespace = Namespace::open(ChannelPattern::new("app:*").unwrap());
    namespace.subscribe = Rule::Backend;
    namespace.publish = Rule::Backend;
    Node::new(ServerConfig {
        namespaces: vec![
            namespace,
            Namespace::open(ChannelPattern::new("*").unwrap()),
        ],
        decision_timeout: TIMEOUT,
        ..ServerConfig::default()
    })
}

/// Takes the oldest decision the test answers itself.
fn next_decision(node: &mut Node) -> Decision {
    node.decisions.pop_front().expect("a decision")
}

/// Answers `decision` with `answer` (for a channel decision) or `result`
/// (for an rpc), and drains.
fn answer_with(node: &mut Node, decision: Decision, answer: Result<Option<String>, Rejection>) {
    let verdict = match decision {
        Decision::Channel { id, request, .. } => Verdict::Channel {
            id,
            conn: request.conn,
            answer,
        },
        Decision::Rpc { id, request } => Verdict::Rpc {
            id,
            conn: request.conn,
            result: answer.map(|data| data.unwrap_or_default()),
        },
        other => panic!("not a request decision: {other:?}"),
    };
    node.server.handle_verdict(node.now, verdict);
    node.drain();
}

fn id(text: &str) -> RequestId {
    RequestId::new(text).unwrap()
}

#[test]
fn an_rpc_is_answered_with_the_applications_result_and_later_requests_wait_in_order() {
    let mut node = backend_node();
    let alice = node.connect("alice");
    node.send(
        alice,
        r#"{"type":"rpc","method":"orders.list","data":{"page":2},"id":"r"}"#,
    );
    node.send(alice, r#"{"type":"ping","id":"p"}"#);
    assert_eq!(node.replies(alice), vec![]);
    let decision = next_decision(&mut node);
    let Decision::Rpc { request, .. } = &decision else {
        panic!("expected an rpc decision, got {decision:?}");
    };
    assert_eq!(
        (request.conn, request.user.as_str(), request.method.as_str()),
        (alice, "alice", "orders.list")
    );
    assert_eq!(request.data, r#"{"page":2}"#);
    answer_with(&mut node, decision, Ok(Some(r#"{"orders":[1,2]}"#.into())));
    assert_eq!(
        node.replies(alice),
        vec![
            ServerMessage::RpcResult {
                id: id("r"),
                data: RawValue::from_string(r#"{"orders":[1,2]}"#.into()).unwrap(),
            },
            ServerMessage::Pong { id: Some(id("p")) },
        ]
    );
}

#[test]
fn an_rpc_without_an_id_or_with_a_bad_method_is_invalid_and_asks_nothing() {
    let mut node = backend_node();
    let alice = node.connect("alice");
    node.send(alice, r#"{"type":"rpc","method":"m"}"#);
    node.send(alice, r#"{"type":"rpc","method":"no spaces","id":"x"}"#);
    let codes: Vec<ErrorCode> = node
        .replies(alice)
        .into_iter()
        .map(|reply| match reply {
            ServerMessage::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        })
        .collect();
    assert_eq!(
        codes,
        [ErrorCode::InvalidMessage, ErrorCode::InvalidMessage]
    );
    assert!(node.decisions.is_empty());
}

#[test]
fn a_decision_not_answered_in_time_is_unavailable_at_exactly_the_timeout() {
    let mut node = backend_node();
    let alice = node.connect("alice");
    let asked_at = node.now;
    node.send(alice, r#"{"type":"rpc","method":"slow","id":"r1"}"#);
    node.send(alice, r#"{"type":"ping","id":"p"}"#);
    let late = next_decision(&mut node);
    node.at(asked_at + TIMEOUT - Duration::from_nanos(1));
    assert_eq!(node.replies(alice), vec![]);
    node.at(asked_at + TIMEOUT);
    let replies = node.replies(alice);
    assert!(
        matches!(
            replies.as_slice(),
            [
                ServerMessage::Error { code: ErrorCode::Unavailable, id: Some(r1), .. },
                ServerMessage::Pong { .. },
            ] if r1.as_str() == "r1"
        ),
        "{replies:?}"
    );
    node.send(alice, r#"{"type":"rpc","method":"next","id":"r2"}"#);
    let next = next_decision(&mut node);
    answer_with(&mut node, late, Ok(Some("\"late\"".into())));
    assert_eq!(node.replies(alice), vec![], "a late verdict is ignored");
    answer_with(&mut node, next, Ok(Some("2".into())));
    assert_eq!(
        node.replies(alice),
        vec![ServerMessage::RpcResult {
            id: id("r2"),
            data: RawValue::from_string("2".into()).unwrap(),
        }]
    );
}

#[test]
fn the_application_refuses_with_its_code_and_message() {
    let mut node = backend_node();
    let alice = node.connect("alice");
    node.send(alice, r#"{"type":"subscribe","channel":"app:x","id":"s"}"#);
    let decision = next_decision(&mut node);
    let rejection = Rejection::new(ErrorCode::BadRequest, "not this room");
    answer_with(&mut node, decision, Err(rejection));
    node.send(alice, r#"{"type":"rpc","method":"m","id":"r"}"#);
    let decision = next_decision(&mut node);
    // A code of the protocol's own checks is not the application's to give.
    let rejection = Rejection::new(ErrorCode::InvalidChannel, "odd");
    answer_with(&mut node, decision, Err(rejection));
    let errors: Vec<(ErrorCode, String)> = node
        .replies(alice)
        .into_iter()
        .map(|reply| match reply {
            ServerMessage::Error { code, message, .. } => (code, message),
            other => panic!("expected an error, got {other:?}"),
        })
        .collect();
    assert_eq!(
        errors,
        [
            (ErrorCode::BadRequest, "not this room".to_owned()),
            (ErrorCode::Internal, "odd".to_owned()),
        ]
    );
}

#[test]
fn a_subscribe_allowed_with_data_carries_it_in_subscribed() {
    let mut node = backend_node();
    let alice = node.connect("alice");
    node.send(alice, r#"{"type":"subscribe","channel":"app:x","id":"s"}"#);
    let decision = next_decision(&mut node);
    let Decision::Channel { request, .. } = &decision else {
        panic!("expected a channel decision");
    };
    assert_eq!(request.data, None);
    answer_with(&mut node, decision, Ok(Some(r#"{"topic":"hi"}"#.into())));
    let replies = node.replies(alice);
    let ServerMessage::Subscribed { data, .. } = &replies[0] else {
        panic!("expected subscribed, got {replies:?}");
    };
    assert_eq!(data.as_ref().map(|d| d.get()), Some(r#"{"topic":"hi"}"#));
}

#[test]
fn a_publish_the_application_replaces_publishes_its_payload() {
    let mut node = backend_node();
    let alice = node.connect("alice");
    let bob = node.connect("bob");
    node.send(bob, r#"{"type":"subscribe","channel":"app:x"}"#);
    let decision = next_decision(&mut node);
    answer_with(&mut node, decision, Ok(None));
    node.replies(bob);
    node.send(
        alice,
        r#"{"type":"publish","channel":"app:x","payload":{"text":"damn"},"id":"p"}"#,
    );
    let decision = next_decision(&mut node);
    let Decision::Channel { request, .. } = &decision else {
        panic!("expected a channel decision");
    };
    assert_eq!(request.data.as_deref(), Some(r#"{"text":"damn"}"#));
    answer_with(&mut node, decision, Ok(Some(r#"{"text":"d**n"}"#.into())));
    let delivered = node.replies(bob);
    let [
        ServerMessage::Message {
            payload, sender, ..
        },
    ] = delivered.as_slice()
    else {
        panic!("expected one message, got {delivered:?}");
    };
    assert_eq!(
        (payload.get(), sender.as_deref()),
        (r#"{"text":"d**n"}"#, Some("alice"))
    );
}

#[test]
fn an_answer_that_is_not_json_is_internal() {
    let mut node = backend_node();
    let alice = node.connect("alice");
    node.send(alice, r#"{"type":"rpc","method":"m","id":"r"}"#);
    let decision = next_decision(&mut node);
    answer_with(&mut node, decision, Ok(Some("{oops".into())));
    assert!(matches!(
        node.replies(alice).as_slice(),
        [ServerMessage::Error {
            code: ErrorCode::Internal,
            ..
        }]
    ));
}

#[test]
fn an_auth_not_decided_in_time_closes_1013_at_exactly_the_timeout() {
    let mut node = backend_node();
    let conn = node.open_as("held", &[]);
    let asked_at = node.now;
    assert!(matches!(
        node.decisions.front(),
        Some(Decision::Authenticate { .. })
    ));
    node.at(asked_at + TIMEOUT - Duration::from_nanos(1));
    assert_eq!(node.close_frame(conn), None);
    node.at(asked_at + TIMEOUT);
    assert_eq!(node.close_frame(conn), Some(CloseCode::TRY_AGAIN_LATER));
    assert!(!CloseCode::TRY_AGAIN_LATER.is_final());
}

#[test]
fn a_connect_decision_sees_the_forwarded_headers_and_attaches_info() {
    let mut node = Node::new(ServerConfig {
        forward_headers: vec!["cookie".into()],
        ..ServerConfig::dev()
    });
    let conn = node.open();
    let upgrade = UPGRADE.replace("\r\n\r\n", "\r\nCookie: sid=42\r\nX-Other: no\r\n\r\n");
    let mut bytes = upgrade.into_bytes();
    bytes.extend(text(r#"{"type":"auth","token":"held"}"#));
    node.read(conn, &bytes);
    let Some(Decision::Authenticate { id, request }) = node.decisions.pop_front() else {
        panic!("expected the connect decision");
    };
    assert_eq!(
        request.headers,
        [("cookie".to_owned(), "sid=42".to_owned())]
    );
    let identity = Identity {
        info: Some(r#"{"plan":"pro"}"#.into()),
        ..Identity::user("ann")
    };
    let verdict = Verdict::Authenticate {
        id,
        conn,
        identity: Ok(identity),
    };
    node.server.handle_verdict(node.now, verdict);
    node.drain();
    node.send(conn, r#"{"type":"rpc","method":"m","id":"r"}"#);
    let Some(Decision::Rpc { request, .. }) = node.decisions.pop_front() else {
        panic!("expected the rpc decision");
    };
    assert_eq!(request.info.as_deref(), Some(r#"{"plan":"pro"}"#));
    assert_eq!(
        node.notifications,
        [Notification::Connected {
            conn,
            user: "ann".into(),
            info: Some(r#"{"plan":"pro"}"#.into()),
        }]
    );
}

#[test]
fn notifications_follow_subscriptions_and_the_disconnect() {
    let mut node = Node::new(ServerConfig::dev());
    let ann = node.connect("ann");
    node.send(ann, r#"{"type":"subscribe","channel":"room"}"#);
    node.send(ann, r#"{"type":"unsubscribe","channel":"room"}"#);
    node.send(ann, r#"{"type":"subscribe","channel":"lobby"}"#);
    node.server.handle_transport_closed(node.now, ann);
    node.drain();
    let kinds: Vec<String> = node
        .notifications
        .iter()
        .map(|notification| match notification {
            Notification::Connected { user, .. } => format!("connected {user}"),
            Notification::Subscribed { channel, .. } => format!("subscribed {channel}"),
            Notification::Unsubscribed { channel, .. } => format!("unsubscribed {channel}"),
            Notification::Disconnected { user, reason, .. } => {
                format!("disconnected {user} {}", reason.code)
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "connected ann",
            "subscribed room",
            "unsubscribed room",
            "subscribed lobby",
            "disconnected ann 1006",
        ]
    );
}

#[test]
fn a_refresh_behind_an_rpc_waits_for_it_and_what_it_ends_follows_its_refreshed() {
    let mut feed = Namespace::open(ChannelPattern::new("feed:*").unwrap());
    feed.subscribe = Rule::Token;
    let mut node = Node::new(ServerConfig {
        namespaces: vec![feed, Namespace::open(ChannelPattern::new("*").unwrap())],
        decision_timeout: TIMEOUT,
        ..ServerConfig::default()
    });
    let alice = node.connect("alice|feed:*=subscribe");
    node.send(alice, r#"{"type":"subscribe","channel":"feed:a"}"#);
    node.replies(alice);
    node.send(alice, r#"{"type":"rpc","method":"m","id":"r"}"#);
    node.send(alice, r#"{"type":"ping","id":"p"}"#);
    // A token without the grant: the refresh ends the subscription.
    node.send(alice, r#"{"type":"refresh","token":"alice","id":"f"}"#);
    assert_eq!(
        node.replies(alice),
        vec![],
        "the refresh waits behind the rpc"
    );
    let rpc = next_decision(&mut node);
    answer_with(&mut node, rpc, Ok(Some("1".into())));
    assert_eq!(
        node.replies(alice),
        vec![
            ServerMessage::RpcResult {
                id: id("r"),
                data: RawValue::from_string("1".into()).unwrap(),
            },
            ServerMessage::Pong { id: Some(id("p")) },
            ServerMessage::Refreshed {
                id: Some(id("f")),
                expires_at: None,
            },
            ServerMessage::Unsubscribed {
                id: None,
                channel: Channel::new("feed:a").unwrap(),
                reason: Some(UnsubscribeReason::Forbidden),
            },
        ]
    );
}

#[test]
fn a_refresh_that_waited_behind_an_rpc_has_the_whole_decision_timeout_once_asked() {
    let mut node = backend_node();
    let alice = node.connect("alice");
    node.send(alice, r#"{"type":"rpc","method":"m","id":"r"}"#);
    node.at(T0 + Duration::from_secs(1));
    node.send(alice, r#"{"type":"refresh","token":"held","id":"f"}"#);
    node.at(T0 + Duration::from_secs(4));
    let rpc = next_decision(&mut node);
    answer_with(&mut node, rpc, Ok(Some("1".into())));
    assert!(matches!(
        node.replies(alice).as_slice(),
        [ServerMessage::RpcResult { .. }]
    ));
    let refresh = next_decision(&mut node);
    assert!(
        matches!(&refresh, Decision::Authenticate { request, .. } if request.refresh),
        "{refresh:?}"
    );
    let asked = T0 + Duration::from_secs(4);
    node.at(asked + TIMEOUT - Duration::from_nanos(1));
    assert_eq!(node.replies(alice), vec![]);
    node.at(asked + TIMEOUT);
    match node.replies(alice).as_slice() {
        [ServerMessage::Error { id, code, .. }] => {
            assert_eq!(
                (id.clone(), *code),
                (Some(self::id("f")), ErrorCode::Unavailable)
            );
        }
        other => panic!("expected the refresh to time out, got {other:?}"),
    }
}
