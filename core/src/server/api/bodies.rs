//! The bodies of the server API's requests (PROTOCOL.md section 2), each
//! parsed into what its method needs, or into the `400` error that names
//! the field at fault. `POST /api/publish` keeps the envelope's own parser,
//! byte for byte; `POST /api/info` takes an empty body or any object.
//! Unknown fields are ignored, as in every message of the protocol, and a
//! `null` field counts as absent.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::value::RawValue;

use crate::access::ChannelPattern;
use crate::auth::is_valid_user_id;
use crate::close::CloseCode;
use crate::config::ServerConfig;
use crate::envelope::{
    ApiPublishBody, Channel, EnvelopeError, ErrorCode, IdempotencyKey, Position, parse_api_publish,
};
use crate::http::ApiMethod;
use crate::hub::{ApiRequest, Control};

/// The longest close reason `POST /api/disconnect` takes, in bytes: what
/// fits a close frame beside its code (RFC 6455 section 5.5).
pub(crate) const MAX_CLOSE_REASON_BYTES: usize = 123;

/// The close reason of a disconnect that names none.
pub(crate) const DEFAULT_CLOSE_REASON: &str = "disconnected";

/// What one API request asks, its body checked.
#[derive(Debug)]
pub(crate) enum ApiCall {
    /// `POST /api/publish`.
    Publish(ApiPublishBody),
    /// `POST /api/broadcast`.
    Broadcast {
        /// The channels, in the order given, at most
        /// `api_max_broadcast_channels`.
        channels: Vec<Channel>,
        /// The payload, raw.
        payload: Box<RawValue>,
        /// Applied on each channel, in the API's scope.
        idempotency_key: Option<IdempotencyKey>,
    },
    /// `POST /api/presence`, `presence_stats`, `history`, `channels`,
    /// `disconnect` and `unsubscribe`: what the hub answers, as it takes it.
    Hub(ApiRequest),
    /// `POST /api/info`.
    Info,
}

/// Parses the body of a request to `method`. Never panics.
pub(crate) fn parse_api_call(
    method: ApiMethod,
    body: &[u8],
    config: &ServerConfig,
) -> Result<ApiCall, EnvelopeError> {
    let text = std::str::from_utf8(body).map_err(|_| invalid_json("body is not UTF-8"))?;
    Ok(match method {
        ApiMethod::Publish => ApiCall::Publish(parse_api_publish(text)?),
        ApiMethod::Info if text.trim().is_empty() => ApiCall::Info,
        ApiMethod::Info => Body::parse(text).map(|_| ApiCall::Info)?,
        ApiMethod::Broadcast => {
            let body = Body::parse(text)?;
            ApiCall::Broadcast {
                channels: body.channels(config.api_max_broadcast_channels)?,
                payload: body.payload()?,
                idempotency_key: body.idempotency_key()?,
            }
        }
        ApiMethod::Presence => ApiCall::Hub(ApiRequest::Presence(Body::parse(text)?.channel()?)),
        ApiMethod::PresenceStats => {
            ApiCall::Hub(ApiRequest::PresenceStats(Body::parse(text)?.channel()?))
        }
        ApiMethod::History => {
            let body = Body::parse(text)?;
            ApiCall::Hub(ApiRequest::History {
                channel: body.channel()?,
                since: body.since()?,
                limit: body.limit()?,
                reverse: body
                    .optional("reverse", "must be true or false")?
                    .unwrap_or(false),
            })
        }
        ApiMethod::Channels => ApiCall::Hub(ApiRequest::Channels(Body::parse(text)?.pattern()?)),
        ApiMethod::Disconnect => {
            let body = Body::parse(text)?;
            let user = body.user()?;
            let reconnect: bool = body.required("reconnect", "must be true or false")?;
            ApiCall::Hub(ApiRequest::Control(Control::Disconnect {
                user,
                code: body.close_code(reconnect)?.0,
                reason: body.reason()?,
            }))
        }
        ApiMethod::Unsubscribe => {
            let body = Body::parse(text)?;
            ApiCall::Hub(ApiRequest::Control(Control::Unsubscribe {
                user: body.user()?,
                channel: body.channel()?,
            }))
        }
    })
}

/// A JSON object's fields, each raw.
struct Body<'a>(BTreeMap<String, &'a RawValue>);

impl<'a> Body<'a> {
    /// Splits `text` into fields, telling "not JSON" from "not an object".
    fn parse(text: &'a str) -> Result<Body<'a>, EnvelopeError> {
        match serde_json::from_str::<BTreeMap<String, &'a RawValue>>(text) {
            Ok(fields) => Ok(Body(fields)),
            Err(_) if serde_json::from_str::<IgnoredAny>(text).is_ok() => Err(invalid(
                ErrorCode::InvalidMessage,
                "the body must be a JSON object",
            )),
            Err(error) => Err(invalid_json(&error.to_string())),
        }
    }

