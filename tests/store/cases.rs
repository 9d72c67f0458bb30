//! The cases: what every store promises behind the seam, as PROTOCOL.md
//! sections 4 to 6 and the seam's own documentation say.

use std::time::Duration;

use serde_json::json;
use serde_json::value::RawValue;
use tether_core::{
    Channel, ChannelPattern, Control, IdempotencyKey, NodeInfo, NodeStats, Position, ServerConfig,
    StoreEvent, StoreRequest, Ticket,
};

use crate::Store;
use crate::seam::{Seam, at, message};

store_cases! {
    offsets_count_up_per_channel_in_one_epoch => memory, model, redis;
    a_subscription_replays_what_followed_its_position => memory, model, redis;
    the_history_keeps_the_last_history_size_publications => memory, model, redis;
    a_publication_older_than_history_ttl_is_not_replayed => memory, model;
    an_idempotency_key_is_recognised_within_its_publishers_scope => memory, model, redis;
    an_idempotency_key_is_forgotten_after_its_window => memory, model;
    presence_changes_and_snapshots_carry_versions_that_order_them => memory, model, redis;
    presence_stats_and_active_channels_count_what_is_present => memory, model, redis;
    a_history_read_answers_after_since_within_limit_in_either_order => memory, model, redis;
    an_order_reaches_every_node_and_its_answer_says_it_went_out => memory, model, redis;
    info_lists_the_leased_node_with_the_figures_it_gave => memory, model, redis;
}

fn channel(name: &str) -> Channel {
    Channel::new(name).expect("a valid name")
}

/// A publish on `on` from `sender` (`None`: the HTTP API) with
/// idempotency key `key`, answered under `ticket`; the payload is the
/// ticket's number.
fn publish(ticket: u64, on: &str, sender: Option<&str>, key: Option<&str>) -> StoreRequest {
    StoreRequest::Publish {
        ticket: Some(Ticket::new(ticket)),
        channel: channel(on),
        payload: RawValue::from_string(ticket.to_string()).expect("JSON"),
        sender: sender.map(str::to_owned),
        idempotency_key: key.map(|key| IdempotencyKey::new(key).expect("a valid key")),
    }
}

fn follow(on: &str) -> StoreRequest {
    StoreRequest::Follow {
        channel: channel(on),
    }
}

/// The offset the answer to `ticket` gives.
fn published<S: Store>(seam: &mut Seam<S>, ticket: u64) -> u64 {
    seam.take(|event| match event {
        StoreEvent::Published { ticket: t, offset } if *t == Ticket::new(ticket) => Some(*offset),
        _ => None,
    })
}

/// The epoch and offset of the next publication on `on`.
fn publication<S: Store>(seam: &mut Seam<S>, on: &str) -> (String, u64) {
    seam.take(|event| match event {
        StoreEvent::Publication {
            channel,
            epoch,
            offset,
            frame,
        } if channel.as_str() == on => {
            assert_eq!(message(frame)["offset"], *offset, "the frame's offset");
            Some((epoch.clone(), *offset))
        }
        _ => None,
    })
}

/// What a subscription is answered: its epoch, offset, `recovered` and
/// the replayed messages.
struct Subscribed {
    epoch: String,
    offset: u64,
    recovered: Option<bool>,
    replay: Vec<serde_json::Value>,
}

fn subscribe<S: Store>(
    seam: &mut Seam<S>,
    seconds: u64,
    ticket: u64,
    on: &str,
    since: Option<(&str, u64)>,
) -> Subscribed {
    seam.ask(
        at(seconds),
        StoreRequest::Subscribe {
            ticket: Ticket::new(ticket),
            channel: channel(on),
            since: since.map(|(epoch, offset)| Position {
                epoch: epoch.to_owned(),
                offset,
            }),
        },
    );
    seam.take(|event| match event {
        StoreEvent::Subscribed {
            ticket: t,
            channel,
            epoch,
            offset,
            recovered,
            replay,
            ..
        } if *t == Ticket::new(ticket) => {
            assert_eq!(channel.as_str(), on);
            Some(Subscribed {
                epoch: epoch.clone(),
                offset: *offset,
                recovered: *recovered,
                replay: replay.iter().map(message).collect(),
            })
        }
        _ => None,
    })
}

/// The message of a publication on `chat` by `alice` whose payload is its
/// ticket's number.
fn chat_message(offset: u64, ticket: u64) -> serde_json::Value {
    json!({
        "type": "message",
        "channel": "chat",
        "payload": ticket,
        "sender": "alice",
        "offset": offset,
    })
}

