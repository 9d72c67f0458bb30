//! Frame headers (RFC 6455 section 5.2): opcodes, and a parser that runs
//! every check the header alone can decide, in wire order, as soon as the
//! bytes each check needs are present.

use super::Role;
use super::error::{DecodeError, Violation};

/// The kind of a frame (RFC 6455 section 5.2, "Opcode"), without the
/// reserved values, which the decoder refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// Continues a fragmented message.
    Continuation,
    /// First (or only) frame of a text message.
    Text,
    /// First (or only) frame of a binary message.
    Binary,
    /// Starts or answers the closing handshake.
    Close,
    /// Asks the peer for a Pong.
    Ping,
    /// Answers a Ping, or a unidirectional heartbeat.
    Pong,
}

impl Opcode {
    /// The 4-bit value on the wire.
    pub fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xa,
        }
    }

    /// Whether this is a control frame (RFC 6455 section 5.5: opcodes with
    /// the most significant bit set).
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }

    fn from_bits(bits: u8) -> Result<Opcode, Violation> {
        match bits {
            0x0 => Ok(Opcode::Continuation),
            0x1 => Ok(Opcode::Text),
            0x2 => Ok(Opcode::Binary),
            0x8 => Ok(Opcode::Close),
            0x9 => Ok(Opcode::Ping),
            0xa => Ok(Opcode::Pong),
            reserved => Err(Violation::ReservedOpcode(reserved)),
        }
    }
}

/// A header that passed every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Header {
    /// The FIN bit: this frame ends its message.
    pub fin: bool,
    /// RSV1 under permessage-deflate: the message this frame starts is
    /// compressed (RFC 7692 section 6).
    pub compressed: bool,
    /// What the frame carries.
    pub opcode: Opcode,
    /// The masking key, present on frames sent by a client.
    pub mask: Option<[u8; 4]>,
    /// Bytes taken by the header itself (2 to 14).
    pub len: usize,
    /// Bytes of payload that follow the header; at most the limit.
    pub payload_len: usize,
}

/// What the parser must know beyond the bytes themselves.
#[derive(Clone, Copy, Debug)]
pub(super) struct Context {
    /// Decides which masking is required.
    pub role: Role,
    /// Largest message accepted, in bytes.
    pub max_payload: usize,
    /// Payload bytes of the fragmented message currently open, if any.
    pub open_message: Option<usize>,
    /// permessage-deflate was negotiated: RSV1 may mark a message as
    /// compressed.
    pub deflate: bool,
}

/// Parses the header at the start of `bytes`.
///
/// `Ok(None)` means more bytes are needed; every check whose bytes are
/// already present has passed by then, so a bad frame is refused as early as
/// possible and the outcome never depends on how the input was split.
pub(super) fn parse(bytes: &[u8], cx: &Context) -> Result<Option<Header>, DecodeError> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    let fin = first & 0x80 != 0;
    let compressed = first & 0x40 != 0;
    // Section 5.2: "RSV1, RSV2, RSV3: MUST be 0 unless an extension is
    // negotiated that defines meanings for non-zero values." Only
    // permessage-deflate is, and it gives RSV1 a meaning.
    if first & 0x30 != 0 || (compressed && !cx.deflate) {
        return Err(DecodeError::Protocol(Violation::ReservedBits));
    }
    // Section 5.2: "If an unknown opcode is received, the receiving endpoint
    // MUST _Fail the WebSocket Connection_."
    let opcode = Opcode::from_bits(first & 0x0f).map_err(DecodeError::Protocol)?;
    // RFC 7692 section 6: RSV1 marks the first frame of a data message;
    // set on a continuation or a control frame it is an error.
    if compressed && (opcode == Opcode::Continuation || opcode.is_control()) {
        return Err(DecodeError::Protocol(Violation::ReservedBits));
    }
    check_sequence(fin, opcode, cx.open_message)?;

    let Some(&second) = bytes.get(1) else {
        return Ok(None);
    };
    let masked = second & 0x80 != 0;
    check_masking(masked, cx.role)?;
    let short_len = second & 0x7f;
    // Section 5.5: "All control frames MUST have a payload length of 125
    // bytes or less".
    if opcode.is_control() && short_len > 125 {
        return Err(DecodeError::Protocol(Violation::ControlTooLong));
    }

    let (declared, mut len) = match short_len {
        126 => match bytes.get(2..4) {
            Some(ext) => (u64::from(u16::from_be_bytes([ext[0], ext[1]])), 4),
            None => return Ok(None),
        },
        127 => match bytes.get(2..10) {
            Some(ext) => {
                let mut raw = [0; 8];
                raw.copy_from_slice(ext);
                (u64::from_be_bytes(raw), 10)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    // Section 5.2: for the 64-bit length, "the most significant bit MUST
    // be 0".
    if declared >> 63 != 0 {
        return Err(DecodeError::Protocol(Violation::LengthHighBit));
    }
    let payload_len = check_size(declared, opcode, cx)?;

    let mask = if masked {
        let Some(key) = bytes.get(len..len + 4) else {
            return Ok(None);
        };
        len += 4;
        Some([key[0], key[1], key[2], key[3]])
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        compressed,
        opcode,
        mask,
        len,
        payload_len,
    }))
}

