//! The store seam over a real Redis, without a node: the scripts' answers
//! and pub/sub messages as the core receives them.

#[allow(dead_code, reason = "the outage tests use the rest")]
#[path = "support/redis_server.rs"]
mod redis_server;

use std::future::Future;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use futures_lite::future;
use serde_json::value::RawValue;
use tether_core::config::ServerConfig;
use tether_core::envelope::{Channel, IdempotencyKey};
use tether_core::hub::{StoreEvent, StoreRequest, Ticket};
use tether_redis::RedisBackplane;
use tether_smol::Backplane;

use redis_server::Redis;

/// How long any one wait of the test may take before it fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// One node's end of the seam, with the backplane task running beside it.
struct Seam {
    requests: Sender<StoreRequest>,
    events: Receiver<StoreEvent>,
}

impl Seam {
    async fn ask(&self, request: StoreRequest) {
        self.requests.send(request).await.expect("the task runs");
    }

    async fn next(&self) -> StoreEvent {
        let timeout = async {
            async_io::Timer::after(PATIENCE).await;
            panic!("no store event within {PATIENCE:?}");
        };
        future::or(async { self.events.recv().await.expect("open") }, timeout).await
    }
}

fn chat() -> Channel {
    Channel::new("chat").expect("a valid name")
}

fn member(join: bool, user: &str) -> StoreRequest {
    let (channel, user) = (chat(), user.to_owned());
    if join {
        StoreRequest::Join { channel, user }
    } else {
        StoreRequest::Leave { channel, user }
    }
}

/// The presence version of a change, with its user and whether it joined.
fn change(event: StoreEvent) -> (u64, String, bool) {
    match event {
        StoreEvent::Joined { user, version, .. } => (version, user, true),
        StoreEvent::Left { user, version, .. } => (version, user, false),
        other => panic!("a presence change, not {other:?}"),
    }
}

/// Runs `test` on the seam of one node over a fresh Redis, once the link
/// is up and the node follows `chat`.
fn on_seam<F: Future<Output = ()>>(test: impl FnOnce(Seam) -> F) {
    let redis = Redis::start();
    let config = ServerConfig::default();
    let backplane = Box::new(RedisBackplane::new(&redis.url(), &config).expect("a URL"));
    let (requests, requests_rx) = async_channel::unbounded();
    let (events_tx, events) = async_channel::unbounded();
    let task = backplane.run("n1".to_owned(), requests_rx, events_tx);
    let seam = Seam { requests, events };
    let test = async {
        seam.ask(StoreRequest::Connect).await;
        assert!(matches!(seam.next().await, StoreEvent::Up));
        seam.ask(StoreRequest::Follow { channel: chat() }).await;
        test(seam).await;
    };
    smol::block_on(future::or(test, async {
        task.await;
        panic!("the backplane task ended");
    }));
}

#[test]
fn presence_changes_and_snapshots_carry_versions_that_order_them() {
    on_seam(|seam| async move {
        seam.ask(member(true, "ann")).await;
        let (ann, user, joined) = change(seam.next().await);
        assert_eq!((user.as_str(), joined), ("ann", true));
        seam.ask(member(true, "ann")).await;
        seam.ask(member(true, "bob user")).await;
        let (bob, user, joined) = change(seam.next().await);
        assert_eq!((user.as_str(), joined), ("bob user", true));
        assert!(bob > ann, "versions grow: {ann} then {bob}");

        seam.ask(StoreRequest::Subscribe {
            ticket: Ticket(1),
            channel: chat(),
            since: None,
        })
        .await;
        match seam.next().await {
            StoreEvent::Subscribed {
                users,
                presence_version,
                ..
            } => {
                assert_eq!(users, ["ann", "bob user"]);
                assert_eq!(presence_version, bob);
            }
            other => panic!("a subscribed answer, not {other:?}"),
        }

        // Ann has two connections: only the second leave is a change.
        seam.ask(member(false, "ann")).await;
        seam.ask(member(false, "ann")).await;
        let (gone, user, joined) = change(seam.next().await);
        assert_eq!((gone, user.as_str(), joined), (bob + 1, "ann", false));
        seam.ask(StoreRequest::Presence {
            ticket: Ticket(2),
            channel: chat(),
        })
        .await;
        match seam.next().await {
            StoreEvent::Presence { users, version, .. } => {
                assert_eq!((users, version), (vec!["bob user".to_owned()], gone));
            }
            other => panic!("a presence answer, not {other:?}"),
        }
    });
}

/// A publish on `chat` from `sender` (`None`: the HTTP API) with
/// idempotency key `key`, answered under `ticket`.
fn publish(ticket: u64, sender: Option<&str>, key: Option<&str>) -> StoreRequest {
    StoreRequest::Publish {
        ticket: Some(Ticket(ticket)),
        channel: chat(),
        payload: RawValue::from_string(ticket.to_string()).expect("JSON"),
        sender: sender.map(str::to_owned),
        idempotency_key: key.map(|key| IdempotencyKey::new(key).expect("a valid key")),
    }
}

#[test]
fn an_idempotency_key_is_recognised_within_its_publishers_scope() {
    on_seam(|seam| async move {
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
            seam.ask(publish(ticket, sender, key)).await;
        }
        let mut answers = Vec::new();
        let mut publications = Vec::new();
        // Answers and publications travel by different paths; the last
        // request publishes, so its publication comes after all others.
        while answers.len() < requests.len() || publications.last() != Some(&5) {
            match seam.next().await {
                StoreEvent::Published { ticket, offset } => answers.push((ticket.0, offset)),
                StoreEvent::Publication { offset, .. } => publications.push(offset),
                other => panic!("a publish answer or publication, not {other:?}"),
            }
        }
        answers.sort_unstable();
        assert_eq!(
            answers,
            [(1, 1), (2, 1), (3, 2), (4, 3), (5, 3), (6, 4), (7, 5)],
            "a retry in the same scope gets the original offset; another \
             user, the API and publishes without a key publish anew"
        );
        assert_eq!(publications, [1, 2, 3, 4, 5], "retries publish nothing");
    });
}
