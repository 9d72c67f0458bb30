//! The node-wide bounds of a memory store's history, in virtual time: a
//! flood of publications to ever-new channels keeps the history within
//! `history_max_bytes` and `history_max_channels`, the oldest history goes
//! first, and recovery past it answers `recovered:false`.

use super::*;
use crate::envelope::encode_publication;
use crate::hub::history_index::entry_bytes;

/// What one API publication of `payload` at `offset` on `name` counts
/// against `history_max_bytes`.
fn entry(name: &str, payload: &str, offset: u64) -> usize {
    let frame = text_frame(&encode_publication(name, &raw(payload), None, offset));
    entry_bytes(&channel(name), frame.len())
}

fn memory(h: &Harness) -> &MemoryStore {
    match &h.hub.store {
        Store::Memory(memory) => memory,
        Store::External { .. } | Store::Shard { .. } => panic!("memory mode"),
    }
}

fn usage(channels: usize, bytes: usize) -> HistoryUsage {
    HistoryUsage { channels, bytes }
}

#[test]
fn a_flood_to_ever_new_channels_stays_within_the_channel_bound() {
    let one = entry("c00", "0", 1);
    let config = ServerConfig {
        history_max_channels: 5,
        history_max_bytes: 1000 * one,
        ..ServerConfig::dev()
    };
    let mut h = Harness::new(config);
    for n in 0..100 {
        h.api(&format!("c{n:02}"), "0");
        let now = h.hub.history_usage();
        assert!(now.channels <= 5 && now.bytes <= 5 * one, "{n}: {now:?}");
    }
    assert_eq!(h.hub.history_usage(), usage(5, 5 * one));
    assert_eq!(
        memory(&h).channel_count(),
        5,
        "a channel whose history went, with no subscriber, is forgotten"
    );
    h.take();

    let late = h.connect(1, "late");
    h.send(
        late,
        r#"{"type":"subscribe","channel":"c95","since":{"epoch":"e-96","offset":0}}"#,
    );
    let (offsets, verdict) = offsets_and_verdict(&h.take_for(late));
    assert_eq!(
        (offsets, verdict),
        (vec![1], Some(true)),
        "the newest history stays"
    );
    h.send(
        late,
        r#"{"type":"subscribe","channel":"c94","since":{"epoch":"e-95","offset":0}}"#,
    );
    assert_eq!(
        h.take_for(late)[0],
        server(
            r#"{"type":"subscribed","channel":"c94","epoch":"e-101","offset":0,"recovered":false}"#
        ),
        "the evicted channel was forgotten: a new epoch, and the gap is reported"
    );
}

#[test]
fn a_flood_to_ever_new_channels_stays_within_the_byte_bound_and_expires_to_nothing() {
    let one = entry("c00", "0", 1);
    let config = ServerConfig {
        history_max_channels: 1000,
        history_max_bytes: 3 * one + one / 2,
        history_ttl: Duration::from_secs(10),
        ..ServerConfig::dev()
    };
    let mut h = Harness::new(config);
    for n in 0..100 {
        h.api(&format!("c{n:02}"), "0");
        assert!(h.hub.history_usage().bytes <= 3 * one + one / 2, "{n}");
    }
    assert_eq!(h.hub.history_usage(), usage(3, 3 * one));
    assert_eq!(memory(&h).channel_count(), 3);
    assert_eq!(h.hub.poll_timeout(), Some(T0 + Duration::from_secs(10)));

    h.now = T0 + Duration::from_secs(10);
    h.hub.handle_timeout(h.now);
    assert_eq!(h.hub.history_usage(), usage(0, 0));
    assert_eq!(memory(&h).channel_count(), 0);
    assert_eq!(h.hub.poll_timeout(), None);
}

#[test]
fn the_oldest_history_goes_first_and_recovery_past_it_is_not_recovered() {
    let chat = |offset: u64| entry("chat", &offset.to_string(), offset);
    let config = ServerConfig {
        history_max_bytes: chat(1) + chat(2) + chat(3) + chat(4),
        ..ServerConfig::dev()
    };
    let mut h = Harness::new(config);
    let keeper = h.connect(1, "keeper");
    h.send(keeper, r#"{"type":"subscribe","channel":"chat"}"#);
    for n in 1..=4 {
        h.api("chat", &n.to_string());
    }
    h.take();
    assert_eq!(recover(&mut h, 2, "e-1", 0), (vec![1, 2, 3, 4], Some(true)));

    h.api("chat", "5");
    h.take();
    assert_eq!(
        recover(&mut h, 3, "e-1", 0),
        (vec![], Some(false)),
        "offset 1 was evicted"
    );
    assert_eq!(recover(&mut h, 4, "e-1", 1), (vec![2, 3, 4, 5], Some(true)));

    h.api("news", "1");
    h.take();
    assert_eq!(
        recover(&mut h, 5, "e-1", 1),
        (vec![], Some(false)),
        "another channel's publication evicts the node's oldest entry"
    );
    assert_eq!(recover(&mut h, 6, "e-1", 2), (vec![3, 4, 5], Some(true)));
    assert_eq!(
        h.hub.history_usage(),
        usage(2, chat(3) + chat(4) + chat(5) + entry("news", "1", 1))
    );
}

#[test]
fn a_channel_whose_history_was_evicted_keeps_its_epoch_while_subscribed() {
    let config = ServerConfig {
        history_max_channels: 1,
        ..ServerConfig::dev()
    };
    let mut h = Harness::new(config);
    let keeper = h.connect(1, "keeper");
    h.send(keeper, r#"{"type":"subscribe","channel":"chat"}"#);
    h.api("chat", "1");
    h.api("chat", "2");
    h.api("news", "1");
    h.take();
    assert_eq!(h.hub.history_usage().channels, 1);
    assert_eq!(
        recover(&mut h, 2, "e-1", 2),
        (vec![], Some(true)),
        "nothing was missed"
    );
    assert_eq!(recover(&mut h, 3, "e-1", 1), (vec![], Some(false)));
    assert_eq!(
        h.api("chat", "3"),
        ApiPublish::Published { offset: 3 },
        "the offsets go on"
    );
}

#[test]
fn beyond_idempotency_max_records_the_oldest_key_is_forgotten_first() {
    let config = ServerConfig {
        idempotency_max_records: 3,
        ..ServerConfig::dev()
    };
    let mut h = Harness::new(config);
    let alice = h.connect(1, "alice");
    let publish = |key: &str| {
        format!(
            r#"{{"type":"publish","id":"p","idempotency_key":"{key}","channel":"chat","payload":1}}"#
        )
    };
    let offset_of = |h: &mut Harness| match h.take_for(alice).as_slice() {
        [ServerMessage::Ack { offset, .. }] => *offset,
        other => panic!("one ack, got {other:?}"),
    };
    for key in ["k1", "k2", "k3", "k4"] {
        h.send(alice, &publish(key));
        offset_of(&mut h);
    }
    h.send(alice, &publish("k4"));
    assert_eq!(offset_of(&mut h), 4, "a kept key: the original offset");
    h.send(alice, &publish("k2"));
    assert_eq!(offset_of(&mut h), 2, "a kept key: the original offset");
    h.send(alice, &publish("k1"));
    assert_eq!(
        offset_of(&mut h),
        5,
        "the oldest key went to make room for k4: published again"
    );
}
