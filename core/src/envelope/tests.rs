use std::fmt;

use proptest::prelude::*;
use serde_json::value::RawValue;

use super::*;

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
        let error = parse_client_message(&format!(r#"{{"type":"ping","id":{id}}}"#)).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidMessage, "{id}");
        assert_eq!(error.id, None);
    }
    let sixty_four_chars = "é".repeat(64);
    let message =
        parse_client_message(&format!(r#"{{"type":"ping","id":"{sixty_four_chars}"}}"#)).unwrap();
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
    let ClientMessage::Subscribe { since, .. } = parse_client_message(cases[2].0).unwrap() else {
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
        data: None,
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
        "rpc",
        "rpc_result",
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
        "type", "id", "channel", "payload", "since", "token", "epoch", "offset", "users", "code",
        "method", "data",
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
    // A server's type among them, which no client message has.
    let types = [crate::fuzzing::envelope::CLIENT_TYPES, &["pong"]].concat();
    let keys = [
        "type",
        "id",
        "channel",
        "payload",
        "since",
        "token",
        "idempotency_key",
        "method",
        "data",
        "extra",
    ];
    let value = one_of(vec![
        prop::sample::select(types.clone())
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
        ("[a-z0-9-]{0,12}", any::<u64>()).prop_map(|(epoch, offset)| Position { epoch, offset }),
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
        (request_id(), method(), payload())
            .prop_map(|(id, method, data)| ClientMessage::Rpc { id, method, data })
            .boxed(),
    ])
}

/// A valid `rpc` method name.
fn method() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_:.@/-]{1,64}"
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
        (
            user,
            ".*",
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(user, session, heartbeat_ms, max_payload, expires_at)| {
                ServerMessage::AuthAck {
                    user,
                    session,
                    heartbeat_ms,
                    max_payload,
                    expires_at,
                }
            })
            .boxed(),
        (id(), proptest::option::of(any::<u64>()))
            .prop_map(|(id, expires_at)| ServerMessage::Refreshed { id, expires_at })
            .boxed(),
        id().prop_map(|id| ServerMessage::Pong { id }).boxed(),
        (
            id(),
            channel(),
            ".*",
            any::<u64>(),
            proptest::option::of(any::<bool>()),
            proptest::option::of(payload()),
        )
            .prop_map(
                |(id, channel, epoch, offset, recovered, data)| ServerMessage::Subscribed {
                    id,
                    channel,
                    epoch,
                    offset,
                    recovered,
                    data,
                },
            )
            .boxed(),
        (request_id(), payload())
            .prop_map(|(id, data)| ServerMessage::RpcResult { id, data })
            .boxed(),
        (id(), channel(), any::<bool>())
            .prop_map(|(id, channel, forbidden)| ServerMessage::Unsubscribed {
                id,
                channel,
                reason: forbidden.then_some(UnsubscribeReason::Forbidden),
            })
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
