//! One server-side connection, from the first byte of its HTTP request to
//! its close: the state machine of PROTOCOL.md section 3.
//!
//! # Theory of operation
//!
//! ```text
//!  Http ──upgrade──► AwaitingAuth ──auth_ack──► Open ──close──► Closing ──► Closed
//!   │                  │   (verdict pending:   ▲   │  │                       ▲
//!   └─route──► Responding   messages kept)     │   │  └──terminate, 4004─────┘
//!                                    refreshed │   │ refresh
//!                                              └─ RefreshPending (messages kept)
//! ```
//!
//! An open connection's token expires at its `exp` (timer `Expiry`, close
//! 4004) unless an accepted `refresh` moved it. A connection whose upgrade
//! another HTTP server answered starts in `AwaitingAuth`
//! ([`Connection::upgraded`]); one the node refuses then starts in
//! `Closing`, its close frame queued ([`Connection::refused_upgraded`]).
//!
//! This file owns every transition; each state's handling is one method.
//! The driver feeds it bytes ([`Connection::handle_read`]), instants
//! ([`Connection::handle_timeout`]), the auth verdict and frames from the hub,
//! then drains three things until they are empty: [`Connection::poll_event`]
//! (what the application or hub must act on), [`Connection::poll_transmit`]
//! (frames for the socket, taken as fast as the socket accepts them), and
//! [`Connection::transport`] (whether to close the socket). Its next deadline
//! is [`Connection::poll_timeout`].
//!
//! The connection never decides anything a hub decides (channels, presence,
//! offsets): parsed requests leave as [`Event::Request`] and their answers
//! come back as frames through [`Connection::send_control`] and
//! [`Connection::send_publication`]. Replies the connection makes itself
//! (`pong`, errors) to messages behind such a request wait in the event
//! list as [`Event::Reply`], so that every reply leaves in the order of the
//! messages.
//!
//! Memory: an idle open connection owns its small fixed fields only. The
//! frame decoder, the outbound queue and the event list allocate when they
//! have something to hold and release it when they are empty again; the HTTP
//! parser lives only until the upgrade.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::auth::{Expiry, is_valid_user_id};
use crate::close::{CloseCode, CloseReason};
use crate::config::ServerConfig;
use crate::envelope::{
    ClientMessage, ErrorCode, RequestId, ServerMessage, encode_server_message, parse_client_message,
};
use crate::frame::{self, FrameDecoder, Message, Role};
use crate::hooks::Rejection;
use crate::http::{self, HttpRequest, Request, RequestLimits, RequestParser};
use crate::queue::{CoalesceKey, FrameAdmission, OutboundQueue};
use crate::rate::TokenBucket;
use crate::time::Instant;
use crate::timer::{TimerKey, TimerTable};

/// What the driver must act on.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A plain HTTP request on the WebSocket port; answer it with
    /// [`Connection::respond`].
    HttpRequest(HttpRequest),
    /// The WebSocket handshake succeeded; the 101 response is queued (or
    /// was sent by the server that answered the upgrade).
    Upgraded,
    /// The client presented a token; answer with
    /// [`Connection::handle_auth_verdict`].
    Authenticate {
        /// The token as sent (never log it).
        token: String,
        /// The upgrade's header fields named in `forward_headers`.
        headers: Vec<(String, String)>,
    },
    /// `auth_ack` is queued: from now on the hub may route to this connection.
    Authenticated,
    /// An open connection presented a new token with `refresh`; answer with
    /// [`Connection::handle_auth_verdict`]. Messages received meanwhile are
    /// kept, in order, and handled after the answer.
    Refresh {
        /// The new token (never log it).
        token: String,
    },
    /// A request for the hub: subscribe, unsubscribe, publish or presence.
    Request(ClientMessage),
    /// A request held for the application's decision
    /// ([`Connection::set_request_held`]) waited `decision_timeout`: answer
    /// it `UNAVAILABLE` and release it.
    DecisionTimedOut,
    /// A reply the connection made itself (a `pong` or an `error`) to a
    /// message that arrived behind a request still out as
    /// [`Event::Request`]. Queue it with [`Connection::send_control`] when
    /// it is polled: the events before it are handled by then, so replies
    /// leave in the order of the messages they answer.
    Reply(Bytes),
    /// The WebSocket session is over. Emitted exactly once, and only for a
    /// connection that was upgraded; the hub must forget the connection.
    Closed {
        /// The close code and reason (1006 when no close frame was exchanged).
        reason: CloseReason,
        /// Who ended it.
        by: ClosedBy,
    },
}

