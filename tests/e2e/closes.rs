//! PROTOCOL.md sections 1 and 7: what closes a connection, and with which
//! code.

use std::io::Write;

use serde_json::json;
use tether_core::config::ServerConfig;
use tungstenite::Message;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::harness::{Runtime, config, dev_auth};
use crate::ws::Ws;

/// The `max_payload` of these tests.
const MAX_PAYLOAD: usize = 1024;

/// A publish request of exactly `len` bytes.
fn publish_of_len(len: usize) -> String {
    let empty = r#"{"type":"publish","channel":"room","id":"big","payload":""}"#;
    let padding = "x".repeat(len - empty.len());
    format!(r#"{{"type":"publish","channel":"room","id":"big","payload":"{padding}"}}"#)
}

fn a_binary_message_closes_1003(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut ws = Ws::auth(server.addr, "alice");
    ws.send_frame(Frame::message(
        br#"{"type":"ping"}"#.to_vec(),
        OpCode::Data(Data::Binary),
        true,
    ));
    assert_eq!(ws.expect_close().0, 1003);
}

fn a_message_over_max_payload_closes_1009(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            max_payload: MAX_PAYLOAD,
            ..config()
        },
        dev_auth(),
    );
    let mut ws = Ws::auth(server.addr, "alice");
    ws.send(&publish_of_len(MAX_PAYLOAD));
    assert_eq!(ws.recv(), json!({"type": "ack", "id": "big", "offset": 1}));
    ws.send(&publish_of_len(MAX_PAYLOAD + 1));
    assert_eq!(ws.expect_close().0, 1009);
}

fn invalid_utf8_in_a_text_message_closes_1007(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut ws = Ws::auth(server.addr, "alice");
    ws.send_frame(Frame::message(
        b"{\"type\":\"ping\",\"id\":\"\xff\xfe\"}".to_vec(),
        OpCode::Data(Data::Text),
        true,
    ));
    assert_eq!(ws.expect_close().0, 1007);
}

fn an_unmasked_client_frame_closes_1002(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut ws = Ws::auth(server.addr, "alice");
    // FIN + text, no mask bit, 15 bytes: RFC 6455 requires client frames
    // to be masked.
    let mut frame = vec![0x81, 15];
    frame.extend_from_slice(br#"{"type":"ping"}"#);
    ws.raw().write_all(&frame).expect("the frame is sent");
    assert_eq!(ws.expect_close().0, 1002);
}

fn a_client_close_is_echoed(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let mut ws = Ws::auth(server.addr, "alice");
    ws.send_frame(Frame::close(Some(tungstenite::protocol::CloseFrame {
        code: 4100.into(),
        reason: "done".into(),
    })));
    match ws.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 4100),
        other => panic!("expected the close echoed, got {other:?}"),
    }
}

runtime_tests! {
    a_binary_message_closes_1003 => smol, blocking;
    a_message_over_max_payload_closes_1009 => smol, blocking;
    invalid_utf8_in_a_text_message_closes_1007 => smol, blocking;
    an_unmasked_client_frame_closes_1002 => smol, blocking;
    a_client_close_is_echoed => smol, blocking;
}
