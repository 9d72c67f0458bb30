//! Namespaces and token grants decided by the node (PROTOCOL.md section
//! 12), request by request, through refreshes.

use super::*;
use crate::access::{Namespace, Rule};
use crate::envelope::{RequestId, UnsubscribeReason};

fn namespace(pattern: &str, change: impl FnOnce(&mut Namespace)) -> Namespace {
    let mut namespace = Namespace::open(ChannelPattern::new(pattern).unwrap());
    change(&mut namespace);
    namespace
}

fn node_with(namespaces: Vec<Namespace>) -> Node {
    Node::new(ServerConfig {
        namespaces,
        ..ServerConfig::default()
    })
}

/// The code and id of each error, the other replies as they are.
fn codes(replies: Vec<ServerMessage>) -> Vec<(ErrorCode, Option<String>)> {
    replies
        .into_iter()
        .map(|reply| match reply {
            ServerMessage::Error { code, id, .. } => (code, id.map(|id| id.as_str().to_owned())),
            other => panic!("expected an error, got {other:?}"),
        })
        .collect()
}

#[test]
fn a_channel_no_namespace_governs_is_forbidden_for_every_request() {
    let mut node = node_with(vec![namespace("chat:*", |_| {})]);
    let mallory = node.connect("mallory");
    node.send(
        mallory,
        r#"{"type":"subscribe","channel":"admin:secrets","id":"s"}"#,
    );
    node.send(
        mallory,
        r#"{"type":"publish","channel":"admin:secrets","payload":1,"id":"p"}"#,
    );
    node.send(
        mallory,
        r#"{"type":"presence","channel":"admin:secrets","id":"q"}"#,
    );
    assert_eq!(
        codes(node.replies(mallory)),
        vec![
            (ErrorCode::Forbidden, Some("s".into())),
            (ErrorCode::Forbidden, Some("p".into())),
            (ErrorCode::Forbidden, Some("q".into())),
        ]
    );
    node.send(
        mallory,
        r#"{"type":"subscribe","channel":"chat:lobby","id":"ok"}"#,
    );
    assert!(matches!(
        node.replies(mallory).as_slice(),
        [
            ServerMessage::Subscribed { .. },
            ServerMessage::Presence { .. }
        ]
    ));
}