/// Who ended a WebSocket session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClosedBy {
    /// The server sent a close frame (error, policy, shutdown, slow consumer).
    Server,
    /// The client sent a close frame.
    Client,
    /// The transport ended without a close handshake.
    TransportLost,
    /// The client left a Ping unanswered until the next one was due; the
    /// transport was cut without a close handshake.
    HeartbeatTimeout,
}

/// The auth decision for a token, made outside the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthVerdict {
    /// The token is valid for `user`; `session` identifies this connection.
    /// A `user` that breaks the user id rule
    /// ([`crate::auth::is_valid_user_id`]) still closes 4003. For a
    /// `refresh`, only `expiry` counts: the node checked that the token is
    /// the same user's.
    Accept {
        /// The authenticated user id.
        user: String,
        /// The session id reported in `auth_ack`.
        session: String,
        /// When the token expires: close 4004 then, unless refreshed.
        expiry: Option<Expiry>,
    },
    /// The token is refused, or could not be decided: after `auth`, close
    /// 1013 for `UNAVAILABLE`, 1011 for `INTERNAL`, 4003 for any other
    /// code; after `refresh`, an error with the rejection's code (the
    /// connection keeps its old token).
    Reject(Rejection),
}

/// What the driver should do with the socket. Both adapters carry it out
/// the same way, so that a peer sees the same end of TCP from either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Keep reading and writing.
    Open,
    /// Write what is queued; what to do next is asked again then.
    CloseAfterFlush,
    /// Everything is written: shut down the sending side (the peer reads an
    /// end of stream after the last bytes), write nothing more, and keep
    /// reading, handing what arrives to the core (which ignores it), until
    /// the peer's end of stream or [`Transport::CloseNow`]. Closing at once
    /// could leave input unread, and closing with unread input resets the
    /// connection, which can destroy the last bytes before the peer reads
    /// them.
    HalfClose,
    /// Close now; nothing more is worth writing.
    CloseNow,
    /// Close now with a reset (`SO_LINGER` 0): nothing queued is worth
    /// delivering, and the kernel must not keep the socket, and what its
    /// buffers hold, to deliver it.
    Abort,
}

impl Transport {
    /// Whether the socket must be closed now, with a reset or without.
    pub fn closes_now(self) -> bool {
        matches!(self, Transport::CloseNow | Transport::Abort)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    Handshake,
    Auth,
    Heartbeat,
    SlowConsumer,
    /// The latest instant the socket may stay open once the connection is
    /// ending: the peer's close frame or the flush of the last bytes can
    /// keep it no longer than `close_timeout`.
    Linger,
    /// The token's `exp`: close 4004 unless a refresh came first.
    Expiry,
    /// A request held for the application's decision gives up at
    /// `decision_timeout`.
    Decision,
}

impl TimerKey for Timer {
    const ALL: &'static [Self] = &[
        Timer::Handshake,
        Timer::Auth,
        Timer::Heartbeat,
        Timer::SlowConsumer,
        Timer::Linger,
        Timer::Expiry,
        Timer::Decision,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug)]
enum State {
    /// Reading the HTTP request head (and body, for the publish API).
    Http(Box<RequestParser>),
    /// A plain HTTP request is out as an event; waiting for `respond`.
    Responding,
    /// Upgraded; the `auth` message has not arrived. Keeps the upgrade's
    /// forwarded header fields for the auth decision.
    AwaitingAuth(Vec<(String, String)>),
    /// `auth` arrived; the verdict is pending. Messages received meanwhile
    /// are kept raw, in order, and handled after `auth_ack`.
    VerdictPending(Vec<Bytes>),
    /// Authenticated.
    Open,
    /// Authenticated, and a `refresh` (with its `id`) waits for its
    /// verdict; messages received meanwhile are kept raw, in order.
    RefreshPending(Option<RequestId>, Vec<Bytes>),
    /// The server sent its close frame and waits for the client's.
    Closing,
    /// Nothing more happens on this connection.
    Closed,
}

/// A server-side connection: HTTP upgrade, auth gate, framing, heartbeat,
/// rate limit and outbound queue.
#[derive(Debug)]
pub struct Connection {
    state: State,
    decoder: FrameDecoder,
    queue: OutboundQueue,
    timers: TimerTable<Timer, 7>,
    rate: TokenBucket,
    events: VecDeque<Event>,
    /// A Ping went out and no Pong came back yet.
    ping_unanswered: bool,
    /// Text messages received since the last [`Connection::take_received`].
    received: u32,
    /// When a publication to this connection was last dropped.
    last_drop: Option<Instant>,
    /// A request of this connection waits for the application's decision
    /// outside the connection: replies it makes itself wait too.
    request_held: bool,
    /// The client agreed on permessage-deflate: publications may go to it
    /// compressed.
    deflate: bool,
    transport: Transport,
}

