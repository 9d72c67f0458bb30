//! One connection handling one publish, through the node machine
//! ([`tether_core::Server`]): the masked frame's bytes go in with
//! `handle_read`, are decoded, parsed, rate-limited and handed to the hub,
//! which sequences the publication and stores it in the channel's history;
//! then the driver drains events and takes what is to be written.
//!
//! The channel has no subscriber, so this is the fixed cost of a publish
//! before any fan-out (see `fanout` for the cost per subscriber).
//! `with_id` also answers with an `ack`, and each iteration uses a fresh
//! id and a fresh idempotency key (as the client library sends them), so
//! the idempotency record is written and never short-cuts the publish.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tether_core::wire::masked_text_frame;
use tether_core::{ConnId, Decision, Identity, Instant, Output, Server, ServerConfig};

const T0: Instant = Instant::from_millis(1_000);
const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether.v1\r\n\r\n";

/// A node with one authenticated connection, its handshake replies taken.
fn authenticated() -> (Server, ConnId) {
    let config = ServerConfig {
        rate_limit: u32::MAX,
        rate_burst: u32::MAX,
        ..ServerConfig::dev()
    };
    let mut server = Server::new(config, 1).expect("a valid config");
    let conn = server.accept(T0);
    server.handle_read(T0, conn, UPGRADE);
    server.handle_read(
        T0,
        conn,
        &masked_text_frame(br#"{"type":"auth","token":"alice"}"#, MASK),
    );
    drain(&mut server, conn, &mut Vec::new());
    (server, conn)
}

/// What an adapter does after every input: outputs (every token accepted
/// as its user), then frames, each batch reported written.
fn drain(server: &mut Server, conn: ConnId, out: &mut Vec<Bytes>) -> usize {
    loop {
        match server.poll_output() {
            Output::Timeout(_) => break,
            Output::Decide(Decision::Authenticate { request, .. }) => {
                let identity = Some(Identity::user(request.token));
                server.handle_auth_verdict(T0, request.conn, identity);
            }
            output => {
                black_box(output);
            }
        }
    }
    let mut moved = 0;
    loop {
        let n = server.poll_transmit(conn, 64 * 1024, out);
        if n == 0 {
            return moved;
        }
        server.handle_written(conn, n);
        moved += n;
        out.clear();
    }
}

fn publish_frame(id: Option<u64>) -> Bytes {
    let payload = format!(
        r#"{{"n":1999,"t":123456789012,"pad":"{}"}}"#,
        "x".repeat(64)
    );
    let id = id.map_or_else(String::new, |id| {
        format!(r#""id":"{id}","idempotency_key":"k{id}","#)
    });
    let text = format!(r#"{{"type":"publish",{id}"channel":"room:lobby","payload":{payload}}}"#);
    masked_text_frame(text.as_bytes(), MASK)
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish");
    let (mut server, conn) = authenticated();
    let frame = publish_frame(None);
    let mut out = Vec::new();
    group.bench_function("no_id", |b| {
        b.iter(|| {
            server.handle_read(T0, conn, black_box(&frame));
            drain(&mut server, conn, &mut out)
        });
    });

    let (mut server, conn) = authenticated();
    let mut next_id = 0;
    group.bench_function("with_id", |b| {
        b.iter_batched(
            || {
                next_id += 1;
                publish_frame(Some(next_id))
            },
            |frame| {
                server.handle_read(T0, conn, &frame);
                let written = drain(&mut server, conn, &mut out);
                assert!(written > 0, "no ack");
                written
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, publish);
criterion_main!(benches);
