//! WebSockets whose upgrade another HTTP server answered
//! ([`Server::check_upgrade`], [`Server::accept_upgraded`]): they start
//! where the node's own `101` leaves a connection, and are counted and
//! refused like any other (PROTOCOL.md section 11).

use super::*;
use crate::frame::{FrameDecoder, Role};
use crate::testkit::client_frame;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The upgrade another server parsed, with `extra` fields, as the node
/// checks it.
pub(super) fn accepted(node: &Node, extra: &[(&str, &str)]) -> AcceptedUpgrade {
    let mut fields = vec![
        ("host", "app.example"),
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", KEY),
        ("sec-websocket-version", "13"),
    ];
    fields.extend_from_slice(extra);
    let headers: Vec<(&str, &[u8])> = fields
        .iter()
        .map(|&(name, value)| (name, value.as_bytes()))
        .collect();
    let head = UpgradeHead {
        method: "GET",
        http_1_1: true,
        headers: &headers,
    };
    node.server.check_upgrade(&head).expect("a valid upgrade")
}

/// Hands the node a connection whose `101` another server wrote: the
/// client's wire starts in WebSocket frames.
fn open_upgraded(node: &mut Node, upgrade: AcceptedUpgrade) -> ConnId {
    let conn = node.server.accept_upgraded(node.now, upgrade);
    let wire = Wire {
        upgraded: true,
        decoder: Some(FrameDecoder::new(Role::Client, 1 << 24)),
        ..Wire::default()
    };
    node.wires.insert(conn, wire);
    node.drain();
    conn
}

fn close_of(node: &Node, conn: ConnId) -> Option<(CloseCode, String)> {
    node.wires[&conn].received.iter().find_map(|m| match m {
        Message::Close(Some((code, reason))) => Some((*code, reason.clone())),
        _ => None,
    })
}

#[test]
fn an_upgraded_connection_sends_no_101_and_times_out_without_auth_at_exactly_auth_timeout() {
    let config = ServerConfig::dev();
    let mut node = Node::new(config.clone());
    let upgrade = accepted(&node, &[]);
    let conn = open_upgraded(&mut node, upgrade);
    assert!(node.wires[&conn].http.is_empty(), "no 101 from the node");
    assert!(node.wires[&conn].received.is_empty());
    assert_eq!(node.server.connection_count(), 1);
    assert_eq!(node.server.counters().connections_total, 1);
    assert!(
        node.server
            .metrics_text()
            .contains("\ntether_connections 1\n")
    );
    let deadline = T0 + config.auth_timeout;
    assert_eq!(node.deadline, Some(deadline));
    node.at(deadline - Duration::from_nanos(1));
    assert_eq!(close_of(&node, conn), None, "not 1 ns early");
    node.at(deadline);
    assert_eq!(
        close_of(&node, conn),
        Some((CloseCode::AUTH_REQUIRED, "auth timeout".into()))
    );
    assert_eq!(
        node.closed,
        [(conn, CloseCode::AUTH_REQUIRED, ClosedBy::Server)]
    );
}

#[test]
fn an_upgraded_connection_authenticates_and_is_pinged_at_heartbeat_interval_from_the_upgrade() {
    let config = ServerConfig::dev();
    let mut node = Node::new(config.clone());
    let upgrade = accepted(&node, &[]);
    let conn = open_upgraded(&mut node, upgrade);
    node.now = T0 + Duration::from_secs(1);
    node.send(conn, r#"{"type":"auth","token":"alice"}"#);
    assert!(matches!(
        node.replies(conn).as_slice(),
        [ServerMessage::AuthAck { user, .. }] if user == "alice"
    ));
    node.send(conn, r#"{"type":"subscribe","channel":"chat","id":"s"}"#);
    assert!(matches!(
        node.replies(conn).first(),
        Some(ServerMessage::Subscribed { .. })
    ));
    let ping = T0 + config.heartbeat_interval;
    node.at(ping - Duration::from_nanos(1));
    assert!(node.wires[&conn].received.is_empty());
    node.at(ping);
    assert!(matches!(
        node.wires[&conn].received.as_slice(),
        [Message::Ping(_)]
    ));
}

#[test]
fn the_connect_decision_sees_the_fields_the_other_server_parsed() {
    let mut node = Node::new(ServerConfig {
        forward_headers: vec!["cookie".into()],
        ..ServerConfig::dev()
    });
    let upgrade = accepted(&node, &[("cookie", "sid=42"), ("x-other", "no")]);
    let conn = open_upgraded(&mut node, upgrade);
    node.send(conn, r#"{"type":"auth","token":"held"}"#);
    let Some(Decision::Authenticate { request, .. }) = node.decisions.pop_front() else {
        panic!("expected the connect decision");
    };
    assert_eq!(request.conn, conn);
    assert_eq!(
        request.headers,
        [("cookie".to_owned(), "sid=42".to_owned())]
    );
}

#[test]
fn at_max_connections_an_upgraded_connection_gets_1013_and_is_not_counted() {
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::dev()
    };
    let mut node = Node::new(config.clone());
    node.open();
    let upgrade = accepted(&node, &[]);
    let refused = open_upgraded(&mut node, upgrade);
    assert_eq!(
        close_of(&node, refused),
        Some((CloseCode::TRY_AGAIN_LATER, "too many connections".into()))
    );
    assert_eq!(
        node.server.connection_count(),
        1,
        "a refusal is not counted"
    );
    assert_eq!(node.server.counters().connections_total, 0);
    assert_eq!(node.closed, [], "no session started");
    // The client does not answer: the socket closes at close_timeout.
    let linger = T0 + config.close_timeout;
    assert_eq!(node.deadline, Some(linger));
    node.at(linger - Duration::from_nanos(1));
    assert!(!node.wires[&refused].socket_closed, "not 1 ns early");
    node.at(linger);
    assert!(node.wires[&refused].socket_closed);
    assert_eq!(node.server.connection_count(), 1);
}

#[test]
fn while_draining_an_upgraded_connection_gets_1001_and_closes_at_the_clients_answer() {
    let mut node = Node::new(ServerConfig::dev());
    node.server.shutdown(node.now);
    node.drain();
    let upgrade = accepted(&node, &[]);
    let refused = open_upgraded(&mut node, upgrade);
    assert_eq!(
        close_of(&node, refused),
        Some((CloseCode::GOING_AWAY, "going away".into()))
    );
    assert!(!node.wires[&refused].socket_closed);
    // What the client pipelined is ignored; its close frame ends it.
    node.send(refused, r#"{"type":"auth","token":"alice"}"#);
    node.read(refused, &client_frame(0x8, &1001u16.to_be_bytes()));
    node.flush(refused);
    assert!(node.wires[&refused].socket_closed);
    assert_eq!(node.server.connection_count(), 0);
    assert!(node.drained);
}
