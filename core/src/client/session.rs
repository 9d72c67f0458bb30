//! The client session: one object that lives across reconnects and owns every
//! decision the client makes.
//!
//! # Theory of operation
//!
//! A [`ClientSession`] is a state machine over [`State`]:
//!
//! ```text
//!            ┌──────────────────────────── Reconnect timer ◄──────────────────┐
//!            ▼                                                                │
//!  new ─► (FetchingToken) ─► Dialing ─► Upgrading ─► Authenticating ─► Open ─► (lost) ─► Waiting
//!                 │             │           │              │             │
//!                 │             │           │              │             └─ close() ─► Closing ─► Closed
//!                 └─────────────┴───────────┴──────────────┴─ failure ─► Waiting, or Closed if final
//! ```
//!
//! `FetchingToken` is passed through only with a token provider
//! ([`TokenSource::Provider`]): the session hands out
//! [`Output::TokenWanted`] and the adapter answers with `handle_token` or
//! `handle_token_failed`. The session never calls the application itself.
//!
//! Even opening a socket is an output: the session hands out
//! [`Transmit::Dial`] and the adapter answers with `handle_connected` or
//! `handle_connect_failed`. From then on the adapter passes every received
//! byte to `handle_read`, reports the socket's end with
//! `handle_transport_closed`, and calls `handle_timeout` when
//! the deadline of [`Output::Timeout`] is reached. After any input it
//! drains [`ClientSession::poll_output`]: socket actions (strictly in
//! order), then events for the application, then the next deadline.
//!
//! Every transition happens in this file. Helpers elsewhere in the module
//! each keep one kind of bookkeeping and decide nothing: [`Link`] decodes a
//! socket's bytes, `Requests` tracks ids and deadlines, `OfflineQueue` holds
//! what waits for a connection, `Subscriptions` remembers channels and
//! offsets, and one [`TimerTable`] holds every deadline.
//!
//! On a connection: the upgrade request goes out on `handle_connected`;
//! after the `101`, `auth` is the first message; after `auth_ack` the retry
//! counter resets, every tracked channel is re-subscribed (with `since` set
//! to the last position seen), then the offline queue is flushed in order.
//!
//! With a provider, an open connection's token is refreshed before it
//! expires: `expires_at` (from `auth_ack`, then from each `refreshed`) is
//! placed on the time line with the wall clock the adapter reported in
//! `handle_connected`, the refresh is due at the later of four fifths of
//! the remaining life and one minute before expiry, and then a token is
//! wanted and sent in `refresh`. A refusal, a provider failure or no answer
//! within `request_timeout` is retried with the reconnect backoff, as long
//! as the retry comes before the expiry. A close `4004` is reconnected
//! after (with a new token); without a provider it is final unless
//! `set_token` replaced the token since it was sent, since the same token
//! would be refused again.
//!
//! On losing one (a close frame, a dropped socket, a protocol error from the
//! server, a failed dial, a heartbeat or connect timeout): every request
//! written to that connection fails at once, then the session either waits
//! `Backoff` and dials again or, after a final close code or once
//! `max_attempts` retries in a row have failed, closes for good.
//!
//! # Decisions where the protocol is silent
//!
//! - A `1000` the server sends without being asked is reconnected after:
//!   PROTOCOL.md only calls the `1000` the client asked for final, and a
//!   server that wants a client gone for good has `4003` and `1008`.
//! - A handshake refused with an HTTP 4xx status (other than 408 and 429) is
//!   final, like `4003`: a retry cannot fix a bad origin, path or protocol.
//!   Other statuses, invalid `101` responses (which a misbehaving proxy may
//!   produce) and failed dials are retried.
//! - When the server breaks RFC 6455 (a bad frame, a binary message), the
//!   client closes with the matching code and reconnects: the fault is not
//!   the client's, and a fixed server should get its clients back.
//! - The heartbeat counts only incoming bytes as life: `ping_idle` after the
//!   last byte received the client sends `{"type":"ping"}`; `pong_timeout`
//!   later, with nothing received meanwhile, the connection is dead.
//! - `connect_timeout` bounds the time from a dial (or from the token
//!   request before it) to `auth_ack`, since the adapter keeps no timers of
//!   its own; a provider that fails or does not answer in time counts as a
//!   failed attempt.
//! - Subscriptions made with `subscribe` are tracked, carry ids, and have no
//!   deadline: a subscription is retried on every connection until the
//!   server answers `subscribed` (an event) or `error` (`SubscribeFailed`,
//!   and the channel is no longer tracked).
//! - Requests waiting in the offline queue survive a dropped connection (they
//!   were never sent); only those written to the lost connection fail. A
//!   request that times out while queued is taken out of the queue.
//! - Publications are the exception: every `publish` carries an
//!   `idempotency_key` (32 hex digits drawn from the session's generator,
//!   one per publication), so one written to a connection that drops goes
//!   back to the front of the offline queue and is sent again, with the
//!   same key and id, after the next `auth_ack`, until its deadline. The
//!   server publishes it at most once and answers the retry with the
//!   original offset. A `publish` made with `request` is retried the same
//!   way when it carries a key, and fails with the connection when not.
//! - An `rpc` is a request like the others, bounded by `request_timeout`,
//!   and fails with the connection that carried it: without a key the
//!   application cannot tell a retry from a second call, so the caller
//!   decides whether to call again. Its method name is checked before
//!   anything is sent ([`rpc_call`](super::rpc_call)).
//! - Server messages that do not parse are ignored: newer servers may add
//!   message types, and PROTOCOL.md asks peers to ignore what they do not
//!   know.
//! - An unsolicited `unsubscribed` (the server's grants no longer allow the
//!   channel) ends the tracking of the channel: it is reported and never
//!   subscribed again by itself.
//! - Publications on channels the session does not track (raw `subscribe`
//!   messages sent with `send`) are delivered unfiltered.
//! - `heartbeat_ms` and `max_payload` in `auth_ack` are informational: the
//!   session keeps its configured heartbeat and limits.

