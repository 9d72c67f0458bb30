//! The router in front of a backplane, in virtual time: what the node's
//! one link carries, and what each shard's queue holds.

use bytes::Bytes;

use super::*;
use crate::hub::{BACKPLANE_BACKOFF, Control, Member, NodeStats, Ticket};

const T0: Instant = Instant::from_millis(1_000);

fn channel(name: &str) -> Channel {
    Channel::new(name).expect("a valid channel")
}

fn config() -> ServerConfig {
    ServerConfig::dev()
}

/// A router for `shards` shards whose link came up at `T0`, and whose
/// shards restated that they have no members; what it sent is taken.
fn linked(shards: usize) -> Router {
    let mut router = Router::with_backplane(&config(), 1, shards);
    router.handle_store_event(T0, StoreEvent::Up);
    for shard in 0..shards {
        events(&mut router, shard);
        router.handle_request(T0, shard, rejoin(Vec::new()));
    }
    assert_eq!(kinds(&out(&mut router)), ["connect", "lease", "rejoin"]);
    router
}

fn events(router: &mut Router, shard: usize) -> Vec<StoreEvent> {
    let mut events = Vec::new();
    router.take_events(shard, &mut events);
    events
}

fn out(router: &mut Router) -> Vec<StoreRequest> {
    std::iter::from_fn(|| router.poll_store_request()).collect()
}

fn follow(name: &str) -> StoreRequest {
    StoreRequest::Follow {
        channel: channel(name),
    }
}

fn unfollow(name: &str) -> StoreRequest {
    StoreRequest::Unfollow {
        channel: channel(name),
    }
}

fn subscribe(ticket: u64, name: &str) -> StoreRequest {
    StoreRequest::Subscribe {
        ticket: Ticket(ticket),
        channel: channel(name),
        since: None,
    }
}

fn member(name: &str, user: &str, connections: u32) -> Member {
    Member {
        channel: channel(name),
        user: user.to_owned(),
        connections,
    }
}

fn rejoin(members: Vec<Member>) -> StoreRequest {
    StoreRequest::Rejoin { members }
}

fn lease_of(connections: u64) -> StoreRequest {
    StoreRequest::Lease {
        lease: config().presence_ttl / 2,
        node: NodeStats {
            connections,
            ..NodeStats::default()
        },
    }
}

/// The kind of each request, for comparing sequences.
fn kinds(requests: &[StoreRequest]) -> Vec<&'static str> {
    requests
        .iter()
        .map(|request| match request {
            StoreRequest::Connect => "connect",
            StoreRequest::Follow { .. } => "follow",
            StoreRequest::Unfollow { .. } => "unfollow",
            StoreRequest::Lease { .. } => "lease",
            StoreRequest::Rejoin { .. } => "rejoin",
            StoreRequest::Subscribe { .. } => "subscribe",
            StoreRequest::Join { .. } => "join",
            StoreRequest::Leave { .. } => "leave",
            StoreRequest::CatchUp { .. } => "catch-up",
            _ => "other",
        })
        .collect()
}

#[test]
fn the_node_connects_once_and_every_shard_hears_up_and_down() {
    let mut router = Router::with_backplane(&config(), 1, 3);
    assert!(!router.is_store_up());
    assert_eq!(kinds(&out(&mut router)), ["connect"]);
    router.handle_request(T0, 1, StoreRequest::Connect);
    assert!(
        out(&mut router).is_empty(),
        "a shard's connect is the node's"
    );

    router.handle_store_event(T0, StoreEvent::Up);
    assert!(router.is_store_up());
    for shard in 0..3 {
        assert!(matches!(events(&mut router, shard)[..], [StoreEvent::Up]));
    }

    router.handle_store_event(T0, StoreEvent::Down);
    router.handle_store_event(T0, StoreEvent::Down);
    assert_eq!(router.store_failures(), 1);
    for shard in 0..3 {
        assert!(
            matches!(events(&mut router, shard)[..], [StoreEvent::Down]),
            "once per failure"
        );
    }
    let retry = router.poll_timeout().expect("a retry");
    let base = BACKPLANE_BACKOFF.base;
    assert!(retry >= T0 + base && retry <= T0 + base + BACKPLANE_BACKOFF.jitter);
    router.handle_timeout(retry - std::time::Duration::from_millis(1));
    assert!(out(&mut router).is_empty());
    router.handle_timeout(retry);
    assert_eq!(kinds(&out(&mut router)), ["connect"]);
}

