//! The project's own client (`tether_smol::client`) against a running node:
//! publish and receive, and resubscription after the node restarts.

use std::net::SocketAddr;
use std::time::Duration;

use tether_core::{Backoff, ClientConfig, Event, ServerMessage};
use tether_smol::client::Client;

use crate::harness::{Runtime, config, dev_auth};
use tether_testkit::ws::READ_TIMEOUT;

/// The client's settings for `user` on `addr`, retrying within
/// milliseconds so that a restart is crossed quickly.
fn client_config(addr: SocketAddr, user: &str) -> ClientConfig {
    let mut config = ClientConfig::new(addr.to_string(), user);
    config.backoff = Backoff {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(200),
        jitter: Duration::from_millis(10),
        max_attempts: None,
    };
    config
}

/// The client's next event; panics after [`READ_TIMEOUT`].
async fn event(client: &Client) -> Event {
    smol::future::or(
        async { client.next_event().await.expect("an event") },
        async {
            smol::Timer::after(READ_TIMEOUT).await;
            panic!("no event within {READ_TIMEOUT:?}")
        },
    )
    .await
}

/// The next event, which must be `Connected` as `user`.
async fn connected(client: &Client, user: &str) {
    match event(client).await {
        Event::Connected { user: who, .. } => assert_eq!(who, user),
        other => panic!("expected Connected, got {other:?}"),
    }
}

/// The next event, which must be `Subscribed`: its epoch, offset and
/// `recovered`.
async fn subscribed(client: &Client) -> (String, u64, Option<bool>) {
    match event(client).await {
        Event::Subscribed {
            epoch,
            offset,
            recovered,
            ..
        } => (epoch, offset, recovered),
        other => panic!("expected Subscribed, got {other:?}"),
    }
}

/// The next event, which must be a `Message`: its payload, sender and
/// offset.
async fn message(client: &Client) -> (String, Option<String>, u64) {
    match event(client).await {
        Event::Message {
            payload,
            sender,
            offset,
            ..
        } => (payload.get().to_owned(), sender, offset),
        other => panic!("expected Message, got {other:?}"),
    }
}

/// The next event, which must be a `Presence` snapshot: its users.
async fn presence(client: &Client) -> Vec<String> {
    match event(client).await {
        Event::Presence { users, .. } => users,
        other => panic!("expected Presence, got {other:?}"),
    }
}

fn the_project_client_publishes_and_receives(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    smol::block_on(async {
        let bob = Client::connect(client_config(server.addr, "bob"));
        bob.subscribe("chat").await.expect("subscribe");
        connected(&bob, "bob").await;
        let (_, offset, recovered) = subscribed(&bob).await;
        assert_eq!((offset, recovered), (0, None));
        assert_eq!(presence(&bob).await, ["bob"]);

        let alice = Client::connect(client_config(server.addr, "alice"));
        let id = alice.publish("chat", r#"{"n":1}"#).await.expect("publish");
        connected(&alice, "alice").await;
        match event(&alice).await {
            Event::RequestDone { id: done, result } => {
                assert_eq!(done, id);
                assert!(
                    matches!(result, Ok(ServerMessage::Ack { offset: 1, .. })),
                    "{result:?}"
                );
            }
            other => panic!("expected the publish's outcome, got {other:?}"),
        }
        assert_eq!(
            message(&bob).await,
            (r#"{"n":1}"#.to_owned(), Some("alice".to_owned()), 1)
        );
        assert_eq!(server.publish("chat", r#"{"n":2}"#), 2);
        assert_eq!(message(&bob).await, (r#"{"n":2}"#.to_owned(), None, 2));
        alice.close().await;
        bob.close().await;
    });
}

fn the_project_client_resubscribes_after_the_node_restarts(runtime: Runtime) {
    let first = runtime.start(config(), dev_auth());
    let addr = first.addr;
    smol::block_on(async {
        let alice = Client::connect(client_config(addr, "alice"));
        alice.subscribe("news").await.expect("subscribe");
        connected(&alice, "alice").await;
        let (epoch, offset, recovered) = subscribed(&alice).await;
        assert_eq!((offset, recovered), (0, None));
        presence(&alice).await;
        first.publish("news", "1");
        assert_eq!(message(&alice).await, ("1".to_owned(), None, 1));

        first.shutdown();
        match event(&alice).await {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => {
                assert_eq!(reason.code.0, 1001);
                assert!(will_reconnect);
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
        first.join().expect("the first node stops");

        let second = runtime.start_at(addr, config(), dev_auth());
        // Retries that find no node are reported on the way.
        loop {
            match event(&alice).await {
                Event::Connected { user, .. } => {
                    assert_eq!(user, "alice");
                    break;
                }
                Event::Reconnecting { .. }
                | Event::Disconnected {
                    will_reconnect: true,
                    ..
                } => {}
                other => panic!("expected a reconnect, got {other:?}"),
            }
        }
        // The in-memory history died with the first node: the new epoch
        // says the gap cannot be recovered.
        let (new_epoch, offset, recovered) = subscribed(&alice).await;
        assert_ne!(new_epoch, epoch);
        assert_eq!((offset, recovered), (0, Some(false)));
        assert_eq!(presence(&alice).await, ["alice"]);
        second.publish("news", "2");
        assert_eq!(message(&alice).await, ("2".to_owned(), None, 1));
        alice.close().await;
    });
}

runtime_tests! {
    the_project_client_publishes_and_receives => smol, blocking, tokio;
    the_project_client_resubscribes_after_the_node_restarts => smol, blocking, tokio;
}