use std::collections::VecDeque;
use std::mem;
use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::config::{ClientConfig, TokenSource};
use super::event::{Event, Output, RequestError, SendError, Transmit};
use super::expiry::{WallClock, refresh_instant};
use super::offline::{OfflineQueue, Queued};
use super::requests::{Requests, Stage};
use super::subscriptions::Subscriptions;
use super::wire::{self, Incoming, Link, LinkError};
use crate::backoff::{Backoff, RetrySchedule};
use crate::close::{CloseCode, CloseReason};
use crate::envelope::{
    Channel, ClientMessage, ErrorCode, IdempotencyKey, Position, RequestId, ServerMessage,
    UnsubscribeReason, encode_client_message, parse_server_message,
};
use crate::frame::Message;
use crate::http::HandshakeError;
use crate::time::Instant;
use crate::timer::{TimerKey, TimerTable};

/// A Tether client connection that survives reconnects.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    state: State,
    /// Frame masks and handshake keys.
    rng: fastrand::Rng,
    retry: RetrySchedule,
    timers: TimerTable<Timer, TIMERS>,
    requests: Requests,
    offline: OfflineQueue,
    subscriptions: Subscriptions,
    /// The token of the current connection (attempt).
    token: String,
    /// `set_token` replaced the token since it was last sent in `auth`.
    token_replaced: bool,
    /// A token is wanted and [`Output::TokenWanted`] not yet handed out.
    token_wanted: bool,
    /// The wall clock when the current connection's socket opened.
    wall_clock: Option<WallClock>,
    /// When the current connection's token expires, if it does.
    expires: Option<Instant>,
    /// The refresh of the current connection's token under way, if any.
    refresh: Refresh,
    /// The backoff between failed refreshes of one token.
    refresh_retry: RetrySchedule,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

/// Where the session stands; the socket's [`Link`] lives inside the states
/// that have one.
#[derive(Debug)]
enum State {
    /// A token was asked for; waiting for the provider's answer to dial.
    FetchingToken,
    /// A dial was handed out; waiting for the adapter's verdict.
    Dialing,
    /// The upgrade request was written; waiting for the `101`.
    Upgrading(Link),
    /// `auth` was written; waiting for `auth_ack`.
    Authenticating(Link),
    /// Authenticated: messages flow.
    Open(Link),
    /// `close()` was called and a close frame written; waiting for the
    /// server's answer.
    Closing(Link),
    /// Between connections, until the reconnect timer fires.
    Waiting,
    /// Closed for good.
    Closed,
}

/// The session's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// From a dial to `auth_ack`.
    Connect,
    /// When to dial again.
    Reconnect,
    /// When silence calls for an application ping.
    PingIdle,
    /// When silence after that ping means the connection is dead.
    PongDeadline,
    /// How long `close()` waits for the server's close frame.
    Closing,
    /// The earliest deadline of any pending request.
    RequestDeadline,
    /// When the token's refresh is due, or the deadline of the one under
    /// way.
    Refresh,
}

const TIMERS: usize = 7;

/// Where the refresh of the open connection's token stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refresh {
    /// None under way.
    Idle,
    /// A token was asked for.
    Fetching,
    /// `refresh` number `.0` was sent; waiting for the verdict.
    Sent(u64),
}

