//! Target `envelope`: any text as a client message, a server message and
//! the body of every server API method.
//!
//! The contract (PROTOCOL.md sections 4, 5, 7 and 13): parsing never
//! panics; a message that parses encodes to text that parses back to the
//! same message, and keeps the fields it was sent with (an `rpc` keeps its
//! `data`, `null` when it had none, and has an `id` and a valid method); a
//! refusal carries exactly one of the codes a parser may give,
//! `INVALID_JSON` exactly when the text is not JSON, and echoes an `id`
//! only when the text carried that very id.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::envelope::{
    EnvelopeError, ErrorCode, encode_client_message, encode_server_message, parse_api_publish,
    parse_client_message, parse_server_message,
};
use crate::http::ApiMethod;
use crate::server::parse_api_call;

/// The message types a client may send.
pub(crate) const CLIENT_TYPES: &[&str] = &[
    "auth",
    "refresh",
    "ping",
    "subscribe",
    "unsubscribe",
    "publish",
    "presence",
    "rpc",
];

/// The message types a server may send.
const SERVER_TYPES: &[&str] = &[
    "auth_ack",
    "refreshed",
    "pong",
    "subscribed",
    "unsubscribed",
    "ack",
    "presence",
    "message",
    "join",
    "leave",
    "rpc_result",
    "error",
];

/// Runs the contract on `data`, read as UTF-8 (invalid sequences replaced:
/// the frame decoder refuses invalid text before any parser sees it).
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let shape = Shape::of(&text);
    check_client(&text, &shape);
    check_server(&text, &shape);
    check_api(&text, &shape);
    check_api_methods(&text, &shape);
}

/// What the text is, found independently of the parsers under test.
struct Shape {
    /// The text is one JSON value.
    json: bool,
    /// The text is a JSON object; `None` when it is not one (or repeats a
    /// key, which the parsers refuse but a map silently merges).
    object: Option<Map<String, Value>>,
    /// The text starts, after whitespace, with `{`.
    brace: bool,
    /// The object's `id` when it is a string, read without decoding the
    /// other fields: a lone surrogate escape elsewhere leaves `object`
    /// `None`, yet the parsers, which decode each field on its own, read
    /// the id.
    id: Option<String>,
}

impl Shape {
    fn of(text: &str) -> Shape {
        Shape {
            json: serde_json::from_str::<IgnoredAny>(text).is_ok(),
            object: serde_json::from_str::<Map<String, Value>>(text).ok(),
            brace: text.trim_start().starts_with('{'),
            id: serde_json::from_str::<BTreeMap<String, &RawValue>>(text)
                .ok()
                .and_then(|fields| fields.get("id").copied())
                .and_then(|id| serde_json::from_str(id.get()).ok()),
        }
    }

    /// The object's field `name`, if the text is an object that has it.
    fn field(&self, name: &str) -> Option<&Value> {
        self.object.as_ref().and_then(|object| object.get(name))
    }
}

fn check_client(text: &str, shape: &Shape) {
    match parse_client_message(text) {
        Ok(message) => {
            assert!(shape.json && shape.brace, "parsed a non-object: {text:?}");
            let encoded = encode_client_message(&message);
            let again = parse_client_message(&encoded)
                .unwrap_or_else(|error| panic!("re-parse of {encoded:?} failed: {error}"));
            assert_eq!(again, message, "round trip of {text:?} changed the message");
            assert_eq!(
                encode_client_message(&again),
                encoded,
                "encoding is unstable"
            );
            assert_fields_kept(
                shape,
                &encoded,
                &["type", "id", "token", "channel", "payload", "method"],
            );
            let kind = kind_of(&encoded);
            assert!(CLIENT_TYPES.contains(&kind.as_str()), "type {kind:?}");
            if kind == "rpc" {
                assert!(crate::is_valid_method(&field_of(&encoded, "method")));
                if shape.object.is_some() {
                    assert!(
                        shape.field("id").is_some_and(Value::is_string),
                        "an rpc without an id: {text:?}"
                    );
                    let sent = shape.field("data").unwrap_or(&Value::Null);
                    let kept: Map<String, Value> =
                        serde_json::from_str(&encoded).expect("encoded messages are objects");
                    assert_eq!(
                        Some(sent),
                        kept.get("data"),
                        "an rpc's data (null if absent)"
                    );
                }
            }
        }
        Err(error) => check_refusal(text, shape, &error, CLIENT_TYPES),
    }
}

fn check_server(text: &str, shape: &Shape) {
    match parse_server_message(text) {
        Ok(message) => {
            assert!(shape.json && shape.brace, "parsed a non-object: {text:?}");
            let encoded = encode_server_message(&message);
            let encoded = std::str::from_utf8(&encoded).expect("the encoder writes UTF-8");
            let again = parse_server_message(encoded)
                .unwrap_or_else(|error| panic!("re-parse of {encoded:?} failed: {error}"));
            assert_eq!(again, message, "round trip of {text:?} changed the message");
            let fields = [
                "type",
                "id",
                "channel",
                "payload",
                "user",
                "session",
                "epoch",
                "offset",
                "code",
                "message",
                "sender",
                "recovered",
                "data",
            ];
            assert_fields_kept(shape, encoded, &fields);
            let kind = kind_of(encoded);
            assert!(SERVER_TYPES.contains(&kind.as_str()), "type {kind:?}");
        }
        Err(error) => check_refusal(text, shape, &error, SERVER_TYPES),
    }
}

