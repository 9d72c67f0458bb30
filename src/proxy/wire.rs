//! The JSON the proxy and the backend exchange (PROTOCOL.md section 13,
//! "The HTTP proxy"): one request body per decision, and the answer every
//! decision shares, `{"result":{...}}` or `{"error":{"code":..,"message":..}}`.
//!
//! JSON the node holds as text (connection info, a publication, rpc data)
//! goes to the backend as it is, and JSON from the backend comes back as
//! it was written: nothing is re-encoded on the way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use tether_core::{
    ChannelRequest, ConnectRequest, ErrorCode, Expiry, Grants, Identity, Rejection, RpcRequest,
};

/// Why an answer is not one the protocol defines: said in the log, never
/// to the client (who gets `INTERNAL`).
pub(crate) type Malformed = String;

/// What a decision's answer says: its result, or the application's
/// rejection.
pub(crate) type Answer<T> = Result<T, Rejection>;

/// The message of an `error` answer that has none.
const NO_MESSAGE: &str = "refused by the application";

/// The body asking who a token proves. A header field sent more than once
/// is joined into one value, with `; ` for `cookie` (RFC 6265 section 5.4)
/// and `, ` for any other (RFC 9110 section 5.3).
pub(crate) fn connect_body(request: &ConnectRequest) -> String {
    let mut headers: BTreeMap<&str, String> = BTreeMap::new();
    for (name, value) in &request.headers {
        let separator = if name == "cookie" { "; " } else { ", " };
        headers
            .entry(name.as_str())
            .and_modify(|joined| {
                joined.push_str(separator);
                joined.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    let body = ConnectBody {
        conn: request.conn.to_string(),
        token: &request.token,
        headers,
        refresh: request.refresh,
    };
    serde_json::to_string(&body).expect("a connect body serialises")
}

/// The body asking whether a subscribe (no `data`) or a publish (its
/// payload as `data`) may go ahead.
pub(crate) fn channel_body(request: &ChannelRequest) -> Result<String, Malformed> {
    let body = ChannelBody {
        conn: request.conn.to_string(),
        user: &request.user,
        info: request.info.as_deref().map(raw).transpose()?,
        channel: request.channel.as_str(),
        data: request.data.as_deref().map(raw).transpose()?,
    };
    Ok(serde_json::to_string(&body).expect("a channel body serialises"))
}

/// The body asking for the result of an `rpc`.
pub(crate) fn rpc_body(request: &RpcRequest) -> Result<String, Malformed> {
    let body = RpcBody {
        conn: request.conn.to_string(),
        user: &request.user,
        info: request.info.as_deref().map(raw).transpose()?,
        method: &request.method,
        data: raw(&request.data)?,
    };
    Ok(serde_json::to_string(&body).expect("an rpc body serialises"))
}

/// A connect answer read as the identity it proves, its expiry timed from
/// `now_unix_ms`. An `expires_at` at or before it refuses the token, as an
/// expired JWT is.
pub(crate) fn identity(answer: &[u8], now_unix_ms: u64) -> Result<Answer<Identity>, Malformed> {
    let result: ConnectResult = match result(answer)? {
        Ok(result) => serde_json::from_str(result.get())
            .map_err(|error| format!("connect result: {error}"))?,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let grants = match result.channels {
        None => Grants::default(),
        Some(claim) => {
            Grants::from_claim(&claim).map_err(|error| format!("connect result: {error}"))?
        }
    };
    let expiry = match result.expires_at {
        None => None,
        Some(unix_ms) if unix_ms <= now_unix_ms => {
            return Ok(Err(Rejection::new(
                ErrorCode::Forbidden,
                "the token has expired",
            )));
        }
        Some(unix_ms) => Some(Expiry {
            unix_ms,
            remaining: std::time::Duration::from_millis(unix_ms - now_unix_ms),
        }),
    };
    Ok(Ok(Identity {
        user: result.user,
        grants,
        expiry,
        info: result.info.map(|info| info.get().to_owned()),
    }))
}

/// The `data` of a result (JSON text), `None` when absent or `null`: a
/// subscribe's initial data, a publish's replacement payload, an rpc's
/// result.
pub(crate) fn data(answer: &[u8]) -> Result<Answer<Option<String>>, Malformed> {
    match result(answer)? {
        Ok(result) => {
            let result: DataResult =
                serde_json::from_str(result.get()).map_err(|error| format!("result: {error}"))?;
            Ok(Ok(result.data.map(|data| data.get().to_owned())))
        }
        Err(rejection) => Ok(Err(rejection)),
    }
}

/// The `result` object of an answer, or its `error` as a rejection: an
/// unknown code is `INTERNAL` (with the backend's message), a missing
/// message a generic one.
fn result(answer: &[u8]) -> Result<Answer<Box<RawValue>>, Malformed> {
    let answer: AnswerBody =
        serde_json::from_slice(answer).map_err(|error| format!("not an answer: {error}"))?;
    match (answer.result, answer.error) {
        (Some(result), None) if result.get().starts_with('{') => Ok(Ok(result)),
        (Some(_), None) => Err("the result is not an object".into()),
        (None, Some(error)) => {
            let code =
                serde_json::from_value(Value::String(error.code)).unwrap_or(ErrorCode::Internal);
            let message = error.message.unwrap_or_else(|| NO_MESSAGE.to_owned());
            Ok(Err(Rejection::new(code, message)))
        }
        (Some(_), Some(_)) => Err("both a result and an error".into()),
        (None, None) => Err("neither a result nor an error".into()),
    }
}

/// JSON text the node holds, to embed as it is.
fn raw(json: &str) -> Result<&RawValue, Malformed> {
    serde_json::from_str(json).map_err(|error| format!("JSON of the node: {error}"))
}

#[derive(Serialize)]
struct ConnectBody<'a> {
    conn: String,
    token: &'a str,
    headers: BTreeMap<&'a str, String>,
    refresh: bool,
}

#[derive(Serialize)]
struct ChannelBody<'a> {
    conn: String,
    user: &'a str,
    info: Option<&'a RawValue>,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct RpcBody<'a> {
    conn: String,
    user: &'a str,
    info: Option<&'a RawValue>,
    method: &'a str,
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct AnswerBody {
    result: Option<Box<RawValue>>,
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: Option<String>,
}

#[derive(Deserialize)]
struct ConnectResult {
    user: String,
    expires_at: Option<u64>,
    channels: Option<Value>,
    info: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct DataResult {
    data: Option<Box<RawValue>>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use tether_core::{Channel, ConnId};

    use super::*;

    fn conn() -> ConnId {
        ConnId::new(7)
    }

    fn json_of(body: &str) -> Value {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn a_connect_body_carries_the_token_and_joins_repeated_fields() {
        let request = ConnectRequest {
            conn: conn(),
            token: "t0k3n".into(),
            headers: vec![
                ("cookie".into(), "a=1".into()),
                ("x-forwarded-for".into(), "10.0.0.1".into()),
                ("cookie".into(), "b=2".into()),
                ("x-forwarded-for".into(), "10.0.0.2".into()),
            ],
            refresh: false,
        };
        assert_eq!(
            json_of(&connect_body(&request)),
            json!({
                "conn": "conn#7",
                "token": "t0k3n",
                "headers": {"cookie": "a=1; b=2", "x-forwarded-for": "10.0.0.1, 10.0.0.2"},
                "refresh": false,
            })
        );
    }

    #[test]
    fn channel_and_rpc_bodies_embed_the_json_as_it_is() {
        let subscribe = ChannelRequest {
            conn: conn(),
            user: "ann".into(),
            info: None,
            channel: Channel::new("news:1").unwrap(),
            data: None,
        };
        assert_eq!(
            channel_body(&subscribe).unwrap(),
            r#"{"conn":"conn#7","user":"ann","info":null,"channel":"news:1"}"#
        );
        let publish = ChannelRequest {
            info: Some(r#"{"plan": "pro"}"#.into()),
            data: Some("1.50".into()),
            ..subscribe
        };
        assert_eq!(
            channel_body(&publish).unwrap(),
            r#"{"conn":"conn#7","user":"ann","info":{"plan": "pro"},"channel":"news:1","data":1.50}"#
        );
        let rpc = RpcRequest {
            conn: conn(),
            user: "ann".into(),
            info: None,
            method: "whoami".into(),
            data: "null".into(),
        };
        assert_eq!(
            rpc_body(&rpc).unwrap(),
            r#"{"conn":"conn#7","user":"ann","info":null,"method":"whoami","data":null}"#
        );
    }

    #[test]
    fn a_connect_result_is_the_identity_with_grants_expiry_and_info() {
        let answer = br#"{"result":{"user":"ann","expires_at":61000,"channels":{"team:*":["subscribe"]},"info":{"plan": "pro"}}}"#;
        let identity = identity(answer, 1_000).unwrap().unwrap();
        assert_eq!(identity.user, "ann");
        assert_eq!(
            identity.expiry,
            Some(Expiry {
                unix_ms: 61_000,
                remaining: Duration::from_secs(60),
            })
        );
        assert_eq!(
            identity.grants,
            Grants::from_claim(&json!({"team:*": ["subscribe"]})).unwrap()
        );
        assert_eq!(identity.info.as_deref(), Some(r#"{"plan": "pro"}"#));
        let bare = identity_of(br#"{"result":{"user":"bob","channels":null}}"#);
        assert_eq!(bare, Ok(Identity::user("bob")));
    }

    fn identity_of(answer: &[u8]) -> Answer<Identity> {
        identity(answer, 1_000).unwrap()
    }

    #[test]
    fn an_expiry_at_or_before_now_refuses_the_token() {
        let expired = identity_of(br#"{"result":{"user":"ann","expires_at":1000}}"#);
        assert_eq!(
            expired,
            Err(Rejection::new(
                ErrorCode::Forbidden,
                "the token has expired"
            ))
        );
    }

    #[test]
    fn an_error_answer_is_the_rejection_and_an_unknown_code_internal() {
        assert_eq!(
            identity_of(br#"{"error":{"code":"FORBIDDEN","message":"who are you?"}}"#),
            Err(Rejection::new(ErrorCode::Forbidden, "who are you?"))
        );
        assert_eq!(
            data(br#"{"error":{"code":"BAD_REQUEST"}}"#).unwrap(),
            Err(Rejection::new(ErrorCode::BadRequest, NO_MESSAGE))
        );
        assert_eq!(
            data(br#"{"error":{"code":"TEAPOT","message":"short and stout"}}"#).unwrap(),
            Err(Rejection::new(ErrorCode::Internal, "short and stout"))
        );
    }

    #[test]
    fn data_is_kept_as_written_and_null_is_none() {
        assert_eq!(
            data(br#"{"result":{"data":{"a": [1, 2.50]}}}"#).unwrap(),
            Ok(Some(r#"{"a": [1, 2.50]}"#.to_owned()))
        );
        assert_eq!(data(br#"{"result":{}}"#).unwrap(), Ok(None));
        assert_eq!(data(br#"{"result":{"data":null}}"#).unwrap(), Ok(None));
    }

    #[test]
    fn anything_else_is_malformed() {
        for answer in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"result":null}"#,
            br#"{"result":[1]}"#,
            br#"{"result":{},"error":{"code":"FORBIDDEN"}}"#,
            br#"{"error":{"message":"no code"}}"#,
            br#"{"error":"FORBIDDEN"}"#,
        ] {
            assert!(data(answer).is_err(), "{}", String::from_utf8_lossy(answer));
        }
        for answer in [
            &br#"{"result":{}}"#[..],
            br#"{"result":{"user":7}}"#,
            br#"{"result":{"user":"ann","expires_at":-1}}"#,
            br#"{"result":{"user":"ann","expires_at":"soon"}}"#,
            br#"{"result":{"user":"ann","channels":{"team:*":["fly"]}}}"#,
        ] {
            assert!(
                identity(answer, 0).is_err(),
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
    }
}
