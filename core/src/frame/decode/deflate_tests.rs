//! The decoder under permessage-deflate: RSV1 per message, inflation of
//! whole and fragmented messages, and the limit on the inflated size.

use super::*;
use crate::deflate::Deflater;
use crate::frame::{compressed_frame, encode_frame};

const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
const MAX: usize = 1000;

/// A client's frame with the first byte `first` (FIN, RSV, opcode).
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = encode_frame(Opcode::Binary, payload, Some(KEY)).to_vec();
    frame[0] = first;
    frame
}

fn compressed(payload: &[u8]) -> Vec<u8> {
    Deflater::new().deflate(payload)
}

/// Every message, or the error that ended decoding, of `bytes` fed whole,
/// then fed one byte at a time: both must agree.
fn decode(bytes: &[u8]) -> Vec<Result<Message, DecodeError>> {
    let run = |chunk: usize| {
        let mut decoder = FrameDecoder::with_deflate(Role::Server, MAX, false);
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk) {
            decoder.feed(piece);
            loop {
                match decoder.poll_message() {
                    Ok(Some(message)) => out.push(Ok(message)),
                    Ok(None) => break,
                    Err(error) => {
                        out.push(Err(error));
                        return out;
                    }
                }
            }
        }
        out
    };
    let whole = run(bytes.len().max(1));
    assert_eq!(whole, run(1), "whole and byte-by-byte differ");
    whole
}

#[test]
fn a_compressed_text_message_is_inflated() {
    let text = br#"{"type":"publish","channel":"room","data":"hello hello hello"}"#;
    let frame = compressed_frame(Opcode::Text, &compressed(text), Some(KEY));
    assert_eq!(
        decode(&frame),
        [Ok(Message::Text(Bytes::from_static(text)))]
    );
}

#[test]
fn uncompressed_messages_still_pass_when_deflate_was_agreed() {
    let frame = encode_frame(Opcode::Text, b"plain", Some(KEY));
    assert_eq!(
        decode(&frame),
        [Ok(Message::Text(Bytes::from_static(b"plain")))]
    );
}

#[test]
fn a_fragmented_compressed_message_inflates_as_one() {
    let payload: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 7) as u8).collect();
    let body = compressed(&payload[..MAX]);
    let (a, rest) = body.split_at(body.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut bytes = client_frame(0x42, a);
    bytes.extend(client_frame(0x00, b));
    // A Ping between fragments is answered on its own.
    bytes.extend(client_frame(0x89, b"p"));
    bytes.extend(client_frame(0x80, c));
    assert_eq!(
        decode(&bytes),
        [
            Ok(Message::Ping(Bytes::from_static(b"p"))),
            Ok(Message::Binary(Bytes::from(payload[..MAX].to_vec())))
        ]
    );
}

#[test]
fn rsv1_on_a_continuation_or_a_control_frame_closes_1002() {
    let mut bytes = client_frame(0x42, &compressed(b"abc"));
    bytes.extend(client_frame(0xc0, b""));
    let error = decode(&bytes).pop().unwrap().unwrap_err();
    assert_eq!(error, DecodeError::Protocol(Violation::ReservedBits));
    assert_eq!(error.close_code(), CloseCode::PROTOCOL_ERROR);
    let ping = client_frame(0xc9, b"");
    assert_eq!(
        decode(&ping),
        [Err(DecodeError::Protocol(Violation::ReservedBits))]
    );
}

#[test]
fn rsv1_without_deflate_closes_1002() {
    let frame = compressed_frame(Opcode::Text, &compressed(b"abc"), Some(KEY));
    let mut decoder = FrameDecoder::new(Role::Server, MAX);
    decoder.feed(&frame);
    assert_eq!(
        decoder.poll_message(),
        Err(DecodeError::Protocol(Violation::ReservedBits))
    );
}

#[test]
fn a_bomb_closes_1009_once_its_inflated_size_passes_the_limit() {
    // 16 MiB of zeros compress to about 16 KiB, well within the limit on
    // the wire.
    let mut decoder = FrameDecoder::with_deflate(Role::Server, 64 * 1024, false);
    let bomb = compressed(&vec![0; 16 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024);
    decoder.feed(&compressed_frame(Opcode::Binary, &bomb, Some(KEY)));
    let error = decoder.poll_message().unwrap_err();
    assert_eq!(error, DecodeError::TooBig { limit: 64 * 1024 });
    assert_eq!(error.close_code(), CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn a_bomb_in_fragments_stops_at_the_fragment_that_passes_the_limit() {
    let bomb = compressed(&vec![0; 1024 * 1024]);
    let (first, rest) = bomb.split_at(bomb.len() / 2);
    let mut decoder = FrameDecoder::with_deflate(Role::Server, MAX, false);
    decoder.feed(&client_frame(0x42, first));
    assert_eq!(
        decoder.poll_message(),
        Err(DecodeError::TooBig { limit: MAX })
    );
    decoder.feed(&client_frame(0x80, rest));
    assert_eq!(
        decoder.poll_message(),
        Err(DecodeError::TooBig { limit: MAX })
    );
}

#[test]
fn invalid_deflate_closes_1007() {
    let frame = compressed_frame(Opcode::Binary, &[0xff, 0xff], Some(KEY));
    let error = decode(&frame).pop().unwrap().unwrap_err();
    assert_eq!(error, DecodeError::InvalidCompressed);
    assert_eq!(error.close_code(), CloseCode::INVALID_PAYLOAD);
}

#[test]
fn invalid_utf8_inside_a_compressed_text_closes_1007() {
    let frame = compressed_frame(Opcode::Text, &compressed(&[0xff, 0xfe]), Some(KEY));
    assert_eq!(decode(&frame), [Err(DecodeError::InvalidUtf8)]);
}

#[test]
fn a_client_keeps_the_window_when_the_server_keeps_its_context() {
    // RFC 7692 section 7.2.3.2: two "Hello"s, the second referring to the
    // first; server frames are unmasked.
    let mut decoder = FrameDecoder::with_deflate(Role::Client, MAX, true);
    decoder.feed(&compressed_frame(
        Opcode::Text,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        None,
    ));
    decoder.feed(&compressed_frame(
        Opcode::Text,
        &[0xf2, 0x00, 0x11, 0x00, 0x00],
        None,
    ));
    for _ in 0..2 {
        assert_eq!(
            decoder.poll_message(),
            Ok(Some(Message::Text(Bytes::from_static(b"Hello"))))
        );
    }
}

#[test]
fn an_idle_server_decoder_holds_no_window() {
    let mut decoder = FrameDecoder::with_deflate(Role::Server, MAX, false);
    decoder.feed(&compressed_frame(
        Opcode::Text,
        &compressed(b"hi"),
        Some(KEY),
    ));
    assert!(decoder.poll_message().unwrap().is_some());
    let inflater = decoder.inflater.as_ref().unwrap();
    assert!(!inflater.holds_window());
}