/// Publishes `count` times on `chat` as `alice` at `seconds`, tickets
/// from `first`, and gives the channel's epoch.
fn publish_chat<S: Store>(seam: &mut Seam<S>, seconds: u64, first: u64, count: u64) -> String {
    let mut epoch = None;
    for ticket in first..first + count {
        seam.ask(at(seconds), publish(ticket, "chat", Some("alice"), None));
        let (this, _) = publication(seam, "chat");
        assert!(epoch.is_none_or(|epoch| epoch == this), "one epoch");
        epoch = Some(this);
    }
    epoch.expect("at least one publication")
}

fn offsets_count_up_per_channel_in_one_epoch<S: Store>() {
    let mut seam = Seam::<S>::start(&ServerConfig::dev());
    seam.ask(at(0), follow("chat"));
    seam.ask(at(0), follow("news"));
    for ticket in 1..=3 {
        seam.ask(at(0), publish(ticket, "chat", Some("alice"), None));
    }
    for ticket in 4..=5 {
        seam.ask(at(0), publish(ticket, "news", None, None));
    }
    let answers: Vec<u64> = (1..=5).map(|ticket| published(&mut seam, ticket)).collect();
    assert_eq!(answers, [1, 2, 3, 1, 2], "each channel counts on its own");
    let chat: Vec<_> = (0..3).map(|_| publication(&mut seam, "chat")).collect();
    let news: Vec<_> = (0..2).map(|_| publication(&mut seam, "news")).collect();
    let epoch = chat[0].0.clone();
    assert!(!epoch.is_empty());
    assert_eq!(
        chat,
        [(epoch.clone(), 1), (epoch.clone(), 2), (epoch.clone(), 3)]
    );
    assert_eq!(news[0].0, news[1].0, "one epoch per channel");
    assert_eq!(
        news.iter().map(|(_, offset)| *offset).collect::<Vec<_>>(),
        [1, 2]
    );

    let subscribed = subscribe(&mut seam, 0, 6, "chat", None);
    assert_eq!((subscribed.epoch, subscribed.offset), (epoch, 3));
    assert_eq!(subscribed.recovered, None, "no position, no recovery");
    assert!(subscribed.replay.is_empty());
}

fn a_subscription_replays_what_followed_its_position<S: Store>() {
    let mut seam = Seam::<S>::start(&ServerConfig::dev());
    seam.ask(at(0), follow("chat"));
    let epoch = publish_chat(&mut seam, 0, 1, 3);

    let after_one = subscribe(&mut seam, 0, 10, "chat", Some((&epoch, 1)));
    assert_eq!((after_one.offset, after_one.recovered), (3, Some(true)));
    assert_eq!(after_one.replay, [chat_message(2, 2), chat_message(3, 3)]);

    let current = subscribe(&mut seam, 0, 11, "chat", Some((&epoch, 3)));
    assert_eq!(current.recovered, Some(true), "nothing was missed");
    assert!(current.replay.is_empty());

    let other_epoch = subscribe(&mut seam, 0, 12, "chat", Some(("another-epoch", 1)));
    assert_eq!(other_epoch.recovered, Some(false));
    assert!(other_epoch.replay.is_empty());
    assert_eq!(other_epoch.epoch, epoch, "the channel keeps its epoch");

    let future = subscribe(&mut seam, 0, 13, "chat", Some((&epoch, 9)));
    assert_eq!(future.recovered, Some(false), "an offset never given");

    seam.ask(
        at(0),
        StoreRequest::CatchUp {
            channel: channel("chat"),
            since: Position {
                epoch: epoch.clone(),
                offset: 1,
            },
        },
    );
    let (offset, recovered, replay) = seam.take(|event| match event {
        StoreEvent::CaughtUp {
            epoch: now,
            offset,
            recovered,
            replay,
            ..
        } => {
            assert_eq!(*now, epoch);
            Some((
                *offset,
                *recovered,
                replay.iter().map(message).collect::<Vec<_>>(),
            ))
        }
        _ => None,
    });
    assert_eq!((offset, recovered), (3, true));
    assert_eq!(replay, [chat_message(2, 2), chat_message(3, 3)]);
}

