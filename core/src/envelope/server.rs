//! The messages the server sends: their types, encoding (on the server,
//! once per publication on the fan-out path) and parsing (in the client
//! library).

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::fields::{Fields, Typed};
use super::{Channel, EnvelopeError, ErrorCode, RequestId};

/// A message from the server (PROTOCOL.md sections 3 to 5). Optional fields
/// are omitted from the JSON when absent.
///
/// Two messages are equal when they encode to the same text. `Deserialize`
/// works with `serde_json` only, because a payload is kept raw.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The token was accepted.
    AuthAck {
        /// The authenticated user id.
        user: String,
        /// This connection's session id.
        session: String,
        /// The server's heartbeat interval in milliseconds.
        heartbeat_ms: u64,
        /// The largest message the server accepts, in bytes.
        max_payload: u64,
        /// When the token expires (its `exp`), in Unix milliseconds; the
        /// connection closes `4004` then unless it refreshes first.
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<u64>,
    },
    /// A `refresh` was accepted: the new token's grants apply from now on.
    Refreshed {
        /// The refresh's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// When the new token expires, in Unix milliseconds; absent when it
        /// does not.
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<u64>,
    },
    /// The answer to a `ping`.
    Pong {
        /// The ping's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// The connection is subscribed to `channel`.
    Subscribed {
        /// The subscribe's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The channel joined.
        channel: Channel,
        /// The channel's current epoch.
        epoch: String,
        /// The offset of the channel's latest publication (0 before the first).
        offset: u64,
        /// With `since`: whether every missed publication was replayed.
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        /// What the application gave the subscriber when it allowed the
        /// subscription (PROTOCOL.md section 13).
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<Box<RawValue>>,
    },
    /// The connection left `channel`.
    Unsubscribed {
        /// The unsubscribe's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The channel left.
        channel: Channel,
        /// Why the server ended the subscription by itself; absent in the
        /// reply to an `unsubscribe`.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<UnsubscribeReason>,
    },
    /// A publish with an id was sequenced.
    Ack {
        /// The publish's id.
        id: RequestId,
        /// The offset the publication got.
        offset: u64,
    },
    /// The users present in a channel: a snapshot, not a delta.
    Presence {
        /// The presence request's id (absent after a subscribe).
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The channel described.
        channel: Channel,
        /// Every user present, each once.
        users: Vec<String>,
    },
    /// A publication on a subscribed channel.
    Message {
        /// The channel published to.
        channel: Channel,
        /// The payload, exactly as published.
        payload: Box<RawValue>,
        /// The publishing user; absent for the HTTP API.
        #[serde(skip_serializing_if = "Option::is_none")]
        sender: Option<String>,
        /// The publication's offset in the channel.
        offset: u64,
    },
    /// A user joined a channel this connection is subscribed to.
    Join {
        /// The channel.
        channel: Channel,
        /// The user who joined.
        user: String,
    },
    /// A user left a channel this connection is subscribed to.
    Leave {
        /// The channel.
        channel: Channel,
        /// The user who left.
        user: String,
    },
    /// The application's answer to an `rpc`.
    RpcResult {
        /// The rpc's id.
        id: RequestId,
        /// Any JSON value, as the application gave it.
        data: Box<RawValue>,
    },
    /// A request failed; the connection stays open.
    Error {
        /// The failed request's id, when it had a valid one.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// What went wrong, as a protocol error code.
        code: ErrorCode,
        /// A human-readable explanation.
        message: String,
    },
}

/// Why the server ended a subscription without being asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribeReason {
    /// The connection's grants no longer allow the channel (a refreshed
    /// token without it).
    Forbidden,
    /// The application ended the user's subscription through the HTTP API
    /// (`POST /api/unsubscribe`).
    Server,
}

impl PartialEq for ServerMessage {
    fn eq(&self, other: &Self) -> bool {
        encode_server_message(self) == encode_server_message(other)
    }
}

impl Eq for ServerMessage {}

impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        parse_server_message(raw.get()).map_err(serde::de::Error::custom)
    }
}

/// The JSON text of a server message, ready for [`crate::frame::text_frame`].
pub fn encode_server_message(message: &ServerMessage) -> Vec<u8> {
    serde_json::to_vec(message).expect("server messages always serialise")
}