    /// The field `name`, unless absent or `null`.
    fn raw(&self, name: &str) -> Option<&'a RawValue> {
        self.0.get(name).copied().filter(|raw| raw.get() != "null")
    }

    /// A field that must be present, decoded as `T`; `shape` says what it
    /// must be.
    fn required<T: DeserializeOwned>(&self, name: &str, shape: &str) -> Result<T, EnvelopeError> {
        self.optional(name, shape)?
            .ok_or_else(|| invalid(ErrorCode::InvalidMessage, &format!("missing field {name}")))
    }

    /// A field that may be absent or `null`, otherwise decoded as `T`.
    fn optional<T: DeserializeOwned>(
        &self,
        name: &str,
        shape: &str,
    ) -> Result<Option<T>, EnvelopeError> {
        let Some(raw) = self.raw(name) else {
            return Ok(None);
        };
        serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| invalid_field(name, shape))
    }

    fn channel(&self) -> Result<Channel, EnvelopeError> {
        let name: String = self.required("channel", "must be a string")?;
        Channel::new(&name).map_err(|error| invalid(error.code, &error.message))
    }

    /// A non-empty list of at most `max` channels.
    fn channels(&self, max: usize) -> Result<Vec<Channel>, EnvelopeError> {
        let shape = "must be an array of channel names";
        let names: Vec<String> = self.required("channels", shape)?;
        if names.is_empty() {
            return Err(invalid_field("channels", "must name at least one channel"));
        }
        if names.len() > max {
            let message = format!("too many channels: at most {max} per broadcast");
            return Err(invalid(ErrorCode::LimitExceeded, &message));
        }
        names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                Channel::new(name).map_err(|error| {
                    invalid(error.code, &format!("channels[{index}]: {}", error.message))
                })
            })
            .collect()
    }

    fn payload(&self) -> Result<Box<RawValue>, EnvelopeError> {
        self.0
            .get("payload")
            .map(|raw| (*raw).to_owned())
            .ok_or_else(|| invalid(ErrorCode::InvalidMessage, "missing field payload"))
    }

    fn idempotency_key(&self) -> Result<Option<IdempotencyKey>, EnvelopeError> {
        let shape = "must be a string of 1 to 64 characters";
        self.optional::<String>("idempotency_key", shape)?
            .map(|key| {
                IdempotencyKey::new(key).map_err(|_| invalid_field("idempotency_key", shape))
            })
            .transpose()
    }

    fn since(&self) -> Result<Option<Position>, EnvelopeError> {
        self.optional("since", r#"must be {"epoch":E,"offset":N}"#)
    }

    fn limit(&self) -> Result<usize, EnvelopeError> {
        let limit: Option<u64> = self.optional("limit", "must be a whole number, 0 or more")?;
        Ok(limit.map_or(usize::MAX, |limit| {
            usize::try_from(limit).unwrap_or(usize::MAX)
        }))
    }

    fn pattern(&self) -> Result<Option<ChannelPattern>, EnvelopeError> {
        let pattern: Option<String> = self.optional("pattern", "must be a string")?;
        pattern
            .map(|pattern| {
                ChannelPattern::new(&pattern).map_err(|why| invalid_field("pattern", &why))
            })
            .transpose()
    }

    fn user(&self) -> Result<String, EnvelopeError> {
        let shape = "must be a user id (what fits after user: in a channel name)";
        let user: String = self.required("user", shape)?;
        if is_valid_user_id(&user) {
            Ok(user)
        } else {
            Err(invalid_field("user", shape))
        }
    }

    /// The `code`, or the default of `reconnect`: 4100 to 4499 when the
    /// client is to reconnect, 4500 to 4999 when not.
    fn close_code(&self, reconnect: bool) -> Result<CloseCode, EnvelopeError> {
        let (default, range, shape) = if reconnect {
            (
                CloseCode::DISCONNECTED,
                4100..=4499,
                "must be 4100 to 4499 with reconnect true",
            )
        } else {
            (
                CloseCode::DISCONNECTED_FINAL,
                4500..=4999,
                "must be 4500 to 4999 with reconnect false",
            )
        };
        match self.optional::<u16>("code", shape)? {
            None => Ok(default),
            Some(code) if range.contains(&code) => Ok(CloseCode(code)),
            Some(_) => Err(invalid_field("code", shape)),
        }
    }

    fn reason(&self) -> Result<String, EnvelopeError> {
        let shape = "must be a string of at most 123 bytes";
        let reason: Option<String> = self.optional("reason", shape)?;
        match reason {
            None => Ok(DEFAULT_CLOSE_REASON.to_owned()),
            Some(reason) if reason.len() <= MAX_CLOSE_REASON_BYTES => Ok(reason),
            Some(_) => Err(invalid_field("reason", shape)),
        }
    }
}

fn invalid(code: ErrorCode, message: &str) -> EnvelopeError {
    EnvelopeError {
        code,
        id: None,
        message: message.to_owned(),
    }
}

fn invalid_field(name: &str, shape: &str) -> EnvelopeError {
    invalid(
        ErrorCode::InvalidMessage,
        &format!("invalid field {name}: {shape}"),
    )
}

fn invalid_json(message: &str) -> EnvelopeError {
    invalid(ErrorCode::InvalidJson, message)
}
