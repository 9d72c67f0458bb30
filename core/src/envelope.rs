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
//! ([`RawValue`]) borrowed from the input, which checks the syntax once and
//! allocates nothing; then each field the message type needs is decoded and
//! validated. Unknown fields are ignored, as the protocol requires. A
//! `payload` is never decoded: it stays the exact text the publisher sent and
//! is copied into the outgoing `message` as is.

use std::borrow::Borrow;
use std::fmt;

use serde::de::{DeserializeOwned, Deserializer, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Longest request `id` or `idempotency_key`, in characters.
const MAX_REQUEST_ID_CHARS: usize = 64;
/// Longest channel name, in characters.
const MAX_CHANNEL_CHARS: usize = 128;
/// The prefix of a user's private channel `user:<id>`.
pub(crate) const PRIVATE_CHANNEL_PREFIX: &str = "user:";

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
    /// The backplane cannot take the request right now; retry later.
    Unavailable,
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
    fn new(code: ErrorCode, id: Option<RequestId>, message: impl Into<String>) -> Self {
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
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_-:.@/".contains(&b);
        if (1..=MAX_CHANNEL_CHARS).contains(&name.len()) && name.bytes().all(allowed) {
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
}

impl ClientMessage {
    /// The request id, when the message carries one.
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            ClientMessage::Auth { id, .. }
            | ClientMessage::Ping { id }
            | ClientMessage::Subscribe { id, .. }
            | ClientMessage::Unsubscribe { id, .. }
            | ClientMessage::Publish { id, .. }
            | ClientMessage::Presence { id, .. } => id.as_ref(),
        }
    }
}

impl PartialEq for ClientMessage {
    fn eq(&self, other: &Self) -> bool {
        encode_client_message(self) == encode_client_message(other)
    }
}

impl Eq for ClientMessage {}

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
    },
    /// The connection left `channel`.
    Unsubscribed {
        /// The unsubscribe's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The channel left.
        channel: Channel,
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

/// The body of `POST /api/publish`:
/// `{"channel":C,"payload":P,"idempotency_key":K}`, the key optional.
#[derive(Debug)]
pub struct ApiPublishBody {
    /// The channel to publish to.
    pub channel: Channel,
    /// The payload, kept raw.
    pub payload: Box<RawValue>,
    /// Makes a retry of the request recognisable, as for a `publish`.
    pub idempotency_key: Option<IdempotencyKey>,
}

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
        _ => Err(fields.error(ErrorCode::UnknownType, format!("unknown type {kind:?}"))),
    }
}

/// The JSON text of a client message (what the client library sends).
pub fn encode_client_message(message: &ClientMessage) -> String {
    serde_json::to_string(message).expect("client messages always serialise")
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
    #[derive(Serialize)]
    struct Publication<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        channel: &'a str,
        payload: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        sender: Option<&'a str>,
        offset: u64,
    }
    let publication = Publication {
        kind: "message",
        channel,
        payload,
        sender,
        offset,
    };
    let capacity = 64 + channel.len() + payload.get().len() + sender.map_or(0, str::len);
    let mut json = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut json, &publication).expect("publications always serialise");
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
        }),
        "pong" => Ok(ServerMessage::Pong { id: f.id }),
        "subscribed" => Ok(ServerMessage::Subscribed {
            channel: f.channel()?,
            epoch: f.required("epoch", raw.epoch)?,
            offset: f.required("offset", raw.offset)?,
            recovered: f.optional("recovered", raw.recovered)?,
            id: f.id,
        }),
        "unsubscribed" => Ok(ServerMessage::Unsubscribed {
            channel: f.channel()?,
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
        "error" => Ok(ServerMessage::Error {
            code: f.required("code", raw.code)?,
            message: f.required("message", raw.message)?,
            id: f.id,
        }),
        _ => Err(f.error(ErrorCode::UnknownType, format!("unknown type {kind:?}"))),
    }
}

/// Parses the body of `POST /api/publish`. Never panics.
pub fn parse_api_publish(text: &str) -> Result<ApiPublishBody, EnvelopeError> {
    let fields = Typed {
        fields: Fields::parse(text)?,
        id: None,
    };
    Ok(ApiPublishBody {
        channel: fields.channel()?,
        payload: fields.payload()?,
        idempotency_key: fields.idempotency_key()?,
    })
}

