//! The project's async clients (`tether_smol::client::Client` and
//! `tether_tokio::Client`, one API on two runtimes) against a running node
//! of each runtime: publish and receive, resubscription after the node
//! restarts, and the recovery of what was published while a relay cut the
//! client's connection. Each test is written once, generic over
//! [`AsyncClient`]. Their token providers are checked in `token_refresh`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_lite::FutureExt;
use tether_core::{Backoff, ClientConfig, ClientError, Event, RequestId, ServerMessage};
use tether_testkit::ws::READ_TIMEOUT;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use tether_testkit::tls::TestCa;
use tether_tls::{Connector, ServerTls};

use crate::harness::{Runtime, TestServer, config, dev_auth};

/// A tokio runtime with a worker thread of its own, so that its tasks run
/// while the test thread waits elsewhere: for the tokio client's task and
/// the relay's.
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the client")
}

/// What the tests do with a client: the API the smol and tokio clients
/// share, and how a test runs where the client's task can be spawned.
trait AsyncClient: Sized {
    /// Runs `test` to completion on the calling thread, where
    /// [`AsyncClient::connect`] may spawn the client's task.
    fn run(test: impl Future<Output = ()>);

    /// Starts a session for `config`.
    fn connect(config: ClientConfig) -> Self;

    /// Starts a session for `config` over TLS, trusting what `tls` trusts.
    fn connect_tls(config: ClientConfig, tls: Connector) -> Self;

    /// Tracks `channel`.
    async fn subscribe(&self, channel: &str) -> Result<(), ClientError>;

    /// Stops tracking `channel`.
    async fn unsubscribe(&self, channel: &str) -> Result<(), ClientError>;

    /// Publishes `payload_json` on `channel`; the outcome is an event.
    async fn publish(&self, channel: &str, payload_json: &str) -> Result<RequestId, ClientError>;

    /// Closes the session for good and waits until it is closed.
    async fn close(&self);

    /// The next event; `None` once the stream has ended.
    async fn next_event(&self) -> Option<Event>;
}

/// Implements [`AsyncClient`] for `$client`, whose own methods have the
/// trait's names and signatures, running a test as `$run` runs `$test`.
macro_rules! async_client {
    ($client:ty, $test:ident => $run:expr) => {
        impl AsyncClient for $client {
            fn run($test: impl Future<Output = ()>) {
                $run;
            }

            fn connect(config: ClientConfig) -> Self {
                Self::connect(config)
            }

            fn connect_tls(config: ClientConfig, tls: Connector) -> Self {
                Self::connect_tls(config, tls)
            }

            async fn subscribe(&self, channel: &str) -> Result<(), ClientError> {
                self.subscribe(channel).await
            }

            async fn unsubscribe(&self, channel: &str) -> Result<(), ClientError> {
                self.unsubscribe(channel).await
            }

            async fn publish(
                &self,
                channel: &str,
                payload_json: &str,
            ) -> Result<RequestId, ClientError> {
                self.publish(channel, payload_json).await
            }

            async fn close(&self) {
                self.close().await;
            }

            async fn next_event(&self) -> Option<Event> {
                self.next_event().await
            }
        }
    };
}

async_client!(tether_smol::client::Client, test => smol::block_on(test));
async_client!(tether_tokio::Client, test => client_runtime().block_on(test));

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

/// The client's next event, or `None` once the stream has ended; panics
/// after [`READ_TIMEOUT`]. The timer is smol's, which needs no runtime of
/// its own, so the helpers serve both clients.
async fn next_or_end(client: &impl AsyncClient) -> Option<Event> {
    client
        .next_event()
        .or(async {
            smol::Timer::after(READ_TIMEOUT).await;
            panic!("no event within {READ_TIMEOUT:?}")
        })
        .await
}

/// The client's next event; panics after [`READ_TIMEOUT`].
async fn event(client: &impl AsyncClient) -> Event {
    next_or_end(client).await.expect("an event")
}