impl TimerKey for Timer {
    const ALL: &'static [Self] = &[
        Timer::Connect,
        Timer::Reconnect,
        Timer::PingIdle,
        Timer::PongDeadline,
        Timer::Closing,
        Timer::RequestDeadline,
        Timer::Refresh,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

impl ClientSession {
    /// A session that starts connecting at once: the first output is a
    /// [`Transmit::Dial`], or [`Output::TokenWanted`] with a token
    /// provider.
    pub fn new(now: Instant, config: ClientConfig) -> Self {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let retry = RetrySchedule::new(config.backoff.clone(), rng.u64(..));
        let refresh_backoff = Backoff {
            max_attempts: None,
            ..config.backoff.clone()
        };
        let refresh_retry = RetrySchedule::new(refresh_backoff, rng.u64(..));
        let mut session = ClientSession {
            offline: OfflineQueue::new(config.offline_queue),
            config,
            state: State::Closed,
            rng,
            retry,
            timers: TimerTable::default(),
            requests: Requests::default(),
            subscriptions: Subscriptions::default(),
            token: String::new(),
            token_replaced: false,
            token_wanted: false,
            wall_clock: None,
            expires: None,
            refresh: Refresh::Idle,
            refresh_retry,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        session.start_attempt(now);
        session
    }

    /// The settings the session was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether the server has accepted the token on the current connection.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Whether the session is closed for good (or closing): commands fail.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closing(_) | State::Closed)
    }

    /// Whether the session is over: closed for good, with no socket, no
    /// deadline and nothing more to say once drained. It turns true in the
    /// input whose drain hands out the final
    /// [`Event::Disconnected`] (`will_reconnect: false`), and stays true.
    /// Every client stops driving the session after that drain: it
    /// refuses further commands and ends the application's event stream.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The socket the last [`Transmit::Dial`] asked for is open, and the
    /// wall clock shows `unix_ms` (Unix milliseconds) at `now`: the session
    /// reads no clock, and places the token's `expires_at` on its time line
    /// with this reading.
    pub fn handle_connected(&mut self, now: Instant, unix_ms: u64) {
        if !matches!(self.state, State::Dialing) {
            return;
        }
        self.wall_clock = Some(WallClock { at: now, unix_ms });
        let (link, request) = Link::open(&self.config, &mut self.rng);
        self.write(Bytes::from(request));
        self.state = State::Upgrading(link);
    }

    /// The socket the last [`Transmit::Dial`] asked for could not be opened.
    pub fn handle_connect_failed(&mut self, now: Instant) {
        if matches!(self.state, State::Dialing) {
            self.lose(now, abnormal("connect failed"), true);
        }
        self.sync_request_timer();
    }

    /// Bytes received from the socket.
    pub fn handle_read(&mut self, now: Instant, bytes: &[u8]) {
        let Some(link) = self.link_mut() else {
            return;
        };
        link.feed(bytes);
        if !bytes.is_empty() && matches!(self.state, State::Open(_)) {
            self.timers
                .set(Timer::PingIdle, now + self.config.ping_idle);
            self.timers.stop(Timer::PongDeadline);
        }
        while let Some(link) = self.link_mut() {
            match link.poll() {
                Ok(None) => break,
                Ok(Some(Incoming::Upgraded)) => self.handle_upgraded(),
                Ok(Some(Incoming::Message(message))) => self.handle_frame(now, message),
                Err(LinkError::Rejected(error)) => {
                    self.transmits.push_back(Transmit::Close);
                    let retry = match error {
                        HandshakeError::Status(status) => is_retryable_status(status),
                        _ => true,
                    };
                    self.lose(now, abnormal(&format!("handshake failed: {error}")), retry);
                }
                Err(LinkError::Frame(error)) => {
                    self.fail_protocol(now, error.close_code(), &error.to_string());
                }
            }
        }
        self.sync_request_timer();
    }

    /// The provider's answer to [`Output::TokenWanted`]: dials with `token`,
    /// or sends it in a `refresh`. Ignored when no token is wanted any more.
    pub fn handle_token(&mut self, now: Instant, token: String) {
        match self.state {
            State::FetchingToken => {
                self.token = token;
                self.dial();
            }
            State::Open(_) if self.refresh == Refresh::Fetching => {
                let number = self.requests.next_number();
                self.write_message(&ClientMessage::Refresh {
                    id: Some(Requests::id(number)),
                    token,
                });
                self.refresh = Refresh::Sent(number);
                self.timers
                    .set(Timer::Refresh, now + self.config.request_timeout);
            }
            _ => {}
        }
    }

    /// The provider could not give the token [`Output::TokenWanted`] asked
    /// for: a connection attempt fails (and is retried with backoff), a
    /// refresh is retried. Ignored when no token is wanted any more.
    pub fn handle_token_failed(&mut self, now: Instant) {
        match self.state {
            State::FetchingToken => self.lose(now, abnormal("token provider failed"), true),
            State::Open(_) if self.refresh == Refresh::Fetching => {
                self.refresh_failed(now, None, "token provider failed".into());
            }
            _ => {}
        }
        self.sync_request_timer();
    }

    /// The socket closed by itself (EOF or an error), not because of a
    /// [`Transmit::Close`].
    pub fn handle_transport_closed(&mut self, now: Instant) {
        match self.state {
            State::Dialing => self.lose(now, abnormal("connect failed"), true),
            State::Upgrading(_) | State::Authenticating(_) | State::Open(_) => {
                self.lose(now, abnormal("connection lost"), true);
            }
            State::Closing(_) => self.lose(now, closed_by_client(), false),
            State::FetchingToken | State::Waiting | State::Closed => {}
        }
        self.sync_request_timer();
    }

