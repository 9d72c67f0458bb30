//! The messages a client sends: their types, parsing (on the server) and
//! encoding (in the client library).

use serde::Serialize;
use serde_json::value::RawValue;

use super::fields::{Fields, Typed};
use super::{Channel, EnvelopeError, ErrorCode, IdempotencyKey, Position, RequestId};

/// A message from a client (PROTOCOL.md sections 3 and 4).
///
/// Two messages are equal when they encode to the same text; a payload is
/// compared as the raw text it was sent as.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message of a connection, carrying the credential.
    Auth {
        /// Echoed in the error that answers an `auth` on an authenticated
        /// connection; `auth_ack` carries none.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The token the server's authenticator checks.
        token: String,
    },
    /// A new token for the same user, replacing the connection's grants
    /// and expiry; answered with `refreshed` or an error.
    Refresh {
        /// Echoed in the `refreshed` reply or the error.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The new token.
        token: String,
    },
    /// An application-level ping, answered with `pong`.
    Ping {
        /// Echoed in the `pong`.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// Join a channel, optionally recovering what was missed since a position.
    Subscribe {
        /// Echoed in the `subscribed` reply or the error.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The channel to join.
        channel: Channel,
        /// The last position seen, to replay everything after it.
        #[serde(skip_serializing_if = "Option::is_none")]
        since: Option<Position>,
    },
    /// Leave a channel.
    Unsubscribe {
        /// Echoed in the `unsubscribed` reply.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The channel to leave.
        channel: Channel,
    },
    /// Publish a payload to every subscriber of a channel.
    Publish {
        /// When present, the publication is acknowledged with its offset.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// When present, a retry of the publication with the same key is
        /// recognised and not published again.
        #[serde(skip_serializing_if = "Option::is_none")]
        idempotency_key: Option<IdempotencyKey>,
        /// The channel to publish to.
        channel: Channel,
        /// Any JSON value, kept as the exact text received: never re-serialised.
        payload: Box<RawValue>,
    },
    /// Ask for the users currently present in a channel.
    Presence {
        /// Echoed in the `presence` reply.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The channel asked about.
        channel: Channel,
    },
    /// Call a method of the application, answered with `rpc_result` or an
    /// error (PROTOCOL.md section 13).
    Rpc {
        /// Echoed in the `rpc_result` or the error; required, since an
        /// answer nobody can match is of no use.
        id: RequestId,
        /// The method's name: 1 to 64 characters of the channel-name
        /// alphabet.
        method: String,
        /// Any JSON value, kept as the exact text received; `null` when
        /// absent.
        data: Box<RawValue>,
    },
}

impl ClientMessage {
    /// The request id, when the message carries one.
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            ClientMessage::Auth { id, .. }
            | ClientMessage::Refresh { id, .. }
            | ClientMessage::Ping { id }
            | ClientMessage::Subscribe { id, .. }
            | ClientMessage::Unsubscribe { id, .. }
            | ClientMessage::Publish { id, .. }
            | ClientMessage::Presence { id, .. } => id.as_ref(),
            ClientMessage::Rpc { id, .. } => Some(id),
        }
    }
}

impl PartialEq for ClientMessage {
    fn eq(&self, other: &Self) -> bool {
        encode_client_message(self) == encode_client_message(other)
    }
}

impl Eq for ClientMessage {}

/// Parses the text of a client message. Never panics: anything that is not
/// a valid message becomes an [`EnvelopeError`] with the code to answer with.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, EnvelopeError> {
    let fields = Fields::parse(text)?;
    let id = fields.id()?;
    let kind = fields.kind(&id)?;
    let fields = Typed { fields, id };
    match kind.as_str() {
        "auth" => Ok(ClientMessage::Auth {
            token: fields.required("token", fields.fields.token)?,
            id: fields.id,
        }),
        "refresh" => Ok(ClientMessage::Refresh {
            token: fields.required("token", fields.fields.token)?,
            id: fields.id,
        }),
        "ping" => Ok(ClientMessage::Ping { id: fields.id }),
        "subscribe" => Ok(ClientMessage::Subscribe {
            channel: fields.channel()?,
            since: fields.optional("since", fields.fields.since)?,
            id: fields.id,
        }),
        "unsubscribe" => Ok(ClientMessage::Unsubscribe {
            channel: fields.channel()?,
            id: fields.id,
        }),
        "publish" => Ok(ClientMessage::Publish {
            channel: fields.channel()?,
            payload: fields.payload()?,
            idempotency_key: fields.idempotency_key()?,
            id: fields.id,
        }),
        "presence" => Ok(ClientMessage::Presence {
            channel: fields.channel()?,
            id: fields.id,
        }),
        "rpc" => Ok(ClientMessage::Rpc {
            method: fields.method()?,
            data: fields.data().unwrap_or_else(null),
            id: fields
                .id
                .clone()
                .ok_or_else(|| fields.error(ErrorCode::InvalidMessage, "rpc needs an id"))?,
        }),
        _ => Err(fields.error(ErrorCode::UnknownType, format!("unknown type {kind:?}"))),
    }
}

/// The JSON `null`, for an `rpc` without `data`.
fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is JSON")
}

/// The JSON text of a client message (what the client library sends).
pub fn encode_client_message(message: &ClientMessage) -> String {
    serde_json::to_string(message).expect("client messages always serialise")
}
