//! The names and positions messages carry: request ids, idempotency keys,
//! channels and positions in a channel's history.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::fields::invalid_idempotency_key;
use super::{EnvelopeError, ErrorCode};

/// Longest request `id` or `idempotency_key`, in characters.
const MAX_REQUEST_ID_CHARS: usize = 64;
/// Longest channel name, in characters.
pub(crate) const MAX_CHANNEL_CHARS: usize = 128;
/// The prefix of a user's private channel `user:<id>`.
pub(crate) const PRIVATE_CHANNEL_PREFIX: &str = "user:";
/// The longest `rpc` method name, in characters.
pub const MAX_METHOD_CHARS: usize = 64;

/// Whether `b` may appear in a channel or method name:
/// `A-Z a-z 0-9 _ - : . @ /`.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_-:.@/".contains(&b)
}

/// Whether `method` may name an `rpc` method: 1 to [`MAX_METHOD_CHARS`]
/// characters of the channel-name alphabet, so that it can be logged and
/// put in a URL or a header as it is.
pub fn is_valid_method(method: &str) -> bool {
    (1..=MAX_METHOD_CHARS).contains(&method.len()) && method.bytes().all(is_name_byte)
}

/// A request `id` chosen by the client: 1 to 64 characters. Every reply to
/// the request carries it back.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    /// Validates `id`: 1 to 64 characters (not bytes), any characters.
    pub fn new(id: impl Into<String>) -> Result<RequestId, EnvelopeError> {
        let id = id.into();
        match id.chars().count() {
            1..=MAX_REQUEST_ID_CHARS => Ok(RequestId(id)),
            _ => Err(EnvelopeError::new(
                ErrorCode::InvalidMessage,
                None,
                "id must be a string of 1 to 64 characters",
            )),
        }
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `idempotency_key` of a `publish`: 1 to 64 characters chosen by the
/// publisher, one per publication, kept when the publication is retried.
/// A second publish with the same key from the same publisher on the same
/// channel within the idempotency window is not published again; request
/// ids, which only correlate replies, never have that effect.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates `key`: 1 to 64 characters (not bytes), any characters.
    pub fn new(key: impl Into<String>) -> Result<IdempotencyKey, EnvelopeError> {
        let key = key.into();
        match key.chars().count() {
            1..=MAX_REQUEST_ID_CHARS => Ok(IdempotencyKey(key)),
            _ => Err(invalid_idempotency_key(None)),
        }
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A channel name: 1 to 128 characters of `A-Z a-z 0-9 _ - : . @ /`
/// (PROTOCOL.md section 6). Holding one proves the name is valid.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Channel(String);

impl Channel {
    /// Validates a channel name.
    pub fn new(name: &str) -> Result<Channel, EnvelopeError> {
        if (1..=MAX_CHANNEL_CHARS).contains(&name.len()) && name.bytes().all(is_name_byte) {
            Ok(Channel(name.to_owned()))
        } else {
            Err(EnvelopeError::new(
                ErrorCode::InvalidChannel,
                None,
                "channel names are 1 to 128 characters of A-Z a-z 0-9 _ - : . @ /",
            ))
        }
    }

    /// The channel's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The user id when this is a private channel `user:<id>`, which only
    /// that user may subscribe to and no client may publish to.
    pub fn private_user(&self) -> Option<&str> {
        self.0.strip_prefix(PRIVATE_CHANNEL_PREFIX)
    }
}

impl Borrow<str> for Channel {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A point in a channel's history: the `since` of a `subscribe`, naming the
/// last publication the client saw.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// The channel's epoch when the client saw that publication.
    pub epoch: String,
    /// The offset of that publication.
    pub offset: u64,
}
