//! The Tether client on tokio: a [`Client`] handle and the task that drives
//! the core's [`ClientSession`] for it.
//!
//! # Theory of operation
//!
//! [`Client::connect`] creates the session and spawns one driver task that
//! owns it exclusively: no lock surrounds the core. The handle talks to the
//! task through channels: commands go in through a bounded channel, each
//! with a one-shot channel for its answer; the core's events come out
//! through an unbounded one that [`Client::next_event`] reads.
//!
//! The task moves bytes and time and decides nothing. It dials when the
//! session hands out [`Transmit::Dial`], writes what it hands out, feeds
//! every received byte back, reports a dead socket, and sleeps until
//! [`ClientSession::poll_timeout`]. Reconnects, their backoff, heartbeats,
//! resubscriptions and request deadlines are all the session's decisions.
//!
//! # Where the task runs
//!
//! [`Client::connect`] spawns with `tokio::spawn`, so it must be called
//! from within a tokio runtime with the `net` and `time` drivers enabled,
//! current-thread or multi-threaded; the handle may then be used from any
//! task of any runtime.
//!
//! # Flow control
//!
//! Writes never block the task: it keeps reading, and keeps the session's
//! deadlines, while the server is slow to read. When more than 64 KiB wait
//! for the socket, the task stops taking commands, so the commands channel
//! fills and the application's calls wait: backpressure reaches the caller
//! instead of growing a buffer. Events are never held back (a stalled task
//! would miss the session's deadlines), so an application must keep
//! reading [`Client::next_event`] or the events pile up in memory.
//!
//! [`Transmit::Dial`]: tether_core::Transmit::Dial

mod dial;
mod driver;

use std::time::Duration;

use serde_json::value::RawValue;

/// Why a [`Client`] call failed: the core's one error type for every
/// runtime's client.
pub use tether_core::ClientError;
/// Where a [`Client`] gets its tokens when the application keeps them
/// fresh: the core's one provider type for every runtime's client.
pub use tether_core::TokenProvider;
use tether_core::{
    Channel, ClientConfig, ClientMessage, ClientSession, Event, Instant, RequestId, ServerMessage,
    TokenSource, publication_payload, rpc_call, rpc_result,
};
/// What a `wss://` client trusts: the one TLS configuration of every
/// runtime's client.
pub use tether_tls::Connector;
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use self::driver::{Command, Driver};

/// Commands that may wait for the task before callers start to wait too.
const COMMAND_BACKLOG: usize = 64;

/// A handle to a Tether client session running on tokio.
///
/// Dropping the handle closes the session normally (close code `1000`), as
/// [`Client::close`] does, but without waiting for the close to finish.
#[derive(Debug)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    events: Mutex<mpsc::UnboundedReceiver<Event>>,
    finished: watch::Receiver<()>,
}

impl Client {
    /// Starts a session for `config` on the current tokio runtime: it dials
    /// at once and reconnects as the core decides until closed. Panics
    /// outside a tokio runtime, as `tokio::spawn` does.
    ///
    /// A `seed` of 0 in `config` (the default) is replaced with one drawn
    /// from the operating system, as every client does
    /// ([`ClientConfig::with_fresh_seed`] says why); any other seed is used
    /// as given, which makes a run reproducible.
    ///
    /// A `config` whose token is [`TokenSource::Provider`] needs
    /// [`Client::connect_with_provider`]: here every attempt fails for want
    /// of a token.
    pub fn connect(config: ClientConfig) -> Client {
        Client::start(config, None, None)
    }

    /// Like [`Client::connect`], over TLS (`wss://`): every connection
    /// checks the server's certificate, for the name in `config.host`,
    /// against what `tls` trusts ([`Connector::public_roots`], or
    /// [`Connector::with_ca_file`]). A certificate refused fails the
    /// attempt like a refused connection, with a warning that says why, and
    /// the session reconnects by its schedule.
    pub fn connect_tls(config: ClientConfig, tls: Connector) -> Client {
        Client::start(config, None, Some(tls))
    }

    /// [`Client::connect_tls`] with tokens from `provider`, as
    /// [`Client::connect_with_provider`] takes them.
    pub fn connect_tls_with_provider(
        mut config: ClientConfig,
        tls: Connector,
        provider: TokenProvider,
    ) -> Client {
        config.token = TokenSource::Provider;
        Client::start(config, Some(provider), Some(tls))
    }

    /// Like [`Client::connect`], with tokens from `provider` instead of the
    /// token in `config`: it is called before every connection and before
    /// the token expires (the session refreshes it on the open connection),
    /// and after a close `4004` (token expired) the session reconnects with
    /// a new one.
    pub fn connect_with_provider(mut config: ClientConfig, provider: TokenProvider) -> Client {
        config.token = TokenSource::Provider;
        Client::start(config, Some(provider), None)
    }

