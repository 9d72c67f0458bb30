//! Frame encoding: every frame is final (Tether never fragments what it
//! sends). Server frames are unmasked; client frames carry the masking key
//! the caller supplies, so the core stays free of randomness.

use bytes::{BufMut, Bytes, BytesMut};

use super::header::Opcode;
use super::mask::apply_mask;
use crate::close::CloseCode;

/// Largest payload of a control frame (RFC 6455 section 5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// One final frame of `opcode` carrying `payload`, masked with `mask` when
/// given (RFC 6455 section 5.3: a client masks every frame, a server none).
///
/// This is the general encoder; it does not police control frames, so a
/// control payload must be at most 125 bytes (section 5.5). The named helpers
/// below enforce that.
pub fn encode_frame(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    encode(0x80 | opcode.bits(), payload, mask)
}

/// One final frame of a data message `opcode` whose payload is
/// `compressed`, the output of permessage-deflate's compressor: RSV1 says
/// so (RFC 7692 section 6). Masked with `mask` when given.
pub fn compressed_frame(opcode: Opcode, compressed: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    encode(0xc0 | opcode.bits(), compressed, mask)
}

/// A frame whose first byte (FIN, RSV and opcode) is `first`.
fn encode(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    let len = payload.len();
    let mut frame = BytesMut::with_capacity(len + 14);
    frame.put_u8(first);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    // Section 5.2: the length uses 7 bits, or 126 + 16 bits, or 127 + 64 bits.
    if len < 126 {
        frame.put_u8(mask_bit | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        frame.put_u8(mask_bit | 126);
        frame.put_u16(short);
    } else {
        frame.put_u8(mask_bit | 127);
        frame.put_u64(len as u64);
    }
    let start = match mask {
        Some(key) => {
            frame.put_slice(&key);
            frame.len()
        }
        None => frame.len(),
    };
    frame.put_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut frame[start..], key);
    }
    frame.freeze()
}

/// A complete, final, unmasked text frame carrying `payload`: what a server
/// sends for every application message. Built once and shared by every
/// recipient.
pub fn text_frame(payload: &[u8]) -> Bytes {
    encode_frame(Opcode::Text, payload, None)
}

/// The payload of a frame made by [`text_frame`], sharing its bytes: what a
/// store that keeps frames hands back as text.
pub fn text_frame_payload(frame: &Bytes) -> Bytes {
    let header = match frame.get(1) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    };
    frame.slice(header.min(frame.len())..)
}

/// A client's text frame carrying `payload`, masked with `mask`.
pub fn masked_text_frame(payload: &[u8], mask: [u8; 4]) -> Bytes {
    encode_frame(Opcode::Text, payload, Some(mask))
}

/// A server's Ping; `payload` beyond 125 bytes is cut off, since a control
/// frame cannot carry more.
pub fn ping_frame(payload: &[u8]) -> Bytes {
    encode_frame(Opcode::Ping, control_payload(payload), None)
}

/// A client's Ping, masked with `mask`; `payload` beyond 125 bytes is cut
/// off.
#[cfg(test)]
pub fn masked_ping_frame(payload: &[u8], mask: [u8; 4]) -> Bytes {
    encode_frame(Opcode::Ping, control_payload(payload), Some(mask))
}

/// A server's Pong echoing `payload` (RFC 6455 section 5.5.3: the Ping's
/// application data); beyond 125 bytes is cut off.
pub fn pong_frame(payload: &[u8]) -> Bytes {
    encode_frame(Opcode::Pong, control_payload(payload), None)
}

/// A client's Pong echoing `payload`, masked with `mask`; beyond 125 bytes is
/// cut off.
pub fn masked_pong_frame(payload: &[u8], mask: [u8; 4]) -> Bytes {
    encode_frame(Opcode::Pong, control_payload(payload), Some(mask))
}

/// A server's Close frame with `code` and `reason`. The reason is cut at the
/// last character boundary within 123 bytes so the frame stays a valid
/// control frame (RFC 6455 section 5.5.1).
pub fn close_frame(code: CloseCode, reason: &str) -> Bytes {
    encode_frame(Opcode::Close, &close_payload(code, reason), None)
}

/// A client's Close frame with `code` and `reason`, masked with `mask`; the
/// reason is cut as in [`close_frame`].
pub fn masked_close_frame(code: CloseCode, reason: &str, mask: [u8; 4]) -> Bytes {
    encode_frame(Opcode::Close, &close_payload(code, reason), Some(mask))
}

fn control_payload(payload: &[u8]) -> &[u8] {
    &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)]
}

/// Section 5.5.1: a two-byte big-endian code followed by a UTF-8 reason.
fn close_payload(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.0.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_payload_of_a_text_frame_is_what_went_in_at_every_length_form() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let payload = vec![b'x'; len];
            assert_eq!(
                super::text_frame_payload(&super::text_frame(&payload)),
                payload
            );
        }
    }

    use super::*;

    #[test]
    fn text_frame_lengths_use_each_encoding() {
        assert_eq!(&text_frame(b"hi")[..], &[0x81, 2, b'h', b'i']);
        let medium = text_frame(&[b'a'; 126]);
        assert_eq!(&medium[..4], &[0x81, 126, 0, 126]);
        assert_eq!(medium.len(), 4 + 126);
        let large = text_frame(&[b'a'; 65_536]);
        assert_eq!(&large[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(large.len(), 10 + 65_536);
    }

    #[test]
    fn masked_frame_matches_the_rfc_example() {
        // RFC 6455 section 5.7: a single-frame masked text message "Hello".
        let frame = masked_text_frame(b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        let expected = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(&frame[..], &expected);
    }

    #[test]
    fn control_frames_are_capped_at_125_bytes() {
        let ping = ping_frame(&[7; 300]);
        assert_eq!(&ping[..2], &[0x89, 125]);
        assert_eq!(ping.len(), 127);
        let pong = masked_pong_frame(&[7; 300], [0; 4]);
        assert_eq!(&pong[..2], &[0x8a, 0x80 | 125]);
    }

    #[test]
    fn close_reason_is_cut_on_a_character_boundary() {
        let reason = "é".repeat(100);
        let frame = close_frame(CloseCode::GOING_AWAY, &reason);
        let payload = &frame[2..];
        assert_eq!(&payload[..2], &1001u16.to_be_bytes());
        assert_eq!(payload.len(), 2 + 122);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
        assert_eq!(
            &close_frame(CloseCode::NORMAL, "")[..],
            &[0x88, 2, 0x03, 0xe8]
        );
    }
}
