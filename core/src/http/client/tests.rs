use proptest::prelude::*;

use super::*;
use crate::http::request::Upgrade;
use crate::http::{Request, RequestLimits, RequestParser, accept_response};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const MAX_HEAD: usize = 512;

type Outcome = (Vec<Result<Handshake, HandshakeError>>, Vec<u8>);

fn run_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = ResponseParser::new(KEY, MAX_HEAD, false);
    let mut outcome = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        match parser.poll() {
            Ok(Some(handshake)) => outcome.push(Ok(handshake)),
            Ok(None) => {}
            Err(error) => {
                outcome.push(Err(error));
                break;
            }
        }
    }
    (outcome, parser.into_remaining())
}

/// Parses `bytes` whole and byte by byte, asserts both agree, returns the
/// single result and the remaining bytes.
fn parse(bytes: &[u8]) -> (Result<Handshake, HandshakeError>, Vec<u8>) {
    let whole = run_chunks([bytes]);
    assert_eq!(
        whole,
        run_chunks(bytes.chunks(1)),
        "whole and byte-by-byte differ"
    );
    let (mut outcome, remaining) = whole;
    assert_eq!(outcome.len(), 1, "{outcome:?}");
    (outcome.remove(0), remaining)
}

fn error(text: &str) -> HandshakeError {
    parse(text.as_bytes()).0.unwrap_err()
}

const ACCEPTED: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                        Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";

#[test]
fn client_key_encodes_the_nonce() {
    assert_eq!(client_key(*b"the sample nonce"), KEY);
}

#[test]
fn the_upgrade_request_passes_the_server_parser() {
    let bytes = upgrade_request(
        "example.test:80",
        "/ws",
        KEY,
        Some("https://app.example"),
        false,
    );
    let mut parser = RequestParser::new(RequestLimits {
        max_head: 8192,
        max_body: 0,
    });
    parser.feed(&bytes);
    assert_eq!(
        parser.poll(&["https://app.example".to_owned()], &[]),
        Ok(Some(Request::Upgrade(Upgrade {
            key: KEY.to_owned(),
            protocol: Some("tether.v1"),
            deflate: None,
            origin: Some("https://app.example".to_owned()),
            forwarded: Vec::new(),
        })))
    );
}

#[test]
fn the_upgrade_request_cannot_be_split_into_extra_headers() {
    let bytes = upgrade_request("h\r\nX-Evil: 1", "/ws", KEY, None, false);
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("\r\nHost: hX-Evil: 1\r\n"));
    assert!(!text.contains("Origin"));
}

#[test]
fn the_server_answer_round_trips_with_frames_after_it() {
    let mut bytes = accept_response(KEY, Some("tether.v1"), None);
    bytes.extend_from_slice(&crate::frame::text_frame(b"{}"));
    let (result, remaining) = parse(&bytes);
    assert_eq!(
        result,
        Ok(Handshake {
            protocol: Some("tether.v1"),
            deflate: None,
        })
    );
    assert_eq!(remaining, crate::frame::text_frame(b"{}").to_vec());
    let (plain, _) = parse(&accept_response(KEY, None, None));
    assert_eq!(
        plain,
        Ok(Handshake {
            protocol: None,
            deflate: None,
        })
    );
}

#[test]
fn a_deflate_offer_round_trips_through_both_parsers() {
    let bytes = upgrade_request("example.test", "/ws", KEY, None, true);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains(
        "\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; \
         client_max_window_bits\r\n"
    ));
    let mut server = RequestParser::new(RequestLimits {
        max_head: 8192,
        max_body: 0,
    });
    server.feed(&bytes);
    let Ok(Some(Request::Upgrade(upgrade))) = server.poll(&[], &[]) else {
        panic!("not an upgrade");
    };
    let answer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    assert_eq!(upgrade.deflate, Some(answer));
    let response = accept_response(KEY, upgrade.protocol, upgrade.deflate);
    assert!(
        String::from_utf8(response.clone())
            .unwrap()
            .contains(&format!("\r\nSec-WebSocket-Extensions: {answer}\r\n"))
    );
    let mut client = ResponseParser::new(KEY, MAX_HEAD, true);
    client.feed(&response);
    let handshake = client.poll().unwrap().unwrap();
    assert_eq!(
        handshake.deflate,
        Some(Deflate {
            server_keeps_context: false,
            client_may_compress: true,
        })
    );
}

