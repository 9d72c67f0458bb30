//! PROTOCOL.md section 8: a consumer that stops reading is dropped from and
//! then closed, while the others keep receiving everything; on a
//! `latest_only` channel it is kept up to date instead.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::json;
use tether_core::ServerConfig;
use tungstenite::Message;

use crate::harness::{Runtime, config, dev_auth};
use tether_testkit::metrics::{metric, metrics};
use tether_testkit::ws::{End, READ_TIMEOUT, Ws, read_to_end};

/// Publications between two checks of the node's counters. Their bytes
/// (200 KB) stay below `high_water` (256 KiB, the default), so a consumer
/// that keeps reading never has more than that outstanding and never
/// loses a publication.
const BATCH: u64 = 50;

/// The size of each publication's padding.
const PADDING: usize = 4000;

/// Publications after which the slow consumer's queue must have passed
/// `high_water`: 20 MB, far more than the socket buffers between the node and a client that
/// does not read can hold (on Linux a few MB at most over loopback).
const MAX_PUBLISHED: u64 = 5_000;

/// The last publication of the test, which ends the fast reader.
const END: &str = r#""end""#;

/// How a connection that was read to its end ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// A close frame with this code.
    Closed(u16),
    /// The TCP connection was cut without a close frame.
    Cut,
}

/// Reads `ws` to its end, giving the offsets of the channel messages on
/// the way (presence deltas aside) and how it ended.
fn drain(ws: &mut Ws) -> (Vec<u64>, Ending) {
    let mut offsets = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => {
                let message: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                if message["type"] == "message" {
                    offsets.push(message["offset"].as_u64().expect("an offset"));
                }
            }
            Ok(Message::Close(frame)) => {
                ws.finish_close();
                let code = frame.map_or(1005, |frame| u16::from(frame.code));
                return (offsets, Ending::Closed(code));
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(error))
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the slow consumer was neither closed nor cut: {error}")
            }
            Err(_) => return (offsets, Ending::Cut),
        }
    }
}

fn a_slow_consumer_is_closed_while_a_fast_one_gets_everything(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            hard_limit: 1024 * 1024,
            slow_timeout: Duration::from_millis(300),
            ..config()
        },
        dev_auth(),
    );
    let mut slow = Ws::auth(server.addr, "slow");
    slow.subscribe("firehose");
    let mut fast = Ws::auth(server.addr, "fast");
    fast.subscribe("firehose");
    let payload = json!({ "pad": "x".repeat(PADDING) }).to_string();

    let (seen, offsets) = mpsc::channel();
    let reader = thread::spawn(move || {
        loop {
            let message = fast.recv();
            if message["type"] == "leave" {
                assert_eq!(message["user"], "slow", "{message}");
                continue;
            }
            assert_eq!(message["type"], "message", "{message}");
            let _ = seen.send(message["offset"].as_u64().expect("an offset"));
            if message["payload"] == "end" {
                return;
            }
        }
    });
    let mut fast_seen = Vec::new();
    // Publishes `count` times, then waits until the fast consumer has
    // received the last one.
    let mut publish = |count: u64, payload: &str| -> u64 {
        let mut last = 0;
        for _ in 0..count {
            last = server.publish("firehose", payload);
        }
        while fast_seen.last() < Some(&last) {
            let offset = offsets
                .recv_timeout(READ_TIMEOUT)
                .expect("the fast consumer keeps receiving");
            fast_seen.push(offset);
        }
        last
    };

    // The slow consumer never reads: once the socket buffers are full its
    // queue passes high_water (publications to it are dropped from then
    // on; never to the fast one, which is never a batch behind), and stays
    // there until it is closed.
    let mut published = 0;
    while metric(server.addr, "tether_messages_dropped_total") == 0 {
        assert!(
            published < MAX_PUBLISHED,
            "the slow consumer's queue never passed high_water in {published} publications"
        );
        published = publish(BATCH, &payload);
    }
    // The stream goes on until the node closes the slow one: a consumer is
    // closed for losing messages through its slow spell, and without traffic
    // it would lose none (PROTOCOL.md section 11).
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    while metric(server.addr, "tether_slow_consumer_closes_total") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow consumer was not closed while the stream went on"
        );
        publish(BATCH, &payload);
    }
    assert_eq!(metric(server.addr, "tether_slow_consumer_closes_total"), 1);
    publish(BATCH, &payload);
    let last = publish(1, END);
    reader.join().expect("the fast reader");
    assert_eq!(fast_seen, (1..=last).collect::<Vec<_>>());

    let (slow_seen, ending) = drain(&mut slow);
    assert!(
        matches!(ending, Ending::Closed(4008) | Ending::Cut),
        "{ending:?}"
    );
    assert!(
        slow_seen.windows(2).all(|pair| pair[0] < pair[1]),
        "offsets out of order: {slow_seen:?}"
    );
    // The node dropped and then closed rather than buffer everything: the
    // slow consumer got what the socket buffers and one high_water held.
    assert!(
        (slow_seen.len() as u64) < last,
        "the slow consumer got all {last} publications"
    );
    let counters = metrics(server.addr);
    assert!(
        counters["tether_messages_dropped_total"] >= 1,
        "{counters:?}"
    );
    assert_eq!(counters["tether_slow_consumer_closes_total"], 1);
    assert_eq!(counters["tether_heartbeat_timeouts_total"], 0);
}