impl Connection {
    /// A connection whose TCP stream was accepted at `now`.
    pub fn new(config: &ServerConfig, now: Instant) -> Self {
        let parser = RequestParser::new(RequestLimits::from_config(config));
        let mut conn = Connection::in_state(config, now, State::Http(Box::new(parser)));
        conn.timers
            .set(Timer::Handshake, now + config.handshake_timeout);
        conn
    }

    /// A connection whose upgrade another HTTP server answered with its
    /// `101` at `now`: it waits for `auth` as after the node's own `101`
    /// ([`Event::Upgraded`] follows), with `forwarded`, the upgrade's
    /// `forward_headers` fields, for the connect decision; `deflate` says
    /// whether the `101` accepted permessage-deflate.
    pub fn upgraded(
        config: &ServerConfig,
        now: Instant,
        forwarded: Vec<(String, String)>,
        deflate: bool,
    ) -> Self {
        let mut conn = Connection::in_state(config, now, State::Closed);
        conn.open_websocket(config, now, forwarded, deflate);
        conn
    }

    /// An upgraded connection the node refuses (draining, at capacity):
    /// its session never starts. The close frame with `code` and `reason`
    /// goes out, and the socket closes at the client's answering close
    /// frame or `close_timeout` later, as any close the server starts.
    pub fn refused_upgraded(
        config: &ServerConfig,
        now: Instant,
        code: CloseCode,
        reason: &str,
    ) -> Self {
        let mut conn = Connection::in_state(config, now, State::Closing);
        conn.queue.push_protocol(frame::close_frame(code, reason));
        conn.timers.set(Timer::Linger, now + config.close_timeout);
        conn
    }

    fn in_state(config: &ServerConfig, now: Instant, state: State) -> Self {
        Connection {
            state,
            decoder: FrameDecoder::new(Role::Server, config.max_payload),
            queue: OutboundQueue::default(),
            timers: TimerTable::default(),
            rate: TokenBucket::new(now, config.rate_limit, config.rate_burst),
            events: VecDeque::new(),
            ping_unanswered: false,
            received: 0,
            last_drop: None,
            request_held: false,
            deflate: false,
            transport: Transport::Open,
        }
    }

    /// A connection the node refuses at accept (draining, at capacity):
    /// `response` goes out whole, then TCP is half-closed, and the socket
    /// is closed at the peer's end of stream or `close_timeout` later, so
    /// that a reset never destroys the answer (PROTOCOL.md section 11).
    pub fn refused(config: &ServerConfig, now: Instant, response: Bytes) -> Self {
        let mut conn = Connection::new(config, now);
        conn.finish_after_flush(config, now, response);
        conn.transport = Transport::HalfClose;
        conn
    }

    /// Bytes read from the socket.
    pub fn handle_read(&mut self, config: &ServerConfig, now: Instant, bytes: &[u8]) {
        match &mut self.state {
            State::Http(parser) => {
                parser.feed(bytes);
                self.poll_http(config, now);
            }
            State::AwaitingAuth(_)
            | State::VerdictPending(_)
            | State::Open
            | State::RefreshPending(..)
            | State::Closing => {
                self.decoder.feed(bytes);
                self.poll_frames(config, now);
            }
            State::Responding | State::Closed => {}
        }
    }

    /// The socket reached end of stream or failed.
    pub fn handle_transport_closed(&mut self) {
        if self.accepts_frames() {
            self.emit_closed(
                CloseReason::new(CloseCode::ABNORMAL, "connection lost"),
                ClosedBy::TransportLost,
            );
        }
        self.finish_now();
    }

    /// Fires every timer due at `now`; early or repeated calls do nothing.
    pub fn handle_timeout(&mut self, config: &ServerConfig, now: Instant) {
        while let Some((timer, deadline)) = self.timers.expired(now) {
            match timer {
                Timer::Handshake => {
                    if matches!(self.state, State::Http(_)) {
                        self.finish_now();
                    }
                }
                Timer::Auth => match self.state {
                    State::AwaitingAuth(_) => {
                        self.close(now, CloseCode::AUTH_REQUIRED, "auth timeout", config);
                    }
                    State::VerdictPending(_) | State::RefreshPending(..) => {
                        let verdict = AuthVerdict::Reject(Rejection::unavailable());
                        self.handle_auth_verdict(config, now, verdict);
                    }
                    _ => {}
                },
                Timer::Decision => {
                    if self.request_held && self.is_open() {
                        self.events.push_back(Event::DecisionTimedOut);
                    }
                }
                Timer::Heartbeat => self.heartbeat_tick(config, deadline),
                Timer::SlowConsumer => {
                    if !self.caught_up(config, deadline - config.slow_timeout / 2) {
                        self.cut_slow_consumer();
                    }
                }
                Timer::Linger => self.finish_now(),
                Timer::Expiry => {
                    if self.is_open() {
                        self.close(now, CloseCode::TOKEN_EXPIRED, "token expired", config);
                    }
                }
            }
        }
    }

