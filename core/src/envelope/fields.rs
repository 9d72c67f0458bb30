//! The first step of parsing either direction: the text split into the
//! known fields, each raw JSON borrowed from the input, then each field
//! decoded and validated with the error code it calls for.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny};
use serde_json::value::RawValue;

use super::{Channel, EnvelopeError, ErrorCode, IdempotencyKey, RequestId};

/// Every field name either direction knows, each as raw JSON borrowed from
/// the text. `null` is kept as `Some("null")` so that a `null` payload is
/// told apart from a missing one.
#[derive(Deserialize)]
pub(super) struct Fields<'a> {
    #[serde(rename = "type", default, borrow, deserialize_with = "present")]
    pub(super) kind: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) token: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) channel: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) since: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) payload: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) idempotency_key: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) user: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) session: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) heartbeat_ms: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) max_payload: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) epoch: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) offset: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) recovered: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) users: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) sender: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) code: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) message: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) expires_at: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) reason: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub(super) data: Option<&'a RawValue>,
}

/// Deserialises a field that is present (even as `null`) as `Some(raw)`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

impl<'a> Fields<'a> {
    /// Splits `text` into fields, telling "not JSON" from "not an object".
    pub(super) fn parse(text: &'a str) -> Result<Fields<'a>, EnvelopeError> {
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
    pub(super) fn id(&self) -> Result<Option<RequestId>, EnvelopeError> {
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
    pub(super) fn kind(&self, id: &Option<RequestId>) -> Result<String, EnvelopeError> {
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
pub(super) struct Typed<'a> {
    pub(super) fields: Fields<'a>,
    pub(super) id: Option<RequestId>,
}

impl Typed<'_> {
    pub(super) fn error(&self, code: ErrorCode, message: impl Into<String>) -> EnvelopeError {
        EnvelopeError::new(code, self.id.clone(), message)
    }

    /// A field that must be present, decoded as `T`.
    pub(super) fn required<T: DeserializeOwned>(
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
    pub(super) fn optional<T: DeserializeOwned>(
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
    pub(super) fn channel(&self) -> Result<Channel, EnvelopeError> {
        let name: String = self.required("channel", self.fields.channel)?;
        Channel::new(&name).map_err(|error| self.error(error.code, error.message))
    }

    /// The `payload`, any JSON value including `null`, kept raw.
    pub(super) fn payload(&self) -> Result<Box<RawValue>, EnvelopeError> {
        self.fields
            .payload
            .map(RawValue::to_owned)
            .ok_or_else(|| self.error(ErrorCode::InvalidMessage, "missing field payload"))
    }

    /// The `data` of an `rpc` or a reply: any JSON value, kept raw;
    /// absent is `None`.
    pub(super) fn data(&self) -> Option<Box<RawValue>> {
        self.fields.data.map(RawValue::to_owned)
    }

    /// The `method` of an `rpc`: a string of 1 to
    /// [`MAX_METHOD_CHARS`](super::MAX_METHOD_CHARS) characters of the
    /// channel-name alphabet, or an invalid message.
    pub(super) fn method(&self) -> Result<String, EnvelopeError> {
        let method: String = self.required("method", self.fields.method)?;
        if super::is_valid_method(&method) {
            return Ok(method);
        }
        Err(self.error(
            ErrorCode::InvalidMessage,
            "method must be 1 to 64 characters of A-Z a-z 0-9 _ - : . @ /",
        ))
    }

    /// The `idempotency_key`: absent or `null` is none; anything but a
    /// string of 1 to 64 characters is an invalid message.
    pub(super) fn idempotency_key(&self) -> Result<Option<IdempotencyKey>, EnvelopeError> {
        let Some(raw) = not_null(self.fields.idempotency_key) else {
            return Ok(None);
        };
        decode::<String>(raw)
            .and_then(|key| IdempotencyKey::new(key).ok())
            .map(Some)
            .ok_or_else(|| invalid_idempotency_key(self.id.clone()))
    }
}

pub(super) fn invalid_idempotency_key(id: Option<RequestId>) -> EnvelopeError {
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
