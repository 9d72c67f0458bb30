//! The vocabulary of the application's part in a node's work (PROTOCOL.md
//! section 13): how it refuses a request, what it may observe, and how a
//! late answer is told from the answer to the decision out now.

use crate::close::CloseReason;
use crate::envelope::{Channel, ErrorCode};
use crate::ids::ConnId;

/// What the application decides a connection's token with: the `auth`
/// (or `refresh`) that carries it and the upgrade it came through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The connection.
    pub conn: ConnId,
    /// The token as sent (never log it).
    pub token: String,
    /// The upgrade request's header fields named in `forward_headers`
    /// (lower-case name, value), e.g. a session cookie; empty for a
    /// `refresh`.
    pub headers: Vec<(String, String)>,
    /// `true` for a `refresh` on an open connection: the answer must prove
    /// the same user.
    pub refresh: bool,
}

/// A channel request the namespace leaves to the application (rule
/// `backend`): a `subscribe` or a `publish`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelRequest {
    /// The connection asking.
    pub conn: ConnId,
    /// Its user.
    pub user: String,
    /// The connection info the application attached at `auth`.
    pub info: Option<String>,
    /// The channel.
    pub channel: Channel,
    /// For a publish, the payload as JSON text; `None` for a subscribe.
    pub data: Option<String>,
}

/// A client's `rpc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcRequest {
    /// The connection calling.
    pub conn: ConnId,
    /// Its user.
    pub user: String,
    /// The connection info the application attached at `auth`.
    pub info: Option<String>,
    /// The method's name (validated: see [`is_valid_method`](crate::is_valid_method)).
    pub method: String,
    /// The call's data as JSON text (`null` when the client sent none).
    pub data: String,
}

/// Names one [`Decision`](crate::Decision) among all a node hands out, so
/// that an answer that comes after its decision timed out is recognised
/// and ignored instead of answering the connection's next decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DecisionId(pub(crate) u64);

/// The longest [`Rejection::message`] that reaches a client, in bytes: a
/// longer one is cut (at a character boundary) so that an application
/// cannot make the node send an unbounded error.
pub const MAX_REJECTION_MESSAGE: usize = 256;

/// The application's "no" to a request: the `error` the client gets, or
/// for a connection's `auth` the close (PROTOCOL.md section 13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The error code: `FORBIDDEN`, `BAD_REQUEST`, `NOT_FOUND`,
    /// `LIMIT_EXCEEDED`, `RATE_LIMITED`, `UNAVAILABLE` or `INTERNAL` are
    /// the ones an application means; the others describe the protocol's
    /// own checks and are sent as `INTERNAL`.
    pub code: ErrorCode,
    /// Said to the client as it is; keep secrets out of it.
    pub message: String,
}

impl Rejection {
    /// A rejection with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
        }
    }

    /// `FORBIDDEN`: the user may not do this.
    pub fn forbidden() -> Rejection {
        Rejection::new(ErrorCode::Forbidden, "not allowed by the application")
    }

    /// `INTERNAL`: the application failed while deciding (an error, a
    /// panic, an answer that is not JSON). Only this request fails.
    pub fn internal() -> Rejection {
        Rejection::new(ErrorCode::Internal, "the application failed")
    }

    /// `UNAVAILABLE`: the application did not answer in time, or cannot
    /// now; the client may retry.
    pub fn unavailable() -> Rejection {
        Rejection::new(
            ErrorCode::Unavailable,
            "the application did not answer in time",
        )
    }

    /// `NOT_FOUND`: no such `rpc` method.
    pub fn unknown_method() -> Rejection {
        Rejection::new(ErrorCode::NotFound, "unknown method")
    }

    /// The code and message as they go on the wire: a code only the
    /// protocol's own checks may give becomes `INTERNAL`, and the message
    /// is cut to [`MAX_REJECTION_MESSAGE`] bytes.
    pub(crate) fn into_wire(self) -> (ErrorCode, String) {
        let code = match self.code {
            ErrorCode::Forbidden
            | ErrorCode::BadRequest
            | ErrorCode::NotFound
            | ErrorCode::LimitExceeded
            | ErrorCode::RateLimited
            | ErrorCode::Unavailable
            | ErrorCode::Internal => self.code,
            ErrorCode::InvalidJson
            | ErrorCode::InvalidMessage
            | ErrorCode::MissingType
            | ErrorCode::UnknownType
            | ErrorCode::InvalidChannel => ErrorCode::Internal,
        };
        let mut message = self.message;
        if message.len() > MAX_REJECTION_MESSAGE {
            let mut end = MAX_REJECTION_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        (code, message)
    }
}

/// Something that happened on the node that the application may observe
/// (it decides nothing): out as [`Output::Notify`](crate::Output::Notify),
/// in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// A connection passed `auth`.
    Connected {
        /// The connection.
        conn: ConnId,
        /// Its user.
        user: String,
        /// The connection info the application attached at `auth`.
        info: Option<String>,
    },
    /// An authenticated connection ended; it left every channel with it
    /// (no [`Notification::Unsubscribed`] follows for those).
    Disconnected {
        /// The connection.
        conn: ConnId,
        /// Its user.
        user: String,
        /// Its close code and reason.
        reason: CloseReason,
    },
    /// A subscription began: `subscribed` went to the client.
    Subscribed {
        /// The connection.
        conn: ConnId,
        /// Its user.
        user: String,
        /// The channel.
        channel: Channel,
    },
    /// A subscription ended while the connection stays: the client's
    /// `unsubscribe`, or one the server ended (a refresh, the server API).
    Unsubscribed {
        /// The connection.
        conn: ConnId,
        /// Its user.
        user: String,
        /// The channel.
        channel: Channel,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_keeps_application_codes_and_cuts_long_messages() {
        let (code, message) = Rejection::new(ErrorCode::BadRequest, "no").into_wire();
        assert_eq!((code, message.as_str()), (ErrorCode::BadRequest, "no"));
        let (code, _) = Rejection::new(ErrorCode::InvalidJson, "x").into_wire();
        assert_eq!(code, ErrorCode::Internal);
        let long = "é".repeat(MAX_REJECTION_MESSAGE);
        let (_, message) = Rejection::new(ErrorCode::Forbidden, long).into_wire();
        assert_eq!(message.len(), MAX_REJECTION_MESSAGE);
        assert!(message.chars().all(|c| c == 'é'));
    }
}