    /// The verdict on the token of the last [`Event::Authenticate`] or
    /// [`Event::Refresh`]. Ignored unless a verdict is pending (the
    /// connection may have closed meanwhile).
    pub fn handle_auth_verdict(
        &mut self,
        config: &ServerConfig,
        now: Instant,
        verdict: AuthVerdict,
    ) {
        if let State::RefreshPending(id, kept) = &mut self.state {
            let (id, kept) = (id.take(), std::mem::take(kept));
            self.state = State::Open;
            self.timers.stop(Timer::Auth);
            return self.handle_refresh_verdict(config, now, id, verdict, kept);
        }
        let State::VerdictPending(kept) = &mut self.state else {
            return;
        };
        let kept = std::mem::take(kept);
        self.timers.stop(Timer::Auth);
        match verdict {
            AuthVerdict::Reject(rejection) => {
                let (code, reason) = match rejection.code {
                    ErrorCode::Unavailable => (CloseCode::TRY_AGAIN_LATER, "try again later"),
                    ErrorCode::Internal => (CloseCode::INTERNAL_ERROR, "internal error"),
                    _ => (CloseCode::FORBIDDEN, "forbidden"),
                };
                self.close(now, code, reason, config);
            }
            AuthVerdict::Accept { user, .. } if !is_valid_user_id(&user) => {
                self.close(now, CloseCode::FORBIDDEN, "invalid user id", config);
            }
            AuthVerdict::Accept {
                user,
                session,
                expiry,
            } => {
                self.state = State::Open;
                let ack = ServerMessage::AuthAck {
                    user,
                    session,
                    heartbeat_ms: config.heartbeat_interval.as_millis() as u64,
                    max_payload: config.max_payload as u64,
                    expires_at: self.expire_at(now, expiry),
                };
                self.send_message(config, now, &ack);
                self.events.push_back(Event::Authenticated);
                self.handle_kept(config, now, kept, false);
            }
        }
    }

    /// Answers a `refresh`: `refreshed` with the new expiry, or `FORBIDDEN`
    /// with the old token kept; then the messages kept meanwhile.
    fn handle_refresh_verdict(
        &mut self,
        config: &ServerConfig,
        now: Instant,
        id: Option<RequestId>,
        verdict: AuthVerdict,
        kept: Vec<Bytes>,
    ) {
        match verdict {
            AuthVerdict::Accept { expiry, .. } => {
                self.timers.stop(Timer::Expiry);
                let expires_at = self.expire_at(now, expiry);
                self.send_message(config, now, &ServerMessage::Refreshed { id, expires_at });
            }
            AuthVerdict::Reject(rejection) if rejection.code == ErrorCode::Forbidden => {
                let reason = "token refused; the connection keeps its current token";
                self.send_error(config, now, id, ErrorCode::Forbidden, reason);
            }
            AuthVerdict::Reject(rejection) => {
                let (code, message) = rejection.into_wire();
                self.send_error(config, now, id, code, &message);
            }
        }
        self.handle_kept(config, now, kept, true);
    }

    /// Arms the close 4004 at `expiry`, and gives its Unix milliseconds.
    fn expire_at(&mut self, now: Instant, expiry: Option<Expiry>) -> Option<u64> {
        let expiry = expiry?;
        self.timers.set(Timer::Expiry, now + expiry.remaining);
        Some(expiry.unix_ms)
    }

    /// Handles the messages kept while a verdict was pending, in order,
    /// until one of them leaves the open state. Those kept behind a
    /// `refresh` arrived after `auth_ack` and are `counted` by the rate
    /// limit; those kept behind `auth` are not (PROTOCOL.md section 11).
    fn handle_kept(
        &mut self,
        config: &ServerConfig,
        now: Instant,
        kept: Vec<Bytes>,
        counted: bool,
    ) {
        for text in kept {
            match self.state {
                State::Open if counted => self.handle_counted_text(config, now, &text),
                State::Open => self.handle_open_text(config, now, &text),
                State::RefreshPending(_, ref mut later) => later.push(text),
                _ => break,
            }
        }
    }

