//! The project's clients with a token provider (the core's one
//! `TokenProvider`, which every client takes) against a node whose tokens
//! expire: refreshes before each expiry keep one connection open, and a
//! close `4004` is followed by a new token and a reconnect. The client runs
//! on the same runtime as the node: the smol client on a smol node, the
//! blocking client on a blocking node, the tokio client on a tokio node.

use std::future::ready;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_lite::FutureExt;
use tether_core::{
    Authorizer, Backoff, ClientConfig, CloseCode, Event, Expiry, Identity, TokenProvider,
};
use tether_testkit::ws::READ_TIMEOUT;

use crate::async_clients::client_runtime;
use crate::harness::{Runtime, config};

/// How long the node's tokens live: short enough for a test to cross
/// several expiries, long enough for a refresh (due after four fifths) to
/// make its round trip on a busy machine.
const LIFE: Duration = Duration::from_millis(2_000);

/// Tokens `<user>#<n>` are accepted for `<user>` and expire [`LIFE`] after
/// each check; anything else is refused. Keeps every token it accepted.
#[derive(Default)]
struct ExpiringTokens {
    accepted: Mutex<Vec<String>>,
}

impl Authorizer for ExpiringTokens {
    fn authenticate(&self, token: &str) -> Option<Identity> {
        let (user, _) = token.split_once('#')?;
        self.accepted
            .lock()
            .expect("an unpoisoned lock")
            .push(token.to_owned());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("a clock after 1970");
        let expiry = Expiry {
            unix_ms: u64::try_from((now + LIFE).as_millis()).expect("a date before 2500"),
            remaining: LIFE,
        };
        Some(Identity {
            expiry: Some(expiry),
            ..Identity::user(user)
        })
    }

    fn authorize_api(&self, _authorization: Option<&str>) -> bool {
        false
    }

    fn may_block(&self) -> bool {
        false
    }
}

/// The client of `runtime`, started with `provider`.
enum Client {
    Smol(tether_smol::client::Client),
    Blocking(tether_blocking::Client),
    /// The tokio client and the runtime its task runs on.
    Tokio(tokio::runtime::Runtime, tether_tokio::Client),
}

impl Client {
    fn connect(runtime: Runtime, addr: SocketAddr, provider: TokenProvider) -> Client {
        let mut config = ClientConfig::new(addr.to_string(), "");
        config.backoff = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(200),
            jitter: Duration::from_millis(10),
            max_attempts: None,
        };
        match runtime {
            Runtime::Smol => Client::Smol(tether_smol::client::Client::connect_with_provider(
                config, provider,
            )),
            Runtime::Tokio => {
                let runtime = client_runtime();
                let client = {
                    let _entered = runtime.enter();
                    tether_tokio::Client::connect_with_provider(config, provider)
                };
                Client::Tokio(runtime, client)
            }
            Runtime::Blocking => {
                let client = tether_blocking::Client::connect_with_provider(config, provider)
                    .expect("the client's timer thread starts");
                Client::Blocking(client)
            }
            Runtime::Example | Runtime::Smol2 | Runtime::Tokio2 => {
                panic!("a client's runtime is one of its own")
            }
        }
    }

    /// The next event; panics after [`READ_TIMEOUT`].
    fn event(&self) -> Event {
        let event = match self {
            Client::Smol(client) => smol::block_on(client.next_event().or(async {
                smol::Timer::after(READ_TIMEOUT).await;
                None
            })),
            Client::Blocking(client) => client.next_event(READ_TIMEOUT),
            Client::Tokio(runtime, client) => runtime.block_on(async {
                tokio::time::timeout(READ_TIMEOUT, client.next_event())
                    .await
                    .ok()
                    .flatten()
            }),
        };
        event.unwrap_or_else(|| panic!("no event within {READ_TIMEOUT:?}"))
    }

    fn close(&self) {
        match self {
            Client::Smol(client) => smol::block_on(client.close()),
            Client::Blocking(client) => client.close(),
            Client::Tokio(runtime, client) => runtime.block_on(client.close()),
        }
    }
}

fn a_provided_token_is_refreshed_before_each_expiry_on_one_connection(runtime: Runtime) {
    let tokens = Arc::new(ExpiringTokens::default());
    let server = runtime.start(config(), tokens.clone());
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let provider = TokenProvider::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        ready(Ok::<_, String>(format!("alice#{n}")))
    });
    let client = Client::connect(runtime, server.addr, provider);
    let Event::Connected {
        user,
        expires_at: Some(mut expires_at),
        ..
    } = client.event()
    else {
        panic!("expected Connected with an expiry");
    };
    assert_eq!(user, "alice");
    // Three refreshes: the connection outlives the first two tokens and
    // is on the fourth, with no other event in between.
    for _ in 0..3 {
        match client.event() {
            Event::Refreshed {
                expires_at: Some(next),
            } => {
                assert!(next > expires_at, "{next} after {expires_at}");
                expires_at = next;
            }
            other => panic!("expected Refreshed, got {other:?}"),
        }
    }
    assert_eq!(
        *tokens.accepted.lock().unwrap(),
        ["alice#1", "alice#2", "alice#3", "alice#4"]
    );
    client.close();
}

fn a_close_4004_is_followed_by_a_new_token_and_a_reconnect(runtime: Runtime) {
    let tokens = Arc::new(ExpiringTokens::default());
    let server = runtime.start(config(), tokens.clone());
    let calls = Arc::new(AtomicU32::new(0));
    let expired = Arc::new(AtomicBool::new(false));
    let (counter, after_expiry) = (Arc::clone(&calls), Arc::clone(&expired));
    // The first token, then nothing until the test has seen the 4004: the
    // refreshes fail and the token expires on the open connection.
    let provider = TokenProvider::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        ready(if n == 1 || after_expiry.load(Ordering::SeqCst) {
            Ok(format!("alice#{n}"))
        } else {
            Err("no token now")
        })
    });
    let client = Client::connect(runtime, server.addr, provider);
    let Event::Connected { session: first, .. } = client.event() else {
        panic!("expected Connected");
    };
    loop {
        match client.event() {
            Event::RefreshFailed { code: None, .. } => {}
            Event::Disconnected {
                reason,
                will_reconnect: true,
            } => {
                assert_eq!(reason.code, CloseCode::TOKEN_EXPIRED, "{reason}");
                expired.store(true, Ordering::SeqCst);
                break;
            }
            other => panic!("expected a failed refresh or the 4004, got {other:?}"),
        }
    }
    // A provider call that came before the flag fails one more attempt;
    // the next one reconnects.
    let second = loop {
        match client.event() {
            Event::Reconnecting { .. }
            | Event::Disconnected {
                will_reconnect: true,
                ..
            } => {}
            Event::Connected { user, session, .. } => {
                assert_eq!(user, "alice");
                break session;
            }
            other => panic!("expected a reconnect, got {other:?}"),
        }
    };
    assert_ne!(second, first);
    let accepted = tokens.accepted.lock().unwrap().clone();
    assert_eq!(accepted.first().map(String::as_str), Some("alice#1"));
    assert_eq!(accepted.len(), 2, "{accepted:?}");
    client.close();
}

runtime_tests! {
    a_provided_token_is_refreshed_before_each_expiry_on_one_connection => smol, blocking, tokio;
    a_close_4004_is_followed_by_a_new_token_and_a_reconnect => smol, blocking, tokio;
}
