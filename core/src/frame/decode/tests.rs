use proptest::prelude::*;

use super::*;
use crate::frame::{encode_frame, masked_close_frame, masked_pong_frame, masked_text_frame};

const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
const MAX: usize = 1000;

/// A raw frame with any FIN bit and opcode, masked when `mask` is given;
/// the encoders only build final frames.
fn raw(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.push(if fin { 0x80 } else { 0 } | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => frame.push(mask_bit | len as u8),
        len @ 126..=65_535 => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if let Some(key) = mask {
        frame.extend_from_slice(&key);
    }
    let body = frame.len();
    frame.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut frame[body..], key);
    }
    frame
}

/// A frame as a client sends it to the server.
fn client(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw(fin, opcode, payload, Some(KEY))
}

type Outcome = Vec<Result<Message, DecodeError>>;

/// Feeds `chunks` in order, draining after each; stops at the first error.
fn run_chunks<'a>(role: Role, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut decoder = FrameDecoder::new(role, MAX);
    let mut outcome = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        loop {
            match decoder.poll_message() {
                Ok(Some(message)) => outcome.push(Ok(message)),
                Ok(None) => break,
                Err(error) => {
                    outcome.push(Err(error));
                    return outcome;
                }
            }
        }
    }
    outcome
}

/// Decodes `bytes` whole and one byte at a time, asserts both agree, and
/// returns the outcome.
fn decode_all(role: Role, bytes: &[u8]) -> Outcome {
    let whole = run_chunks(role, [bytes]);
    let bytewise = run_chunks(role, bytes.chunks(1));
    assert_eq!(whole, bytewise, "whole and byte-by-byte differ");
    whole
}

