//! Why a [`Client`](super::Client) call failed.

use std::fmt;

use tether_core::{EnvelopeError, RequestError, SendError};

/// Why a [`Client`](super::Client) call failed: the caller's input, the
/// session's refusal, or the outcome of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The channel name breaks PROTOCOL.md section 6; nothing was sent.
    InvalidChannel(EnvelopeError),
    /// The payload is not JSON; nothing was sent.
    InvalidPayload(String),
    /// The session refused the command: closed, or offline with a full
    /// queue.
    Refused(SendError),
    /// The request was sent (or queued) but got no successful reply.
    Request(RequestError),
}

impl ClientError {
    /// The error of a call made after the session closed for good.
    pub(super) fn closed() -> ClientError {
        ClientError::Refused(SendError::Closed)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidChannel(error) => write!(f, "invalid channel: {error}"),
            ClientError::InvalidPayload(error) => write!(f, "payload is not JSON: {error}"),
            ClientError::Refused(error) => write!(f, "refused: {error}"),
            ClientError::Request(error) => write!(f, "request failed: {error}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::InvalidChannel(error) => Some(error),
            ClientError::InvalidPayload(_) => None,
            ClientError::Refused(error) => Some(error),
            ClientError::Request(error) => Some(error),
        }
    }
}