/// The JSON text of a `message` built from borrowed parts: the fan-out path
/// encodes each publication once this way without copying its pieces into an
/// owned [`ServerMessage`] first. Identical to encoding the equivalent
/// `ServerMessage::Message`.
pub fn encode_publication(
    channel: &str,
    payload: &RawValue,
    sender: Option<&str>,
    offset: u64,
) -> Vec<u8> {
    let mut json = encode_publication_prefix(channel, payload, sender);
    serde_json::to_writer(&mut json, &offset).expect("an offset always serialises");
    json.push(b'}');
    json
}

/// The JSON text of a `message` up to its offset: appending the offset's
/// decimal digits and `}` gives exactly [`encode_publication`]'s text.
///
/// A shared backplane assigns the offset inside its store, after the
/// publishing node has encoded the rest; this way the node still encodes
/// the message once and the store only appends a number.
pub fn encode_publication_prefix(
    channel: &str,
    payload: &RawValue,
    sender: Option<&str>,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Head<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        channel: &'a str,
        payload: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        sender: Option<&'a str>,
    }
    let head = Head {
        kind: "message",
        channel,
        payload,
        sender,
    };
    let capacity = 64 + channel.len() + payload.get().len() + sender.map_or(0, str::len);
    let mut json = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut json, &head).expect("publications always serialise");
    json.pop();
    json.extend_from_slice(b",\"offset\":");
    json
}

/// Parses the text of a server message (what the client library receives).
/// Never panics; the error codes mean the same as for client messages.
pub fn parse_server_message(text: &str) -> Result<ServerMessage, EnvelopeError> {
    let fields = Fields::parse(text)?;
    let id = fields.id()?;
    let kind = fields.kind(&id)?;
    let f = Typed { fields, id };
    let raw = &f.fields;
    match kind.as_str() {
        "auth_ack" => Ok(ServerMessage::AuthAck {
            user: f.required("user", raw.user)?,
            session: f.required("session", raw.session)?,
            heartbeat_ms: f.required("heartbeat_ms", raw.heartbeat_ms)?,
            max_payload: f.required("max_payload", raw.max_payload)?,
            expires_at: f.optional("expires_at", raw.expires_at)?,
        }),
        "refreshed" => Ok(ServerMessage::Refreshed {
            expires_at: f.optional("expires_at", raw.expires_at)?,
            id: f.id,
        }),
        "pong" => Ok(ServerMessage::Pong { id: f.id }),
        "subscribed" => Ok(ServerMessage::Subscribed {
            channel: f.channel()?,
            epoch: f.required("epoch", raw.epoch)?,
            offset: f.required("offset", raw.offset)?,
            recovered: f.optional("recovered", raw.recovered)?,
            data: f.data(),
            id: f.id,
        }),
        "unsubscribed" => Ok(ServerMessage::Unsubscribed {
            channel: f.channel()?,
            reason: f.optional("reason", raw.reason)?,
            id: f.id,
        }),
        "ack" => Ok(ServerMessage::Ack {
            offset: f.required("offset", raw.offset)?,
            id: f
                .id
                .ok_or_else(|| EnvelopeError::new(ErrorCode::InvalidMessage, None, "missing id"))?,
        }),
        "presence" => Ok(ServerMessage::Presence {
            channel: f.channel()?,
            users: f.required("users", raw.users)?,
            id: f.id,
        }),
        "message" => Ok(ServerMessage::Message {
            channel: f.channel()?,
            payload: f.payload()?,
            sender: f.optional("sender", raw.sender)?,
            offset: f.required("offset", raw.offset)?,
        }),
        "join" => Ok(ServerMessage::Join {
            channel: f.channel()?,
            user: f.required("user", raw.user)?,
        }),
        "leave" => Ok(ServerMessage::Leave {
            channel: f.channel()?,
            user: f.required("user", raw.user)?,
        }),
        "rpc_result" => Ok(ServerMessage::RpcResult {
            data: f
                .data()
                .ok_or_else(|| f.error(ErrorCode::InvalidMessage, "missing field data"))?,
            id: f
                .id
                .clone()
                .ok_or_else(|| f.error(ErrorCode::InvalidMessage, "rpc_result needs an id"))?,
        }),
        "error" => Ok(ServerMessage::Error {
            code: f.required("code", raw.code)?,
            message: f.required("message", raw.message)?,
            id: f.id,
        }),
        _ => Err(f.error(ErrorCode::UnknownType, format!("unknown type {kind:?}"))),
    }
}