    /// Queues a reply, error, presence snapshot, join or leave (never
    /// dropped; past `hard_limit` the connection closes with 4008).
    pub fn send_control(&mut self, config: &ServerConfig, now: Instant, frame: Bytes) {
        if !self.accepts_frames() {
            return;
        }
        let admission = self.queue.push_control(frame, config.queue_limits());
        self.after_push(config, now, admission);
    }

    /// Whether the client agreed on permessage-deflate, so that a
    /// publication may go to it as the compressed frame.
    pub fn deflates(&self) -> bool {
        self.deflate
    }

    /// Offers a channel publication to the backpressure policy: queued,
    /// dropped above `high_water`, or coalesced with `latest_only`.
    pub fn send_publication(
        &mut self,
        config: &ServerConfig,
        now: Instant,
        frame: &Bytes,
        coalesce: Option<CoalesceKey>,
    ) -> FrameAdmission {
        if !self.accepts_frames() {
            return FrameAdmission::Dropped;
        }
        let admission = self
            .queue
            .push_publication(frame, coalesce, config.queue_limits());
        if admission == FrameAdmission::Dropped {
            self.last_drop = Some(now);
        }
        self.after_push(config, now, admission);
        admission
    }

    /// Answers the plain HTTP request of [`Event::HttpRequest`]; the
    /// connection closes once the response is written.
    pub fn respond(
        &mut self,
        config: &ServerConfig,
        now: Instant,
        status: u16,
        content_type: &str,
        body: &[u8],
    ) {
        if matches!(self.state, State::Responding) {
            let response = http::response(status, content_type, body);
            self.finish_after_flush(config, now, Bytes::from(response));
        }
    }

    /// Closes the connection from the server side with `code` (e.g. 1001 on
    /// shutdown): queued frames are flushed first, then the close frame.
    pub fn close(&mut self, now: Instant, code: CloseCode, reason: &str, config: &ServerConfig) {
        match self.state {
            State::Http(_) | State::Responding => self.finish_now(),
            State::AwaitingAuth(_)
            | State::VerdictPending(_)
            | State::Open
            | State::RefreshPending(..) => {
                self.queue.push_protocol(frame::close_frame(code, reason));
                self.timers.stop_all();
                self.timers.set(Timer::Linger, now + config.close_timeout);
                self.state = State::Closing;
                self.emit_closed(CloseReason::new(code, reason), ClosedBy::Server);
            }
            State::Closing | State::Closed => {}
        }
    }