fn check_api(text: &str, shape: &Shape) {
    match parse_api_publish(text) {
        Ok(body) => {
            assert!(shape.json && shape.brace, "parsed a non-object: {text:?}");
            assert!(crate::envelope::Channel::new(body.channel.as_str()).is_ok());
            assert!(serde_json::from_str::<IgnoredAny>(body.payload.get()).is_ok());
            if shape.object.is_some() {
                let channel = shape.field("channel").and_then(Value::as_str);
                assert_eq!(channel, Some(body.channel.as_str()));
            }
        }
        Err(error) => {
            assert!(error.id.is_none(), "the API has no ids: {error:?}");
            check_refusal(text, shape, &error, &[]);
        }
    }
}

/// Every other method of the server API: a body it takes is a JSON object
/// (or, for `info`, nothing), and a refusal is one of the codes the API
/// answers `400` with, `INVALID_JSON` exactly when the text is not JSON.
fn check_api_methods(text: &str, shape: &Shape) {
    let config = crate::config::ServerConfig::dev();
    for method in ApiMethod::ALL {
        match parse_api_call(method, text.as_bytes(), &config) {
            Ok(_) => assert!(
                (shape.json && shape.brace)
                    || (method == ApiMethod::Info && text.trim().is_empty()),
                "{method:?} took a non-object: {text:?}"
            ),
            Err(error) => {
                use ErrorCode::*;
                assert!(error.id.is_none(), "the API has no ids: {error:?}");
                assert!(
                    matches!(
                        error.code,
                        InvalidJson | InvalidMessage | InvalidChannel | LimitExceeded
                    ),
                    "{method:?} {text:?}: {error:?}"
                );
                assert_eq!(
                    error.code == InvalidJson,
                    !shape.json,
                    "{text:?}: {error:?}"
                );
                assert!(!error.message.is_empty());
            }
        }
    }
}

/// A refusal's code is one a parser may give, and agrees with the text.
fn check_refusal(text: &str, shape: &Shape, error: &EnvelopeError, types: &[&str]) {
    use ErrorCode::*;
    assert!(
        matches!(
            error.code,
            InvalidJson | InvalidMessage | MissingType | UnknownType | InvalidChannel
        ),
        "{text:?}: a parser gave the server-side code {:?}",
        error.code
    );
    assert_eq!(
        error.code == InvalidJson,
        !shape.json,
        "{text:?}: INVALID_JSON must mean exactly 'not JSON', got {error:?}"
    );
    if shape.json && !shape.brace {
        assert_eq!(error.code, InvalidMessage, "{text:?}: a non-object");
        assert!(error.id.is_none());
    }
    match error.code {
        MissingType if shape.object.is_some() => {
            assert!(matches!(shape.field("type"), None | Some(Value::Null)));
        }
        UnknownType if shape.object.is_some() && !types.is_empty() => {
            let kind = shape.field("type").and_then(Value::as_str);
            assert!(kind.is_some_and(|kind| !types.contains(&kind)), "{text:?}");
        }
        _ => {}
    }
    if let Some(id) = &error.id {
        assert_eq!(shape.id.as_deref(), Some(id.as_str()), "{text:?}");
        assert!((1..=64).contains(&id.as_str().chars().count()));
    }
    assert!(
        !error.message.is_empty(),
        "{text:?}: an error without a text"
    );
    let reply = encode_server_message(&error.to_server_message());
    let reply = std::str::from_utf8(&reply).expect("the encoder writes UTF-8");
    let parsed = parse_server_message(reply)
        .unwrap_or_else(|e| panic!("the error reply {reply:?} does not parse: {e}"));
    assert_eq!(parsed, error.to_server_message());
}

/// Every field of `encoded` named in `fields` has the value the original
/// object gave it (unknown fields may be dropped, known ones never change).
fn assert_fields_kept(shape: &Shape, encoded: &str, fields: &[&str]) {
    let Some(original) = &shape.object else {
        return;
    };
    let encoded: Map<String, Value> =
        serde_json::from_str(encoded).expect("encoded messages are objects");
    for name in fields {
        if let Some(value) = encoded.get(*name) {
            assert_eq!(original.get(*name), Some(value), "field {name} changed");
        }
    }
}

/// The `type` of an encoded message.
fn kind_of(encoded: &str) -> String {
    field_of(encoded, "type")
}

/// The string field `name` of an encoded message.
fn field_of(encoded: &str, name: &str) -> String {
    let object: Map<String, Value> =
        serde_json::from_str(encoded).expect("encoded messages are objects");
    object[name]
        .as_str()
        .unwrap_or_else(|| panic!("{encoded} has no string {name}"))
        .to_owned()
}