/// The rules of RFC 6455 sections 5.4 and 5.5 on which frame may follow
/// which.
fn check_sequence(
    fin: bool,
    opcode: Opcode,
    open_message: Option<usize>,
) -> Result<(), DecodeError> {
    let violation = match opcode {
        // Section 5.5: "Control frames themselves MUST NOT be fragmented."
        _ if opcode.is_control() && !fin => Violation::FragmentedControl,
        // Section 5.4: a fragmented message starts with a non-continuation
        // frame, so a continuation needs an open message.
        Opcode::Continuation if open_message.is_none() => Violation::UnexpectedContinuation,
        // Section 5.4: "the fragments of one message MUST NOT be interleaved
        // between the fragments of another message".
        Opcode::Text | Opcode::Binary if open_message.is_some() => Violation::InterleavedMessage,
        _ => return Ok(()),
    };
    Err(DecodeError::Protocol(violation))
}

/// Section 5.1: "The server MUST close the connection upon receiving a frame
/// that is not masked" and "A client MUST close a connection if it detects a
/// masked frame."
fn check_masking(masked: bool, role: Role) -> Result<(), DecodeError> {
    match (role, masked) {
        (Role::Server, false) => Err(DecodeError::Protocol(Violation::UnmaskedFrame)),
        (Role::Client, true) => Err(DecodeError::Protocol(Violation::MaskedFrame)),
        _ => Ok(()),
    }
}

/// Refuses a data frame that would take its message past `max_payload`
/// (close 1009), before any of its payload is buffered. Control frames are
/// already bounded to 125 bytes and do not count towards a message.
fn check_size(declared: u64, opcode: Opcode, cx: &Context) -> Result<usize, DecodeError> {
    let room = if opcode.is_control() {
        125
    } else {
        cx.max_payload.saturating_sub(cx.open_message.unwrap_or(0))
    };
    match usize::try_from(declared) {
        Ok(len) if len <= room => Ok(len),
        _ => Err(DecodeError::TooBig {
            limit: cx.max_payload,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: Context = Context {
        role: Role::Server,
        max_payload: 1000,
        open_message: None,
        deflate: false,
    };

    fn violation(bytes: &[u8], cx: &Context) -> Violation {
        match parse(bytes, cx) {
            Err(DecodeError::Protocol(violation)) => violation,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn needs_more_bytes_until_the_mask_key_is_complete() {
        let frame = [0x81, 0xfe, 0x01, 0x00, 1, 2, 3, 4];
        for end in 0..frame.len() {
            assert_eq!(parse(&frame[..end], &SERVER), Ok(None), "{end}");
        }
        let header = parse(&frame, &SERVER).unwrap().unwrap();
        assert_eq!(header.len, 8);
        assert_eq!(header.payload_len, 256);
        assert_eq!(header.mask, Some([1, 2, 3, 4]));
        assert!(header.fin);
        assert_eq!(header.opcode, Opcode::Text);
    }

    #[test]
    fn first_byte_errors_need_only_the_first_byte() {
        assert_eq!(violation(&[0xc1], &SERVER), Violation::ReservedBits);
        assert_eq!(violation(&[0x83], &SERVER), Violation::ReservedOpcode(3));
        assert_eq!(violation(&[0x8b], &SERVER), Violation::ReservedOpcode(0xb));
        assert_eq!(violation(&[0x09], &SERVER), Violation::FragmentedControl);
        assert_eq!(
            violation(&[0x80], &SERVER),
            Violation::UnexpectedContinuation
        );
        let open = Context {
            open_message: Some(3),
            ..SERVER
        };
        assert_eq!(violation(&[0x82], &open), Violation::InterleavedMessage);
    }

    #[test]
    fn rsv1_marks_the_first_frame_of_a_data_message_only_under_deflate() {
        let deflate = Context {
            deflate: true,
            ..SERVER
        };
        let header = parse(&[0xc1, 0x80, 0, 0, 0, 0], &deflate).unwrap().unwrap();
        assert!(header.compressed);
        let first = parse(&[0x42, 0x80, 0, 0, 0, 0], &deflate).unwrap().unwrap();
        assert!(first.compressed && !first.fin);
        assert_eq!(violation(&[0xc1], &SERVER), Violation::ReservedBits);
        for control in [0xc8, 0xc9, 0xca] {
            assert_eq!(violation(&[control], &deflate), Violation::ReservedBits);
        }
        let open = Context {
            open_message: Some(3),
            ..deflate
        };
        assert_eq!(violation(&[0xc0], &open), Violation::ReservedBits);
        assert_eq!(violation(&[0xa1], &deflate), Violation::ReservedBits);
        assert_eq!(violation(&[0x91], &deflate), Violation::ReservedBits);
    }

    #[test]
    fn high_bit_of_the_64_bit_length_is_refused() {
        let frame = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(violation(&frame, &SERVER), Violation::LengthHighBit);
    }

    #[test]
    fn a_continuation_counts_what_its_message_already_holds() {
        let open = Context {
            open_message: Some(990),
            ..SERVER
        };
        assert!(parse(&[0x80, 0x8a, 0, 0, 0, 0], &open).unwrap().is_some());
        assert_eq!(
            parse(&[0x80, 0x8b], &open),
            Err(DecodeError::TooBig { limit: 1000 })
        );
    }

    #[test]
    fn opcode_bits_round_trip() {
        for opcode in [
            Opcode::Continuation,
            Opcode::Text,
            Opcode::Binary,
            Opcode::Close,
            Opcode::Ping,
            Opcode::Pong,
        ] {
            assert_eq!(Opcode::from_bits(opcode.bits()), Ok(opcode));
            assert_eq!(opcode.is_control(), opcode.bits() >= 8);
        }
    }
}
