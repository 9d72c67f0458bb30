//! The body of the HTTP API's `POST /api/publish`.

use serde_json::value::RawValue;

use super::fields::{Fields, Typed};
use super::{Channel, EnvelopeError, IdempotencyKey};

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
