//! Why a peer's bytes were refused, and the close code that says so.

use std::fmt;

use crate::close::CloseCode;

/// A decoding failure. Each variant maps to the close code the connection
/// must be closed with ([`DecodeError::close_code`]); its `Display` text is
/// short enough (at most 123 bytes) to be the close reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The peer broke a rule of RFC 6455: close 1002.
    Protocol(Violation),
    /// A text message is not valid UTF-8 (RFC 6455 section 8.1): close 1007.
    InvalidUtf8,
    /// A Close frame's reason is not valid UTF-8 (RFC 6455 section 5.5.1):
    /// close 1007.
    InvalidCloseReason,
    /// A compressed message is not valid DEFLATE (RFC 7692 section 7.2.2):
    /// close 1007.
    InvalidCompressed,
    /// A message is larger than the decoder's `max_payload`, on the wire
    /// or inflated: close 1009.
    TooBig {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
}

/// The RFC 6455 rule a peer broke. Every violation closes with 1002.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A reserved bit (RSV1-3) is set but no extension was negotiated
    /// that gives it a meaning (section 5.2), or RSV1 is set on a
    /// continuation or a control frame (RFC 7692 section 6).
    ReservedBits,
    /// The opcode, given here, is one of the reserved values (section 5.2).
    ReservedOpcode(u8),
    /// A control frame without the FIN bit (section 5.5).
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload (section 5.5).
    ControlTooLong,
    /// A continuation frame with no fragmented message open (section 5.4).
    UnexpectedContinuation,
    /// A new data frame while a fragmented message is still open
    /// (section 5.4).
    InterleavedMessage,
    /// A client sent an unmasked frame (section 5.1).
    UnmaskedFrame,
    /// A server sent a masked frame (section 5.1).
    MaskedFrame,
    /// A 64-bit payload length with its most significant bit set
    /// (section 5.2).
    LengthHighBit,
    /// A Close frame whose body is a single byte, too short for a status
    /// code (section 5.5.1).
    TruncatedCloseCode,
    /// A Close frame carrying a code that may not be sent (section 7.4).
    UnsendableCloseCode(u16),
}

impl DecodeError {
    /// The close code to send back, per PROTOCOL.md section 7.
    pub fn close_code(&self) -> CloseCode {
        match self {
            DecodeError::Protocol(_) => CloseCode::PROTOCOL_ERROR,
            DecodeError::InvalidUtf8
            | DecodeError::InvalidCloseReason
            | DecodeError::InvalidCompressed => CloseCode::INVALID_PAYLOAD,
            DecodeError::TooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Protocol(violation) => violation.fmt(f),
            DecodeError::InvalidUtf8 => f.write_str("text message is not valid UTF-8"),
            DecodeError::InvalidCloseReason => f.write_str("close reason is not valid UTF-8"),
            DecodeError::InvalidCompressed => {
                f.write_str("compressed message is not valid deflate")
            }
            DecodeError::TooBig { limit } => write!(f, "message larger than {limit} bytes"),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::ReservedBits => f.write_str("reserved bits set"),
            Violation::ReservedOpcode(bits) => write!(f, "reserved opcode {bits:#x}"),
            Violation::FragmentedControl => f.write_str("fragmented control frame"),
            Violation::ControlTooLong => f.write_str("control frame longer than 125 bytes"),
            Violation::UnexpectedContinuation => f.write_str("continuation without a message"),
            Violation::InterleavedMessage => {
                f.write_str("new message before the fragmented one ended")
            }
            Violation::UnmaskedFrame => f.write_str("unmasked frame from client"),
            Violation::MaskedFrame => f.write_str("masked frame from server"),
            Violation::LengthHighBit => f.write_str("payload length has its high bit set"),
            Violation::TruncatedCloseCode => f.write_str("close frame with a 1-byte body"),
            Violation::UnsendableCloseCode(code) => write!(f, "invalid close code {code}"),
        }
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_fits_a_close_frame() {
        let errors = [
            DecodeError::Protocol(Violation::ReservedBits),
            DecodeError::Protocol(Violation::ReservedOpcode(0xf)),
            DecodeError::Protocol(Violation::FragmentedControl),
            DecodeError::Protocol(Violation::ControlTooLong),
            DecodeError::Protocol(Violation::UnexpectedContinuation),
            DecodeError::Protocol(Violation::InterleavedMessage),
            DecodeError::Protocol(Violation::UnmaskedFrame),
            DecodeError::Protocol(Violation::MaskedFrame),
            DecodeError::Protocol(Violation::LengthHighBit),
            DecodeError::Protocol(Violation::TruncatedCloseCode),
            DecodeError::Protocol(Violation::UnsendableCloseCode(u16::MAX)),
            DecodeError::InvalidUtf8,
            DecodeError::InvalidCloseReason,
            DecodeError::InvalidCompressed,
            DecodeError::TooBig { limit: usize::MAX },
        ];
        for error in errors {
            let reason = error.to_string();
            assert!(!reason.is_empty() && reason.len() <= 123, "{reason}");
        }
    }

    #[test]
    fn close_codes_follow_the_protocol() {
        let protocol = DecodeError::Protocol(Violation::MaskedFrame);
        assert_eq!(protocol.close_code(), CloseCode(1002));
        assert_eq!(DecodeError::InvalidUtf8.close_code(), CloseCode(1007));
        assert_eq!(
            DecodeError::InvalidCloseReason.close_code(),
            CloseCode(1007)
        );
        assert_eq!(DecodeError::InvalidCompressed.close_code(), CloseCode(1007));
        let too_big = DecodeError::TooBig { limit: 1 };
        assert_eq!(too_big.close_code(), CloseCode(1009));
    }
}
