//! PROTOCOL.md sections 1 and 7: what closes a connection, and with which
//! code.

use std::io::Write;
use std::time::Duration;

use serde_json::json;
use tether_core::ServerConfig;
use tungstenite::Message;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::harness::{Runtime, config, dev_auth};
use tether_testkit::ws::{End, Ws, read_to_end};

/// The `max_payload` of these tests.
const MAX_PAYLOAD: usize = 1024;

/// A `close_timeout` far longer than any read of these tests may wait
/// ([`crate::ws::READ_TIMEOUT`]): a connection that ends within a read
/// did not wait for it.
const LONG_CLOSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads the rest of a failed connection (RFC 6455 section 7.1.7) after
/// its close frame: the node ends TCP once that frame is out, with an end of
/// stream, without waiting `close_timeout` for the client's close frame,
/// which it can no longer read (PROTOCOL.md section 11).
fn assert_tcp_ends_after_the_close_frame(ws: &mut Ws) {
    let (rest, end) = read_to_end(ws.raw());
    assert_eq!((rest, end), (Vec::new(), End::Eof));
}

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

fn a_message_over_max_payload_closes_1009_then_tcp(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            max_payload: MAX_PAYLOAD,
            close_timeout: LONG_CLOSE_TIMEOUT,
            ..config()
        },
        dev_auth(),
    );
    let mut ws = Ws::auth(server.addr, "alice");
    ws.send(&publish_of_len(MAX_PAYLOAD));
    assert_eq!(ws.recv(), json!({"type": "ack", "id": "big", "offset": 1}));
    ws.send(&publish_of_len(MAX_PAYLOAD + 1));
    assert_eq!(ws.expect_close().0, 1009);
    assert_tcp_ends_after_the_close_frame(&mut ws);
}

fn invalid_utf8_in_a_text_message_closes_1007_then_tcp(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            close_timeout: LONG_CLOSE_TIMEOUT,
            ..config()
        },
        dev_auth(),
    );
    let mut ws = Ws::auth(server.addr, "alice");
    ws.send_frame(Frame::message(
        b"{\"type\":\"ping\",\"id\":\"\xff\xfe\"}".to_vec(),
        OpCode::Data(Data::Text),
        true,
    ));
    assert_eq!(ws.expect_close().0, 1007);
    assert_tcp_ends_after_the_close_frame(&mut ws);
}

fn an_unmasked_client_frame_closes_1002_then_tcp(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            close_timeout: LONG_CLOSE_TIMEOUT,
            ..config()
        },
        dev_auth(),
    );
    let mut ws = Ws::auth(server.addr, "alice");
    // FIN + text, no mask bit, 15 bytes: RFC 6455 requires client frames
    // to be masked.
    let mut frame = vec![0x81, 15];
    frame.extend_from_slice(br#"{"type":"ping"}"#);
    ws.raw().write_all(&frame).expect("the frame is sent");
    assert_eq!(ws.expect_close().0, 1002);
    assert_tcp_ends_after_the_close_frame(&mut ws);
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
    a_binary_message_closes_1003 => smol, smol2, blocking, tokio, tokio2, example;
    a_message_over_max_payload_closes_1009_then_tcp => smol, blocking, tokio;
    invalid_utf8_in_a_text_message_closes_1007_then_tcp => smol, blocking, tokio;
    an_unmasked_client_frame_closes_1002_then_tcp => smol, blocking, tokio;
    a_client_close_is_echoed => smol, blocking, tokio;
}
