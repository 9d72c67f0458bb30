//! The typed JSON envelope of PROTOCOL.md sections 4, 5 and 7, both ways.
//!
//! Every application message is one JSON object with a `type` field. This
//! module turns client text into a [`ClientMessage`] (or an [`EnvelopeError`]
//! that names the error code the server must answer with), and turns a
//! [`ServerMessage`] into the text the server sends. The client library uses
//! the opposite pair, [`encode_client_message`] and [`parse_server_message`].
//!
//! Parsing goes in two steps so that each error gets the right code: the text
//! is first split into the known fields, each kept as raw JSON
//! ([`RawValue`](serde_json::value::RawValue)) borrowed from the input, which checks the syntax once and
//! allocates nothing; then each field the message type needs is decoded and
//! validated. Unknown fields are ignored, as the protocol requires. A
//! `payload` is never decoded: it stays the exact text the publisher sent and
//! is copied into the outgoing `message` as is.
//!
//! The code is split along these lines: `ids` holds the names messages carry,
//! `client` and `server` the messages of each direction, `api` the HTTP
//! API's publish body, `fields` the first parsing step they share, and
//! `error` the error codes.

mod api;
mod client;
mod error;
mod fields;
mod ids;
mod server;

pub use self::api::{ApiPublishBody, parse_api_publish};
pub use self::client::{ClientMessage, encode_client_message, parse_client_message};
pub use self::error::{EnvelopeError, ErrorCode};
pub use self::ids::{
    Channel, IdempotencyKey, MAX_METHOD_CHARS, Position, RequestId, is_valid_method,
};
pub(crate) use self::ids::{MAX_CHANNEL_CHARS, PRIVATE_CHANNEL_PREFIX};
pub use self::server::{
    ServerMessage, UnsubscribeReason, encode_publication, encode_publication_prefix,
    encode_server_message, parse_server_message,
};

#[cfg(test)]
mod tests;