fn the_history_keeps_the_last_history_size_publications<S: Store>() {
    let mut seam = Seam::<S>::start(&ServerConfig {
        history_size: 3,
        ..ServerConfig::dev()
    });
    seam.ask(at(0), follow("chat"));
    let epoch = publish_chat(&mut seam, 0, 1, 5);

    let gap = subscribe(&mut seam, 0, 10, "chat", Some((&epoch, 1)));
    assert_eq!(
        (gap.offset, gap.recovered),
        (5, Some(false)),
        "offset 2 is no longer kept"
    );
    assert!(gap.replay.is_empty());

    let covered = subscribe(&mut seam, 0, 11, "chat", Some((&epoch, 2)));
    assert_eq!(covered.recovered, Some(true));
    assert_eq!(
        covered.replay,
        [chat_message(3, 3), chat_message(4, 4), chat_message(5, 5)]
    );
}

/// Runs only where the store's clock is the request's `now`.
fn a_publication_older_than_history_ttl_is_not_replayed<S: Store>() {
    let mut seam = Seam::<S>::start(&ServerConfig {
        history_ttl: Duration::from_secs(60),
        ..ServerConfig::dev()
    });
    seam.ask(at(0), follow("chat"));
    let epoch = publish_chat(&mut seam, 0, 1, 2);
    assert_eq!(publish_chat(&mut seam, 30, 3, 1), epoch);

    let expired = subscribe(&mut seam, 61, 10, "chat", Some((&epoch, 1)));
    assert_eq!(expired.recovered, Some(false), "offset 2 expired at 60 s");
    assert!(expired.replay.is_empty());

    let kept = subscribe(&mut seam, 61, 11, "chat", Some((&epoch, 2)));
    assert_eq!(kept.recovered, Some(true));
    assert_eq!(kept.replay, [chat_message(3, 3)]);
}

fn an_idempotency_key_is_recognised_within_its_publishers_scope<S: Store>() {
    let mut seam = Seam::<S>::start(&ServerConfig::dev());
    seam.ask(at(0), follow("chat"));
    let requests = [
        (Some("alice"), Some("k1")),
        (Some("alice"), Some("k1")),
        (Some("bob"), Some("k1")),
        (None, Some("k1")),
        (None, Some("k1")),
        (Some("alice"), None),
        (Some("alice"), None),
    ];
    for (ticket, (sender, key)) in (1..).zip(requests) {
        seam.ask(at(0), publish(ticket, "chat", sender, key));
    }
    let answers: Vec<u64> = (1..=7).map(|ticket| published(&mut seam, ticket)).collect();
    assert_eq!(
        answers,
        [1, 1, 2, 3, 3, 4, 5],
        "a retry in the same scope gets the original offset; another \
         user, the API and publishes without a key publish anew"
    );
    // The last request publishes, so its publication comes after all the
    // others: a retry that published would show up before it.
    let offsets: Vec<u64> = (0..5).map(|_| publication(&mut seam, "chat").1).collect();
    assert_eq!(offsets, [1, 2, 3, 4, 5], "retries publish nothing");
}

/// Runs only where the store's clock is the request's `now`.
fn an_idempotency_key_is_forgotten_after_its_window<S: Store>() {
    let mut seam = Seam::<S>::start(&ServerConfig {
        idempotency_window: Duration::from_secs(10),
        ..ServerConfig::dev()
    });
    seam.ask(at(0), follow("chat"));
    seam.ask(at(0), publish(1, "chat", Some("alice"), Some("k1")));
    assert_eq!(published(&mut seam, 1), 1);
    seam.ask(at(9), publish(2, "chat", Some("alice"), Some("k1")));
    assert_eq!(published(&mut seam, 2), 1, "within the window: a retry");
    seam.ask(at(11), publish(3, "chat", Some("alice"), Some("k1")));
    assert_eq!(published(&mut seam, 3), 2, "past the window: a new one");
    let offsets: Vec<u64> = (0..2).map(|_| publication(&mut seam, "chat").1).collect();
    assert_eq!(offsets, [1, 2]);
}

fn member(join: bool, user: &str) -> StoreRequest {
    let (channel, user) = (channel("chat"), user.to_owned());
    if join {
        StoreRequest::Join { channel, user }
    } else {
        StoreRequest::Leave { channel, user }
    }
}

/// The next presence change on `chat`: its version, user and whether it
/// is a join.
fn change<S: Store>(seam: &mut Seam<S>) -> (u64, String, bool) {
    seam.take(|event| match event {
        StoreEvent::Joined {
            user,
            version,
            channel,
        } if channel.as_str() == "chat" => Some((*version, user.clone(), true)),
        StoreEvent::Left {
            user,
            version,
            channel,
        } if channel.as_str() == "chat" => Some((*version, user.clone(), false)),
        _ => None,
    })
}