fn error_of(role: Role, bytes: &[u8]) -> DecodeError {
    match decode_all(role, bytes).pop() {
        Some(Err(error)) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn text(s: &str) -> Message {
    Message::Text(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn single_frames_of_every_kind() {
    let mut bytes = client(true, 0x1, b"hello");
    bytes.extend(client(true, 0x2, &[0, 255]));
    bytes.extend(client(true, 0x9, b"p"));
    bytes.extend(client(true, 0xa, b""));
    bytes.extend(client(true, 0x8, &[0x03, 0xe8, b'b', b'y', b'e']));
    assert_eq!(
        decode_all(Role::Server, &bytes),
        vec![
            Ok(text("hello")),
            Ok(Message::Binary(Bytes::from_static(&[0, 255]))),
            Ok(Message::Ping(Bytes::from_static(b"p"))),
            Ok(Message::Pong(Bytes::new())),
            Ok(Message::Close(Some((CloseCode::NORMAL, "bye".into())))),
        ]
    );
}

#[test]
fn fragmented_message_with_an_interleaved_ping() {
    // Section 5.4: control frames MAY be injected in the middle of a
    // fragmented message; the ping comes out first.
    let mut bytes = client(false, 0x1, b"Hel");
    bytes.extend(client(true, 0x9, b"p"));
    bytes.extend(client(false, 0x0, b"lo "));
    bytes.extend(client(true, 0x0, b"world"));
    assert_eq!(
        decode_all(Role::Server, &bytes),
        vec![
            Ok(Message::Ping(Bytes::from_static(b"p"))),
            Ok(text("Hello world"))
        ]
    );
}

#[test]
fn fragmented_binary_and_empty_fragments() {
    let mut bytes = client(false, 0x2, b"");
    bytes.extend(client(false, 0x0, &[1, 2]));
    bytes.extend(client(true, 0x0, b""));
    assert_eq!(
        decode_all(Role::Server, &bytes),
        vec![Ok(Message::Binary(Bytes::from_static(&[1, 2])))]
    );
}

#[test]
fn utf8_character_split_across_fragments_is_valid_whole() {
    // "é" is c3 a9; the fragment boundary cuts it in two.
    let mut bytes = client(false, 0x1, &[b'a', 0xc3]);
    bytes.extend(client(true, 0x0, &[0xa9, b'b']));
    assert_eq!(decode_all(Role::Server, &bytes), vec![Ok(text("aéb"))]);
}

#[test]
fn invalid_utf8_closes_with_1007() {
    let error = error_of(Role::Server, &client(true, 0x1, &[0xff]));
    assert_eq!(error, DecodeError::InvalidUtf8);
    assert_eq!(error.close_code(), CloseCode(1007));
    // A character cut off at the end of the whole message.
    let mut bytes = client(false, 0x1, b"a");
    bytes.extend(client(true, 0x0, &[0xc3]));
    assert_eq!(error_of(Role::Server, &bytes), DecodeError::InvalidUtf8);
}

#[test]
fn invalid_utf8_fails_on_its_fragment_before_the_message_ends() {
    let mut decoder = FrameDecoder::new(Role::Server, MAX);
    decoder.feed(&client(false, 0x1, &[b'a', 0xc3, b'(']));
    assert_eq!(decoder.poll_message(), Err(DecodeError::InvalidUtf8));
}

#[test]
fn every_protocol_violation_closes_with_1002() {
    let cases: Vec<(Vec<u8>, Violation)> = vec![
        // Section 5.2: reserved bits without an extension.
        (vec![0xc1, 0x80, 0, 0, 0, 0], Violation::ReservedBits),
        (vec![0x91, 0x80, 0, 0, 0, 0], Violation::ReservedBits),
        // Section 5.2: reserved opcodes.
        (client(true, 0x3, b""), Violation::ReservedOpcode(3)),
        (client(true, 0xf, b""), Violation::ReservedOpcode(0xf)),
        // Section 5.5: control frames are short and never fragmented.
        (client(true, 0x9, &[0; 126]), Violation::ControlTooLong),
        (client(false, 0x9, b""), Violation::FragmentedControl),
        // Section 5.4: fragment order.
        (client(true, 0x0, b"x"), Violation::UnexpectedContinuation),
        (
            [client(false, 0x1, b"a"), client(true, 0x1, b"b")].concat(),
            Violation::InterleavedMessage,
        ),
        // Section 5.1: a client masks every frame.
        (raw(true, 0x1, b"x", None), Violation::UnmaskedFrame),
        // Section 5.2: the 64-bit length's high bit.
        (
            vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1],
            Violation::LengthHighBit,
        ),
        // Section 5.5.1: a close body is empty or at least two bytes.
        (client(true, 0x8, &[3]), Violation::TruncatedCloseCode),
        // Section 7.4: codes that may not be sent.
        (
            client(true, 0x8, &[0x03, 0xed]),
            Violation::UnsendableCloseCode(1005),
        ),
        (
            client(true, 0x8, &[0x03, 0xe7]),
            Violation::UnsendableCloseCode(999),
        ),
        (
            client(true, 0x8, &[0x13, 0x88]),
            Violation::UnsendableCloseCode(5000),
        ),
    ];
    for (bytes, violation) in cases {
        let error = error_of(Role::Server, &bytes);
        assert_eq!(error, DecodeError::Protocol(violation), "{bytes:02x?}");
        assert_eq!(error.close_code(), CloseCode(1002));
        assert!(error.to_string().len() <= 123);
    }
}

#[test]
fn every_reserved_bit_combination_and_reserved_opcode_closes_with_1002() {
    // Autobahn cases 3.x (RSV1-3 in all seven combinations, on data and
    // control frames) and 4.x (opcodes 3-7 and 11-15, with and without a
    // payload).
    for rsv in 1..8u8 {
        for opcode in [0x1, 0x2, 0x9] {
            let mut bytes = client(true, opcode, b"x");
            bytes[0] |= rsv << 4;
            let error = error_of(Role::Server, &bytes);
            assert_eq!(error, DecodeError::Protocol(Violation::ReservedBits));
        }
    }
    for opcode in (3..=7).chain(11..=15) {
        for payload in [&b""[..], b"reserved"] {
            let error = error_of(Role::Server, &client(true, opcode, payload));
            assert_eq!(
                error,
                DecodeError::Protocol(Violation::ReservedOpcode(opcode))
            );
            assert_eq!(error.close_code(), CloseCode(1002));
        }
    }
}

#[test]
fn autobahn_utf8_classes_are_accepted_or_closed_with_1007() {
    // Autobahn cases 6.x: the edges of valid UTF-8, then overlong forms,
    // surrogates, code points past U+10FFFF, stray continuation bytes and
    // truncated sequences, whole and split into one-byte fragments.
    let valid: &[&[u8]] = &[
        b"",
        "κόσμε".as_bytes(),
        &[0x7f],
        &[0xc2, 0x80],
        &[0xdf, 0xbf],
        &[0xe0, 0xa0, 0x80],
        &[0xed, 0x9f, 0xbf],
        &[0xee, 0x80, 0x80],
        &[0xef, 0xbf, 0xbf],
        &[0xf0, 0x90, 0x80, 0x80],
        &[0xf4, 0x8f, 0xbf, 0xbf],
    ];
    let invalid: &[&[u8]] = &[
        &[0x80],
        &[0xbf],
        &[0xc0, 0xaf],
        &[0xe0, 0x80, 0xaf],
        &[0xf0, 0x80, 0x80, 0xaf],
        &[0xed, 0xa0, 0x80],
        &[0xed, 0xbf, 0xbf],
        &[0xf4, 0x90, 0x80, 0x80],
        &[0xf8, 0x88, 0x80, 0x80, 0x80],
        &[0xfe],
        &[0xce, 0xba, 0xe1],
        &[0xe1, 0x80],
    ];
    for (bytes, ok) in valid
        .iter()
        .map(|b| (b, true))
        .chain(invalid.iter().map(|b| (b, false)))
    {
        let whole = decode_all(Role::Server, &client(true, 0x1, bytes));
        let mut fragments = client(false, 0x1, &[]);
        for byte in bytes.iter() {
            fragments.extend(client(false, 0x0, &[*byte]));
        }
        fragments.extend(client(true, 0x0, &[]));
        let split = decode_all(Role::Server, &fragments);
        for outcome in [whole, split] {
            if ok {
                let expected = std::str::from_utf8(bytes).unwrap();
                assert_eq!(outcome, vec![Ok(text(expected))], "{bytes:02x?}");
            } else {
                assert_eq!(outcome, vec![Err(DecodeError::InvalidUtf8)], "{bytes:02x?}");
            }
        }
    }
}

#[test]
fn client_role_refuses_masked_frames_and_accepts_unmasked() {
    let error = error_of(Role::Client, &client(true, 0x1, b"x"));
    assert_eq!(error, DecodeError::Protocol(Violation::MaskedFrame));
    assert_eq!(
        decode_all(Role::Client, &raw(true, 0x1, b"x", None)),
        vec![Ok(text("x"))]
    );
}

#[test]
fn close_reason_that_is_not_utf8_closes_with_1007() {
    let error = error_of(Role::Server, &client(true, 0x8, &[0x03, 0xe8, 0xff]));
    assert_eq!(error, DecodeError::InvalidCloseReason);
    assert_eq!(error.close_code(), CloseCode(1007));
}

#[test]
fn empty_close_has_no_code() {
    assert_eq!(
        decode_all(Role::Server, &client(true, 0x8, b"")),
        vec![Ok(Message::Close(None))]
    );
}

#[test]
fn a_message_of_exactly_max_payload_is_accepted() {
    let payload = vec![b'a'; MAX];
    let outcome = decode_all(Role::Server, &client(true, 0x1, &payload));
    assert_eq!(outcome, vec![Ok(Message::Text(Bytes::from(payload)))]);
}

#[test]
fn one_byte_over_max_payload_fails_with_1009_before_the_payload() {
    let frame = client(true, 0x1, &vec![b'a'; MAX + 1]);
    let mut decoder = FrameDecoder::new(Role::Server, MAX);
    // Only the header: 2 bytes + 16-bit length; the mask key is not needed.
    decoder.feed(&frame[..4]);
    let error = decoder.poll_message().unwrap_err();
    assert_eq!(error, DecodeError::TooBig { limit: MAX });
    assert_eq!(error.close_code(), CloseCode(1009));
    assert_eq!(error_of(Role::Server, &frame), error);
}

#[test]
fn a_fragmented_message_over_max_payload_fails_with_1009() {
    let mut bytes = client(false, 0x2, &vec![0; MAX / 2]);
    bytes.extend(client(false, 0x0, &vec![0; MAX / 2]));
    bytes.extend(client(true, 0x0, &[0]));
    let error = error_of(Role::Server, &bytes);
    assert_eq!(error, DecodeError::TooBig { limit: MAX });
}

#[test]
fn control_frames_do_not_count_towards_the_message_size() {
    let mut bytes = client(false, 0x1, &vec![b'a'; MAX]);
    bytes.extend(client(true, 0x9, &[0; 125]));
    bytes.extend(client(true, 0x0, b""));
    let outcome = decode_all(Role::Server, &bytes);
    assert_eq!(outcome.len(), 2);
    assert!(outcome.iter().all(Result::is_ok));
}

#[test]
fn a_failed_decoder_repeats_its_error_and_drops_input() {
    let mut decoder = FrameDecoder::new(Role::Server, MAX);
    decoder.feed(&raw(true, 0x1, b"x", None));
    let error = decoder.poll_message().unwrap_err();
    decoder.feed(&client(true, 0x1, b"after"));
    assert_eq!(decoder.poll_message(), Err(error));
    assert_eq!(decoder.buf.capacity(), 0);
}

#[test]
fn nothing_is_decoded_after_a_close() {
    let mut bytes = client(true, 0x8, b"");
    bytes.extend(client(true, 0x1, b"late"));
    assert_eq!(
        decode_all(Role::Server, &bytes),
        vec![Ok(Message::Close(None))]
    );
    let mut decoder = FrameDecoder::new(Role::Server, MAX);
    decoder.feed(&bytes);
    assert!(decoder.poll_message().unwrap().is_some());
    decoder.feed(b"more");
    assert_eq!(decoder.poll_message(), Ok(None));
    assert_eq!(decoder.buf.capacity(), 0);
}

#[test]
fn an_idle_decoder_owns_no_heap_memory() {
    let mut decoder = FrameDecoder::new(Role::Server, MAX);
    let mut bytes = client(false, 0x1, b"ab");
    bytes.extend(client(true, 0x0, b"cd"));
    bytes.extend(client(true, 0x1, b"ef"));
    decoder.feed(&bytes[..5]);
    assert_eq!(decoder.poll_message(), Ok(None));
    assert!(decoder.buf.capacity() > 0);
    decoder.feed(&bytes[5..]);
    assert_eq!(decoder.poll_message(), Ok(Some(text("abcd"))));
    assert_eq!(decoder.poll_message(), Ok(Some(text("ef"))));
    assert_eq!(decoder.poll_message(), Ok(None));
    assert_eq!(decoder.buf.capacity(), 0);
    assert!(decoder.partial.is_none());
}

#[test]
fn sendable_code_covers_exactly_the_sendable_ranges() {
    let codes: Vec<CloseCode> = (0..2012).map(sendable_code).collect();
    assert!(codes.iter().all(|code| code.is_sendable()));
    assert_eq!(codes[0], CloseCode(1000));
    assert_eq!(codes[4], CloseCode(1007));
    assert_eq!(codes[11], CloseCode(1014));
    assert_eq!(codes[12], CloseCode(3000));
    assert_eq!(codes[2011], CloseCode(4999));
}

#[test]
fn encoders_round_trip_through_the_client_decoder() {
    let bytes = [
        text_frame_for_client("hi"),
        crate::frame::ping_frame(b"p").to_vec(),
        crate::frame::pong_frame(b"q").to_vec(),
        crate::frame::close_frame(CloseCode::GOING_AWAY, "bye").to_vec(),
    ]
    .concat();
    assert_eq!(
        decode_all(Role::Client, &bytes),
        vec![
            Ok(text("hi")),
            Ok(Message::Ping(Bytes::from_static(b"p"))),
            Ok(Message::Pong(Bytes::from_static(b"q"))),
            Ok(Message::Close(Some((CloseCode::GOING_AWAY, "bye".into())))),
        ]
    );
}

fn text_frame_for_client(s: &str) -> Vec<u8> {
    crate::frame::text_frame(s.as_bytes()).to_vec()
}

/// A close code a peer may send (RFC 6455 section 7.4), from an index
/// over the three sendable ranges.
fn sendable_code(index: u16) -> CloseCode {
    CloseCode(match index % 2012 {
        i @ 0..=3 => 1000 + i,
        i @ 4..=11 => 1003 + i,
        i => 2988 + i,
    })
}

/// Anything a peer can send, as one message. `prop_oneof!` would expand to
/// a banned shared pointer, so the kind is picked from an index instead.
fn any_message() -> impl Strategy<Value = Message> {
    (
        0u8..5,
        ".{0,200}",
        prop::collection::vec(any::<u8>(), 0..300),
        any::<u16>(),
    )
        .prop_map(|(kind, s, mut bytes, code)| match kind {
            0 => text(&s),
            1 => Message::Binary(bytes.into()),
            2 | 3 => {
                bytes.truncate(125);
                if kind == 2 {
                    Message::Ping(bytes.into())
                } else {
                    Message::Pong(bytes.into())
                }
            }
            _ => {
                let reason: String = s.chars().take(30).collect();
                Message::Close(Some((sendable_code(code), reason)))
            }
        })
}

fn encode(message: &Message, mask: Option<[u8; 4]>) -> Vec<u8> {
    let frame = match (message, mask) {
        (Message::Text(t), Some(key)) => masked_text_frame(t, key),
        (Message::Text(t), None) => crate::frame::text_frame(t),
        (Message::Binary(b), mask) => encode_frame(Opcode::Binary, b, mask),
        (Message::Ping(p), Some(key)) => crate::frame::encode::masked_ping_frame(p, key),
        (Message::Ping(p), None) => crate::frame::ping_frame(p),
        (Message::Pong(p), Some(key)) => masked_pong_frame(p, key),
        (Message::Pong(p), None) => crate::frame::pong_frame(p),
        (Message::Close(Some((code, reason))), Some(key)) => masked_close_frame(*code, reason, key),
        (Message::Close(Some((code, reason))), None) => crate::frame::close_frame(*code, reason),
        (Message::Close(None), mask) => encode_frame(Opcode::Close, b"", mask),
    };
    frame.to_vec()
}

/// Splits `bytes` at the given cut points (taken modulo its length).
fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for point in points.into_iter().chain([bytes.len()]) {
        chunks.push(&bytes[from..point]);
        from = point;
    }
    chunks
}

proptest! {
    #[test]
    fn round_trip_for_both_roles_at_any_split(
        messages in prop::collection::vec(any_message(), 1..8),
        key in any::<[u8; 4]>(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        // Nothing may follow a Close, so the expected output stops there.
        let end = messages
            .iter()
            .position(|m| matches!(m, Message::Close(_)))
            .map_or(messages.len(), |i| i + 1);
        let expected: Outcome = messages[..end].iter().cloned().map(Ok).collect();
        for (role, mask) in [(Role::Server, Some(key)), (Role::Client, None)] {
            let bytes: Vec<u8> = messages.iter().flat_map(|m| encode(m, mask)).collect();
            prop_assert_eq!(&run_chunks(role, [&bytes[..]]), &expected);
            prop_assert_eq!(&run_chunks(role, bytes.chunks(1)), &expected);
            prop_assert_eq!(&run_chunks(role, split(&bytes, &cuts)), &expected);
        }
    }

    #[test]
    fn fragmented_text_reassembles_at_any_split(
        s in ".{1,200}",
        fragment_cuts in prop::collection::vec(any::<usize>(), 0..6),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let pieces = split(s.as_bytes(), &fragment_cuts);
        let last = pieces.len() - 1;
        let bytes: Vec<u8> = pieces
            .iter()
            .enumerate()
            .flat_map(|(i, piece)| client(i == last, if i == 0 { 0x1 } else { 0x0 }, piece))
            .collect();
        let whole = run_chunks(Role::Server, [&bytes[..]]);
        prop_assert_eq!(&whole, &vec![Ok(text(&s))]);
        prop_assert_eq!(&run_chunks(Role::Server, split(&bytes, &cuts)), &whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        server in any::<bool>(),
    ) {
        let role = if server { Role::Server } else { Role::Client };
        let whole = run_chunks(role, [&bytes[..]]);
        prop_assert_eq!(&run_chunks(role, split(&bytes, &cuts)), &whole);
        let mut decoder = FrameDecoder::new(role, MAX);
        for chunk in split(&bytes, &cuts) {
            decoder.feed(chunk);
            while let Ok(Some(_)) = decoder.poll_message() {}
            let buffered = decoder.buf.len() - decoder.start;
            prop_assert!(buffered <= MAX + 14);
            let open = decoder.partial.as_ref().map_or(0, |p| p.data.len());
            prop_assert!(open <= MAX);
        }
    }
}