#[test]
fn an_answer_the_offer_did_not_allow_is_refused() {
    let head = format!(
        "{ACCEPTED}Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    );
    let mut client = ResponseParser::new(KEY, MAX_HEAD, true);
    client.feed(head.as_bytes());
    assert_eq!(client.poll(), Err(HandshakeError::UnexpectedExtension));
    // Not offered at all: any extension is refused.
    let head = format!("{ACCEPTED}Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
    assert_eq!(error(&head), HandshakeError::UnexpectedExtension);
}

#[test]
fn a_refusal_carries_its_status() {
    let refusal = crate::http::HttpError::new(403, "origin not allowed").response();
    assert_eq!(parse(&refusal).0, Err(HandshakeError::Status(403)));
}

#[test]
fn every_broken_101_is_refused() {
    let cases = [
        (
            ACCEPTED.replace("Upgrade: websocket\r\n", ""),
            HandshakeError::NotWebSocket,
        ),
        (
            ACCEPTED.replace("Connection: Upgrade", "Connection: close"),
            HandshakeError::NotWebSocket,
        ),
        (
            ACCEPTED.replace("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "AAAA"),
            HandshakeError::BadAccept,
        ),
        (
            ACCEPTED.replace("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", ""),
            HandshakeError::BadAccept,
        ),
        (
            format!("{ACCEPTED}Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            HandshakeError::UnexpectedExtension,
        ),
        (
            format!("{ACCEPTED}Sec-WebSocket-Protocol: chat\r\n"),
            HandshakeError::UnexpectedProtocol,
        ),
        (
            ACCEPTED.replace("HTTP/1.1", "HTTP/1.0"),
            HandshakeError::Malformed,
        ),
    ];
    for (head, expected) in cases {
        assert_eq!(error(&format!("{head}\r\n")), expected, "{head}");
    }
    assert_eq!(error("HTTP/1.1 abc\r\n\r\n"), HandshakeError::Malformed);
}

#[test]
fn an_oversized_head_is_refused() {
    let head = format!("{ACCEPTED}X-Pad: {}\r\n\r\n", "a".repeat(MAX_HEAD));
    assert_eq!(error(&head), HandshakeError::HeadTooLarge);
    let mut parser = ResponseParser::new(KEY, MAX_HEAD, false);
    parser.feed(head.as_bytes());
    assert!(parser.poll().is_err());
    parser.feed(b"more");
    assert_eq!(parser.poll(), Err(HandshakeError::HeadTooLarge));
    assert_eq!(parser.buf.capacity(), 0);
}

#[test]
fn reasons_are_printable() {
    assert_eq!(
        HandshakeError::Status(503).to_string(),
        "server answered 503, not 101"
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_any_split_agrees(
        accepted in any::<bool>(),
        bytes in prop::collection::vec(any::<u8>(), 0..1000),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let start = if accepted { accept_response(KEY, None, None) } else { Vec::new() };
        let input = [&start[..], &bytes].concat();
        let whole = run_chunks([&input[..]]);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for point in points.into_iter().chain([input.len()]) {
            chunks.push(&input[from..point]);
            from = point;
        }
        prop_assert_eq!(&run_chunks(chunks.iter().copied()), &whole);
        if accepted {
            prop_assert_eq!(&whole.1, &bytes);
        }
        let mut parser = ResponseParser::new(KEY, MAX_HEAD, false);
        for chunk in chunks {
            parser.feed(chunk);
            let _ = parser.poll();
            if matches!(parser.state, State::Head) {
                prop_assert!(parser.buf.len() <= MAX_HEAD);
            }
        }
    }
}
