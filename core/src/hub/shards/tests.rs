//! The router in virtual time: requests from several shards, and what each
//! shard's queue holds afterwards.

use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::*;
use crate::envelope::Position;
use crate::hub::{Control, Ticket};

const T0: Instant = Instant::from_millis(1_000);

fn channel(name: &str) -> Channel {
    Channel::new(name).expect("a valid channel")
}

fn router(shards: usize) -> Router {
    Router::new(&ServerConfig::dev(), 1, shards)
}

fn publish(ticket: Option<u64>, name: &str, payload: &str) -> StoreRequest {
    StoreRequest::Publish {
        ticket: ticket.map(Ticket),
        channel: channel(name),
        payload: RawValue::from_string(payload.to_owned()).expect("JSON"),
        sender: Some("alice".to_owned()),
        idempotency_key: None,
    }
}

fn follow(name: &str) -> StoreRequest {
    StoreRequest::Follow {
        channel: channel(name),
    }
}

fn events(router: &mut Router, shard: usize) -> Vec<StoreEvent> {
    let mut events = Vec::new();
    router.take_events(shard, &mut events);
    events
}

/// The offset and frame of each publication among `events`.
fn publications(events: &[StoreEvent]) -> Vec<(u64, Bytes)> {
    events
        .iter()
        .filter_map(|event| match event {
            StoreEvent::Publication { offset, frame, .. } => Some((*offset, frame.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_publication_reaches_each_following_shard_once_with_the_same_frame_and_offset() {
    let mut router = router(3);
    router.handle_request(T0, 0, follow("news"));
    router.handle_request(T0, 2, follow("news"));
    router.handle_request(T0, 1, publish(None, "news", "1"));
    router.handle_request(T0, 1, publish(None, "news", "2"));

    let first = publications(&events(&mut router, 0));
    let third = publications(&events(&mut router, 2));
    assert_eq!(
        first.iter().map(|(offset, _)| *offset).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(first, third);
    for ((_, a), (_, b)) in first.iter().zip(&third) {
        assert_eq!(a.as_ptr(), b.as_ptr(), "one frame per node, shared");
    }
    assert!(
        events(&mut router, 1).is_empty(),
        "the publisher follows nothing"
    );
}

#[test]
fn answers_go_to_the_shard_that_asked_only() {
    let mut router = router(2);
    router.handle_request(T0, 0, follow("news"));
    router.handle_request(T0, 1, follow("news"));
    router.handle_request(T0, 1, publish(Some(7), "news", "1"));
    let subscribe = StoreRequest::Subscribe {
        ticket: Ticket(7),
        channel: channel("news"),
        since: None,
    };
    router.handle_request(T0, 0, subscribe);

    let asked = events(&mut router, 1);
    assert!(matches!(
        asked.as_slice(),
        [
            StoreEvent::Publication { offset: 1, .. },
            StoreEvent::Published {
                ticket: Ticket(7),
                offset: 1
            }
        ]
    ));
    let subscribed = events(&mut router, 0);
    assert!(matches!(
        subscribed.as_slice(),
        [
            StoreEvent::Publication { offset: 1, .. },
            StoreEvent::Subscribed {
                ticket: Ticket(7),
                offset: 1,
                ..
            }
        ]
    ));
}

#[test]
fn presence_changes_go_to_followers_and_control_to_every_shard() {
    let mut router = router(3);
    router.handle_request(T0, 1, follow("room"));
    let join = |user: &str| StoreRequest::Join {
        channel: channel("room"),
        user: user.to_owned(),
    };
    router.handle_request(T0, 0, join("alice"));
    router.handle_request(T0, 2, join("alice"));
    router.handle_request(
        T0,
        2,
        StoreRequest::Leave {
            channel: channel("room"),
            user: "alice".to_owned(),
        },
    );
    let told = events(&mut router, 1);
    assert!(
        matches!(told.as_slice(), [StoreEvent::Joined { version: 1, .. }]),
        "the user's first connection only: {told:?}"
    );
    assert!(events(&mut router, 0).is_empty());

    let control = Control::Disconnect {
        user: "alice".to_owned(),
        code: 4000,
        reason: "bye".to_owned(),
    };
    let request = StoreRequest::Control {
        ticket: Ticket(3),
        control: control.clone(),
    };
    router.handle_request(T0, 2, request);
    for shard in 0..3 {
        let got = events(&mut router, shard);
        assert!(
            matches!(&got[0], StoreEvent::Control(sent) if *sent == control),
            "{got:?}"
        );
        assert_eq!(got.len(), if shard == 2 { 2 } else { 1 });
    }
}

#[test]
fn a_shard_is_named_once_until_its_queue_is_drained() {
    let mut router = router(2);
    router.handle_request(T0, 0, follow("news"));
    router.handle_request(T0, 1, follow("news"));
    router.handle_request(T0, 0, publish(None, "news", "1"));
    router.handle_request(T0, 0, publish(None, "news", "2"));
    assert_eq!(router.poll_woken(), Some(0));
    assert_eq!(router.poll_woken(), Some(1));
    assert_eq!(router.poll_woken(), None);

    router.handle_request(T0, 0, publish(None, "news", "3"));
    assert_eq!(router.poll_woken(), None, "shard 1 was not drained yet");
    assert_eq!(events(&mut router, 1).len(), 3);
    assert_eq!(events(&mut router, 0).len(), 3);
    router.handle_request(T0, 0, publish(None, "news", "4"));
    assert_eq!(router.poll_woken(), Some(0));
    assert_eq!(router.poll_woken(), Some(1));
}

#[test]
fn an_unfollowing_shard_hears_nothing_more_and_an_unknown_shard_is_ignored() {
    let mut router = router(2);
    router.handle_request(T0, 0, follow("news"));
    router.handle_request(T0, 1, follow("news"));
    router.handle_request(
        T0,
        1,
        StoreRequest::Unfollow {
            channel: channel("news"),
        },
    );
    router.handle_request(T0, 5, publish(Some(1), "news", "1"));
    router.handle_request(T0, 0, publish(None, "news", "2"));
    assert_eq!(router.channel_count(), 1);
    assert!(events(&mut router, 1).is_empty());
    let offsets: Vec<u64> = publications(&events(&mut router, 0))
        .into_iter()
        .map(|(offset, _)| offset)
        .collect();
    assert_eq!(offsets, [1], "the unknown shard published nothing");

    router.handle_request(
        T0,
        0,
        StoreRequest::Unfollow {
            channel: channel("news"),
        },
    );
    assert_eq!(router.channel_count(), 0);
}

#[test]
fn a_user_is_counted_once_per_node_whatever_shard_admits_it() {
    let mut router = router(2);
    assert!(router.admit("carol", 2));
    assert!(router.admit("carol", 2));
    assert!(!router.admit("carol", 2), "the third, on any shard");
    assert!(router.admit("dave", 2));
    router.depart(T0, &Arc::from("carol"));
    assert!(router.admit("carol", 2));
}

#[test]
fn new_channels_are_counted_for_the_node_and_a_followed_channel_is_not_new() {
    let mut router = router(2);
    assert!(router.admit("carol", 10));
    assert!(!router.holds(&channel("a")));
    router.handle_request(T0, 1, follow("a"));
    assert!(router.holds(&channel("a")), "subscribed on another shard");
    assert!(router.create_channel(T0, "carol", 1));
    assert!(!router.create_channel(T0, "carol", 1));
    assert!(router.create_channel(T0 + Duration::from_secs(60), "carol", 1));
}

#[test]
fn history_expires_once_at_its_exact_instant() {
    let config = ServerConfig {
        history_ttl: Duration::from_secs(10),
        ..ServerConfig::dev()
    };
    let mut router = Router::new(&config, 1, 2);
    router.handle_request(T0, 1, publish(None, "news", "1"));
    assert_eq!(router.history_usage().channels, 1);
    let due = T0 + Duration::from_secs(10);
    assert_eq!(router.poll_timeout(), Some(due));

    router.handle_timeout(due - Duration::from_millis(1));
    assert_eq!(router.history_usage().channels, 1, "not yet");
    router.handle_timeout(due);
    assert_eq!(router.history_usage().channels, 0);
    assert_eq!(router.poll_timeout(), None);

    let catch_up = StoreRequest::CatchUp {
        channel: channel("news"),
        since: Position {
            epoch: "gone".to_owned(),
            offset: 0,
        },
    };
    router.handle_request(due, 0, catch_up);
    assert!(matches!(
        events(&mut router, 0).as_slice(),
        [StoreEvent::CaughtUp {
            recovered: false,
            ..
        }]
    ));
}