fn presence_changes_and_snapshots_carry_versions_that_order_them<S: Store>() {
    let mut seam = Seam::<S>::start(&ServerConfig::dev());
    seam.ask(at(0), follow("chat"));
    seam.ask(at(0), member(true, "ann"));
    let (ann, user, joined) = change(&mut seam);
    assert_eq!((user.as_str(), joined), ("ann", true));
    // Ann's second connection is no change; Bob's first is.
    seam.ask(at(0), member(true, "ann"));
    seam.ask(at(0), member(true, "bob user"));
    let (bob, user, joined) = change(&mut seam);
    assert_eq!((user.as_str(), joined), ("bob user", true));
    assert!(bob > ann, "versions grow: {ann} then {bob}");

    seam.ask(
        at(0),
        StoreRequest::Subscribe {
            ticket: Ticket::new(1),
            channel: channel("chat"),
            since: None,
        },
    );
    let (users, version) = seam.take(|event| match event {
        StoreEvent::Subscribed {
            users,
            presence_version,
            ..
        } => Some((users.clone(), *presence_version)),
        _ => None,
    });
    assert_eq!(
        (users, version),
        (vec!["ann".to_owned(), "bob user".to_owned()], bob)
    );

    // Ann has two connections: only the second leave is a change.
    seam.ask(at(0), member(false, "ann"));
    seam.ask(at(0), member(false, "ann"));
    let (gone, user, joined) = change(&mut seam);
    assert_eq!((gone, user.as_str(), joined), (bob + 1, "ann", false));
    seam.ask(
        at(0),
        StoreRequest::Presence {
            ticket: Ticket::new(2),
            channel: channel("chat"),
        },
    );
    let (users, version) = seam.take(|event| match event {
        StoreEvent::Presence { users, version, .. } => Some((users.clone(), *version)),
        _ => None,
    });
    assert_eq!((users, version), (vec!["bob user".to_owned()], gone));
}

/// A connection of `user` joins (`true`) or leaves `on`.
fn member_of(on: &str, user: &str, join: bool) -> StoreRequest {
    let (channel, user) = (channel(on), user.to_owned());
    if join {
        StoreRequest::Join { channel, user }
    } else {
        StoreRequest::Leave { channel, user }
    }
}

/// The users and connections in `on`.
fn presence_stats<S: Store>(seam: &mut Seam<S>, ticket: u64, on: &str) -> (u64, u64) {
    seam.ask(
        at(0),
        StoreRequest::PresenceStats {
            ticket: Ticket::new(ticket),
            channel: channel(on),
        },
    );
    seam.take(|event| match event {
        StoreEvent::PresenceStats {
            ticket: t,
            users,
            connections,
        } if *t == Ticket::new(ticket) => Some((*users, *connections)),
        _ => None,
    })
}

/// The active channels `pattern` matches, at most `limit`, and the total.
fn active<S: Store>(
    seam: &mut Seam<S>,
    ticket: u64,
    pattern: Option<&str>,
    limit: usize,
) -> (Vec<String>, u64) {
    seam.ask(
        at(0),
        StoreRequest::Channels {
            ticket: Ticket::new(ticket),
            pattern: pattern.map(|p| ChannelPattern::new(p).expect("a pattern")),
            limit,
        },
    );
    seam.take(|event| match event {
        StoreEvent::Channels {
            ticket: t,
            channels,
            total,
        } if *t == Ticket::new(ticket) => {
            let names = channels.iter().map(|c| c.as_str().to_owned()).collect();
            Some((names, *total))
        }
        _ => None,
    })
}

fn presence_stats_and_active_channels_count_what_is_present<S: Store>() {
    let mut seam = Seam::<S>::start(&ServerConfig::dev());
    for (on, user) in [
        ("chat", "ann"),
        ("chat", "ann"),
        ("chat", "bob"),
        ("news.1", "ann"),
        ("news-2", "cat"),
    ] {
        seam.ask(at(0), member_of(on, user, true));
    }
    assert_eq!(presence_stats(&mut seam, 1, "chat"), (2, 3));
    assert_eq!(presence_stats(&mut seam, 2, "empty"), (0, 0));
    let all = ["chat", "news-2", "news.1"].map(str::to_owned);
    assert_eq!(active(&mut seam, 3, None, 10), (all.to_vec(), 3));
    assert_eq!(active(&mut seam, 4, None, 1), (vec![all[0].clone()], 3));
    assert_eq!(
        active(&mut seam, 5, Some("news.*"), 10),
        (vec!["news.1".to_owned()], 1),
        "a '.' in a pattern is no wildcard"
    );
    assert_eq!(
        active(&mut seam, 6, Some("*s*"), 10),
        (all[1..].to_vec(), 2)
    );
    seam.ask(at(0), member_of("news.1", "ann", false));
    assert_eq!(
        active(&mut seam, 7, Some("news*"), 10),
        (vec!["news-2".to_owned()], 1),
        "a channel whose last user left is not active"
    );
}