#[test]
fn a_refusal_says_nothing_about_whether_the_channel_exists() {
    let mut node = node_with(vec![namespace("admin:*", |n| n.subscribe = Rule::Token)]);
    let alice = node.connect("alice|admin:*=subscribe");
    node.send(alice, r#"{"type":"subscribe","channel":"admin:live"}"#);
    node.replies(alice);
    let mallory = node.connect("mallory");
    node.send(
        mallory,
        r#"{"type":"subscribe","channel":"admin:live","id":"a"}"#,
    );
    let live = node.replies(mallory);
    node.send(
        mallory,
        r#"{"type":"subscribe","channel":"admin:none","id":"a"}"#,
    );
    let none = node.replies(mallory);
    assert_eq!(
        codes(live.clone()),
        vec![(ErrorCode::Forbidden, Some("a".into()))]
    );
    assert_eq!(live, none);
}

#[test]
fn subscribers_may_publish_and_see_presence_and_others_may_not() {
    let mut node = node_with(vec![namespace("room:*", |n| {
        n.publish = Rule::Subscribers;
        n.presence = Rule::Subscribers;
    })]);
    let bob = node.connect("bob");
    node.send(
        bob,
        r#"{"type":"publish","channel":"room:1","payload":1,"id":"p1"}"#,
    );
    node.send(bob, r#"{"type":"presence","channel":"room:1","id":"q1"}"#);
    assert_eq!(
        codes(node.replies(bob)),
        vec![
            (ErrorCode::Forbidden, Some("p1".into())),
            (ErrorCode::Forbidden, Some("q1".into())),
        ]
    );
    node.send(bob, r#"{"type":"subscribe","channel":"room:1"}"#);
    node.send(
        bob,
        r#"{"type":"publish","channel":"room:1","payload":1,"id":"p2"}"#,
    );
    node.send(bob, r#"{"type":"presence","channel":"room:1","id":"q2"}"#);
    let replies = node.replies(bob);
    assert!(
        replies
            .iter()
            .any(|r| matches!(r, ServerMessage::Ack { offset: 1, .. })),
        "{replies:?}"
    );
    assert!(
        replies.iter().any(
            |r| matches!(r, ServerMessage::Presence { id: Some(id), .. } if id.as_str() == "q2")
        ),
        "{replies:?}"
    );
}

#[test]
fn token_rules_follow_the_grants_and_nobody_is_refused_even_with_them() {
    let mut node = node_with(vec![
        namespace("feed:*", |n| {
            n.subscribe = Rule::Token;
            n.publish = Rule::Token;
        }),
        namespace("ro:*", |n| n.publish = Rule::Nobody),
    ]);
    let granted = node.connect("carol|feed:a=subscribe,*=publish");
    node.send(
        granted,
        r#"{"type":"subscribe","channel":"feed:a","id":"s1"}"#,
    );
    node.send(
        granted,
        r#"{"type":"subscribe","channel":"feed:b","id":"s2"}"#,
    );
    node.send(
        granted,
        r#"{"type":"publish","channel":"feed:b","payload":1,"id":"p1"}"#,
    );
    node.send(
        granted,
        r#"{"type":"publish","channel":"ro:x","payload":1,"id":"p2"}"#,
    );
    let replies = node.replies(granted);
    let errors: Vec<_> = replies
        .iter()
        .filter_map(|r| match r {
            ServerMessage::Error { id, code, .. } => Some((*code, id.as_ref().unwrap().as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        errors,
        vec![(ErrorCode::Forbidden, "s2"), (ErrorCode::Forbidden, "p2")]
    );
    assert!(
        replies
            .iter()
            .any(|r| matches!(r, ServerMessage::Subscribed { .. }))
    );
    assert!(
        replies
            .iter()
            .any(|r| matches!(r, ServerMessage::Ack { .. }))
    );
    let bare = node.connect("dave");
    node.send(bare, r#"{"type":"subscribe","channel":"feed:a","id":"s"}"#);
    assert_eq!(
        codes(node.replies(bare)),
        vec![(ErrorCode::Forbidden, Some("s".into()))]
    );
}

#[test]
fn the_application_publishes_where_no_client_may() {
    let mut node = node_with(vec![namespace("news:*", |n| n.publish = Rule::Nobody)]);
    let reader = node.connect("erin");
    node.send(reader, r#"{"type":"subscribe","channel":"news:today"}"#);
    node.replies(reader);
    assert_eq!(node.publish("news:today", "1"), Ok(1));
    assert!(matches!(
        node.replies(reader).as_slice(),
        [ServerMessage::Message { offset: 1, .. }]
    ));
}

#[test]
fn recovery_without_a_history_grant_subscribes_with_recovered_false_and_no_replay() {
    let mut node = node_with(vec![namespace("log:*", |n| n.history = Rule::Token)]);
    for n in 1..=3 {
        node.publish("log:x", &n.to_string()).unwrap();
    }
    let plain = node.connect("frank");
    node.send(plain, r#"{"type":"subscribe","channel":"log:x"}"#);
    let epoch = match node.replies(plain).first() {
        Some(ServerMessage::Subscribed { epoch, .. }) => epoch.clone(),
        other => panic!("expected subscribed, got {other:?}"),
    };
    node.send(plain, r#"{"type":"unsubscribe","channel":"log:x"}"#);
    node.replies(plain);
    let since = format!(r#"{{"epoch":"{epoch}","offset":1}}"#);
    node.send(
        plain,
        &format!(r#"{{"type":"subscribe","channel":"log:x","since":{since}}}"#),
    );
    match node.replies(plain).as_slice() {
        [
            ServerMessage::Subscribed {
                recovered, offset, ..
            },
            ServerMessage::Presence { .. },
        ] => {
            assert_eq!((*recovered, *offset), (Some(false), 3));
        }
        other => panic!("expected no replay, got {other:?}"),
    }
    let granted = node.connect("gina|log:*=history");
    node.send(
        granted,
        &format!(r#"{{"type":"subscribe","channel":"log:x","since":{since}}}"#),
    );
    assert_eq!(offsets(&node.replies(granted)), vec![2, 3]);
}

#[test]
fn a_refresh_that_drops_a_grant_ends_the_subscription_and_nothing_more_arrives() {
    let mut node = node_with(vec![namespace("feed:*", |n| n.subscribe = Rule::Token)]);
    let alice = node.connect("alice|feed:*=subscribe");
    node.send(alice, r#"{"type":"subscribe","channel":"feed:a"}"#);
    node.send(alice, r#"{"type":"subscribe","channel":"feed:b"}"#);
    node.replies(alice);
    node.send(
        alice,
        r#"{"type":"refresh","token":"alice|feed:b=subscribe","id":"r"}"#,
    );
    let replies = node.replies(alice);
    let notice = ServerMessage::Unsubscribed {
        id: None,
        channel: Channel::new("feed:a").unwrap(),
        reason: Some(UnsubscribeReason::Forbidden),
    };
    assert_eq!(
        replies,
        vec![
            ServerMessage::Refreshed {
                id: Some(RequestId::new("r").unwrap()),
                expires_at: None,
            },
            notice,
        ]
    );
    node.publish("feed:a", "1").unwrap();
    node.publish("feed:b", "2").unwrap();
    match node.replies(alice).as_slice() {
        [ServerMessage::Message { channel, .. }] => assert_eq!(channel.as_str(), "feed:b"),
        other => panic!("expected feed:b only, got {other:?}"),
    }
}

#[test]
fn a_refresh_with_another_users_token_is_forbidden_and_the_old_grants_stay() {
    let mut node = node_with(vec![namespace("feed:*", |n| n.subscribe = Rule::Token)]);
    let alice = node.connect("alice|feed:*=subscribe");
    node.send(alice, r#"{"type":"subscribe","channel":"feed:a"}"#);
    node.replies(alice);
    node.send(alice, r#"{"type":"refresh","token":"mallory","id":"r"}"#);
    node.send(alice, r#"{"type":"refresh","token":"bad","id":"r2"}"#);
    node.send(alice, r#"{"type":"subscribe","channel":"feed:c","id":"s"}"#);
    let replies = node.replies(alice);
    assert_eq!(
        codes(replies[..2].to_vec()),
        vec![
            (ErrorCode::Forbidden, Some("r".into())),
            (ErrorCode::Forbidden, Some("r2".into())),
        ]
    );
    assert!(
        matches!(replies[2], ServerMessage::Subscribed { .. }),
        "{replies:?}"
    );
}

fn backend_node() -> Node {
    node_with(vec![namespace("app:*", |n| {
        n.subscribe = Rule::Backend;
        n.publish = Rule::Backend;
    })])
}

/// Answers the oldest channel decision, checking what it asks.
fn answer(node: &mut Node, expected: (ConnId, &str, &str, Operation), allowed: bool) {
    match node.decisions.pop_front() {
        Some(Decision::Channel {
            id,
            operation,
            request,
        }) => {
            let asked = (
                request.conn,
                request.user.as_str(),
                request.channel.as_str(),
            );
            assert_eq!((asked.0, asked.1, asked.2, operation), expected);
            let answer = if allowed {
                Ok(None)
            } else {
                Err(Rejection::forbidden())
            };
            let verdict = Verdict::Channel {
                id,
                conn: request.conn,
                answer,
            };
            node.server.handle_verdict(node.now, verdict);
            node.drain();
        }
        other => panic!("expected a channel decision, got {other:?}"),
    }
}

#[test]
fn a_backend_rule_asks_the_application_and_later_requests_wait_in_order() {
    let mut node = backend_node();
    let alice = node.connect("alice");
    node.send(alice, r#"{"type":"subscribe","channel":"app:x","id":"s"}"#);
    node.send(alice, r#"{"type":"ping","id":"p"}"#);
    node.send(alice, r#"{"type":"presence","channel":"app:x","id":"q"}"#);
    assert_eq!(node.replies(alice), vec![]);
    let bob = node.connect("bob");
    node.send(bob, r#"{"type":"ping","id":"b"}"#);
    assert_eq!(
        node.replies(bob).len(),
        1,
        "another connection waits for nothing"
    );
    answer(
        &mut node,
        (alice, "alice", "app:x", Operation::Subscribe),
        true,
    );
    let replies = node.replies(alice);
    let kinds: Vec<&str> = replies
        .iter()
        .map(|reply| match reply {
            ServerMessage::Subscribed { .. } => "subscribed",
            ServerMessage::Presence { id: None, .. } => "snapshot",
            ServerMessage::Pong { .. } => "pong",
            ServerMessage::Presence { id: Some(_), .. } => "presence",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["subscribed", "snapshot", "pong", "presence"]);
    assert!(node.decisions.is_empty());
}

#[test]
fn a_request_the_application_refuses_is_forbidden_and_each_request_is_asked() {
    let mut node = backend_node();
    let alice = node.connect("alice");
    node.send(
        alice,
        r#"{"type":"publish","channel":"app:x","payload":1,"id":"p1"}"#,
    );
    node.send(
        alice,
        r#"{"type":"publish","channel":"app:x","payload":2,"id":"p2"}"#,
    );
    answer(
        &mut node,
        (alice, "alice", "app:x", Operation::Publish),
        false,
    );
    assert_eq!(
        codes(node.replies(alice)),
        vec![(ErrorCode::Forbidden, Some("p1".into()))]
    );
    answer(
        &mut node,
        (alice, "alice", "app:x", Operation::Publish),
        true,
    );
    assert!(matches!(
        node.replies(alice).as_slice(),
        [ServerMessage::Ack { offset: 1, .. }]
    ));
}

#[test]
fn too_many_requests_behind_a_pending_decision_close_1008() {
    let mut node = backend_node();
    let alice = node.connect("alice");
    node.send(alice, r#"{"type":"subscribe","channel":"app:x"}"#);
    let bound = ServerConfig::default().max_pending_before_auth;
    for _ in 0..bound {
        node.send(alice, r#"{"type":"ping"}"#);
    }
    assert_eq!(node.close_frame(alice), None);
    node.send(alice, r#"{"type":"ping"}"#);
    assert_eq!(node.close_frame(alice), Some(CloseCode::POLICY_VIOLATION));
}

#[test]
fn a_refresh_keeps_a_subscription_the_application_allowed() {
    let mut node = backend_node();
    let alice = node.connect("alice");
    node.send(alice, r#"{"type":"subscribe","channel":"app:x"}"#);
    answer(
        &mut node,
        (alice, "alice", "app:x", Operation::Subscribe),
        true,
    );
    node.replies(alice);
    node.send(alice, r#"{"type":"refresh","token":"alice"}"#);
    assert!(matches!(
        node.replies(alice).as_slice(),
        [ServerMessage::Refreshed { .. }]
    ));
    node.publish("app:x", "1").unwrap();
    assert!(matches!(
        node.replies(alice).as_slice(),
        [ServerMessage::Message { offset: 1, .. }]
    ));
}