/// Every field name either direction knows, each as raw JSON borrowed from
/// the text. `null` is kept as `Some("null")` so that a `null` payload is
/// told apart from a missing one.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(rename = "type", default, borrow, deserialize_with = "present")]
    kind: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    token: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    channel: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    since: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    payload: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    idempotency_key: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    user: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    session: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    heartbeat_ms: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    max_payload: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    epoch: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    offset: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    recovered: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    users: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    sender: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    code: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    message: Option<&'a RawValue>,
}

/// Deserialises a field that is present (even as `null`) as `Some(raw)`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

impl<'a> Fields<'a> {
    /// Splits `text` into fields, telling "not JSON" from "not an object".
    fn parse(text: &'a str) -> Result<Fields<'a>, EnvelopeError> {
        let is_object = text.trim_start().starts_with('{');
        match serde_json::from_str::<Fields<'a>>(text) {
            Ok(fields) if is_object => Ok(fields),
            Ok(_) => Err(not_an_object()),
            // Valid JSON that does not fit the fields is the wrong shape,
            // whatever serde calls the error: a number too large for a
            // float (`5e995`) is reported as a syntax error, yet it is JSON.
            Err(error) if is_valid_json(text) => {
                if is_object {
                    Err(EnvelopeError::new(
                        ErrorCode::InvalidMessage,
                        None,
                        error.to_string(),
                    ))
                } else {
                    Err(not_an_object())
                }
            }
            Err(error) => Err(EnvelopeError::new(
                ErrorCode::InvalidJson,
                None,
                error.to_string(),
            )),
        }
    }

    /// The `id`: absent or `null` is no id; anything but a string of 1 to 64
    /// characters is an invalid message (and cannot be echoed).
    fn id(&self) -> Result<Option<RequestId>, EnvelopeError> {
        match not_null(self.id) {
            None => Ok(None),
            Some(raw) => match decode::<String>(raw) {
                Some(id) => RequestId::new(id).map(Some),
                None => Err(EnvelopeError::new(
                    ErrorCode::InvalidMessage,
                    None,
                    "id must be a string of 1 to 64 characters",
                )),
            },
        }
    }

    /// The `type`, which must be present and a string.
    fn kind(&self, id: &Option<RequestId>) -> Result<String, EnvelopeError> {
        match not_null(self.kind) {
            None => Err(EnvelopeError::new(
                ErrorCode::MissingType,
                id.clone(),
                "missing type",
            )),
            Some(raw) => decode(raw).ok_or_else(|| {
                EnvelopeError::new(
                    ErrorCode::InvalidMessage,
                    id.clone(),
                    "type must be a string",
                )
            }),
        }
    }
}

/// The fields of a message whose `id` is known, so every error echoes it.
struct Typed<'a> {
    fields: Fields<'a>,
    id: Option<RequestId>,
}

impl Typed<'_> {
    fn error(&self, code: ErrorCode, message: impl Into<String>) -> EnvelopeError {
        EnvelopeError::new(code, self.id.clone(), message)
    }

    /// A field that must be present, decoded as `T`.
    fn required<T: DeserializeOwned>(
        &self,
        name: &str,
        raw: Option<&RawValue>,
    ) -> Result<T, EnvelopeError> {
        let raw = raw.ok_or_else(|| {
            self.error(ErrorCode::InvalidMessage, format!("missing field {name}"))
        })?;
        decode(raw)
            .ok_or_else(|| self.error(ErrorCode::InvalidMessage, format!("invalid field {name}")))
    }

    /// A field that may be absent or `null`, otherwise decoded as `T`.
    fn optional<T: DeserializeOwned>(
        &self,
        name: &str,
        raw: Option<&RawValue>,
    ) -> Result<Option<T>, EnvelopeError> {
        not_null(raw)
            .map(|raw| self.required(name, Some(raw)))
            .transpose()
    }

    /// The `channel`: a missing or non-string one is an invalid message, a
    /// string that is not a valid name an invalid channel.
    fn channel(&self) -> Result<Channel, EnvelopeError> {
        let name: String = self.required("channel", self.fields.channel)?;
        Channel::new(&name).map_err(|error| self.error(error.code, error.message))
    }

    /// The `payload`, any JSON value including `null`, kept raw.
    fn payload(&self) -> Result<Box<RawValue>, EnvelopeError> {
        self.fields
            .payload
            .map(RawValue::to_owned)
            .ok_or_else(|| self.error(ErrorCode::InvalidMessage, "missing field payload"))
    }

    /// The `idempotency_key`: absent or `null` is none; anything but a
    /// string of 1 to 64 characters is an invalid message.
    fn idempotency_key(&self) -> Result<Option<IdempotencyKey>, EnvelopeError> {
        let Some(raw) = not_null(self.fields.idempotency_key) else {
            return Ok(None);
        };
        decode::<String>(raw)
            .and_then(|key| IdempotencyKey::new(key).ok())
            .map(Some)
            .ok_or_else(|| invalid_idempotency_key(self.id.clone()))
    }
}