/// The next event that is not about a retry, which must be `Connected` as
/// `user`; returns its session id.
async fn connected(client: &impl AsyncClient, user: &str) -> String {
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
async fn subscribed(client: &impl AsyncClient) -> (String, u64, Option<bool>) {
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
async fn message(client: &impl AsyncClient) -> (String, Option<String>, u64) {
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
async fn presence(client: &impl AsyncClient) -> Vec<String> {
    match event(client).await {
        Event::Presence { users, .. } => users,
        other => panic!("expected Presence, got {other:?}"),
    }
}

/// The next event, which must be a `Disconnected` that will reconnect:
/// its close code.
async fn disconnected(client: &impl AsyncClient) -> u16 {
    match event(client).await {
        Event::Disconnected {
            reason,
            will_reconnect,
        } => {
            assert!(will_reconnect, "{reason}");
            reason.code.0
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

/// A TCP relay on 127.0.0.1 in front of a node, whose connections the test
/// can cut: the client sees its connection drop while the node lives on.
/// It runs on a tokio runtime of its own, whichever the client's is.
struct Relay {
    addr: SocketAddr,
    /// True while connections pass; false closes every relayed connection
    /// and each new one as it is accepted.
    open: watch::Sender<bool>,
    _runtime: tokio::runtime::Runtime,
}

impl Relay {
    /// Starts relaying to `node`.
    fn start(node: SocketAddr) -> Relay {
        let runtime = client_runtime();
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("a port");
        let addr = listener.local_addr().expect("the relay's address");
        let (open, passing) = watch::channel(true);
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *passing.borrow() {
                    tokio::spawn(relay(client, node, passing.clone()));
                }
            }
        });
        Relay {
            addr,
            open,
            _runtime: runtime,
        }
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

fn publishes_and_receives<C: AsyncClient>(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    C::run(async {
        let bob = C::connect(client_config(server.addr, "bob"));
        bob.subscribe("chat").await.expect("subscribe");
        connected(&bob, "bob").await;
        let (_, offset, recovered) = subscribed(&bob).await;
        assert_eq!((offset, recovered), (0, None));
        assert_eq!(presence(&bob).await, ["bob"]);

        let alice = C::connect(client_config(server.addr, "alice"));
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
        while let Some(event) = next_or_end(&alice).await {
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

/// A node on `runtime` speaking TLS with a certificate of `ca`.
fn start_tls(runtime: Runtime, ca: &TestCa) -> TestServer {
    let files = ca.server("node");
    let tls = ServerTls::load(&files.cert, &files.key).expect("usable test files");
    runtime.start_tls(config(), dev_auth(), tls)
}

fn publishes_and_receives_over_wss<C: AsyncClient>(runtime: Runtime) {
    let ca = TestCa::new("client-wss");
    let server = start_tls(runtime, &ca);
    let tls = || Connector::with_ca_file(ca.ca_file()).expect("a usable CA file");
    C::run(async {
        let bob = C::connect_tls(client_config(server.addr, "bob"), tls());
        bob.subscribe("chat").await.expect("subscribe");
        connected(&bob, "bob").await;
        subscribed(&bob).await;
        assert_eq!(presence(&bob).await, ["bob"]);
        let alice = C::connect_tls(client_config(server.addr, "alice"), tls());
        alice.publish("chat", r#"{"n":1}"#).await.expect("publish");
        connected(&alice, "alice").await;
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

/// A client that does not trust the node's certificate (another
/// authority's, or one expired) never gets to `Connected`: every attempt
/// ends as a connection lost (1006) and the session retries.
fn refuses_a_certificate_it_does_not_trust<C: AsyncClient>(runtime: Runtime) {
    let ca = TestCa::new("client-refuse");
    let other = TestCa::new("client-refuse-other");
    let server = start_tls(runtime, &ca);
    let expired = {
        let files = ca.expired_server("expired");
        let tls = ServerTls::load(&files.cert, &files.key).expect("usable test files");
        runtime.start_tls(config(), dev_auth(), tls)
    };
    C::run(async {
        for (addr, trust) in [(server.addr, other.ca_file()), (expired.addr, ca.ca_file())] {
            let tls = Connector::with_ca_file(trust).expect("a usable CA file");
            let client = C::connect_tls(client_config(addr, "bob"), tls);
            for _ in 0..2 {
                assert_eq!(disconnected(&client).await, 1006);
                assert!(matches!(event(&client).await, Event::Reconnecting { .. }));
            }
            client.close().await;
        }
    });
}

fn the_smol_client_publishes_and_receives_over_wss(runtime: Runtime) {
    publishes_and_receives_over_wss::<tether_smol::client::Client>(runtime);
}

fn the_tokio_client_publishes_and_receives_over_wss(runtime: Runtime) {
    publishes_and_receives_over_wss::<tether_tokio::Client>(runtime);
}

fn the_smol_client_refuses_a_certificate_it_does_not_trust(runtime: Runtime) {
    refuses_a_certificate_it_does_not_trust::<tether_smol::client::Client>(runtime);
}

fn the_tokio_client_refuses_a_certificate_it_does_not_trust(runtime: Runtime) {
    refuses_a_certificate_it_does_not_trust::<tether_tokio::Client>(runtime);
}

fn resubscribes_after_the_node_restarts<C: AsyncClient>(runtime: Runtime) {
    let first = runtime.start(config(), dev_auth());
    let addr = first.addr;
    C::run(async {
        let alice = C::connect(client_config(addr, "alice"));
        alice.subscribe("news").await.expect("subscribe");
        connected(&alice, "alice").await;
        let (epoch, offset, recovered) = subscribed(&alice).await;
        assert_eq!((offset, recovered), (0, None));
        presence(&alice).await;
        first.publish("news", "1");
        assert_eq!(message(&alice).await, ("1".to_owned(), None, 1));

        first.shutdown();
        assert_eq!(disconnected(&alice).await, 1001);
        first.join().expect("the first node stops");

        let second = runtime.start_at(addr, config(), dev_auth());
        // Retries that find no node are passed over on the way.
        connected(&alice, "alice").await;
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

fn recovers_what_it_missed_while_its_connection_was_down<C: AsyncClient>(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    let relay = Relay::start(server.addr);
    C::run(async {
        let alice = C::connect(client_config(relay.addr, "alice"));
        alice.subscribe("news").await.expect("subscribe");
        let first = connected(&alice, "alice").await;
        let (epoch, offset, recovered) = subscribed(&alice).await;
        assert_eq!((offset, recovered), (0, None));
        presence(&alice).await;
        server.publish("news", "1");
        assert_eq!(message(&alice).await, ("1".to_owned(), None, 1));

        relay.cut();
        assert_eq!(disconnected(&alice).await, 1006);
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

fn the_smol_client_publishes_and_receives(runtime: Runtime) {
    publishes_and_receives::<tether_smol::client::Client>(runtime);
}

fn the_tokio_client_publishes_and_receives(runtime: Runtime) {
    publishes_and_receives::<tether_tokio::Client>(runtime);
}

fn the_smol_client_resubscribes_after_the_node_restarts(runtime: Runtime) {
    resubscribes_after_the_node_restarts::<tether_smol::client::Client>(runtime);
}

fn the_tokio_client_resubscribes_after_the_node_restarts(runtime: Runtime) {
    resubscribes_after_the_node_restarts::<tether_tokio::Client>(runtime);
}

fn the_smol_client_recovers_what_it_missed_while_its_connection_was_down(runtime: Runtime) {
    recovers_what_it_missed_while_its_connection_was_down::<tether_smol::client::Client>(runtime);
}

fn the_tokio_client_recovers_what_it_missed_while_its_connection_was_down(runtime: Runtime) {
    recovers_what_it_missed_while_its_connection_was_down::<tether_tokio::Client>(runtime);
}

runtime_tests! {
    the_smol_client_publishes_and_receives_over_wss => smol, blocking, tokio;
    the_tokio_client_publishes_and_receives_over_wss => smol, blocking, tokio;
    the_smol_client_refuses_a_certificate_it_does_not_trust => smol;
    the_tokio_client_refuses_a_certificate_it_does_not_trust => smol;
    the_smol_client_publishes_and_receives => smol, blocking, tokio;
    the_tokio_client_publishes_and_receives => smol, blocking, tokio;
    the_smol_client_resubscribes_after_the_node_restarts => smol, blocking, tokio;
    the_tokio_client_resubscribes_after_the_node_restarts => smol, blocking, tokio;
    the_smol_client_recovers_what_it_missed_while_its_connection_was_down => smol, blocking, tokio;
    the_tokio_client_recovers_what_it_missed_while_its_connection_was_down => smol, blocking, tokio;
}
