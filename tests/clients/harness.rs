//! One interface over the project's three clients, and the bounds every
//! test runs within.
//!
//! A shared test is a function generic over [`TestClient`]; `client_tests!`
//! (in `main.rs`) turns it into one `#[test]` per client, each run through
//! [`tether_testkit::bounded`] within [`TEST_LIMIT`]. The interface keeps
//! what every client promises:
//!
//! - Calls block the calling thread until the client has answered, as the
//!   blocking client's do; the smol client's are run with `smol::block_on`
//!   on the calling thread while its driver task runs on smol's global
//!   executor, which is how a program without an executor uses it; the
//!   tokio client's likewise, with its task on a runtime of its own.
//! - [`TestClient::publish`] waits for the server's `ack` and gives the
//!   offset, as the blocking client's does; the smol and tokio clients'
//!   publish gives a request id and settles it with an [`Event::RequestDone`], which the
//!   adapter here waits for and keeps out of the event stream.
//! - Every client fails with the core's one [`ClientError`].

use std::collections::VecDeque;
use std::panic;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use futures_lite::FutureExt;
use serde_json::value::RawValue;
use tether_core::{
    ClientConfig, ClientError, ClientMessage, Event, RequestError, RequestId, ServerMessage,
    published_offset,
};

/// The most any one test may take; they normally take milliseconds.
pub const TEST_LIMIT: Duration = Duration::from_secs(20);

/// The longest a test waits for one event or one message; below
/// [`TEST_LIMIT`], so that a missing one is reported as such.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// What the shared tests do with a client.
pub trait TestClient: Send + Sync + Sized + 'static {
    /// Starts a session for `config`; it dials at once.
    fn connect(config: ClientConfig) -> Self;

    /// Tracks `channel`, now and after every reconnect.
    fn subscribe(&self, channel: &str) -> Result<(), ClientError>;

    /// Stops tracking `channel`.
    fn unsubscribe(&self, channel: &str) -> Result<(), ClientError>;

    /// Publishes `payload_json` on `channel` and waits for the outcome: the
    /// publication's offset from the server's `ack`.
    fn publish(&self, channel: &str, payload_json: &str) -> Result<u64, ClientError>;

    /// Sends `message` with a fresh id and waits for its reply.
    fn request(
        &self,
        message: ClientMessage,
        timeout: Duration,
    ) -> Result<ServerMessage, ClientError>;

    /// Calls the application's `method` with `data_json` and waits for its
    /// answer's data.
    fn rpc(&self, method: &str, data_json: &str) -> Result<Box<RawValue>, ClientError>;

    /// Sends `message` as it is, now or after the next `auth_ack`.
    fn send(&self, message: ClientMessage) -> Result<(), ClientError>;

    /// Closes the session for good and waits until it is closed.
    fn close(&self);

    /// The next event, waiting at most `timeout`; `None` when none came,
    /// whether the stream ended or not.
    fn next_event(&self, timeout: Duration) -> Option<Event>;

    /// The next event, or `None` once the stream has ended; waits as long
    /// as it takes (the test's limit bounds it).
    fn next_or_end(&self) -> Option<Event>;
}

/// The smol client, with the events its publishes passed over on the way
/// to their outcome.
pub struct SmolClient {
    client: tether_smol::client::Client,
    /// Events read while a publish waited for its outcome, oldest first
    /// (see [`settle`]).
    passed_over: Mutex<VecDeque<Event>>,
}

impl SmolClient {
    /// The first event passed over, if any.
    fn passed_over(&self) -> Option<Event> {
        first_passed_over(&self.passed_over)
    }
}

impl TestClient for SmolClient {
    fn connect(config: ClientConfig) -> Self {
        SmolClient {
            client: tether_smol::client::Client::connect(config),
            passed_over: Mutex::new(VecDeque::new()),
        }
    }

    fn subscribe(&self, channel: &str) -> Result<(), ClientError> {
        smol::block_on(self.client.subscribe(channel))
    }

    fn unsubscribe(&self, channel: &str) -> Result<(), ClientError> {
        smol::block_on(self.client.unsubscribe(channel))
    }

    fn publish(&self, channel: &str, payload_json: &str) -> Result<u64, ClientError> {
        let id = smol::block_on(self.client.publish(channel, payload_json))?;
        settle(&self.passed_over, id, || {
            smol::block_on(self.client.next_event())
        })
    }

    fn request(
        &self,
        message: ClientMessage,
        timeout: Duration,
    ) -> Result<ServerMessage, ClientError> {
        smol::block_on(self.client.request(message, timeout))
    }

    fn rpc(&self, method: &str, data_json: &str) -> Result<Box<RawValue>, ClientError> {
        smol::block_on(self.client.rpc(method, data_json))
    }

    fn send(&self, message: ClientMessage) -> Result<(), ClientError> {
        smol::block_on(self.client.send(message))
    }

    fn close(&self) {
        smol::block_on(self.client.close());
    }

    fn next_event(&self, timeout: Duration) -> Option<Event> {
        self.passed_over().or_else(|| {
            smol::block_on(self.client.next_event().or(async {
                smol::Timer::after(timeout).await;
                None
            }))
        })
    }

    fn next_or_end(&self) -> Option<Event> {
        self.passed_over()
            .or_else(|| smol::block_on(self.client.next_event()))
    }
}

