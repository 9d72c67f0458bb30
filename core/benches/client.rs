//! The client session's reconnect path and the backoff schedule.
//!
//! `reconnect/full_cycle`: a session subscribed to one channel loses its
//! connection; then, in virtual time, it waits out the backoff, dials, sends
//! the upgrade request, takes the `101`, sends `auth`, takes `auth_ack`,
//! re-subscribes with `since`, and takes `subscribed`: every step of a
//! reconnect that is the session's own work, without sockets.
//!
//! `backoff/*`: the delay before one retry, from the policy alone and from
//! the stateful schedule.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use tether_core::wire::accept_response;
use tether_core::wire::text_frame;
use tether_core::{
    Backoff, Channel, ClientConfig, ClientOutput as Output, ClientSession, Instant, RetrySchedule,
    Transmit,
};

const T0: Instant = Instant::from_millis(1_000);

/// Drains the session: everything it wants written, in order, and its
/// next deadline.
fn drain(session: &mut ClientSession) -> (Vec<Bytes>, Option<Instant>) {
    let mut out = Vec::new();
    loop {
        match session.poll_output() {
            Output::Transmit(Transmit::Write(bytes)) => out.push(bytes),
            // The bench's session has a fixed token: none is ever wanted.
            Output::Transmit(Transmit::Dial { .. } | Transmit::Close) | Output::TokenWanted => {}
            Output::Event(event) => {
                black_box(event);
            }
            Output::Timeout(deadline) => return (out, deadline),
        }
    }
}

/// Everything the session wants written, in order.
fn writes(session: &mut ClientSession) -> Vec<Bytes> {
    drain(session).0
}

fn websocket_key(request: &[u8]) -> String {
    let text = std::str::from_utf8(request).unwrap();
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap();
    line.to_owned()
}

/// Plays the server's side of one connection: from the dial to the
/// `subscribed` that answers the re-subscription.
fn connect(now: Instant, session: &mut ClientSession) {
    writes(session);
    session.handle_connected(now, 0);
    let request = writes(session).concat();
    session.handle_read(
        now,
        &accept_response(&websocket_key(&request), Some("tether.v1"), None),
    );
    writes(session);
    let ack = br#"{"type":"auth_ack","user":"alice","session":"s1","heartbeat_ms":30000,"max_payload":65536}"#;
    session.handle_read(now, &text_frame(ack));
    writes(session);
    let subscribed = br#"{"type":"subscribed","channel":"room:lobby","epoch":"e1","offset":42}"#;
    session.handle_read(now, &text_frame(subscribed));
    writes(session);
}

fn reconnect(c: &mut Criterion) {
    let mut config = ClientConfig::new("localhost:8080", "alice");
    config.seed = 7;
    let mut session = ClientSession::new(T0, config);
    session
        .subscribe(Channel::new("room:lobby").unwrap())
        .unwrap();
    connect(T0, &mut session);
    assert!(session.is_connected());
    let mut now = T0;

    let mut group = c.benchmark_group("reconnect");
    group.bench_function("full_cycle", |b| {
        b.iter(|| {
            session.handle_transport_closed(now);
            now = drain(&mut session).1.expect("a reconnect timer");
            session.handle_timeout(now);
            connect(now, &mut session);
            debug_assert!(session.is_connected());
        });
    });
    group.finish();
    assert!(session.is_connected());
}

fn backoff(c: &mut Criterion) {
    let policy = Backoff::default();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut group = c.benchmark_group("backoff");
    let mut attempt = 0u32;
    group.bench_function("delay", |b| {
        b.iter(|| {
            attempt = (attempt + 1) % 12;
            policy.delay(black_box(attempt), &mut rng)
        });
    });
    let mut schedule = RetrySchedule::new(Backoff::default(), 7);
    group.bench_function("schedule_next_delay", |b| {
        b.iter(|| {
            if schedule.attempts() == 12 {
                schedule.reset();
            }
            schedule.next_delay()
        });
    });
    group.finish();
}

criterion_group!(benches, reconnect, backoff);
criterion_main!(benches);