    /// Time has reached (at least) the deadline of [`Output::Timeout`]. Early or
    /// repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((timer, _)) = self.timers.expired(now) {
            match timer {
                Timer::Connect => {
                    if !matches!(self.state, State::FetchingToken) {
                        self.transmits.push_back(Transmit::Close);
                    }
                    self.lose(now, abnormal("connect timeout"), true);
                }
                Timer::Reconnect => self.start_attempt(now),
                Timer::PingIdle => {
                    self.write_message(&ClientMessage::Ping { id: None });
                    self.timers
                        .set(Timer::PongDeadline, now + self.config.pong_timeout);
                }
                Timer::PongDeadline => {
                    self.transmits.push_back(Transmit::Close);
                    self.lose(now, abnormal("heartbeat timeout"), true);
                }
                Timer::Closing => {
                    self.transmits.push_back(Transmit::Close);
                    self.lose(now, closed_by_client(), false);
                }
                Timer::RequestDeadline => self.expire_requests(now),
                Timer::Refresh => match self.refresh {
                    Refresh::Idle if self.has_provider() => {
                        self.refresh = Refresh::Fetching;
                        self.token_wanted = true;
                        self.timers
                            .set(Timer::Refresh, now + self.config.request_timeout);
                    }
                    Refresh::Idle => {}
                    Refresh::Fetching => {
                        self.refresh_failed(now, None, "no token in time".into());
                    }
                    Refresh::Sent(_) => {
                        self.refresh_failed(now, None, "no answer in time".into());
                    }
                },
            }
            // Losing a connection stops every timer; a request due at the
            // same instant must still expire in this call.
            self.sync_request_timer();
        }
        self.sync_request_timer();
    }

    /// Tracks `channel`: subscribes now if connected, and after every
    /// (re)connection from then on, resuming from the last offset seen.
    /// Subscribing to a tracked channel again does nothing.
    pub fn subscribe(&mut self, channel: Channel) -> Result<(), SendError> {
        self.refuse_if_closed()?;
        if self.subscriptions.add(channel.clone()) && self.is_connected() {
            self.send_subscribe(channel, None);
        }
        Ok(())
    }

    /// Stops tracking `channel` and, if connected, unsubscribes from it.
    pub fn unsubscribe(&mut self, channel: Channel) -> Result<(), SendError> {
        self.refuse_if_closed()?;
        self.subscriptions.remove(&channel);
        if self.is_connected() {
            self.write_message(&ClientMessage::Unsubscribe { id: None, channel });
        }
        Ok(())
    }

    /// Publishes `payload` on `channel` as a request with the configured
    /// `request_timeout`; the `ack` (with the offset) settles it. The
    /// publication gets a fresh random `idempotency_key`, which it keeps
    /// when a reconnect makes the session send it again.
    pub fn publish(
        &mut self,
        now: Instant,
        channel: Channel,
        payload: Box<RawValue>,
    ) -> Result<RequestId, SendError> {
        let message = ClientMessage::Publish {
            id: None,
            idempotency_key: Some(self.new_idempotency_key()),
            channel,
            payload,
        };
        self.request(now, message, self.config.request_timeout)
    }

    /// Calls the application's `method` with `data` (checked with
    /// [`rpc_call`](super::rpc_call)) as a request with the configured
    /// `request_timeout`; the `rpc_result` settles it
    /// ([`rpc_result`](super::rpc_result) gives its data), or the
    /// application's `error`. Unlike a publication, an `rpc` written to a
    /// connection that drops fails with it and is never sent again: the
    /// application may have carried it out, and an `rpc` has no key that
    /// would make a second call harmless.
    pub fn rpc(
        &mut self,
        now: Instant,
        method: String,
        data: Box<RawValue>,
    ) -> Result<RequestId, SendError> {
        let message = ClientMessage::Rpc {
            // `request` gives every request its own id in place of this.
            id: Requests::id(0),
            method,
            data,
        };
        self.request(now, message, self.config.request_timeout)
    }

    /// Sends `message` as it is: now if connected, else after the next
    /// `auth_ack` through the offline queue.
    pub fn send(&mut self, message: ClientMessage) -> Result<(), SendError> {
        self.refuse_if_closed()?;
        let text = encode_client_message(&message);
        if self.is_connected() {
            self.write_text(&text);
            return Ok(());
        }
        self.offline
            .push(Queued {
                text,
                request: None,
            })
            .map_err(|_| SendError::QueueFull)
    }

    /// Sends `message` with a fresh id (`r1`, `r2`, ...), and settles it with
    /// [`Event::RequestDone`]: the reply carrying that id, the server's
    /// `error`, a timeout at exactly `now + timeout`, or the loss of the
    /// connection that carried it (unless it is a `publish` with an
    /// `idempotency_key`, which is sent again after the next `auth_ack`).
    pub fn request(
        &mut self,
        now: Instant,
        message: ClientMessage,
        timeout: std::time::Duration,
    ) -> Result<RequestId, SendError> {
        self.refuse_if_closed()?;
        if !can_carry_id(&message) {
            return Err(SendError::NotARequest);
        }
        let connected = self.is_connected();
        if !connected && self.offline.is_full() {
            return Err(SendError::QueueFull);
        }
        let number = self.requests.next_number();
        let id = Requests::id(number);
        let resend = is_resendable(&message);
        let text = encode_client_message(&with_id(message, id.clone()));
        let resend = resend.then(|| text.clone());
        let stage = if connected {
            self.write_text(&text);
            Stage::InFlight
        } else {
            self.offline
                .push(Queued {
                    text,
                    request: Some(number),
                })
                .map_err(|_| SendError::QueueFull)?;
            Stage::Queued
        };
        self.requests.track(number, now + timeout, stage, resend);
        self.sync_request_timer();
        Ok(id)
    }

    /// Makes `token` the fixed token sent in `auth` from the next
    /// connection on; a provider configured is asked for no more tokens.
    /// A close `4004` (token expired) that comes before that connection is
    /// reconnected after, with this token.
    pub fn set_token(&mut self, token: impl Into<String>) {
        self.config.token = TokenSource::Fixed(token.into());
        self.token_replaced = true;
    }

    /// Closes the session for good with a normal close (`1000`), waiting up
    /// to `close_timeout` for the server's answer. Never reconnects.
    pub fn close(&mut self, now: Instant) {
        match mem::replace(&mut self.state, State::Closed) {
            State::Authenticating(link) | State::Open(link) => {
                self.write_close(CloseCode::NORMAL, "");
                self.state = State::Closing(link);
                for timer in [
                    Timer::Connect,
                    Timer::PingIdle,
                    Timer::PongDeadline,
                    Timer::Refresh,
                ] {
                    self.timers.stop(timer);
                }
                self.timers
                    .set(Timer::Closing, now + self.config.close_timeout);
            }
            State::Dialing | State::Upgrading(_) => {
                self.transmits.push_back(Transmit::Close);
                self.lose(now, closed_by_client(), false);
            }
            State::FetchingToken | State::Waiting => self.lose(now, closed_by_client(), false),
            state @ (State::Closing(_) | State::Closed) => self.state = state,
        }
        self.sync_request_timer();
    }

    /// The next thing to act on, the one way out of the session: socket
    /// actions first, in order, then a token request, then events for the
    /// application, in order, then [`Output::Timeout`] with the next
    /// deadline once nothing else is left. Drain it after every input until
    /// it returns `Timeout`.
    pub fn poll_output(&mut self) -> Output {
        if let Some(transmit) = self.poll_transmit() {
            return Output::Transmit(transmit);
        }
        if self.poll_token_wanted() {
            return Output::TokenWanted;
        }
        if let Some(event) = self.poll_event() {
            return Output::Event(event);
        }
        Output::Timeout(self.poll_timeout())
    }

    /// The next socket action alone, for the core's own harnesses, which
    /// interleave a server between the session's actions and its events.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Whether a token is wanted, once per request; see
    /// [`ClientSession::poll_transmit`].
    pub(crate) fn poll_token_wanted(&mut self) -> bool {
        mem::take(&mut self.token_wanted)
    }

    /// The next event alone; see [`ClientSession::poll_transmit`].
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`ClientSession::handle_timeout`] next, if ever: what
    /// [`Output::Timeout`] reports.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Starts a connection attempt and its deadline: asks for a token with
    /// a provider, else dials with the fixed token.
    fn start_attempt(&mut self, now: Instant) {
        self.timers
            .set(Timer::Connect, now + self.config.connect_timeout);
        match &self.config.token {
            TokenSource::Fixed(token) => {
                self.token = token.clone();
                self.dial();
            }
            TokenSource::Provider => {
                self.state = State::FetchingToken;
                self.token_wanted = true;
            }
        }
    }

    /// Hands out a dial.
    fn dial(&mut self) {
        self.state = State::Dialing;
        self.transmits.push_back(Transmit::Dial {
            host: self.config.host.clone(),
        });
    }

    /// Whether the session asks the application for its tokens.
    fn has_provider(&self) -> bool {
        self.config.token == TokenSource::Provider
    }

    /// The `101` arrived: authenticate first of all.
    fn handle_upgraded(&mut self) {
        if let State::Upgrading(link) = mem::replace(&mut self.state, State::Closed) {
            self.state = State::Authenticating(link);
            let auth = ClientMessage::Auth {
                id: None,
                token: self.token.clone(),
            };
            self.token_replaced = false;
            self.write_message(&auth);
        }
    }

    /// One WebSocket message or control frame from the server.
    fn handle_frame(&mut self, now: Instant, message: Message) {
        match message {
            Message::Text(text) => {
                let parsed = std::str::from_utf8(&text)
                    .ok()
                    .and_then(|text| parse_server_message(text).ok());
                if let Some(message) = parsed {
                    self.handle_server_message(now, message);
                }
            }
            Message::Binary(_) => {
                self.fail_protocol(now, CloseCode::UNSUPPORTED_DATA, "binary message");
            }
            Message::Ping(data) => {
                let pong = wire::pong(&mut self.rng, &data);
                self.write(pong);
            }
            Message::Pong(_) => {}
            Message::Close(close) => self.handle_peer_close(now, close),
        }
    }

    /// The server sent a close frame: either the answer to ours, or its own
    /// decision, which is echoed (RFC 6455 section 5.5.1) before the socket
    /// is dropped.
    fn handle_peer_close(&mut self, now: Instant, close: Option<(CloseCode, String)>) {
        if matches!(self.state, State::Closing(_)) {
            self.transmits.push_back(Transmit::Close);
            self.lose(now, closed_by_client(), false);
            return;
        }
        let (code, text) = close.unwrap_or((CloseCode::NO_STATUS, "no status".into()));
        let echo = if code.is_sendable() {
            code
        } else {
            CloseCode::NORMAL
        };
        self.write_close(echo, "");
        self.transmits.push_back(Transmit::Close);
        let retry = match code {
            CloseCode::NORMAL => true,
            CloseCode::TOKEN_EXPIRED => self.has_provider() || self.token_replaced,
            code => !code.is_final(),
        };
        self.lose(now, CloseReason::new(code, text), retry);
    }

    /// The server broke the protocol: close with `code` and reconnect.
    fn fail_protocol(&mut self, now: Instant, code: CloseCode, text: &str) {
        self.write_close(code, text);
        self.transmits.push_back(Transmit::Close);
        if matches!(self.state, State::Closing(_)) {
            self.lose(now, closed_by_client(), false);
        } else {
            self.lose(now, CloseReason::new(code, text), true);
        }
    }

    /// One Tether message from the server.
    fn handle_server_message(&mut self, now: Instant, message: ServerMessage) {
        match message {
            ServerMessage::AuthAck {
                user,
                session,
                expires_at,
                ..
            } => self.handle_auth_ack(now, user, session, expires_at),
            ServerMessage::Message {
                channel,
                payload,
                sender,
                offset,
            } => {
                if self.subscriptions.accept(&channel, offset) {
                    self.events.push_back(Event::Message {
                        channel,
                        payload,
                        sender,
                        offset,
                    });
                }
            }
            ServerMessage::Join { channel, user } => {
                self.events.push_back(Event::Join { channel, user });
            }
            ServerMessage::Leave { channel, user } => {
                self.events.push_back(Event::Leave { channel, user });
            }
            ServerMessage::Error { id, code, message } => {
                self.handle_error(now, id, code, message);
            }
            ServerMessage::Subscribed {
                ref id,
                ref channel,
                ref epoch,
                offset,
                recovered,
                ref data,
            } => {
                self.subscriptions.confirm(channel, epoch, offset);
                let event = Event::Subscribed {
                    channel: channel.clone(),
                    epoch: epoch.clone(),
                    offset,
                    recovered,
                    data: data.as_ref().map(|data| data.get().to_owned()),
                };
                let id = id.clone();
                self.settle_or(id, message, event);
            }
            ServerMessage::Presence {
                ref id,
                ref channel,
                ref users,
            } => {
                let event = Event::Presence {
                    channel: channel.clone(),
                    users: users.clone(),
                };
                let id = id.clone();
                self.settle_or(id, message, event);
            }
            ServerMessage::Unsubscribed {
                id: None,
                channel,
                reason: Some(reason),
            } => self.handle_unsubscribed(channel, reason),
            ServerMessage::Refreshed {
                id: Some(ref id),
                expires_at,
            } if self.is_refresh(id) => {
                self.track_expiry(now, expires_at);
                self.events.push_back(Event::Refreshed { expires_at });
            }
            ServerMessage::Pong { ref id }
            | ServerMessage::Unsubscribed { ref id, .. }
            | ServerMessage::Refreshed { ref id, .. } => {
                if let Some(id) = id.clone() {
                    self.settle(&id, Ok(message));
                }
            }
            ServerMessage::Ack { ref id, .. } | ServerMessage::RpcResult { ref id, .. } => {
                let id = id.clone();
                self.settle(&id, Ok(message));
            }
        }
    }

    /// The server accepted the token: the connection is live.
    fn handle_auth_ack(
        &mut self,
        now: Instant,
        user: String,
        session: String,
        expires_at: Option<u64>,
    ) {
        let State::Authenticating(link) = mem::replace(&mut self.state, State::Closed) else {
            return;
        };
        self.state = State::Open(link);
        self.retry.reset();
        self.timers.stop(Timer::Connect);
        self.timers
            .set(Timer::PingIdle, now + self.config.ping_idle);
        self.track_expiry(now, expires_at);
        self.events.push_back(Event::Connected {
            user,
            session,
            expires_at,
        });
        for (channel, since) in self.subscriptions.resume_points() {
            self.send_subscribe(channel, since);
        }
        let queued: Vec<Queued> = self.offline.drain().collect();
        for item in queued {
            self.write_text(&item.text);
            if let Some(number) = item.request {
                self.requests.mark_in_flight(number);
            }
        }
    }

    /// An `error`: settles the request, refresh or subscription it answers,
    /// or is reported as it is.
    fn handle_error(
        &mut self,
        now: Instant,
        id: Option<RequestId>,
        code: ErrorCode,
        message: String,
    ) {
        let number = id.as_ref().and_then(|id| Requests::parse_id(id.as_str()));
        if let Some(number) = number {
            if self.refresh == Refresh::Sent(number) {
                self.refresh_failed(now, Some(code), message);
                return;
            }
            if self.requests.resolve(number) {
                let error = RequestError::Server { code, message };
                self.push_done(number, Err(error));
                return;
            }
            if let Some(channel) = self.subscriptions.refuse(number) {
                self.events.push_back(Event::SubscribeFailed {
                    channel,
                    code,
                    message,
                });
                return;
            }
        }
        self.events.push_back(Event::Error { id, code, message });
    }

    /// The server ended the subscription to `channel` by itself: it is no
    /// longer tracked, so no reconnect subscribes to it again.
    fn handle_unsubscribed(&mut self, channel: Channel, reason: UnsubscribeReason) {
        self.subscriptions.remove(&channel);
        self.events
            .push_back(Event::Unsubscribed { channel, reason });
    }

    /// Whether `id` names the refresh awaiting its verdict.
    fn is_refresh(&self, id: &RequestId) -> bool {
        Requests::parse_id(id.as_str()).is_some_and(|number| self.refresh == Refresh::Sent(number))
    }

    /// The open connection's token now expires at `expires_at` (Unix
    /// milliseconds), or never: with a provider, its refresh is due at the
    /// later of four fifths of its remaining life and a minute before it
    /// expires.
    fn track_expiry(&mut self, now: Instant, expires_at: Option<u64>) {
        self.refresh = Refresh::Idle;
        self.refresh_retry.reset();
        let clock = self.wall_clock;
        self.expires = expires_at
            .zip(clock)
            .map(|(at, clock)| clock.instant_of(at));
        let due = self
            .expires
            .filter(|_| self.has_provider())
            .and_then(|expires| refresh_instant(now, expires));
        match due {
            Some(at) => self.timers.set(Timer::Refresh, at),
            None => self.timers.stop(Timer::Refresh),
        }
    }

    /// A refresh failed: reports it, and tries again after the backoff
    /// unless the token has expired by then.
    fn refresh_failed(&mut self, now: Instant, code: Option<ErrorCode>, message: String) {
        self.refresh = Refresh::Idle;
        self.events
            .push_back(Event::RefreshFailed { code, message });
        let delay = self.refresh_retry.next_delay().unwrap_or(Duration::MAX);
        let retry = now + delay;
        match self.expires {
            Some(expires) if retry < expires => self.timers.set(Timer::Refresh, retry),
            _ => self.timers.stop(Timer::Refresh),
        }
    }

    /// Settles the request `id` names with `message`, or reports `event` when
    /// it names none.
    fn settle_or(&mut self, id: Option<RequestId>, message: ServerMessage, event: Event) {
        match id {
            Some(id) if self.is_pending(&id) => self.settle(&id, Ok(message)),
            _ => self.events.push_back(event),
        }
    }

    /// Whether `id` is one of this session's unsettled requests.
    fn is_pending(&self, id: &RequestId) -> bool {
        Requests::parse_id(id.as_str()).is_some_and(|number| self.requests.is_pending(number))
    }

    /// Settles request `id` if it is pending; replies to anything else (late,
    /// or foreign ids) are dropped.
    fn settle(&mut self, id: &RequestId, result: Result<ServerMessage, RequestError>) {
        let Some(number) = Requests::parse_id(id.as_str()) else {
            return;
        };
        if self.requests.resolve(number) {
            self.push_done(number, result);
        }
    }

    /// Fails every request whose deadline has come.
    fn expire_requests(&mut self, now: Instant) {
        for (number, stage) in self.requests.expire(now) {
            if stage == Stage::Queued {
                self.offline.remove_request(number);
            }
            self.push_done(number, Err(RequestError::Timeout));
        }
    }

    /// The current connection (or attempt) is over, for `reason`. Puts the
    /// publications it carried back in the offline queue and fails the other
    /// requests it carried, then schedules the next dial when `retry` allows
    /// and the schedule has attempts left, or closes the session for good.
    fn lose(&mut self, now: Instant, reason: CloseReason, retry: bool) {
        self.state = State::Closed;
        self.timers.stop_all();
        self.token_wanted = false;
        self.refresh = Refresh::Idle;
        self.expires = None;
        self.subscriptions.clear_pending();
        let delay = if retry { self.retry.next_delay() } else { None };
        self.events.push_back(Event::Disconnected {
            reason,
            will_reconnect: delay.is_some(),
        });
        let resent = self.requests.requeue_resendable();
        self.offline
            .requeue(resent.into_iter().map(|(number, text)| Queued {
                text,
                request: Some(number),
            }));
        for number in self.requests.drop_in_flight() {
            self.push_done(number, Err(RequestError::Disconnected));
        }
        match delay {
            Some(delay) => {
                self.state = State::Waiting;
                self.timers.set(Timer::Reconnect, now + delay);
                self.events.push_back(Event::Reconnecting {
                    attempt: self.retry.attempts(),
                    delay,
                });
            }
            None => {
                for number in self.requests.drain() {
                    self.push_done(number, Err(RequestError::Closed));
                }
                self.offline.drain().for_each(drop);
            }
        }
    }

    /// Sends a tracked subscription with a fresh id.
    fn send_subscribe(&mut self, channel: Channel, since: Option<Position>) {
        let number = self.requests.next_number();
        self.subscriptions.set_pending(&channel, number);
        self.write_message(&ClientMessage::Subscribe {
            id: Some(Requests::id(number)),
            channel,
            since,
        });
    }

    /// A fresh idempotency key: 128 bits from the session's generator, as 32
    /// hex digits. Sessions with different seeds never share keys in
    /// practice, so two sessions of one user never suppress each other's
    /// publications.
    fn new_idempotency_key(&mut self) -> IdempotencyKey {
        let key = format!("{:016x}{:016x}", self.rng.u64(..), self.rng.u64(..));
        IdempotencyKey::new(key).expect("32 hex digits are a valid key")
    }

    fn push_done(&mut self, number: u64, result: Result<ServerMessage, RequestError>) {
        self.events.push_back(Event::RequestDone {
            id: Requests::id(number),
            result,
        });
    }

    fn refuse_if_closed(&self) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        Ok(())
    }

    fn sync_request_timer(&mut self) {
        match self.requests.next_deadline() {
            Some(at) => self.timers.set(Timer::RequestDeadline, at),
            None => self.timers.stop(Timer::RequestDeadline),
        }
    }

    fn link_mut(&mut self) -> Option<&mut Link> {
        match &mut self.state {
            State::Upgrading(link)
            | State::Authenticating(link)
            | State::Open(link)
            | State::Closing(link) => Some(link),
            State::FetchingToken | State::Dialing | State::Waiting | State::Closed => None,
        }
    }

    fn write_message(&mut self, message: &ClientMessage) {
        self.write_text(&encode_client_message(message));
    }

    fn write_text(&mut self, text: &str) {
        let frame = wire::text(&mut self.rng, text);
        self.write(frame);
    }

    fn write_close(&mut self, code: CloseCode, reason: &str) {
        let frame = wire::close(&mut self.rng, code, reason);
        self.write(frame);
    }

    fn write(&mut self, bytes: Bytes) {
        self.transmits.push_back(Transmit::Write(bytes));
    }
}