/// The outcome of the publish `id` of a client whose publishes settle
/// with an [`Event::RequestDone`]: found among the events `passed_over`
/// or read with `next`, which passes the others over. The lock is held for
/// the whole wait, so that concurrent publishes each find their own
/// outcome there or in the stream.
fn settle(
    passed_over: &Mutex<VecDeque<Event>>,
    id: RequestId,
    mut next: impl FnMut() -> Option<Event>,
) -> Result<u64, ClientError> {
    let mut passed_over = passed_over.lock().expect("an unpoisoned lock");
    let mine = |event: &Event| matches!(event, Event::RequestDone { id: done, .. } if *done == id);
    let outcome = match passed_over.iter().position(mine) {
        Some(at) => passed_over.remove(at),
        None => loop {
            match next() {
                Some(event) if mine(&event) => break Some(event),
                Some(event) => passed_over.push_back(event),
                None => break None,
            }
        },
    };
    match outcome {
        Some(Event::RequestDone { result, .. }) => published_offset(result),
        // The stream ended without settling the publish: the session
        // was closed with it pending, as the blocking client reports.
        _ => Err(ClientError::Request(RequestError::Closed)),
    }
}

/// The first event passed over, if any.
fn first_passed_over(passed_over: &Mutex<VecDeque<Event>>) -> Option<Event> {
    passed_over.lock().expect("an unpoisoned lock").pop_front()
}

/// The tokio client and the runtime its driver task runs on, a worker
/// thread of its own; calls wait with `Runtime::block_on` on the calling
/// thread.
pub struct TokioClient {
    runtime: tokio::runtime::Runtime,
    client: tether_tokio::Client,
    /// Events read while a publish waited for its outcome, oldest first.
    passed_over: Mutex<VecDeque<Event>>,
}

impl TestClient for TokioClient {
    fn connect(config: ClientConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the client");
        let client = {
            let _entered = runtime.enter();
            tether_tokio::Client::connect(config)
        };
        TokioClient {
            runtime,
            client,
            passed_over: Mutex::new(VecDeque::new()),
        }
    }

    fn subscribe(&self, channel: &str) -> Result<(), ClientError> {
        self.runtime.block_on(self.client.subscribe(channel))
    }

    fn unsubscribe(&self, channel: &str) -> Result<(), ClientError> {
        self.runtime.block_on(self.client.unsubscribe(channel))
    }

    fn publish(&self, channel: &str, payload_json: &str) -> Result<u64, ClientError> {
        let id = self
            .runtime
            .block_on(self.client.publish(channel, payload_json))?;
        settle(&self.passed_over, id, || {
            self.runtime.block_on(self.client.next_event())
        })
    }

    fn request(
        &self,
        message: ClientMessage,
        timeout: Duration,
    ) -> Result<ServerMessage, ClientError> {
        self.runtime.block_on(self.client.request(message, timeout))
    }

    fn rpc(&self, method: &str, data_json: &str) -> Result<Box<RawValue>, ClientError> {
        self.runtime.block_on(self.client.rpc(method, data_json))
    }

    fn send(&self, message: ClientMessage) -> Result<(), ClientError> {
        self.runtime.block_on(self.client.send(message))
    }

    fn close(&self) {
        self.runtime.block_on(self.client.close());
    }

    fn next_event(&self, timeout: Duration) -> Option<Event> {
        first_passed_over(&self.passed_over).or_else(|| {
            self.runtime.block_on(async {
                tokio::time::timeout(timeout, self.client.next_event())
                    .await
                    .ok()
                    .flatten()
            })
        })
    }

    fn next_or_end(&self) -> Option<Event> {
        first_passed_over(&self.passed_over)
            .or_else(|| self.runtime.block_on(self.client.next_event()))
    }
}

impl TestClient for tether_blocking::Client {
    fn connect(config: ClientConfig) -> Self {
        tether_blocking::Client::connect(config).expect("the client's timer thread starts")
    }

    fn subscribe(&self, channel: &str) -> Result<(), ClientError> {
        tether_blocking::Client::subscribe(self, channel)
    }

    fn unsubscribe(&self, channel: &str) -> Result<(), ClientError> {
        tether_blocking::Client::unsubscribe(self, channel)
    }

    fn publish(&self, channel: &str, payload_json: &str) -> Result<u64, ClientError> {
        tether_blocking::Client::publish(self, channel, payload_json)
    }

    fn request(
        &self,
        message: ClientMessage,
        timeout: Duration,
    ) -> Result<ServerMessage, ClientError> {
        tether_blocking::Client::request(self, message, timeout)
    }

    fn rpc(&self, method: &str, data_json: &str) -> Result<Box<RawValue>, ClientError> {
        tether_blocking::Client::rpc(self, method, data_json)
    }

    fn send(&self, message: ClientMessage) -> Result<(), ClientError> {
        tether_blocking::Client::send(self, message)
    }

    fn close(&self) {
        tether_blocking::Client::close(self);
    }

    fn next_event(&self, timeout: Duration) -> Option<Event> {
        tether_blocking::Client::next_event(self, timeout)
    }

    fn next_or_end(&self) -> Option<Event> {
        self.events().next()
    }
}

/// The client's next event; fails the test if none comes within
/// [`PATIENCE`].
pub fn event(client: &impl TestClient) -> Event {
    client
        .next_event(PATIENCE)
        .unwrap_or_else(|| panic!("no event within {PATIENCE:?}"))
}

/// Runs `serve`, the server's script, on a thread of its own while `play`,
/// the client's side, runs on this one; returns when both have, and fails
/// if either failed.
pub fn together(serve: impl FnOnce() + Send, play: impl FnOnce()) {
    thread::scope(|scope| {
        let script = scope.spawn(serve);
        play();
        if let Err(payload) = script.join() {
            panic::resume_unwind(payload);
        }
    });
}
