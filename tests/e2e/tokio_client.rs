//! The tokio client (`tether_tokio::Client`) against a running node of
//! each runtime: publish and receive, and the recovery of what was
//! published while its connection was down. Its token provider is checked
//! in `token_refresh`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tether_core::{Backoff, ClientConfig, Event, ServerMessage};
use tether_testkit::ws::READ_TIMEOUT;
use tether_tokio::Client;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::harness::{Runtime, config, dev_auth};

/// A runtime for the client's task, with a worker thread of its own so
/// that the task runs while the test thread waits elsewhere.
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the client")
}

/// Runs `test` on a fresh [`client_runtime`].
fn run(test: impl Future<Output = ()>) {
    client_runtime().block_on(test);
}

/// The client's settings for `user` on `addr`, retrying within
/// milliseconds so that a lost connection is crossed quickly.
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
    tokio::time::timeout(READ_TIMEOUT, client.next_event())
        .await
        .unwrap_or_else(|_| panic!("no event within {READ_TIMEOUT:?}"))
        .expect("an event")
}

/// The next event that is not about a retry, which must be `Connected` as
/// `user`; returns its session id.
async fn connected(client: &Client, user: &str) -> String {
    loop {
        match event(client).await {
            Event::Connected {
                user: who, session, ..
            } => {
                assert_eq!(who, user);
                return session;
            }
            Event::Reconnecting { .. }
            | Event::Disconnected {
                will_reconnect: true,
                ..
            } => {}
            other => panic!("expected Connected, got {other:?}"),
        }
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

/// A TCP relay on 127.0.0.1 in front of a node, whose connections the test
/// can cut: the client sees its connection drop while the node lives on.
struct Relay {
    addr: SocketAddr,
    /// True while connections pass; false closes every relayed connection
    /// and each new one as it is accepted.
    open: watch::Sender<bool>,
}

impl Relay {
    /// Starts relaying to `node` on the current runtime.
    async fn start(node: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("the relay's address");
        let (open, passing) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *passing.borrow() {
                    tokio::spawn(relay(client, node, passing.clone()));
                }
            }
        });
        Relay { addr, open }
    }

    /// Closes every relayed connection and refuses new ones until
    /// [`Relay::mend`].
    fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Lets connections pass again.
    fn mend(&self) {
        self.open.send_replace(true);
    }
}

/// Copies both ways between `client` and a new connection to `node` until
/// either ends or `passing` turns false; dropping both streams closes them.
async fn relay(mut client: TcpStream, node: SocketAddr, mut passing: watch::Receiver<bool>) {
    let Ok(mut upstream) = TcpStream::connect(node).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = passing.wait_for(|open| !open) => {}
    }
}

fn the_tokio_client_publishes_and_receives(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    run(async {
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

        bob.unsubscribe("chat").await.expect("unsubscribe");
        alice.close().await;
        bob.close().await;
        // The close is the last event; then the stream ends.
        let mut last = None;
        while let Some(event) = tokio::time::timeout(READ_TIMEOUT, alice.next_event())
            .await
            .expect("the stream ends after the close")
        {
            last = Some(event);
        }
        match last {
            Some(Event::Disconnected {
                reason,
                will_reconnect: false,
            }) => assert_eq!(reason.code.0, 1000, "{reason}"),
            other => panic!("expected the normal close last, got {other:?}"),
        }
    });
}

fn the_tokio_client_recovers_what_it_missed_while_its_connection_was_down(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    run(async {
        let relay = Relay::start(server.addr).await;
        let alice = Client::connect(client_config(relay.addr, "alice"));
        alice.subscribe("news").await.expect("subscribe");
        let first = connected(&alice, "alice").await;
        let (epoch, offset, recovered) = subscribed(&alice).await;
        assert_eq!((offset, recovered), (0, None));
        presence(&alice).await;
        server.publish("news", "1");
        assert_eq!(message(&alice).await, ("1".to_owned(), None, 1));

        relay.cut();
        match event(&alice).await {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => {
                assert_eq!(reason.code.0, 1006, "{reason}");
                assert!(will_reconnect);
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
        server.publish("news", "2");
        server.publish("news", "3");
        relay.mend();

        let second = connected(&alice, "alice").await;
        assert_ne!(second, first);
        // The missed publications come first, then the confirmation that
        // nothing is missing.
        assert_eq!(message(&alice).await, ("2".to_owned(), None, 2));
        assert_eq!(message(&alice).await, ("3".to_owned(), None, 3));
        let (same_epoch, offset, recovered) = subscribed(&alice).await;
        assert_eq!(same_epoch, epoch);
        assert_eq!((offset, recovered), (3, Some(true)));
        assert_eq!(presence(&alice).await, ["alice"]);
        server.publish("news", "4");
        assert_eq!(message(&alice).await, ("4".to_owned(), None, 4));
        alice.close().await;
    });
}

runtime_tests! {
    the_tokio_client_publishes_and_receives => smol, blocking, tokio;
    the_tokio_client_recovers_what_it_missed_while_its_connection_was_down => smol, blocking, tokio;
}