/// The offsets of the history read `ticket` of `chat`, and its epoch and
/// latest offset.
fn history<S: Store>(
    seam: &mut Seam<S>,
    ticket: u64,
    since: Option<(&str, u64)>,
    limit: usize,
    reverse: bool,
) -> (String, u64, Vec<u64>) {
    seam.ask(
        at(0),
        StoreRequest::History {
            ticket: Ticket::new(ticket),
            channel: channel("chat"),
            since: since.map(|(epoch, offset)| Position {
                epoch: epoch.to_owned(),
                offset,
            }),
            limit,
            reverse,
        },
    );
    seam.take(|event| match event {
        StoreEvent::History {
            ticket: t,
            epoch,
            offset,
            publications,
        } if *t == Ticket::new(ticket) => {
            let offsets = publications
                .iter()
                .map(|text| {
                    let message: serde_json::Value = serde_json::from_slice(text).expect("JSON");
                    assert_eq!(message["type"], "message");
                    message["offset"].as_u64().expect("an offset")
                })
                .collect();
            Some((epoch.clone(), *offset, offsets))
        }
        _ => None,
    })
}

fn a_history_read_answers_after_since_within_limit_in_either_order<S: Store>() {
    let config = ServerConfig {
        history_size: 3,
        ..ServerConfig::dev()
    };
    let mut seam = Seam::<S>::start(&config);
    seam.ask(at(0), follow("chat"));
    let epoch = publish_chat(&mut seam, 0, 1, 4);
    let read = |offsets: &[u64]| (epoch.clone(), 4, offsets.to_vec());
    assert_eq!(history(&mut seam, 10, None, 10, false), read(&[2, 3, 4]));
    assert_eq!(history(&mut seam, 11, None, 2, true), read(&[4, 3]));
    assert_eq!(
        history(&mut seam, 12, Some((&epoch, 2)), 10, false),
        read(&[3, 4])
    );
    assert_eq!(
        history(&mut seam, 13, Some(("another", 3)), 1, false),
        read(&[2]),
        "a position of another epoch reads from the start"
    );
    assert_eq!(history(&mut seam, 14, None, 0, true), read(&[]));
}

fn an_order_reaches_every_node_and_its_answer_says_it_went_out<S: Store>() {
    let mut seam = Seam::<S>::start(&ServerConfig::dev());
    let orders = [
        Control::Disconnect {
            user: "ann".into(),
            code: 4500,
            reason: "moved away\nfor good".into(),
        },
        Control::Unsubscribe {
            user: "ann".into(),
            channel: channel("chat"),
        },
    ];
    for (ticket, order) in (1..).zip(orders) {
        seam.ask(
            at(0),
            StoreRequest::Control {
                ticket: Ticket::new(ticket),
                control: order.clone(),
            },
        );
        let heard = seam.take(|event| match event {
            StoreEvent::Control(heard) => Some(heard.clone()),
            _ => None,
        });
        assert_eq!(heard, order);
        seam.take(|event| match event {
            StoreEvent::ControlSent { ticket: t } if *t == Ticket::new(ticket) => Some(()),
            _ => None,
        });
    }
}

fn info_lists_the_leased_node_with_the_figures_it_gave<S: Store>() {
    let mut seam = Seam::<S>::start(&ServerConfig::dev());
    let figures = |connections, seconds| NodeStats {
        connections,
        channels: 2,
        uptime: Duration::from_secs(seconds),
    };
    seam.ask(
        at(0),
        StoreRequest::Lease {
            lease: Duration::from_secs(60),
            node: figures(1, 5),
        },
    );
    seam.take(|event| matches!(event, StoreEvent::Leased { .. }).then_some(()));
    seam.ask(
        at(0),
        StoreRequest::Info {
            ticket: Ticket::new(1),
            node: figures(3, 7),
        },
    );
    let nodes = seam.take(|event| match event {
        StoreEvent::Info { ticket, nodes } if *ticket == Ticket::new(1) => Some(nodes.clone()),
        _ => None,
    });
    assert_eq!(
        nodes,
        [NodeInfo {
            id: "n1".into(),
            stats: figures(3, 7),
        }],
        "the asker's figures are its own, now"
    );
}