    /// Tracks `channel`: subscribes now if connected, and again after every
    /// reconnect, resuming from the last offset seen. The confirmation
    /// arrives as [`Event::Subscribed`], a refusal as
    /// [`Event::SubscribeFailed`].
    pub async fn subscribe(&self, channel: &str) -> Result<(), ClientError> {
        let channel = Channel::new(channel)?;
        Ok(self
            .ask(|reply| Command::Subscribe { channel, reply })
            .await??)
    }

    /// Stops tracking `channel` and, if connected, leaves it.
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), ClientError> {
        let channel = Channel::new(channel)?;
        Ok(self
            .ask(|reply| Command::Unsubscribe { channel, reply })
            .await??)
    }

    /// Publishes the JSON text `payload_json` on `channel`, returning the
    /// request's id at once; its outcome (the server's `ack` with the
    /// offset, an error or a timeout) arrives later as
    /// [`Event::RequestDone`] with that id.
    pub async fn publish(
        &self,
        channel: &str,
        payload_json: &str,
    ) -> Result<RequestId, ClientError> {
        let channel = Channel::new(channel)?;
        let payload = publication_payload(payload_json)?;
        Ok(self
            .ask(|reply| Command::Publish {
                channel,
                payload,
                reply,
            })
            .await??)
    }

    /// Sends `message` with a fresh id and waits for its outcome: the reply
    /// that carries the id, or why there is none (the server's `error`, no
    /// reply within `timeout`, or the loss of the connection that carried
    /// it). Messages sent while disconnected wait in the session's offline
    /// queue.
    pub async fn request(
        &self,
        message: ClientMessage,
        timeout: Duration,
    ) -> Result<ServerMessage, ClientError> {
        self.ask(|reply| Command::Request {
            message,
            timeout,
            reply,
        })
        .await?
    }

    /// Calls the application's `method` with the JSON text `data_json` and
    /// waits for its answer: the `data` of the `rpc_result`, as JSON text.
    /// Fails with [`ClientError::InvalidMethod`] or
    /// [`ClientError::InvalidPayload`] before anything is sent, and with
    /// [`ClientError::Request`] for the application's refusal (its code and
    /// message), no answer within the configured `request_timeout`, or the
    /// loss of the connection that carried it (an `rpc` is never sent
    /// twice). Calls made while disconnected wait in the session's offline
    /// queue.
    pub async fn rpc(&self, method: &str, data_json: &str) -> Result<Box<RawValue>, ClientError> {
        let (method, data) = rpc_call(method, data_json)?;
        let reply = self
            .ask(|reply| Command::Rpc {
                method,
                data,
                reply,
            })
            .await??;
        rpc_result(reply)
    }

    /// Sends `message` as it is, without tracking a reply: now if connected,
    /// else after the next `auth_ack`.
    pub async fn send(&self, message: ClientMessage) -> Result<(), ClientError> {
        Ok(self.ask(|reply| Command::Send { message, reply }).await??)
    }

    /// Closes the session for good with a normal close (`1000`) and waits
    /// until it is closed: the server answered, or the session's
    /// `close_timeout` passed. Calling it on a closed session returns at
    /// once.
    pub async fn close(&self) {
        // A send error means the task has already stopped.
        let _ = self.commands.send(Command::Close).await;
        // The task holds the sender until it stops; `changed` then fails.
        let mut finished = self.finished.clone();
        while finished.changed().await.is_ok() {}
    }

    /// The session's next event, in order; `None` once the session is
    /// closed for good and every event has been read.
    ///
    /// Requests made with [`Client::request`] settle through its return
    /// value and do not appear here; those made with [`Client::publish`] do.
    pub async fn next_event(&self) -> Option<Event> {
        self.events.lock().await.recv().await
    }

    /// Makes the session and spawns its task, connected to the handle by
    /// their channels.
    fn start(
        config: ClientConfig,
        provider: Option<TokenProvider>,
        tls: Option<Connector>,
    ) -> Client {
        let config = config.with_fresh_seed(crate::os_seed);
        let start = std::time::Instant::now();
        let session = ClientSession::new(Instant::ZERO, config);
        let (commands, command_rx) = mpsc::channel(COMMAND_BACKLOG);
        let (event_tx, events) = mpsc::unbounded_channel();
        let (finished_tx, finished) = watch::channel(());
        let driver = Driver::new(
            session,
            start,
            provider,
            command_rx,
            event_tx,
            finished_tx,
            tls,
        );
        tokio::spawn(driver.run());
        Client {
            commands,
            events: Mutex::new(events),
            finished,
        }
    }

    /// Sends the command `make` builds around a reply channel and waits for
    /// the task's answer. A task that has stopped answers nothing: the
    /// session is closed.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| ClientError::closed())?;
        answer.await.map_err(|_| ClientError::closed())
    }
}
