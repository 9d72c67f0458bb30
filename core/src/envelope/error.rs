//! The error codes of PROTOCOL.md section 7 and the error a text that is
//! not an acceptable message becomes.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{RequestId, ServerMessage};

/// The error codes of PROTOCOL.md section 7, carried in `error` messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The text is not JSON.
    InvalidJson,
    /// JSON, but not an object of a known shape: a field missing or of the
    /// wrong type, or an invalid `id`.
    InvalidMessage,
    /// The object has no `type`.
    MissingType,
    /// The `type` is not one the receiver knows.
    UnknownType,
    /// A channel name outside the allowed alphabet or length.
    InvalidChannel,
    /// The user may not do this on this channel (private `user:` channels).
    Forbidden,
    /// Too many subscriptions on one connection.
    LimitExceeded,
    /// Too many messages per second from one connection.
    RateLimited,
    /// The backplane cannot take the request right now, or the
    /// application did not decide it in time; retry later.
    Unavailable,
    /// The application refuses the request's content (an invalid
    /// publication, bad `rpc` data).
    BadRequest,
    /// The application knows no such thing (an unknown `rpc` method).
    NotFound,
    /// The application failed while deciding the request (an error or a
    /// panic in its handler); only this request fails.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire, e.g. `INVALID_JSON`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "INVALID_JSON",
            ErrorCode::InvalidMessage => "INVALID_MESSAGE",
            ErrorCode::MissingType => "MISSING_TYPE",
            ErrorCode::UnknownType => "UNKNOWN_TYPE",
            ErrorCode::InvalidChannel => "INVALID_CHANNEL",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text could not be accepted as a message: what the server answers
/// with an `error` (the connection stays open).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeError {
    /// The protocol error code.
    pub code: ErrorCode,
    /// The request's `id`, echoed when the object carried a valid one, so the
    /// client can match the error to its request.
    pub id: Option<RequestId>,
    /// A human-readable explanation for the `message` field.
    pub message: String,
}

impl EnvelopeError {
    pub(super) fn new(code: ErrorCode, id: Option<RequestId>, message: impl Into<String>) -> Self {
        EnvelopeError {
            code,
            id,
            message: message.into(),
        }
    }

    /// The `error` message that reports this error to the peer.
    pub fn to_server_message(&self) -> ServerMessage {
        ServerMessage::Error {
            id: self.id.clone(),
            code: self.code,
            message: self.message.clone(),
        }
    }
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for EnvelopeError {}
