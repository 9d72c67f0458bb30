//! Fan-out cost inside the core: one 100-byte publication to a channel of
//! 10,000 subscribers.
//!
//! `into_queues` delivers into pre-reserved per-connection queues, as a
//! server node would; `hub_only` hands the frames to an outbox that only
//! counts them, isolating the hub's own share. Throughput is deliveries per
//! second; time per iteration divided by 10,000 is the cost of one delivery.

use std::cell::RefCell;
use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::value::RawValue;
use tether_core::internals::CoalesceKey;
use tether_core::internals::Hub;
use tether_core::internals::Outbox;
use tether_core::{Channel, ClientMessage, ConnId, Grants, Instant, ServerConfig};

const SUBSCRIBERS: u64 = 10_000;
/// The publishing connection.
fn publisher() -> ConnId {
    ConnId::new(0)
}

/// One outbound queue per connection, indexed by connection id, reserved up
/// front so that delivering never allocates.
struct Queues {
    queues: Vec<VecDeque<Bytes>>,
}

impl Queues {
    fn new(connections: u64) -> Queues {
        Queues {
            queues: (0..=connections)
                .map(|_| VecDeque::with_capacity(16))
                .collect(),
        }
    }

    fn clear(&mut self) {
        self.queues.iter_mut().for_each(VecDeque::clear);
    }
}

impl Outbox for Queues {
    fn send_control(&mut self, conn: ConnId, frame: Bytes) {
        self.queues[conn.number() as usize].push_back(frame);
    }

    fn send_publication(&mut self, conn: ConnId, frame: &Bytes, _latest_only: Option<CoalesceKey>) {
        self.queues[conn.number() as usize].push_back(frame.clone());
    }
}

/// An outbox that keeps nothing, to measure the hub alone.
#[derive(Default)]
struct Counter {
    frames: u64,
}

impl Outbox for Counter {
    fn send_control(&mut self, _conn: ConnId, _frame: Bytes) {
        self.frames += 1;
    }

    fn send_publication(
        &mut self,
        _conn: ConnId,
        _frame: &Bytes,
        _latest_only: Option<CoalesceKey>,
    ) {
        self.frames += 1;
    }
}

/// A hub with `SUBSCRIBERS` users in `channel` and a publisher outside it.
fn hub_with_subscribers(channel: &Channel, outbox: &mut impl Outbox) -> Hub {
    let mut hub = Hub::new(&ServerConfig::dev(), "bench");
    for n in 1..=SUBSCRIBERS {
        let conn = ConnId::new(n);
        hub.handle_authenticated(conn, &format!("user{n}"), Grants::default());
        let subscribe = ClientMessage::Subscribe {
            id: None,
            channel: channel.clone(),
            since: None,
        };
        hub.handle_message(Instant::ZERO, conn, subscribe, outbox);
    }
    hub.handle_authenticated(publisher(), "publisher", Grants::default());
    hub
}

fn fanout(c: &mut Criterion) {
    let channel = Channel::new("room:lobby").unwrap();
    let payload = RawValue::from_string(format!("\"{}\"", "x".repeat(98))).unwrap();
    assert_eq!(payload.get().len(), 100);
    let publish = || ClientMessage::Publish {
        id: None,
        idempotency_key: None,
        channel: channel.clone(),
        payload: payload.clone(),
    };

    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(SUBSCRIBERS));

    let mut queues = Queues::new(SUBSCRIBERS);
    let mut hub = hub_with_subscribers(&channel, &mut queues);
    let queues = RefCell::new(queues);
    group.bench_function("into_queues", |b| {
        b.iter_batched(
            || {
                queues.borrow_mut().clear();
                publish()
            },
            |message| {
                hub.handle_message(
                    Instant::ZERO,
                    publisher(),
                    message,
                    &mut *queues.borrow_mut(),
                )
            },
            BatchSize::PerIteration,
        );
    });

    let mut counter = Counter::default();
    let mut hub = hub_with_subscribers(&channel, &mut counter);
    group.bench_function("hub_only", |b| {
        b.iter_batched(
            publish,
            |message| hub.handle_message(Instant::ZERO, publisher(), message, &mut counter),
            BatchSize::PerIteration,
        );
    });
    assert!(counter.frames > SUBSCRIBERS);
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
