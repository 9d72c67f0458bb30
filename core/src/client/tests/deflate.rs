//! The session under permessage-deflate: the offer, the server's answer,
//! and compressed messages from the server, inflated.

use bytes::Bytes;

use super::*;
use crate::deflate::Deflater;
use crate::frame::{Opcode, compressed_frame};

/// A server frame carrying `json` compressed.
fn compressed(json: &str) -> Bytes {
    compressed_frame(
        Opcode::Text,
        &Deflater::new().deflate(json.as_bytes()),
        None,
    )
}

/// The fake server's `101`, answering with `extensions`.
fn accept_with(h: &Harness, extensions: &str) -> Vec<u8> {
    let server = h.server.as_ref().unwrap();
    let key = server.key.as_ref().expect("the request arrived");
    crate::http::accept_response(key, Some("tether.v1"), Some(extensions))
}

#[test]
fn the_upgrade_offers_deflate_unless_compression_is_off() {
    for compression in [true, false] {
        let mut h = Harness::new(ClientConfig {
            compression,
            ..config()
        });
        h.connect();
        let head = String::from_utf8(h.server.as_ref().unwrap().head.clone()).unwrap();
        let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; \
                     client_max_window_bits\r\n";
        assert_eq!(head.contains(offer), compression, "{head}");
    }
}

#[test]
fn compressed_messages_from_the_server_are_inflated() {
    for answer in [
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "permessage-deflate",
    ] {
        let mut h = Harness::new(config());
        h.connect();
        let response = accept_with(&h, answer);
        h.server_bytes(&response);
        h.server_bytes(&compressed(
            r#"{"type":"auth_ack","user":"ann","session":"s1","heartbeat_ms":30000,"max_payload":65536}"#,
        ));
        assert!(h.client.is_connected(), "{answer}");
        assert_eq!(h.take_log(), ["dial at t+1s", "connected ann s1"]);
    }
}

#[test]
fn a_compressed_message_larger_than_max_payload_inflated_fails_the_connection_with_1009() {
    let mut h = Harness::new(ClientConfig {
        max_payload: 1024,
        ..config()
    });
    h.connect();
    let response = accept_with(&h, "permessage-deflate");
    h.server_bytes(&response);
    let bomb = format!(r#"{{"type":"pong","pad":"{}"}}"#, "a".repeat(1 << 20));
    h.server_bytes(&compressed(&bomb));
    let received = h.take_received();
    assert!(
        received.iter().any(|line| line.starts_with("close 1009")),
        "{received:?}"
    );
}

#[test]
fn an_answer_the_client_did_not_offer_refuses_the_handshake() {
    let mut h = Harness::new(config());
    h.connect();
    let response = accept_with(&h, "permessage-deflate; mystery");
    h.server_bytes(&response);
    assert!(!h.client.is_connected());
    let log = h.take_log();
    assert!(
        log.iter().any(|line| line.contains("disconnected")),
        "{log:?}"
    );
}
