//! The client: a blocking API over the core's reconnecting session.
//!
//! Commands return at once (the session queues them while disconnected),
//! except [`Client::request`] and [`Client::publish`], which block until the
//! session settles the request, and [`Client::close`]. Everything the
//! session reports arrives as [`Event`]s, taken with [`Client::next_event`]
//! or [`Client::events`]. Reconnecting, resubscribing and recovering are the
//! session's; this module only carries its inputs and outputs.

mod driver;

use std::io;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
/// What a `wss://` client trusts: the one TLS configuration of every
/// runtime's client.
pub use tether_tls::Connector;

/// Why a [`Client`] call failed: the core's one error type for every
/// runtime's client.
pub use tether_core::ClientError;
/// Where a [`Client`] gets its tokens when the application keeps them
/// fresh: the core's one provider type for every runtime's client. This
/// client polls each call to completion on a thread of its own, so a call
/// may block (`TokenProvider::new(|| std::future::ready(fetch_token()))`).
pub use tether_core::TokenProvider;
use tether_core::{
    Channel, ClientConfig, ClientMessage, Event, RequestError, ServerMessage, TokenSource,
    publication_payload, published_offset, rpc_call, rpc_result,
};

use driver::Driver;

/// A Tether client connection that survives reconnects. Usable from
/// several threads at once; dropping it closes the session without waiting.
pub struct Client {
    driver: Arc<Driver>,
    events: Mutex<Receiver<Event>>,
}

impl Client {
    /// Starts a session for `config`: it dials at once and keeps
    /// reconnecting by the session's schedule. Fails only when the client's
    /// timer thread cannot be started.
    ///
    /// A `seed` of 0 in `config` (the default) is replaced with one drawn
    /// from the operating system, as every client does
    /// ([`ClientConfig::with_fresh_seed`] says why); any other seed is used
    /// as given, which makes a run reproducible.
    ///
    /// A `config` whose token is [`TokenSource::Provider`] needs
    /// [`Client::connect_with_provider`]: here every attempt fails for want
    /// of a token.
    pub fn connect(config: ClientConfig) -> io::Result<Client> {
        Client::start(config, None, None)
    }

    /// Like [`Client::connect`], over TLS (`wss://`): every connection
    /// checks the server's certificate, for the name in `config.host`,
    /// against what `tls` trusts ([`Connector::public_roots`], or
    /// [`Connector::with_ca_file`]). A certificate refused fails the
    /// connection, with a warning that says why, and the session
    /// reconnects by its schedule.
    pub fn connect_tls(config: ClientConfig, tls: Connector) -> io::Result<Client> {
        Client::start(config, None, Some(tls))
    }

    /// [`Client::connect_tls`] with tokens from `provider`, as
    /// [`Client::connect_with_provider`] takes them.
    pub fn connect_tls_with_provider(
        mut config: ClientConfig,
        tls: Connector,
        provider: TokenProvider,
    ) -> io::Result<Client> {
        config.token = TokenSource::Provider;
        Client::start(config, Some(provider), Some(tls))
    }

    /// Like [`Client::connect`], with tokens from `provider` instead of the
    /// token in `config`: it is called (and each call polled to completion
    /// on a thread of its own) before every connection and before the token expires (the session
    /// refreshes it on the open connection), and after a close `4004`
    /// (token expired) the session reconnects with a new one.
    pub fn connect_with_provider(
        mut config: ClientConfig,
        provider: TokenProvider,
    ) -> io::Result<Client> {
        config.token = TokenSource::Provider;
        Client::start(config, Some(provider), None)
    }

    fn start(
        config: ClientConfig,
        provider: Option<TokenProvider>,
        tls: Option<Connector>,
    ) -> io::Result<Client> {
        let config = config.with_fresh_seed(|| fastrand::u64(..));
        let (driver, events) = Driver::start(config, provider, tls)?;
        Ok(Client {
            driver,
            events: Mutex::new(events),
        })
    }