#[test]
fn answers_go_back_to_the_asking_shard_with_its_own_ticket() {
    let mut router = linked(2);
    router.handle_request(T0, 0, subscribe(7, "news"));
    router.handle_request(T0, 1, subscribe(7, "news"));
    let tickets: Vec<Ticket> = out(&mut router)
        .into_iter()
        .map(|request| match request {
            StoreRequest::Subscribe { ticket, .. } => ticket,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(tickets.len(), 2);
    assert_ne!(tickets[0], tickets[1], "the shards' tickets never meet");

    let subscribed = |ticket| StoreEvent::Subscribed {
        ticket,
        channel: channel("news"),
        epoch: "e".to_owned(),
        offset: 4,
        recovered: None,
        replay: Vec::new(),
        users: Vec::new(),
        presence_version: 0,
    };
    router.handle_store_event(T0, subscribed(tickets[1]));
    assert!(events(&mut router, 0).is_empty());
    assert!(matches!(
        events(&mut router, 1)[..],
        [StoreEvent::Subscribed {
            ticket: Ticket(7),
            offset: 4,
            ..
        }]
    ));
    router.handle_store_event(T0, subscribed(tickets[1]));
    assert!(
        events(&mut router, 1).is_empty(),
        "a ticket is forgotten once answered"
    );

    let refused = StoreEvent::Refused(Refusal::Ticket(tickets[0]));
    router.handle_store_event(T0, refused);
    assert!(matches!(
        events(&mut router, 0)[..],
        [StoreEvent::Refused(Refusal::Ticket(Ticket(7)))]
    ));
    assert_eq!(router.store_refusals(), 1);
}

#[test]
fn a_refusal_of_no_one_s_request_reaches_every_shard_and_counts_once() {
    let mut router = linked(2);
    router.handle_store_event(T0, StoreEvent::Refused(Refusal::Unanswered));
    for shard in 0..2 {
        assert!(matches!(
            events(&mut router, shard)[..],
            [StoreEvent::Refused(Refusal::Unanswered)]
        ));
    }
    assert_eq!(router.store_refusals(), 1, "once per node");
}

#[test]
fn a_request_in_flight_when_the_link_fails_is_never_answered_to_a_shard() {
    let mut router = linked(2);
    router.handle_request(T0, 0, subscribe(1, "news"));
    let Some(StoreRequest::Subscribe { ticket, .. }) = router.poll_store_request() else {
        panic!("the subscribe leaves");
    };
    router.handle_store_event(T0, StoreEvent::Down);
    router.handle_request(T0, 1, subscribe(2, "news"));
    assert!(out(&mut router).is_empty(), "nothing leaves while down");
    router.handle_store_event(T0, StoreEvent::Up);
    events(&mut router, 0);
    router.handle_store_event(T0, StoreEvent::ControlSent { ticket });
    assert!(events(&mut router, 0).is_empty());
}

#[test]
fn the_node_follows_a_channel_from_its_first_shard_to_its_last() {
    let mut router = linked(2);
    router.handle_request(T0, 0, follow("news"));
    router.handle_request(T0, 1, follow("news"));
    router.handle_request(T0, 1, follow("news"));
    assert_eq!(kinds(&out(&mut router)), ["follow"]);
    assert_eq!(router.channel_count(), 1);

    router.handle_request(T0, 0, unfollow("news"));
    assert!(out(&mut router).is_empty());
    router.handle_request(T0, 1, unfollow("news"));
    assert_eq!(kinds(&out(&mut router)), ["unfollow"]);
    router.handle_request(T0, 1, unfollow("news"));
    assert!(out(&mut router).is_empty());
    assert_eq!(router.channel_count(), 0);
}

#[test]
fn a_publication_from_the_backplane_reaches_each_following_shard_once_with_one_frame() {
    let mut router = linked(3);
    router.handle_request(T0, 0, follow("news"));
    router.handle_request(T0, 2, follow("news"));
    let frame = Bytes::from_static(b"frame");
    router.handle_store_event(
        T0,
        StoreEvent::Publication {
            channel: channel("news"),
            epoch: "e".to_owned(),
            offset: 9,
            frame: frame.clone(),
        },
    );
    for shard in [0, 2] {
        let events = events(&mut router, shard);
        let [
            StoreEvent::Publication {
                offset: 9,
                frame: got,
                ..
            },
        ] = &events[..]
        else {
            panic!("one publication for shard {shard}: {events:?}");
        };
        assert_eq!(got.as_ptr(), frame.as_ptr(), "the same bytes");
    }
    assert!(events(&mut router, 1).is_empty());
}

#[test]
fn control_orders_from_the_backplane_reach_every_shard() {
    let mut router = linked(2);
    let control = Control::Disconnect {
        user: "alice".to_owned(),
        code: 4000,
        reason: "bye".to_owned(),
    };
    router.handle_store_event(T0, StoreEvent::Control(control));
    for shard in 0..2 {
        assert!(matches!(
            events(&mut router, shard)[..],
            [StoreEvent::Control(Control::Disconnect { .. })]
        ));
    }
}

#[test]
fn catch_ups_are_answered_to_the_shards_that_asked_in_order() {
    let mut router = linked(2);
    let since = crate::envelope::Position {
        epoch: "e".to_owned(),
        offset: 1,
    };
    for shard in [1, 0] {
        let catch_up = StoreRequest::CatchUp {
            channel: channel("news"),
            since: since.clone(),
        };
        router.handle_request(T0, shard, catch_up);
    }
    assert_eq!(kinds(&out(&mut router)), ["catch-up", "catch-up"]);
    let caught_up = StoreEvent::CaughtUp {
        channel: channel("news"),
        since,
        epoch: "e".to_owned(),
        offset: 3,
        recovered: true,
        replay: Vec::new(),
    };
    router.handle_store_event(T0, caught_up);
    assert!(events(&mut router, 0).is_empty());
    assert!(matches!(
        events(&mut router, 1)[..],
        [StoreEvent::CaughtUp { .. }]
    ));
    let refused = StoreEvent::Refused(Refusal::CatchUp(channel("news")));
    router.handle_store_event(T0, refused);
    assert!(matches!(
        events(&mut router, 0)[..],
        [StoreEvent::Refused(Refusal::CatchUp(_))]
    ));
}

#[test]
fn after_the_link_comes_up_the_node_leases_once_and_rejoins_with_every_shards_members() {
    let mut router = Router::with_backplane(&config(), 1, 2);
    out(&mut router);
    router.handle_store_event(T0, StoreEvent::Up);
    // Each shard follows, renews (only its figures count) and restates.
    router.handle_request(T0, 0, follow("news"));
    router.handle_request(T0, 0, lease_of(2));
    router.handle_request(T0, 0, rejoin(vec![member("news", "alice", 1)]));
    assert_eq!(
        kinds(&out(&mut router)),
        ["follow"],
        "the node waits for every shard's members"
    );
    // What a shard that restated asks waits for the node's rejoin.
    let join = StoreRequest::Join {
        channel: channel("news"),
        user: "carol".to_owned(),
    };
    router.handle_request(T0, 0, join);
    let snapshot = StoreRequest::Presence {
        ticket: Ticket(3),
        channel: channel("news"),
    };
    router.handle_request(T0, 0, snapshot);
    assert!(out(&mut router).is_empty());
    router.handle_request(T0, 1, follow("news"));
    router.handle_request(T0, 1, lease_of(3));
    router.handle_request(
        T0,
        1,
        rejoin(vec![member("news", "alice", 1), member("news", "bob", 2)]),
    );
    let sent = out(&mut router);
    assert_eq!(kinds(&sent), ["lease", "rejoin", "join", "other"]);
    let StoreRequest::Lease { lease, node } = &sent[0] else {
        unreachable!()
    };
    assert_eq!(*lease, config().presence_ttl / 2);
    assert_eq!((node.connections, node.channels), (5, 1));
    let StoreRequest::Rejoin { members } = &sent[1] else {
        unreachable!()
    };
    assert_eq!(
        members,
        &[member("news", "alice", 2), member("news", "bob", 2)]
    );

    // The held join counts in the node's members from then on: a shard
    // restating on its own has the node restate them.
    router.handle_request(T0, 1, rejoin(vec![member("news", "bob", 2)]));
    let sent = out(&mut router);
    let [StoreRequest::Rejoin { members }] = &sent[..] else {
        panic!("one rejoin: {sent:?}")
    };
    assert_eq!(
        members,
        &[
            member("news", "alice", 1),
            member("news", "bob", 2),
            member("news", "carol", 1)
        ]
    );
}

#[test]
fn requests_held_for_the_node_s_rejoin_are_dropped_when_the_link_fails() {
    let mut router = Router::with_backplane(&config(), 1, 2);
    out(&mut router);
    router.handle_store_event(T0, StoreEvent::Up);
    router.handle_request(T0, 0, rejoin(Vec::new()));
    router.handle_request(T0, 0, subscribe(1, "news"));
    router.handle_store_event(T0, StoreEvent::Down);
    router.handle_store_event(T0, StoreEvent::Up);
    router.handle_request(T0, 0, rejoin(Vec::new()));
    router.handle_request(T0, 1, rejoin(Vec::new()));
    assert_eq!(kinds(&out(&mut router)), ["lease", "rejoin"]);
}

#[test]
fn the_lease_is_renewed_once_per_node_at_its_instant() {
    let mut router = linked(2);
    let every = config().presence_ttl / 4;
    router.handle_request(T0, 0, lease_of(1));
    router.handle_request(T0, 1, lease_of(1));
    assert!(
        out(&mut router).is_empty(),
        "the shards' leases are the node's"
    );
    assert_eq!(router.poll_timeout(), Some(T0 + every));
    router.handle_timeout(T0 + every - std::time::Duration::from_millis(1));
    assert!(out(&mut router).is_empty());
    router.handle_timeout(T0 + every);
    let sent = out(&mut router);
    assert_eq!(kinds(&sent), ["lease"]);
    let StoreRequest::Lease { node, .. } = &sent[0] else {
        unreachable!()
    };
    assert_eq!(node.connections, 2);
    assert_eq!(router.poll_timeout(), Some(T0 + every + every));
}

#[test]
fn a_lapsed_lease_has_every_shard_restate_and_the_node_rejoin_once() {
    let mut router = linked(2);
    router.handle_store_event(T0, StoreEvent::Leased { lapsed: true });
    for shard in 0..2 {
        assert!(matches!(
            events(&mut router, shard)[..],
            [StoreEvent::Leased { lapsed: true }]
        ));
    }
    router.handle_request(T0, 1, rejoin(vec![member("news", "bob", 1)]));
    assert!(out(&mut router).is_empty());
    router.handle_request(T0, 0, rejoin(vec![member("news", "alice", 1)]));
    assert_eq!(kinds(&out(&mut router)), ["rejoin"]);

    // A shard restating on its own (after a refusal) has the node restate
    // its current members at once.
    router.handle_request(
        T0,
        0,
        StoreRequest::Leave {
            channel: channel("news"),
            user: "alice".to_owned(),
        },
    );
    router.handle_request(T0, 1, rejoin(vec![member("news", "bob", 1)]));
    let sent = out(&mut router);
    assert_eq!(kinds(&sent), ["leave", "rejoin"]);
    let StoreRequest::Rejoin { members } = &sent[1] else {
        unreachable!()
    };
    assert_eq!(members, &[member("news", "bob", 1)]);
}

#[test]
fn what_shards_send_while_the_link_is_down_stays_on_the_node() {
    let mut router = linked(2);
    router.handle_request(T0, 0, follow("news"));
    out(&mut router);
    router.handle_store_event(T0, StoreEvent::Down);
    assert_eq!(router.channel_count(), 0, "the store forgot the follows");
    router.handle_request(T0, 0, follow("news"));
    router.handle_request(T0, 0, rejoin(Vec::new()));
    router.handle_request(
        T0,
        1,
        StoreRequest::Join {
            channel: channel("news"),
            user: "alice".to_owned(),
        },
    );
    assert!(out(&mut router).is_empty());
    router.handle_store_event(T0, StoreEvent::Up);
    router.handle_request(T0, 0, follow("news"));
    assert_eq!(kinds(&out(&mut router)), ["follow"], "followed again");
}