fn invalid_idempotency_key(id: Option<RequestId>) -> EnvelopeError {
    EnvelopeError::new(
        ErrorCode::InvalidMessage,
        id,
        "idempotency_key must be a string of 1 to 64 characters",
    )
}

fn not_an_object() -> EnvelopeError {
    EnvelopeError::new(
        ErrorCode::InvalidMessage,
        None,
        "a message must be a JSON object",
    )
}

fn is_valid_json(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

fn not_null(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|raw| raw.get() != "null")
}

fn decode<T: DeserializeOwned>(raw: &RawValue) -> Option<T> {
    serde_json::from_str(raw.get()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code_of(text: &str) -> ErrorCode {
        parse_client_message(text).unwrap_err().code
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn not_json_is_invalid_json() {
        assert_eq!(code_of("{\"type\":"), ErrorCode::InvalidJson);
        assert_eq!(code_of("hello"), ErrorCode::InvalidJson);
        assert_eq!(code_of(""), ErrorCode::InvalidJson);
        assert_eq!(code_of("{\"type\":\"ping\"} x"), ErrorCode::InvalidJson);
    }

    #[test]
    fn a_number_beyond_a_float_is_json_of_the_wrong_shape() {
        // Found by the envelope fuzz target: serde_json reports the overflow
        // as a syntax error, which was answered INVALID_JSON.
        assert_eq!(code_of("5e995"), ErrorCode::InvalidMessage);
        assert_eq!(code_of("[1e400]"), ErrorCode::InvalidMessage);
        let error = parse_server_message("-1e999").unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidMessage);
    }

    #[test]
    fn json_of_the_wrong_shape_is_invalid_message() {
        assert_eq!(code_of("[\"ping\"]"), ErrorCode::InvalidMessage);
        assert_eq!(code_of("42"), ErrorCode::InvalidMessage);
        assert_eq!(code_of("\"ping\""), ErrorCode::InvalidMessage);
        assert_eq!(code_of(r#"{"type":7}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            code_of(r#"{"type":"subscribe"}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code_of(r#"{"type":"subscribe","channel":5}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code_of(r#"{"type":"publish","channel":"a"}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code_of(r#"{"type":"subscribe","channel":"a","since":{"epoch":"e","offset":-1}}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(code_of(r#"{"type":"auth"}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            code_of(r#"{"type":"ping","type":"ping"}"#),
            ErrorCode::InvalidMessage
        );
    }

    #[test]
    fn invalid_ids_are_invalid_messages_and_not_echoed() {
        let long = "x".repeat(65);
        for id in ["\"\"".to_owned(), "7".to_owned(), format!("\"{long}\"")] {
            let error =
                parse_client_message(&format!(r#"{{"type":"ping","id":{id}}}"#)).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidMessage, "{id}");
            assert_eq!(error.id, None);
        }
        let sixty_four_chars = "é".repeat(64);
        let message =
            parse_client_message(&format!(r#"{{"type":"ping","id":"{sixty_four_chars}"}}"#))
                .unwrap();
        assert_eq!(message.id().unwrap().as_str(), sixty_four_chars);
    }

    #[test]
    fn missing_type_is_missing_type() {
        assert_eq!(code_of(r#"{"channel":"a"}"#), ErrorCode::MissingType);
        assert_eq!(code_of(r#"{"type":null}"#), ErrorCode::MissingType);
    }

    #[test]
    fn unknown_type_is_unknown_type() {
        assert_eq!(code_of(r#"{"type":"shout"}"#), ErrorCode::UnknownType);
        assert_eq!(code_of(r#"{"type":"ack"}"#), ErrorCode::UnknownType);
    }

    #[test]
    fn bad_channel_names_are_invalid_channel() {
        let too_long = "a".repeat(129);
        for name in ["", "a b", "é", "chat#1", too_long.as_str()] {
            let text = format!(r#"{{"type":"subscribe","channel":"{name}"}}"#);
            assert_eq!(code_of(&text), ErrorCode::InvalidChannel, "{name:?}");
        }
        let longest = "a".repeat(128);
        for name in ["A-z_0:9.@/", longest.as_str()] {
            assert_eq!(Channel::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn errors_echo_a_valid_id() {
        let error =
            parse_client_message(r#"{"id":"r1","type":"subscribe","channel":"a b"}"#).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidChannel);
        assert_eq!(error.id, Some(RequestId::new("r1").unwrap()));
        let error = parse_client_message(r#"{"id":"r2"}"#).unwrap_err();
        assert_eq!(
            (error.code, error.id.unwrap().as_str()),
            (ErrorCode::MissingType, "r2")
        );
        let error = parse_client_message(r#"{"id":"r3","type":"nope"}"#).unwrap_err();
        assert_eq!(
            (error.code, error.id.unwrap().as_str()),
            (ErrorCode::UnknownType, "r3")
        );
    }

    #[test]
    fn server_side_codes_have_their_wire_names() {
        let names = [
            (ErrorCode::InvalidJson, "INVALID_JSON"),
            (ErrorCode::InvalidMessage, "INVALID_MESSAGE"),
            (ErrorCode::MissingType, "MISSING_TYPE"),
            (ErrorCode::UnknownType, "UNKNOWN_TYPE"),
            (ErrorCode::InvalidChannel, "INVALID_CHANNEL"),
            (ErrorCode::Forbidden, "FORBIDDEN"),
            (ErrorCode::LimitExceeded, "LIMIT_EXCEEDED"),
            (ErrorCode::RateLimited, "RATE_LIMITED"),
            (ErrorCode::Unavailable, "UNAVAILABLE"),
        ];
        for (code, name) in names {
            assert_eq!(code.as_str(), name);
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{name}\""));
            let error = ServerMessage::Error {
                id: None,
                code,
                message: "m".into(),
            };
            assert_eq!(
                parse_server_message(std::str::from_utf8(&encode_server_message(&error)).unwrap())
                    .unwrap(),
                error
            );
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let message = parse_client_message(
            r#"{"type":"publish","extra":{"deep":[1,2]},"channel":"c","payload":{"a" : 1},"sender":"x"}"#,
        )
        .unwrap();
        let ClientMessage::Publish {
            id,
            idempotency_key,
            channel,
            payload,
        } = message
        else {
            panic!("not a publish: {message:?}");
        };
        assert_eq!((id, idempotency_key), (None, None));
        assert_eq!(channel.as_str(), "c");
        assert_eq!(payload.get(), r#"{"a" : 1}"#, "the payload is kept raw");
    }

    #[test]
    fn every_client_message_parses() {
        let cases = [
            (r#"{"type":"auth","token":"t"}"#, None),
            (r#"{"type":"ping","id":"p"}"#, Some("p")),
            (
                r#"{"type":"subscribe","id":"s","channel":"c","since":{"epoch":"e","offset":4}}"#,
                Some("s"),
            ),
            (r#"{"type":"unsubscribe","channel":"c"}"#, None),
            (
                r#"{"type":"publish","id":"x","channel":"c","payload":null}"#,
                Some("x"),
            ),
            (r#"{"type":"presence","id":"q","channel":"c"}"#, Some("q")),
        ];
        for (text, id) in cases {
            let message = parse_client_message(text).unwrap();
            assert_eq!(message.id().map(RequestId::as_str), id);
            assert_eq!(encode_client_message(&message), text);
        }
        let ClientMessage::Subscribe { since, .. } = parse_client_message(cases[2].0).unwrap()
        else {
            panic!("not a subscribe");
        };
        assert_eq!(
            since,
            Some(Position {
                epoch: "e".into(),
                offset: 4
            })
        );
    }

    #[test]
    fn null_optional_fields_count_as_absent() {
        let message =
            parse_client_message(r#"{"type":"subscribe","id":null,"channel":"c","since":null}"#)
                .unwrap();
        assert_eq!(
            message,
            parse_client_message(r#"{"type":"subscribe","channel":"c"}"#).unwrap()
        );
    }

    #[test]
    fn the_borrowed_publication_encoder_matches_the_owned_one() {
        let payload = raw(r#"{"price":1.5e3,"tags":["a"]}"#);
        for sender in [None, Some("alice")] {
            let owned = ServerMessage::Message {
                channel: Channel::new("ticker:X").unwrap(),
                payload: payload.clone(),
                sender: sender.map(str::to_owned),
                offset: 42,
            };
            assert_eq!(
                encode_publication("ticker:X", &payload, sender, 42),
                encode_server_message(&owned)
            );
        }
        assert_eq!(
            encode_publication("c", &raw("1"), None, 7),
            br#"{"type":"message","channel":"c","payload":1,"offset":7}"#
        );
    }

    #[test]
    fn api_publish_bodies_parse() {
        let body = parse_api_publish(r#"{"channel":"user:7","payload":[1]}"#).unwrap();
        assert_eq!(
            (body.channel.as_str(), body.payload.get()),
            ("user:7", "[1]")
        );
        assert_eq!(
            parse_api_publish(r#"{"channel":"a b","payload":1}"#)
                .unwrap_err()
                .code,
            ErrorCode::InvalidChannel
        );
        assert_eq!(
            parse_api_publish(r#"{"channel":"a"}"#).unwrap_err().code,
            ErrorCode::InvalidMessage
        );
        let keyed = parse_api_publish(r#"{"channel":"a","payload":1,"idempotency_key":"k"}"#);
        assert_eq!(keyed.unwrap().idempotency_key.unwrap().as_str(), "k");
        assert_eq!(
            parse_api_publish(r#"{"channel":"a","payload":1,"idempotency_key":7}"#)
                .unwrap_err()
                .code,
            ErrorCode::InvalidMessage
        );
    }

    #[test]
    fn an_idempotency_key_is_a_string_of_1_to_64_characters() {
        let publish = |key: &str| {
            parse_client_message(&format!(
                r#"{{"type":"publish","id":"r1","channel":"c","payload":1,"idempotency_key":{key}}}"#
            ))
        };
        let long = "x".repeat(65);
        for key in ["\"\"".to_owned(), "7".to_owned(), format!("\"{long}\"")] {
            let error = publish(&key).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidMessage, "{key}");
            assert_eq!(error.id, Some(RequestId::new("r1").unwrap()), "{key}");
        }
        let sixty_four_chars = "é".repeat(64);
        for (key, expected) in [
            (
                format!("\"{sixty_four_chars}\""),
                Some(sixty_four_chars.as_str()),
            ),
            ("null".to_owned(), None),
        ] {
            let Ok(ClientMessage::Publish {
                idempotency_key, ..
            }) = publish(&key)
            else {
                panic!("{key} is a valid publish");
            };
            assert_eq!(
                idempotency_key.as_ref().map(IdempotencyKey::as_str),
                expected
            );
        }
    }

    #[test]
    fn private_channels_name_their_user() {
        assert_eq!(Channel::new("user:42").unwrap().private_user(), Some("42"));
        assert_eq!(Channel::new("users:42").unwrap().private_user(), None);
    }

    #[test]
    fn server_messages_omit_absent_fields() {
        let message = ServerMessage::Subscribed {
            id: None,
            channel: Channel::new("c").unwrap(),
            epoch: "e".into(),
            offset: 0,
            recovered: None,
        };
        assert_eq!(
            encode_server_message(&message),
            br#"{"type":"subscribed","channel":"c","epoch":"e","offset":0}"#
        );
        assert_eq!(
            serde_json::from_str::<ServerMessage>(r#"{"type":"pong","id":"1","x":2}"#).unwrap(),
            ServerMessage::Pong {
                id: Some(RequestId::new("1").unwrap())
            }
        );
    }

    fn request_id() -> impl Strategy<Value = RequestId> + Clone {
        "[a-z0-9é\"\\\\]{1,64}".prop_map(|id| RequestId::new(id).unwrap())
    }

    fn channel() -> impl Strategy<Value = Channel> {
        "[A-Za-z0-9_:.@/-]{1,128}".prop_map(|name| Channel::new(&name).unwrap())
    }

    /// Picks one of `choices`; `prop_oneof!` would expand to a shared
    /// pointer type the crate's lints forbid.
    fn one_of<T: fmt::Debug>(choices: Vec<BoxedStrategy<T>>) -> impl Strategy<Value = T> {
        proptest::strategy::Union::new(choices)
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let words = [
            "type",
            "id",
            "channel",
            "payload",
            "since",
            "subscribe",
            "publish",
            "ping",
            "message",
            "ack",
        ];
        let leaf = one_of(vec![
            Just(serde_json::Value::Null).boxed(),
            any::<bool>().prop_map(serde_json::Value::from).boxed(),
            any::<i64>().prop_map(serde_json::Value::from).boxed(),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from)
                .boxed(),
            "[a-z\"\\\\é ]{0,8}"
                .prop_map(serde_json::Value::from)
                .boxed(),
            prop::sample::select(words.to_vec())
                .prop_map(serde_json::Value::from)
                .boxed(),
        ]);
        let keys = [
            "type", "id", "channel", "payload", "since", "token", "epoch", "offset", "users",
            "code",
        ];
        leaf.prop_recursive(4, 32, 6, move |inner| {
            let key = one_of(vec![
                prop::sample::select(keys.to_vec())
                    .prop_map(str::to_owned)
                    .boxed(),
                "[a-z]{1,6}".boxed(),
            ]);
            one_of(vec![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(serde_json::Value::from)
                    .boxed(),
                prop::collection::btree_map(key, inner, 0..6)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect()))
                    .boxed(),
            ])
        })
    }

    /// Objects close to client messages: known keys with values that are
    /// often, but not always, of the right type.
    fn near_client_message() -> impl Strategy<Value = serde_json::Value> {
        let types = [
            "auth",
            "ping",
            "subscribe",
            "unsubscribe",
            "publish",
            "presence",
            "pong",
        ];
        let keys = [
            "type",
            "id",
            "channel",
            "payload",
            "since",
            "token",
            "idempotency_key",
            "extra",
        ];
        let value = one_of(vec![
            prop::sample::select(types.to_vec())
                .prop_map(serde_json::Value::from)
                .boxed(),
            "[a-z:.é ]{0,6}".prop_map(serde_json::Value::from).boxed(),
            ("[a-z]{0,3}", any::<u64>())
                .prop_map(|(epoch, offset)| serde_json::json!({"epoch": epoch, "offset": offset}))
                .boxed(),
            json_value().boxed(),
        ]);
        let fields = prop::collection::btree_map(prop::sample::select(keys.to_vec()), value, 0..6);
        (prop::sample::select(types.to_vec()), fields).prop_map(|(kind, fields)| {
            let mut object: serde_json::Map<String, serde_json::Value> = fields
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect();
            object.entry("type").or_insert(kind.into());
            serde_json::Value::Object(object)
        })
    }

    fn payload() -> impl Strategy<Value = Box<RawValue>> {
        json_value().prop_map(|value| serde_json::value::to_raw_value(&value).unwrap())
    }

    fn client_message() -> impl Strategy<Value = ClientMessage> {
        let id = || proptest::option::of(request_id());
        let key = || {
            proptest::option::of(
                "[a-z0-9é\"\\\\-]{1,64}".prop_map(|key| IdempotencyKey::new(key).unwrap()),
            )
        };
        let since = proptest::option::of(
            ("[a-z0-9-]{0,12}", any::<u64>())
                .prop_map(|(epoch, offset)| Position { epoch, offset }),
        );
        one_of(vec![
            (id(), ".*")
                .prop_map(|(id, token)| ClientMessage::Auth { id, token })
                .boxed(),
            id().prop_map(|id| ClientMessage::Ping { id }).boxed(),
            (id(), channel(), since)
                .prop_map(|(id, channel, since)| ClientMessage::Subscribe { id, channel, since })
                .boxed(),
            (id(), channel())
                .prop_map(|(id, channel)| ClientMessage::Unsubscribe { id, channel })
                .boxed(),
            (id(), key(), channel(), payload())
                .prop_map(
                    |(id, idempotency_key, channel, payload)| ClientMessage::Publish {
                        id,
                        idempotency_key,
                        channel,
                        payload,
                    },
                )
                .boxed(),
            (id(), channel())
                .prop_map(|(id, channel)| ClientMessage::Presence { id, channel })
                .boxed(),
        ])
    }

    fn server_message() -> impl Strategy<Value = ServerMessage> {
        let id = || proptest::option::of(request_id());
        let user = "[a-z0-9é]{1,10}";
        let codes = [
            ErrorCode::InvalidJson,
            ErrorCode::Forbidden,
            ErrorCode::Unavailable,
        ];
        one_of(vec![
            (user, ".*", any::<u64>(), any::<u64>())
                .prop_map(
                    |(user, session, heartbeat_ms, max_payload)| ServerMessage::AuthAck {
                        user,
                        session,
                        heartbeat_ms,
                        max_payload,
                    },
                )
                .boxed(),
            id().prop_map(|id| ServerMessage::Pong { id }).boxed(),
            (
                id(),
                channel(),
                ".*",
                any::<u64>(),
                proptest::option::of(any::<bool>()),
            )
                .prop_map(
                    |(id, channel, epoch, offset, recovered)| ServerMessage::Subscribed {
                        id,
                        channel,
                        epoch,
                        offset,
                        recovered,
                    },
                )
                .boxed(),
            (id(), channel())
                .prop_map(|(id, channel)| ServerMessage::Unsubscribed { id, channel })
                .boxed(),
            (request_id(), any::<u64>())
                .prop_map(|(id, offset)| ServerMessage::Ack { id, offset })
                .boxed(),
            (id(), channel(), prop::collection::vec(user, 0..5))
                .prop_map(|(id, channel, users)| ServerMessage::Presence { id, channel, users })
                .boxed(),
            (
                channel(),
                payload(),
                proptest::option::of(user),
                any::<u64>(),
            )
                .prop_map(
                    |(channel, payload, sender, offset)| ServerMessage::Message {
                        channel,
                        payload,
                        sender,
                        offset,
                    },
                )
                .boxed(),
            (channel(), user)
                .prop_map(|(channel, user)| ServerMessage::Join { channel, user })
                .boxed(),
            (channel(), user)
                .prop_map(|(channel, user)| ServerMessage::Leave { channel, user })
                .boxed(),
            (id(), prop::sample::select(codes.to_vec()), ".*")
                .prop_map(|(id, code, message)| ServerMessage::Error { id, code, message })
                .boxed(),
        ])
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".*") {
            let _ = parse_client_message(&text);
            let _ = parse_server_message(&text);
            let _ = parse_api_publish(&text);
        }

        #[test]
        fn parsed_client_messages_reencode_to_themselves(
            value in one_of(vec![json_value().boxed(), near_client_message().boxed()])
        ) {
            let text = value.to_string();
            if let Ok(message) = parse_client_message(&text) {
                let encoded = encode_client_message(&message);
                prop_assert_eq!(parse_client_message(&encoded).unwrap(), message);
            }
            let _ = parse_server_message(&text);
        }

        #[test]
        fn client_messages_round_trip(message in client_message()) {
            let encoded = encode_client_message(&message);
            prop_assert_eq!(parse_client_message(&encoded).unwrap(), message);
        }

        #[test]
        fn server_messages_round_trip(message in server_message()) {
            let encoded = encode_server_message(&message);
            let text = std::str::from_utf8(&encoded).unwrap();
            prop_assert_eq!(parse_server_message(text).unwrap(), message.clone());
            prop_assert_eq!(serde_json::from_slice::<ServerMessage>(&encoded).unwrap(), message);
        }
    }

    #[test]
    fn a_publication_prefix_and_its_offset_make_the_whole_message() {
        for sender in [None, Some("alice")] {
            let payload = raw(r#"{"a": [1, 2]}"#);
            let mut text = encode_publication_prefix("chat", &payload, sender);
            text.extend_from_slice(b"42}");
            assert_eq!(text, encode_publication("chat", &payload, sender, 42));
        }
    }
}