/// A 1006 reason: the connection ended without a close frame.
fn abnormal(text: &str) -> CloseReason {
    CloseReason::new(CloseCode::ABNORMAL, text)
}

/// The reason reported when `close()` ends the session.
fn closed_by_client() -> CloseReason {
    CloseReason::new(CloseCode::NORMAL, "closed by client")
}

/// Whether a handshake refused with `status` is worth retrying: server
/// errors and "try later" statuses are, other client errors are not.
fn is_retryable_status(status: u16) -> bool {
    !(400..500).contains(&status) || status == 408 || status == 429
}

/// Whether `message` has an `id` field.
fn can_carry_id(message: &ClientMessage) -> bool {
    !matches!(message, ClientMessage::Auth { .. })
}

/// Whether `message` may be sent again after the connection that carried
/// it dropped: a `publish` whose `idempotency_key` makes a second copy
/// harmless.
fn is_resendable(message: &ClientMessage) -> bool {
    matches!(
        message,
        ClientMessage::Publish {
            idempotency_key: Some(_),
            ..
        }
    )
}

/// `message` with its `id` set to `id`; `auth` is returned unchanged.
fn with_id(message: ClientMessage, id: RequestId) -> ClientMessage {
    match message {
        auth @ ClientMessage::Auth { .. } => auth,
        ClientMessage::Ping { .. } => ClientMessage::Ping { id: Some(id) },
        ClientMessage::Refresh { token, .. } => ClientMessage::Refresh {
            id: Some(id),
            token,
        },
        ClientMessage::Subscribe { channel, since, .. } => ClientMessage::Subscribe {
            id: Some(id),
            channel,
            since,
        },
        ClientMessage::Unsubscribe { channel, .. } => ClientMessage::Unsubscribe {
            id: Some(id),
            channel,
        },
        ClientMessage::Publish {
            idempotency_key,
            channel,
            payload,
            ..
        } => ClientMessage::Publish {
            id: Some(id),
            idempotency_key,
            channel,
            payload,
        },
        ClientMessage::Presence { channel, .. } => ClientMessage::Presence {
            id: Some(id),
            channel,
        },
        ClientMessage::Rpc { method, data, .. } => ClientMessage::Rpc { id, method, data },
    }
}
