//! Close codes of PROTOCOL.md section 7 and what each one means to a client.

use std::fmt;

/// A WebSocket close code, as Tether uses them.
///
/// The named constants are the codes PROTOCOL.md assigns; any other value a
/// peer sends is kept as it is so that it can be reported faithfully.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// The peer asked to close, nothing went wrong.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// The server is shutting down.
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// An RFC 6455 protocol violation.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// A binary message, which Tether does not accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// A close frame without a status code (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// No close frame was received (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// A text message that is not valid UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// A policy violation, e.g. too many messages before the auth verdict.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// A message larger than `max_payload`.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// An internal server error.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// The application did not decide the connection's `auth` within
    /// `decision_timeout`, or said it cannot now. Not final: reconnect.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// Auth required (wrong first message) or auth timeout.
    pub const AUTH_REQUIRED: CloseCode = CloseCode(4001);
    /// The token was rejected.
    pub const FORBIDDEN: CloseCode = CloseCode(4003);
    /// The token expired on a live connection that did not refresh it. Not
    /// final: the client gets a new token and reconnects.
    pub const TOKEN_EXPIRED: CloseCode = CloseCode(4004);
    /// The connection could not keep up with its outbound queue.
    pub const SLOW_CONSUMER: CloseCode = CloseCode(4008);
    /// The user already holds `max_connections_per_user` connections on
    /// the node; sent at the auth verdict, instead of `auth_ack`.
    pub const TOO_MANY_CONNECTIONS: CloseCode = CloseCode(4029);
    /// The application disconnected the user (`POST /api/disconnect` with
    /// `reconnect: true` and no code): the first code of the application's
    /// range that clients reconnect after.
    pub const DISCONNECTED: CloseCode = CloseCode(4100);
    /// The application disconnected the user for good
    /// (`POST /api/disconnect` with `reconnect: false` and no code): the
    /// first code of the application's final range.
    pub const DISCONNECTED_FINAL: CloseCode = CloseCode(4500);

    /// Whether the application may close connections with this code
    /// through the HTTP API: 4100 to 4999. Clients reconnect after 4100 to
    /// 4499 and do not after 4500 to 4999 ([`CloseCode::is_final`]); the
    /// codes below 4100 are Tether's own.
    pub fn is_application(self) -> bool {
        matches!(self.0, 4100..=4999)
    }

    /// Whether a client should reconnect after being closed with this code.
    ///
    /// PROTOCOL.md section 7: 1000, 1002, 1003, 1007, 1008, 1009, 4001,
    /// 4003, 4029 and the application's final range 4500 to 4999 are bugs
    /// or decisions that a retry cannot fix; everything else (1001, 1006,
    /// 1011, 1013, 4004, 4008, 4100 to 4499, unknown codes) is worth
    /// another attempt.
    pub fn is_final(self) -> bool {
        matches!(
            self.0,
            1000 | 1002 | 1003 | 1007 | 1008 | 1009 | 4001 | 4003 | 4029 | 4500..=4999
        )
    }

    /// Whether a peer may put this code in a close frame (RFC 6455 section
    /// 7.4: 1005, 1006 and 1015 are reserved for local use, 1004 and the
    /// unassigned ranges are invalid).
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a connection closed: the code and the human-readable reason that go
/// into the close frame (or that would have, for 1006).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReason {
    /// The close code.
    pub code: CloseCode,
    /// The reason text; at most 123 bytes so that it fits a control frame.
    pub reason: String,
}

impl CloseReason {
    /// A close reason from a code and its text.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        CloseReason {
            code,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_codes_are_exactly_those_of_the_protocol() {
        let finals = [
            1000, 1002, 1003, 1007, 1008, 1009, 4001, 4003, 4029, 4500, 4999,
        ];
        let retried = [1001, 1006, 1011, 4004, 4008, 4000, 3000, 4100, 4499];
        for code in finals {
            assert!(CloseCode(code).is_final(), "{code} must be final");
        }
        for code in retried {
            assert!(!CloseCode(code).is_final(), "{code} must be retried");
        }
    }

    #[test]
    fn reserved_codes_are_not_sendable() {
        for code in [0, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
            assert!(!CloseCode(code).is_sendable(), "{code}");
        }
        for code in [1000, 1001, 1003, 1011, 4001, 4008] {
            assert!(CloseCode(code).is_sendable(), "{code}");
        }
    }
}
