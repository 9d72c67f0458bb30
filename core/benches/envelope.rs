//! Envelope parse and serialise: the JSON work done once per message on
//! each side of a connection, with a 100-byte payload.
//!
//! Time per iteration is the cost of one message.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::value::RawValue;
use tether_core::{
    Channel, ClientMessage, RequestId, ServerMessage, encode_client_message, encode_publication,
    encode_server_message, parse_client_message, parse_server_message,
};

fn payload() -> Box<RawValue> {
    let text = format!(
        r#"{{"n":1999,"t":123456789012,"pad":"{}"}}"#,
        "x".repeat(64)
    );
    assert_eq!(text.len(), 100);
    RawValue::from_string(text).unwrap()
}

fn envelope(c: &mut Criterion) {
    let payload = payload();
    let publish = ClientMessage::Publish {
        id: Some(RequestId::new("1999").unwrap()),
        idempotency_key: None,
        channel: Channel::new("room:lobby").unwrap(),
        payload: payload.clone(),
    };
    let publish_text = encode_client_message(&publish);
    let message_text = String::from_utf8(encode_publication(
        "room:lobby",
        &payload,
        Some("alice"),
        42,
    ))
    .unwrap();
    let ack = ServerMessage::Ack {
        id: RequestId::new("1999").unwrap(),
        offset: 42,
    };

    let mut group = c.benchmark_group("envelope");
    group.bench_function("parse_client_publish", |b| {
        b.iter(|| parse_client_message(black_box(&publish_text)).unwrap());
    });
    group.bench_function("encode_client_publish", |b| {
        b.iter(|| encode_client_message(black_box(&publish)));
    });
    group.bench_function("parse_server_message", |b| {
        b.iter(|| parse_server_message(black_box(&message_text)).unwrap());
    });
    group.bench_function("encode_publication", |b| {
        b.iter(|| encode_publication("room:lobby", black_box(&payload), Some("alice"), 42));
    });
    group.bench_function("encode_server_ack", |b| {
        b.iter(|| encode_server_message(black_box(&ack)));
    });
    group.finish();
}

criterion_group!(benches, envelope);
criterion_main!(benches);