    /// Tracks `channel`: subscribes now if connected and after every
    /// reconnect, resuming from the last offset seen. Confirmation arrives
    /// as [`Event::Subscribed`] (or [`Event::SubscribeFailed`]).
    pub fn subscribe(&self, channel: &str) -> Result<(), ClientError> {
        let channel = Channel::new(channel)?;
        Ok(self
            .driver
            .command(|session, _| session.subscribe(channel))?)
    }

    /// Stops tracking `channel` and unsubscribes if connected.
    pub fn unsubscribe(&self, channel: &str) -> Result<(), ClientError> {
        let channel = Channel::new(channel)?;
        Ok(self
            .driver
            .command(|session, _| session.unsubscribe(channel))?)
    }

    /// Publishes `payload_json` (any JSON value, as text) on `channel` and
    /// waits for the server's `ack`: returns the publication's offset. The
    /// wait is bounded by the configured `request_timeout`.
    pub fn publish(&self, channel: &str, payload_json: &str) -> Result<u64, ClientError> {
        let channel = Channel::new(channel)?;
        let payload = publication_payload(payload_json)?;
        let reply = self
            .driver
            .request(|session, now| session.publish(now, channel, payload))?;
        published_offset(outcome(&reply))
    }

    /// Sends `message` with a fresh id and waits for its reply: the
    /// matching server message, the server's error, a timeout after
    /// `timeout`, or the loss of the connection that carried it.
    pub fn request(
        &self,
        message: ClientMessage,
        timeout: Duration,
    ) -> Result<ServerMessage, ClientError> {
        let reply = self
            .driver
            .request(|session, now| session.request(now, message, timeout))?;
        Ok(outcome(&reply)?)
    }

    /// Calls the application's `method` with the JSON text `data_json` and
    /// waits for its answer: the `data` of the `rpc_result`, as JSON text.
    /// Fails with [`ClientError::InvalidMethod`] or
    /// [`ClientError::InvalidPayload`] before anything is sent, and with
    /// [`ClientError::Request`] for the application's refusal (its code and
    /// message), no answer within the configured `request_timeout`, or the
    /// loss of the connection that carried it (an `rpc` is never sent
    /// twice).
    pub fn rpc(&self, method: &str, data_json: &str) -> Result<Box<RawValue>, ClientError> {
        let (method, data) = rpc_call(method, data_json)?;
        let reply = self
            .driver
            .request(|session, now| session.rpc(now, method, data))?;
        rpc_result(outcome(&reply)?)
    }

    /// Sends `message` as it is, now if connected, else after the next
    /// `auth_ack`; any reply arrives as an event.
    pub fn send(&self, message: ClientMessage) -> Result<(), ClientError> {
        Ok(self.driver.command(|session, _| session.send(message))?)
    }

    /// Whether the server has accepted the token on the current connection.
    pub fn is_connected(&self) -> bool {
        self.driver.is_connected()
    }

    /// Closes the session for good with a normal close (1000) and waits
    /// until it is closed: the server answered, or `close_timeout` passed.
    pub fn close(&self) {
        self.driver.close();
    }

    /// The next event, waiting at most `timeout`; `None` on timeout or once
    /// the session is closed and every event was taken. Events wait, without
    /// bound, until they are taken: an application that stops taking them
    /// should close the client.
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        let events = self.events.lock().expect("an event reader panicked");
        events.recv_timeout(timeout).ok()
    }

    /// Every event, in order, blocking for each; the iterator ends once the
    /// session is closed for good and every event was taken.
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || {
            let events = self.events.lock().expect("an event reader panicked");
            events.recv().ok()
        })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.driver.close_in_background();
    }
}

/// Blocks until the session settles a request: its outcome.
fn outcome(reply: &Receiver<driver::Reply>) -> driver::Reply {
    // The session settles every request it accepted; a dropped sender
    // means it was dropped with the request pending.
    reply.recv().unwrap_or(Err(RequestError::Closed))
}