    /// The next event for the driver, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if self.events.is_empty() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
        event
    }

    /// Moves queued frames, oldest first, into `out` until they add up to
    /// `budget` bytes; returns the bytes moved. They count as queued until
    /// [`Self::handle_written`] reports them written, so backpressure sees
    /// a write stuck on a peer that does not read.
    pub fn poll_transmit(&mut self, budget: usize, out: &mut Vec<Bytes>) -> usize {
        self.queue.pop_batch(budget, out)
    }

    /// `bytes` of what [`Self::poll_transmit`] handed out are written.
    pub fn handle_written(&mut self, config: &ServerConfig, bytes: usize) {
        self.queue.handle_written(bytes);
        if let Some(deadline) = self.timers.deadline(Timer::SlowConsumer)
            && self.caught_up(config, deadline - config.slow_timeout)
        {
            self.timers.stop(Timer::SlowConsumer);
        }
    }

    /// What to do with the socket now.
    pub fn transport(&self) -> Transport {
        // While frames are queued, `CloseAfterFlush` and `HalfClose` both
        // mean flushing them; once they are out, the first closes and the
        // second half-closes.
        match self.transport {
            Transport::CloseAfterFlush | Transport::HalfClose if !self.queue.is_empty() => {
                Transport::CloseAfterFlush
            }
            Transport::CloseAfterFlush => Transport::CloseNow,
            other => other,
        }
    }

    /// The next instant at which [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Whether the connection is authenticated and not closing.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open | State::RefreshPending(..))
    }

    /// Whether a request of this connection waits outside it (for the
    /// application's decision): while it does, the replies the connection
    /// makes itself leave as [`Event::Reply`], in order behind it, and at
    /// `decision_timeout` from `now` the connection gives up on it with
    /// [`Event::DecisionTimedOut`].
    pub fn set_request_held(&mut self, config: &ServerConfig, now: Instant, held: bool) {
        self.request_held = held;
        if held {
            self.timers
                .set(Timer::Decision, now + config.decision_timeout);
        } else {
            self.timers.stop(Timer::Decision);
        }
    }

    /// Whether the verdict on `auth` is awaited.
    pub fn awaits_verdict(&self) -> bool {
        matches!(self.state, State::VerdictPending(_))
    }

    /// The `refresh` waiting for its verdict is asked of the application
    /// only now, after the requests it waited behind: its verdict is due
    /// `decision_timeout` from `now`.
    pub fn refresh_asked(&mut self, config: &ServerConfig, now: Instant) {
        if self.is_refreshing() {
            self.timers.set(Timer::Auth, now + config.decision_timeout);
        }
    }

    /// Whether a `refresh` waits for its verdict.
    pub fn is_refreshing(&self) -> bool {
        matches!(self.state, State::RefreshPending(..))
    }

    /// Text messages received since the last call, for metrics.
    pub fn take_received(&mut self) -> u64 {
        u64::from(std::mem::take(&mut self.received))
    }

    /// Bytes queued for the socket.
    pub fn queued_bytes(&self) -> usize {
        self.queue.len_bytes()
    }

    #[cfg(test)]
    /// The outbound queue's counters, for metrics.
    pub fn queue_stats(&self) -> crate::queue::QueueStats {
        self.queue.stats()
    }

    fn poll_http(&mut self, config: &ServerConfig, now: Instant) {
        let State::Http(parser) = &mut self.state else {
            return;
        };
        match parser.poll(&config.allowed_origins, &config.forward_headers) {
            Ok(None) => {}
            Ok(Some(Request::Route(request))) => {
                self.timers.stop(Timer::Handshake);
                self.state = State::Responding;
                self.events.push_back(Event::HttpRequest(request));
            }
            Ok(Some(Request::Upgrade(upgrade))) => {
                let State::Http(parser) = std::mem::replace(&mut self.state, State::Closed) else {
                    unreachable!("matched State::Http above");
                };
                self.timers.stop(Timer::Handshake);
                let deflate = upgrade.deflate.filter(|_| config.compression);
                self.queue.push_protocol(Bytes::from(http::accept_response(
                    &upgrade.key,
                    upgrade.protocol,
                    deflate,
                )));
                self.open_websocket(config, now, upgrade.forwarded, deflate.is_some());
                let leftover = parser.into_remaining();
                if !leftover.is_empty() {
                    self.decoder.feed(&leftover);
                    self.poll_frames(config, now);
                }
            }
            Err(error) => {
                self.finish_after_flush(config, now, Bytes::from(error.response()));
            }
        }
    }

    /// The WebSocket starts at `now`, its `101` sent: it waits for `auth`
    /// until `auth_timeout`, and the heartbeat runs (PROTOCOL.md section
    /// 11: it covers connections waiting for their verdict too). Under
    /// permessage-deflate (`deflate`) the client compresses without context
    /// takeover, as the `101` asked: no window is kept between messages.
    fn open_websocket(
        &mut self,
        config: &ServerConfig,
        now: Instant,
        forwarded: Vec<(String, String)>,
        deflate: bool,
    ) {
        if deflate {
            self.decoder = FrameDecoder::with_deflate(Role::Server, config.max_payload, false);
        }
        self.deflate = deflate;
        self.state = State::AwaitingAuth(forwarded);
        self.timers.set(Timer::Auth, now + config.auth_timeout);
        self.timers
            .set(Timer::Heartbeat, now + config.heartbeat_interval);
        self.events.push_back(Event::Upgraded);
    }

    fn poll_frames(&mut self, config: &ServerConfig, now: Instant) {
        while !matches!(self.state, State::Closed) {
            match self.decoder.poll_message() {
                Ok(Some(message)) => self.handle_frame_message(config, now, message),
                Ok(None) => return,
                Err(error) => {
                    let reason = error.to_string();
                    self.fail(config, now, error.close_code(), &reason);
                    return;
                }
            }
        }
    }

    fn handle_frame_message(&mut self, config: &ServerConfig, now: Instant, message: Message) {
        if matches!(self.state, State::Closing) {
            if let Message::Close(_) = message {
                self.state = State::Closed;
                self.transport = Transport::CloseAfterFlush;
            }
            return;
        }
        match message {
            Message::Text(text) => self.handle_text(config, now, text),
            Message::Binary(_) => self.close(
                now,
                CloseCode::UNSUPPORTED_DATA,
                "binary messages are not supported",
                config,
            ),
            Message::Ping(payload) => self.send_control(config, now, frame::pong_frame(&payload)),
            Message::Pong(_) => self.ping_unanswered = false,
            Message::Close(peer) => {
                // RFC 6455 section 5.5.1: answer with a close frame, echoing
                // the status code; a close without one is reported as 1005.
                let (code, reason) = peer.unwrap_or((CloseCode::NO_STATUS, String::new()));
                let echoed = if code == CloseCode::NO_STATUS {
                    CloseCode::NORMAL
                } else {
                    code
                };
                self.emit_closed(CloseReason::new(code, reason), ClosedBy::Client);
                self.finish_after_flush(config, now, frame::close_frame(echoed, ""));
            }
        }
    }

    fn handle_text(&mut self, config: &ServerConfig, now: Instant, text: Bytes) {
        self.received = self.received.saturating_add(1);
        match &mut self.state {
            State::AwaitingAuth(_) => self.handle_first_text(config, now, &text),
            State::VerdictPending(kept) | State::RefreshPending(_, kept) => {
                if kept.len() >= config.max_pending_before_auth {
                    self.close(
                        now,
                        CloseCode::POLICY_VIOLATION,
                        "too many messages before auth",
                        config,
                    );
                } else {
                    kept.push(text);
                }
            }
            State::Open => self.handle_counted_text(config, now, &text),
            State::Http(_) | State::Responding | State::Closing | State::Closed => {}
        }
    }

    /// Handles a message received after `auth_ack`, which the rate limit
    /// counts: a refused one is answered `RATE_LIMITED` and ignored.
    fn handle_counted_text(&mut self, config: &ServerConfig, now: Instant, text: &[u8]) {
        if self.rate.try_take(now) {
            self.handle_open_text(config, now, text);
        } else {
            // The id of a message that does not parse is echoed too, as
            // its own error would have echoed it.
            let id = match parse_text(text) {
                Ok(message) => message.id().cloned(),
                Err(error) => error.id,
            };
            self.send_error(
                config,
                now,
                id,
                ErrorCode::RateLimited,
                "rate limit exceeded",
            );
        }
    }

    fn handle_first_text(&mut self, config: &ServerConfig, now: Instant, text: &[u8]) {
        match parse_text(text) {
            Ok(ClientMessage::Auth { token, .. }) => {
                let State::AwaitingAuth(headers) = &mut self.state else {
                    return;
                };
                let headers = std::mem::take(headers);
                self.timers.set(Timer::Auth, now + config.decision_timeout);
                self.state = State::VerdictPending(Vec::new());
                self.events
                    .push_back(Event::Authenticate { token, headers });
            }
            Ok(ClientMessage::Ping { id }) => {
                self.send_message(config, now, &ServerMessage::Pong { id });
            }
            _ => self.close(now, CloseCode::AUTH_REQUIRED, "auth required", config),
        }
    }

    fn handle_open_text(&mut self, config: &ServerConfig, now: Instant, text: &[u8]) {
        match parse_text(text) {
            Ok(ClientMessage::Ping { id }) => {
                self.send_message(config, now, &ServerMessage::Pong { id });
            }
            Ok(ClientMessage::Auth { id, .. }) => self.send_error(
                config,
                now,
                id,
                ErrorCode::InvalidMessage,
                "already authenticated",
            ),
            Ok(ClientMessage::Refresh { id, token }) => {
                self.timers.set(Timer::Auth, now + config.decision_timeout);
                self.state = State::RefreshPending(id, Vec::new());
                self.events.push_back(Event::Refresh { token });
            }
            Ok(request) => self.events.push_back(Event::Request(request)),
            Err(error) => self.send_error(config, now, error.id, error.code, &error.message),
        }
    }

    fn heartbeat_tick(&mut self, config: &ServerConfig, deadline: Instant) {
        if !self.accepts_frames() {
            return;
        }
        if self.ping_unanswered {
            self.emit_closed(
                CloseReason::new(CloseCode::ABNORMAL, "heartbeat timeout"),
                ClosedBy::HeartbeatTimeout,
            );
            self.finish_now();
            return;
        }
        self.ping_unanswered = true;
        self.queue.push_protocol(frame::ping_frame(&[]));
        self.timers
            .set(Timer::Heartbeat, deadline + config.heartbeat_interval);
    }

    /// Queues a reply the connection makes itself; behind a request still
    /// out as an event it waits as an [`Event::Reply`], so that it cannot
    /// overtake the hub's answer to that request.
    fn send_message(&mut self, config: &ServerConfig, now: Instant, message: &ServerMessage) {
        let frame = frame::text_frame(&encode_server_message(message));
        if self.request_held
            || self
                .events
                .iter()
                .any(|event| matches!(event, Event::Request(_)))
        {
            self.events.push_back(Event::Reply(frame));
        } else {
            self.send_control(config, now, frame);
        }
    }

    fn send_error(
        &mut self,
        config: &ServerConfig,
        now: Instant,
        id: Option<RequestId>,
        code: ErrorCode,
        message: &str,
    ) {
        let error = ServerMessage::Error {
            id,
            code,
            message: message.to_owned(),
        };
        self.send_message(config, now, &error);
    }

    fn after_push(&mut self, config: &ServerConfig, now: Instant, admission: FrameAdmission) {
        if admission == FrameAdmission::OverHardLimit {
            self.cut_slow_consumer();
            return;
        }
        let above = self.queue.is_above_high_water(config.queue_limits());
        if above && !self.timers.is_armed(Timer::SlowConsumer) {
            self.timers
                .set(Timer::SlowConsumer, now + config.slow_timeout);
        }
    }

    /// Whether a slow connection has caught up: its backlog is at most half
    /// of `high_water` and none of its publications was dropped since
    /// `since`. Drops tell a consumer that caught up from one whose socket
    /// buffer swallows each batch while it reads a trickle: both leave the
    /// queue empty now and then, only the second keeps losing messages.
    fn caught_up(&self, config: &ServerConfig, since: Instant) -> bool {
        self.queue.len_bytes() <= config.high_water / 2
            && self.last_drop.is_none_or(|dropped| dropped < since)
    }

    fn accepts_frames(&self) -> bool {
        matches!(
            self.state,
            State::AwaitingAuth(_)
                | State::VerdictPending(_)
                | State::Open
                | State::RefreshPending(..)
        )
    }

    fn emit_closed(&mut self, reason: CloseReason, by: ClosedBy) {
        self.events.push_back(Event::Closed { reason, by });
    }

    /// Ends the connection once `last` and everything before it is written,
    /// or at `close_timeout` from now, whichever comes first.
    fn finish_after_flush(&mut self, config: &ServerConfig, now: Instant, last: Bytes) {
        self.queue.push_protocol(last);
        self.timers.stop_all();
        self.timers.set(Timer::Linger, now + config.close_timeout);
        self.state = State::Closed;
        self.transport = Transport::CloseAfterFlush;
    }

    /// Fails the WebSocket connection (RFC 6455 section 7.1.7) for a frame
    /// the decoder refused: the decoder reads nothing more, so the client's
    /// answer to the close frame could never be seen. The close frame goes
    /// out behind what is queued, then TCP is half-closed, and the socket is
    /// closed at the client's end of stream or `close_timeout` after the
    /// failure (PROTOCOL.md section 11).
    fn fail(&mut self, config: &ServerConfig, now: Instant, code: CloseCode, reason: &str) {
        match self.state {
            State::AwaitingAuth(_)
            | State::VerdictPending(_)
            | State::Open
            | State::RefreshPending(..) => {
                self.emit_closed(CloseReason::new(code, reason), ClosedBy::Server);
                self.finish_after_flush(config, now, frame::close_frame(code, reason));
            }
            // Our close frame is queued and its linger runs already.
            State::Closing => self.state = State::Closed,
            State::Http(_) | State::Responding | State::Closed => return,
        }
        self.transport = Transport::HalfClose;
    }

    /// Closes a slow consumer (4008) by aborting TCP: behind a send buffer
    /// the peer does not drain, a close frame would never arrive, and the
    /// kernel would keep the socket and its buffered bytes for minutes. The
    /// client sees the connection reset (1006) and recovers with `since`
    /// (PROTOCOL.md section 11).
    fn cut_slow_consumer(&mut self) {
        if !self.accepts_frames() {
            return;
        }
        self.emit_closed(
            CloseReason::new(CloseCode::SLOW_CONSUMER, "slow consumer"),
            ClosedBy::Server,
        );
        self.finish_now();
        self.transport = Transport::Abort;
    }

    /// Ends the connection at once: nothing more is read, written or timed.
    fn finish_now(&mut self) {
        self.timers.stop_all();
        self.queue.discard();
        self.state = State::Closed;
        self.transport = Transport::CloseNow;
    }
}

fn parse_text(text: &[u8]) -> Result<ClientMessage, crate::envelope::EnvelopeError> {
    // The decoder hands out text messages only after validating UTF-8.
    let text = std::str::from_utf8(text).unwrap_or_default();
    parse_client_message(text)
}

#[cfg(test)]
mod tests;
