//! permessage-deflate on a whole node (PROTOCOL.md "Compression"): the
//! `101`'s answer, compressed messages from clients, and publications
//! compressed once for every subscriber that agreed.

use super::upgraded::accepted;
use super::*;
use crate::deflate::Deflater;
use crate::frame::{Opcode, compressed_frame};
use crate::testkit::UPGRADE;

/// What a browser offers.
const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

/// The server's answer to it.
const ANSWER: &str = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
     client_no_context_takeover\r\n";

/// A chat message long enough to be compressed by default.
const CHAT: &str = r#"{"user":"alice","name":"Alice Liddell","avatar":"https://cdn.example/avatars/alice.png","text":"Shall we meet at the station at half past five? The train to the coast leaves at six.","sent_at":"2026-12-03T17:44:03Z"}"#;

/// Opens a WebSocket whose upgrade offers permessage-deflate, and
/// authenticates as `user`; the `auth_ack` is consumed.
fn connect_offering(node: &mut Node, user: &str) -> ConnId {
    let conn = node.open();
    let upgrade = UPGRADE.replacen("\r\n\r\n", &format!("\r\n{OFFER}\r\n"), 1);
    let mut bytes = upgrade.into_bytes();
    bytes.extend(text(&format!(r#"{{"type":"auth","token":"{user}"}}"#)));
    node.read(conn, &bytes);
    assert!(matches!(
        node.replies(conn).as_slice(),
        [ServerMessage::AuthAck { .. }]
    ));
    conn
}

fn head(node: &Node, conn: ConnId) -> String {
    String::from_utf8_lossy(&node.wires[&conn].http).into_owned()
}

/// `json` compressed into a masked text frame, as a client sends it.
fn compressed_text(json: &str) -> Vec<u8> {
    let payload = Deflater::new().deflate(json.as_bytes());
    compressed_frame(Opcode::Text, &payload, Some([1, 2, 3, 4])).to_vec()
}

fn subscribe(node: &mut Node, conn: ConnId) {
    node.send(conn, r#"{"type":"subscribe","channel":"chat","id":"s"}"#);
    node.replies(conn);
}

/// Every frame queued for `conn`, as the writer would take them.
fn take_frames(node: &mut Node, conn: ConnId) -> Vec<Bytes> {
    let mut frames = Vec::new();
    let moved = node.server.poll_transmit(conn, usize::MAX, &mut frames);
    node.server.handle_written(conn, moved);
    frames
}

/// The one frame queued for `conn`.
fn only_frame(node: &mut Node, conn: ConnId) -> Bytes {
    let mut frames = take_frames(node, conn);
    assert_eq!(frames.len(), 1, "{frames:?}");
    frames.remove(0)
}

#[test]
fn an_offer_is_answered_with_both_no_context_takeovers() {
    let mut node = Node::new(ServerConfig::dev());
    let offering = connect_offering(&mut node, "alice");
    assert!(
        head(&node, offering).contains(ANSWER),
        "{}",
        head(&node, offering)
    );
    let plain = node.connect("bob");
    assert!(!head(&node, plain).contains("Sec-WebSocket-Extensions"));
}

#[test]
fn with_compression_off_an_offer_is_not_answered_and_rsv1_closes_1002() {
    let config = ServerConfig {
        compression: false,
        ..ServerConfig::dev()
    };
    let mut node = Node::new(config);
    let conn = connect_offering(&mut node, "alice");
    assert!(!head(&node, conn).contains("Sec-WebSocket-Extensions"));
    node.read(conn, &compressed_text(r#"{"type":"ping"}"#));
    assert_eq!(node.close_frame(conn), Some(CloseCode::PROTOCOL_ERROR));
}

#[test]
fn a_compressed_publish_is_inflated_and_delivered() {
    let mut node = Node::new(ServerConfig::dev());
    let alice = connect_offering(&mut node, "alice");
    let bob = node.connect("bob");
    subscribe(&mut node, bob);
    let publish = format!(r#"{{"type":"publish","channel":"chat","id":"m","payload":{CHAT}}}"#);
    node.read(alice, &compressed_text(&publish));
    assert!(matches!(
        node.replies(alice).as_slice(),
        [ServerMessage::Ack { offset: 1, .. }]
    ));
    let delivered = node.replies(bob);
    let [ServerMessage::Message { payload, .. }] = delivered.as_slice() else {
        panic!("{delivered:?}");
    };
    assert_eq!(payload.get(), CHAT);
}

#[test]
fn a_publication_is_compressed_once_and_the_same_frame_goes_to_every_subscriber_that_agreed() {
    let mut node = Node::new(ServerConfig::dev());
    let first = connect_offering(&mut node, "alice");
    let second = connect_offering(&mut node, "bob");
    let plain = node.connect("carol");
    for conn in [first, second, plain] {
        subscribe(&mut node, conn);
    }
    // The joins of the later subscribers are read before the pause.
    for conn in [first, second, plain] {
        node.replies(conn);
        node.wires.get_mut(&conn).unwrap().paused = true;
    }
    node.publish("chat", CHAT).unwrap();
    let to_first = only_frame(&mut node, first);
    let to_second = only_frame(&mut node, second);
    let to_plain = only_frame(&mut node, plain);
    // RSV1 and FIN on the compressed frame, which is one allocation shared
    // by both subscribers; the other subscriber gets the plain frame.
    assert_eq!(to_first[0], 0xc1);
    assert_eq!(to_first.as_ptr(), to_second.as_ptr());
    assert_eq!(to_plain[0], 0x81);
    assert!(to_first.len() < to_plain.len());
    for (conn, frame) in [(first, &to_first), (plain, &to_plain)] {
        let wire = node.wires.get_mut(&conn).unwrap();
        wire.paused = false;
        wire.take(frame);
    }
    assert_eq!(node.replies(first), node.replies(plain));
}

#[test]
fn a_publication_below_compression_min_size_goes_uncompressed() {
    let mut node = Node::new(ServerConfig {
        compression_min_size: 4096,
        ..ServerConfig::dev()
    });
    let conn = connect_offering(&mut node, "alice");
    subscribe(&mut node, conn);
    node.wires.get_mut(&conn).unwrap().paused = true;
    node.publish("chat", CHAT).unwrap();
    assert_eq!(only_frame(&mut node, conn)[0], 0x81, "RSV1 clear");
}

#[test]
fn a_compressed_bomb_closes_1009() {
    let mut node = Node::new(ServerConfig::dev());
    let conn = connect_offering(&mut node, "alice");
    let bomb = format!(
        r#"{{"type":"publish","channel":"chat","payload":"{}"}}"#,
        "a".repeat(8 << 20)
    );
    let frame = compressed_text(&bomb);
    assert!(frame.len() < ServerConfig::dev().max_payload);
    node.read(conn, &frame);
    assert_eq!(node.close_frame(conn), Some(CloseCode::MESSAGE_TOO_BIG));
}

#[test]
fn an_upgrade_another_server_answered_carries_the_answer_unless_compression_is_off() {
    for compression in [true, false] {
        let node = Node::new(ServerConfig {
            compression,
            ..ServerConfig::dev()
        });
        let accepted = accepted(&node, &[("sec-websocket-extensions", "permessage-deflate")]);
        let expected = compression.then_some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        );
        assert_eq!(accepted.deflate(), expected);
    }
}