fn a_latest_only_channel_keeps_the_newest_publication_for_a_slow_reader(runtime: Runtime) {
    const PUBLISHED: u64 = 2_000;
    let server = runtime.start(
        ServerConfig {
            latest_only: vec!["ticker:*".into()],
            ..config()
        },
        dev_auth(),
    );
    let mut reader = Ws::auth(server.addr, "reader");
    reader.subscribe("ticker:btc");
    let payload = json!({ "pad": "x".repeat(PADDING) }).to_string();
    // 8 MB, far more than the socket buffers hold while the reader is not
    // reading: the rest waits in the queue, one publication at a time.
    for _ in 1..PUBLISHED {
        server.publish("ticker:btc", &payload);
    }
    assert_eq!(server.publish("ticker:btc", r#""newest""#), PUBLISHED);

    let mut offsets = Vec::new();
    loop {
        let message = reader.recv_type("message");
        offsets.push(message["offset"].as_u64().expect("an offset"));
        if message["payload"] == "newest" {
            break;
        }
    }
    assert_eq!(offsets.last(), Some(&PUBLISHED));
    assert!(
        offsets.windows(2).all(|pair| pair[0] < pair[1]),
        "offsets out of order: {offsets:?}"
    );
    assert!(
        (offsets.len() as u64) < PUBLISHED,
        "nothing was coalesced: {} publications received",
        offsets.len()
    );
    reader.send_json(json!({"type": "ping", "id": "p"}));
    assert_eq!(reader.recv(), json!({"type": "pong", "id": "p"}));
    assert_eq!(metric(server.addr, "tether_slow_consumer_closes_total"), 0);
}

fn a_slow_consumer_is_cut_with_a_reset(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            slow_timeout: Duration::from_millis(300),
            // Longer than any read of the test: a node that waited for it
            // before letting go of the socket would fail the test.
            close_timeout: Duration::from_secs(60),
            ..config()
        },
        dev_auth(),
    );
    let mut slow = Ws::auth(server.addr, "slow");
    slow.subscribe("firehose");
    let payload = json!({ "pad": "x".repeat(PADDING) }).to_string();
    // The slow consumer never reads while the stream goes on, until the
    // node gives up on it.
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    while metric(server.addr, "tether_slow_consumer_closes_total") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow consumer was not cut while the stream went on"
        );
        for _ in 0..BATCH {
            server.publish("firehose", &payload);
        }
    }
    // What the socket buffers held arrives, then the reset: the node
    // aborted the connection instead of leaving the kernel to deliver a
    // close frame behind a full buffer (PROTOCOL.md section 11).
    let (_, end) = read_to_end(slow.raw());
    assert_eq!(end, End::Reset);
}

runtime_tests! {
    a_slow_consumer_is_closed_while_a_fast_one_gets_everything => smol, blocking, tokio;
    a_latest_only_channel_keeps_the_newest_publication_for_a_slow_reader => smol, blocking, tokio;
    a_slow_consumer_is_cut_with_a_reset => smol, blocking, tokio;
}
