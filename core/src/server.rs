//! One server node: every connection of the node and its hub, driven as one
//! sans-IO machine.
//!
//! # Theory of operation
//!
//! A runtime adapter owns one [`Server`] and moves bytes, instants and
//! verdicts into it; nothing else holds a reference to a connection or the
//! hub, so fan-out needs no lock. Connections are named by [`ConnId`]s that
//! are never reused.
//!
//! - Inputs, each with `now` first: [`Server::accept`] (or
//!   [`Server::accept_upgraded`] for a WebSocket whose upgrade another
//!   HTTP server answered, checked with [`Server::check_upgrade`]),
//!   [`Server::handle_read`], [`Server::handle_written`],
//!   [`Server::handle_transport_closed`], [`Server::handle_timeout`], the
//!   answers to decisions ([`Server::handle_verdict`], or one of
//!   [`Server::handle_auth_verdict`] and [`Server::handle_api_verdict`]),
//!   [`Server::handle_store_event`], and
//!   the commands [`Server::publish`] and [`Server::shutdown`].
//! - Outputs: one queue, [`Server::poll_output`], drained after every input
//!   until it returns [`Output::Timeout`]. A [`Output::Wake`] says that a
//!   connection has frames to write or wants its socket closed: the adapter
//!   takes frames with [`Server::poll_transmit`], reports each written
//!   batch with [`Server::handle_written`], and acts on
//!   [`Server::transport`]. Decisions ([`Output::Decide`]), notifications
//!   ([`Output::Notify`]), store requests, finished publications, session
//!   ends and the end of a drain come out of the same queue.
//! - The application: a decision is asked once per `auth`, `refresh`,
//!   `rpc` and `backend` channel request, under a [`DecisionId`]; while a
//!   request's decision is out the connection holds what follows it, in
//!   order, and at `decision_timeout` the core answers it by itself and
//!   forgets the id, so a late verdict changes nothing.
//! - Time: the deadline in [`Output::Timeout`] is the earliest of any
//!   connection, the hub and the drain. Connection deadlines sit in a
//!   min-heap with lazy deletion: a stale entry pops, finds the
//!   connection's real deadline later (or the connection gone) and is
//!   dropped or re-queued.
//! - Refusals: a connection accepted while draining or at
//!   `max_connections` is refused by the core itself (`503`, half-close,
//!   linger; an already upgraded one gets close `1001` or `1013`), so
//!   every adapter answers it the same way. A connection
//!   whose user already holds `max_connections_per_user` on the node is
//!   closed 4029 at its auth verdict (the hub counts each user's
//!   connections).
//! - Backplane: a node made with [`Server::with_backplane`] shares its
//!   channels with other nodes through an external store. Its hub's
//!   requests come out as [`Output::Store`] and the store's events go into
//!   [`Server::handle_store_event`]; an adapter carries them through a
//!   [`Backplane`](crate::Backplane) and decides nothing. While the link to
//!   the store is down, `/healthz` answers `503 backplane down`, the `tether_backplane_up` gauge is 0, and what
//!   needs the store is answered `UNAVAILABLE`; connections stay open.
//!   Publications that wait for the store (the HTTP API,
//!   [`Server::publish`]) are answered when it answers.
//!
//! Every event a connection emits is handled here, in one place
//! (`Server::process`): HTTP routes are answered (`/healthz`, `/metrics`,
//! 404; `/api/<method>` after its key is checked outside), authenticated
//! connections are introduced to the hub, requests go to the hub, and a
//! closed connection leaves the hub and is counted. Frames the hub sends to
//! other connections may close them (4008); those are processed in turn
//! from a work list, so one input settles completely before it returns.
//!
//! Beside this file: `output.rs` (what the node hands out), `slots.rs` (its
//! table of connections), `routes.rs` (its plain HTTP side: routes and
//! refusals), `api.rs` (the server API, `POST /api/<method>`, answered
//! when the store answers) and `outbox.rs` (how the hub's frames reach the
//! connections).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::access::Operation;
use crate::auth::Identity;
use crate::close::{CloseCode, CloseReason};
use crate::config::{ConfigError, ServerConfig};
use crate::connection::{AuthVerdict, ClosedBy, Connection, Event, Transport};
use crate::envelope::{Channel, ClientMessage};
use crate::hooks::{
    ChannelRequest, ConnectRequest, DecisionId, Notification, Rejection, RpcRequest,
};
use crate::http::{self, AcceptedUpgrade, HttpError, UpgradeHead};
use crate::hub::{ApiPublish, Hub, StoreEvent, Ticket};
use crate::ids::ConnId;
use crate::metrics::{self, Counters, Gauges};
use crate::shard::{Figures, NodeShards};
use crate::time::Instant;

mod api;
mod compressed;
mod outbox;
mod output;
mod routes;
mod slots;

pub use output::{ACCEPT_RETRY, AcceptRetry, Decision, Output, PublishError, Verdict};

use crate::envelope::ErrorCode;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use api::parse_api_call;
use api::{ApiWaiter, Broadcasts, error_body};
use outbox::NodeOutbox;
use routes::Refusal;
use slots::{Deciding, Entry, Held, Slot, entry, entry_mut, schedule_and_wake};

/// One server node: connections, hub, metrics and shutdown state.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    hub: Hub,
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    events: VecDeque<Output>,
    /// Connections touched by the current input that must be processed.
    work: Vec<ConnId>,
    counters: Counters,
    open_websockets: u64,
    live: usize,
    draining: bool,
    /// When the graceful shutdown gives up on open connections; set by
    /// [`Server::shutdown`].
    drain_deadline: Option<Instant>,
    /// [`Output::Drained`] is due or went out.
    drained: Drain,
    api_waiting: BTreeMap<Ticket, ApiWaiter>,
    /// `POST /api/broadcast` requests waiting for some of their offsets.
    broadcasts: Broadcasts,
    /// The node's first input, from which its uptime counts.
    started: Option<Instant>,
    /// Accepting failed and no connection was accepted since.
    accept_failing: bool,
    /// Names this run of the node: epochs, session ids and the backplane's
    /// node name start with it.
    node_id: String,
    /// The last [`DecisionId`] handed out.
    decisions: u64,
    /// Compresses publications for connections that agreed on
    /// permessage-deflate.
    deflater: compressed::NodeDeflater,
}

/// Where the graceful shutdown is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drain {
    Running,
    Due,
    Reported,
}

impl Server {
    /// A node with an in-memory hub, or the first [`ConfigError`] of
    /// `config`. `seed` names this run of the node ([`Server::node_id`]):
    /// take it from OS randomness, so that a restarted node never repeats
    /// an epoch and no two nodes hand out the same session id. Drain it
    /// once before its first input, as any new node.
    pub fn new(config: ServerConfig, seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        let node_id = node_id(seed);
        let hub = Hub::new(&config, &node_id);
        Ok(Server::from_parts(config, hub, node_id))
    }

    /// A node that shares its channels with other nodes through an external
    /// store (a backplane such as Redis), or the first [`ConfigError`] of
    /// `config` (the same checks as [`Server::new`]). `seed` names this run
    /// of the node among all nodes (take it from OS randomness) and seeds
    /// the jitter of its reconnections. Its first output, before any input,
    /// is the [`Output::Store`] that asks to connect: drain the node once
    /// when it starts, or it links to the store only at its first input.
    pub fn with_backplane(config: ServerConfig, seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        let node_id = node_id(seed);
        let hub = Hub::with_external_store(&config, seed);
        Ok(Server::from_parts(config, hub, node_id))
    }

    /// One shard of a node that runs several (PROTOCOL.md, `threads`), or
    /// the first [`ConfigError`] of `config`. The node's store is behind
    /// its [`Router`](crate::Router), reached through `node`: the shard's
    /// requests come out as [`Output::Store`] for the adapter to hand to
    /// the router, and the router's events for this shard go into
    /// [`Server::handle_store_event`]. Users and new channels are counted
    /// for the whole node, and `/metrics` and `POST /api/info` answer for
    /// the whole node. Give each shard its own `seed`: session ids start
    /// with the shard's [`Server::node_id`]. When the router stands in
    /// front of a backplane ([`Router::with_backplane`]), the shard starts
    /// with the backplane down and hears of the node's link from the
    /// router, as a node with a backplane hears of its own.
    ///
    /// [`Router::with_backplane`]: crate::Router::with_backplane
    pub fn shard(
        config: ServerConfig,
        seed: u64,
        node: Box<dyn NodeShards>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let node_id = node_id(seed);
        let hub = Hub::for_shard(&config, seed, node);
        Ok(Server::from_parts(config, hub, node_id))
    }

    fn from_parts(config: ServerConfig, hub: Hub, node_id: String) -> Self {
        Server {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            hub,
            timers: BinaryHeap::new(),
            events: VecDeque::new(),
            work: Vec::new(),
            counters: Counters::default(),
            open_websockets: 0,
            live: 0,
            draining: false,
            drain_deadline: None,
            drained: Drain::Running,
            api_waiting: BTreeMap::new(),
            broadcasts: Broadcasts::new(),
            started: None,
            accept_failing: false,
            node_id,
            decisions: 0,
            deflater: compressed::NodeDeflater::default(),
        }
    }

    /// The name of this run of the node, drawn from its seed: 16 hex
    /// digits. Channel epochs and session ids start with it; a backplane
    /// knows the node by it.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The node's settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// A TCP connection was accepted at `now`; drive its socket like any
    /// other. While draining or at `max_connections` the core refuses it:
    /// its `503` goes out whole, then TCP is half-closed and closed at the
    /// peer's end of stream or after `close_timeout` (PROTOCOL.md section
    /// 11), the same on every runtime. The drain after this input may
    /// already [`Output::Wake`] the new connection: make its writer known
    /// before draining.
    pub fn accept(&mut self, now: Instant) -> ConnId {
        let refusal = self.refusal();
        self.accept_with(now, refusal)
    }

    /// For a shard: a TCP connection the node's acceptor accepted and
    /// handed to this shard, `counted` when the acceptor found room for it
    /// on the node and counted it ([`Router::open_socket`]), `false` when
    /// the node held `max_connections`. Otherwise as [`Server::accept`].
    /// Counting at accept, in the order of accepts, refuses the connection
    /// accepted past the limit, whichever shard it goes to.
    ///
    /// [`Router::open_socket`]: crate::Router::open_socket
    pub fn accept_counted(&mut self, now: Instant, counted: bool) -> ConnId {
        let refusal = match (self.draining, counted) {
            (true, counted) => {
                if counted {
                    self.hub.close_socket();
                }
                Some(Refusal::Draining)
            }
            (false, true) => None,
            (false, false) => Some(Refusal::AtCapacity),
        };
        self.accept_with(now, refusal)
    }

    fn accept_with(&mut self, now: Instant, refusal: Option<Refusal>) -> ConnId {
        self.accept_failing = false;
        let conn = match refusal {
            Some(refusal) => Connection::refused(&self.config, now, refusal.response()),
            None => Connection::new(&self.config, now),
        };
        self.admit(now, conn, refusal.is_some())
    }

    /// Checks an upgrade request that another HTTP server parsed (an
    /// application's own server, e.g. hyper under axum) by the rules of
    /// the node's own parser and its config (`allowed_origins`,
    /// `forward_headers`, `compression`): the [`AcceptedUpgrade`] says what
    /// that server's `101` carries; an [`HttpError`] is the refusal to answer instead,
    /// with the status the node's own parser gives. Reads the node's
    /// settings only: no input, no drain.
    pub fn check_upgrade(&self, head: &UpgradeHead<'_>) -> Result<AcceptedUpgrade, HttpError> {
        let accepted = http::check_upgrade(
            head,
            &self.config.allowed_origins,
            &self.config.forward_headers,
        )?;
        Ok(if self.config.compression {
            accepted
        } else {
            accepted.without_deflate()
        })
    }

    /// A WebSocket whose upgrade another HTTP server answered with its
    /// `101` at `now` (checked with [`Server::check_upgrade`]); drive its
    /// stream, past the `101`, like any socket. The connection starts
    /// waiting for `auth`, its auth deadline and heartbeat armed from
    /// `now`, and counts like any other. While draining it gets close
    /// `1001`, at `max_connections` close `1013` (the `101` is already
    /// out, so a `503` is too late; both tell a client to come back), and
    /// the socket closes at the client's answering close frame or
    /// `close_timeout` later (PROTOCOL.md section 11). As with
    /// [`Server::accept`], make its writer known before draining.
    pub fn accept_upgraded(&mut self, now: Instant, upgrade: AcceptedUpgrade) -> ConnId {
        let refusal = self.refusal();
        let config = &self.config;
        let conn = match refusal {
            Some(refusal) => {
                let (code, reason) = refusal.close();
                Connection::refused_upgraded(config, now, code, reason)
            }
            None => {
                let deflate = upgrade.deflate().is_some();
                Connection::upgraded(config, now, upgrade.into_forwarded(), deflate)
            }
        };
        self.admit(now, conn, refusal.is_some())
    }

    /// Why a new connection is refused, if it is.
    fn refusal(&self) -> Option<Refusal> {
        if self.draining {
            Some(Refusal::Draining)
        } else if !self.has_room() {
            Some(Refusal::AtCapacity)
        } else {
            None
        }
    }

    /// Whether the node takes one more connection: it holds fewer than
    /// `max_connections`. A shard counts the node's connections, and the
    /// new one at once (see [`Hub::open_socket`]).
    fn has_room(&self) -> bool {
        let limit = self.config.max_connections;
        self.hub.open_socket(limit).unwrap_or(self.live < limit)
    }

    /// Gives `conn` a slot and settles it; a `refused` one does not count
    /// against `max_connections`.
    fn admit(&mut self, now: Instant, conn: Connection, refused: bool) -> ConnId {
        let entry = Entry {
            conn,
            refused,
            identity: None,
            deciding: None,
            authenticating: None,
            info: None,
            api_request: None,
            scheduled: None,
            woken: false,
            close_now_signalled: false,
            upgraded: false,
        };
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.entry = Some(entry);
        let id = ConnId(u64::from(slot.generation) << 32 | u64::from(index));
        if !refused {
            self.live += 1;
        }
        self.settle(id, now);
        id
    }

    /// Accepting a TCP connection failed at `now` (EMFILE, ENFILE, ENOBUFS
    /// and the like; the adapter reports every failed accept): it accepts
    /// again at [`AcceptRetry::at`], no sooner, even if it stops waiting
    /// for other work meanwhile, and logs only the failure that starts a
    /// spell. Counted in `tether_accept_errors_total`.
    pub fn handle_accept_failed(&mut self, now: Instant) -> AcceptRetry {
        self.counters.accept_errors_total += 1;
        let starts_spell = !self.accept_failing;
        self.accept_failing = true;
        AcceptRetry {
            at: now + ACCEPT_RETRY,
            starts_spell,
        }
    }

    /// Bytes read from `conn`'s socket.
    pub fn handle_read(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let config = &self.config;
        if let Some(entry) = entry_mut(&mut self.slots, conn) {
            entry.conn.handle_read(config, now, bytes);
            self.settle(conn, now);
        }
    }

    /// `conn`'s socket is closed (by the peer, an error, or the adapter
    /// after [`Transport::CloseNow`] or [`Transport::Abort`]). The
    /// connection is forgotten. A read of the peer's end of stream counts
    /// as its close: the adapter closes the socket and reports it here.
    pub fn handle_transport_closed(&mut self, now: Instant, conn: ConnId) {
        let Some(entry) = entry_mut(&mut self.slots, conn) else {
            return;
        };
        entry.conn.handle_transport_closed();
        self.settle(conn, now);
        self.release(conn);
    }

    /// Fires every deadline due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.drain_deadline.is_some_and(|at| at <= now) && self.drained == Drain::Running {
            self.drained = Drain::Due;
        }
        self.started.get_or_insert(now);
        self.hub.set_node_stats(self.node_stats(now));
        self.hub.handle_timeout(now);
        self.settle_api(now);
        while let Some(&Reverse((at, conn))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let config = &self.config;
            let Some(entry) = entry_mut(&mut self.slots, conn) else {
                continue;
            };
            if entry.scheduled == Some(at) {
                entry.scheduled = None;
            }
            entry.conn.handle_timeout(config, now);
            self.settle(conn, now);
        }
    }

    /// The verdict on the token of the [`Decision::Authenticate`] out for
    /// `conn`, whichever it is: who it proves, or `None` when it is
    /// refused (`FORBIDDEN`). [`Server::handle_verdict`] says what follows.
    pub fn handle_auth_verdict(&mut self, now: Instant, conn: ConnId, identity: Option<Identity>) {
        self.authenticated(now, conn, identity.ok_or_else(Rejection::forbidden));
    }

    /// Feeds the answer to a [`Decision`]; a verdict whose decision is no
    /// longer out (answered by the core at `decision_timeout`, or its
    /// connection gone) is ignored.
    ///
    /// - `Authenticate`: after `auth`, an identity gets `auth_ack` (the core
    ///   makes the session id) unless its user already holds
    ///   `max_connections_per_user` on the node (close 4029); a rejection
    ///   closes 4003, or 1013 for `UNAVAILABLE` and 1011 for `INTERNAL`.
    ///   After `refresh`, a rejection or another user's identity is an
    ///   error (`FORBIDDEN` unless the rejection says otherwise) and the
    ///   connection keeps its old token; an accepted token's grants and
    ///   expiry replace the old ones, and subscriptions they no longer
    ///   allow end.
    /// - `Channel` and `Rpc`: the request is answered, then what the
    ///   connection sent behind it, in order. An answer that is not JSON
    ///   is `INTERNAL`.
    pub fn handle_verdict(&mut self, now: Instant, verdict: Verdict) {
        match verdict {
            Verdict::Authenticate { id, conn, identity } => {
                let current = entry_mut(&mut self.slots, conn)
                    .is_some_and(|entry| entry.authenticating == Some(id));
                if current {
                    self.authenticated(now, conn, identity);
                }
            }
            Verdict::Channel { id, conn, answer } => {
                let answer = answer.and_then(|data| data.map(json).transpose());
                self.decided(now, conn, Some(id), answer);
            }
            Verdict::Rpc { id, conn, result } => {
                self.decided(now, conn, Some(id), result.and_then(json).map(Some));
            }
            Verdict::AuthorizeApi { conn, authorized } => {
                self.handle_api_verdict(now, conn, authorized);
            }
        }
    }

    fn authenticated(&mut self, now: Instant, conn: ConnId, identity: Result<Identity, Rejection>) {
        let config = &self.config;
        let Some(entry) = entry_mut(&mut self.slots, conn) else {
            return;
        };
        entry.authenticating = None;
        if entry.conn.is_refreshing() {
            let known = self.hub.user(conn);
            let identity = identity.and_then(|identity| match known == Some(&*identity.user) {
                true => Ok(identity),
                false => Err(Rejection::forbidden()),
            });
            let identity = match identity {
                Ok(identity) => identity,
                Err(rejection) => {
                    let verdict = AuthVerdict::Reject(rejection);
                    entry.conn.handle_auth_verdict(config, now, verdict);
                    return self.settle(conn, now);
                }
            };
            let verdict = AuthVerdict::Accept {
                user: identity.user,
                session: String::new(),
                expiry: identity.expiry,
            };
            entry.conn.handle_auth_verdict(config, now, verdict);
            self.with_hub(now, |hub, outbox| {
                hub.handle_refreshed(now, conn, identity.grants, outbox);
            });
            return self.settle(conn, now);
        }
        if let Ok(identity) = &identity
            && entry.conn.awaits_verdict()
            && !self.hub.admit(&identity.user)
        {
            let reason = "too many connections for this user";
            entry
                .conn
                .close(now, CloseCode::TOO_MANY_CONNECTIONS, reason, config);
            return self.settle(conn, now);
        }
        let verdict = match identity {
            Ok(mut identity) => {
                let verdict = AuthVerdict::Accept {
                    user: identity.user.clone(),
                    session: format!("{}-{}", self.node_id, conn.0),
                    expiry: identity.expiry.take(),
                };
                entry.identity = Some(Box::new(identity));
                verdict
            }
            Err(rejection) => AuthVerdict::Reject(rejection),
        };
        entry.conn.handle_auth_verdict(config, now, verdict);
        self.settle(conn, now);
    }

    /// The API key check of a [`Decision::AuthorizeApi`]: the request is
    /// carried out and answered (PROTOCOL.md section 2), or answered 401.
    pub fn handle_api_verdict(&mut self, now: Instant, conn: ConnId, authorized: bool) {
        let Some(request) = entry_mut(&mut self.slots, conn).and_then(|e| e.api_request.take())
        else {
            return;
        };
        let (status, body) = if authorized {
            match self.api_call(conn, now, &request) {
                Some(answer) => answer,
                None => return self.settle(conn, now),
            }
        } else {
            (
                401,
                error_body(ErrorCode::Forbidden, "missing or invalid API key"),
            )
        };
        let config = &self.config;
        if let Some(entry) = entry_mut(&mut self.slots, conn) {
            entry
                .conn
                .respond(config, now, status, "application/json", body.as_bytes());
        }
        self.settle(conn, now);
    }

    /// Publishes `payload` (JSON text) on `channel` from the application, as
    /// the HTTP API does: no `sender`, private `user:` channels allowed. The
    /// outcome comes out as [`Output::Published`] with `token`, the
    /// caller's name for this publication: at once in memory mode, when
    /// the backplane answers with one.
    pub fn publish(&mut self, now: Instant, token: u64, channel: &str, payload: &str) {
        let checked = Channel::new(channel)
            .map_err(|error| PublishError::InvalidChannel(error.to_string()))
            .and_then(|channel| {
                serde_json::value::RawValue::from_string(payload.to_owned())
                    .map(|payload| (channel, payload))
                    .map_err(|error| PublishError::InvalidPayload(error.to_string()))
            });
        let (channel, payload) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                self.events.push_back(Output::Published {
                    token,
                    result: Err(error),
                });
                return;
            }
        };
        let published = self.with_hub(now, |hub, outbox| {
            hub.publish_from_api(now, channel, payload, None, outbox)
        });
        let result = match published {
            ApiPublish::Published { offset } => Ok(offset),
            ApiPublish::Pending { ticket } => {
                self.api_waiting.insert(ticket, ApiWaiter::App(token));
                self.settle_work(now);
                return;
            }
            ApiPublish::Unavailable => Err(PublishError::Unavailable),
        };
        self.events.push_back(Output::Published { token, result });
        self.settle_work(now);
    }

    /// An event from the backplane, in the order the adapter received it.
    pub fn handle_store_event(&mut self, now: Instant, event: StoreEvent) {
        self.hub.set_node_stats(self.node_stats(now));
        self.with_hub(now, |hub, outbox| {
            hub.handle_store_event(now, event, outbox)
        });
        self.settle_api(now);
    }

    /// Whether the backplane takes requests (always true in memory mode).
    pub fn is_backplane_up(&self) -> bool {
        self.hub.is_store_up()
    }

    /// Starts the graceful shutdown: no more connections are accepted,
    /// `/healthz` answers 503, and every WebSocket gets close 1001 behind
    /// what is already queued for it.
    pub fn shutdown(&mut self, now: Instant) {
        if self.draining {
            return;
        }
        self.draining = true;
        self.drain_deadline = Some(now + self.config.shutdown_timeout);
        let ids: Vec<ConnId> = self.ids().collect();
        for conn in ids {
            let config = &self.config;
            if let Some(entry) = entry_mut(&mut self.slots, conn) {
                entry
                    .conn
                    .close(now, CloseCode::GOING_AWAY, "going away", config);
                self.settle(conn, now);
            }
        }
    }

    /// The next thing the adapter must act on; [`Output::Timeout`] when
    /// nothing is left but a deadline. Drain it after every input.
    pub fn poll_output(&mut self) -> Output {
        if let Some(output) = self.events.pop_front() {
            return output;
        }
        if let Some(request) = self.hub.poll_store_request() {
            return Output::Store(request);
        }
        if self.draining && self.live == 0 && self.drained == Drain::Running {
            self.drained = Drain::Due;
        }
        if self.drained == Drain::Due {
            self.drained = Drain::Reported;
            return Output::Drained;
        }
        Output::Timeout(self.poll_timeout())
    }

    /// Moves `conn`'s queued frames into `out` up to `budget` bytes; returns
    /// the bytes moved. They count as not yet taken by the peer until
    /// [`Server::handle_written`] reports them written.
    pub fn poll_transmit(&mut self, conn: ConnId, budget: usize, out: &mut Vec<Bytes>) -> usize {
        let Some(entry) = entry_mut(&mut self.slots, conn) else {
            return 0;
        };
        entry.woken = false;
        let before = out.len();
        let moved = entry.conn.poll_transmit(budget, out);
        self.counters.messages_sent_total += (out.len() - before) as u64;
        moved
    }

    /// `bytes` of what [`Server::poll_transmit`] handed out for `conn` are
    /// written to its socket: they no longer count against its backlog.
    /// Queues no output (nor does `poll_transmit`): no drain follows it.
    /// Ask [`Server::transport`] after it.
    pub fn handle_written(&mut self, conn: ConnId, bytes: usize) {
        let config = &self.config;
        if let Some(entry) = entry_mut(&mut self.slots, conn) {
            entry.conn.handle_written(config, bytes);
        }
    }

    /// What to do with `conn`'s socket; [`Transport::CloseNow`] for an
    /// unknown connection.
    pub fn transport(&self, conn: ConnId) -> Transport {
        entry(&self.slots, conn).map_or(Transport::CloseNow, |e| e.conn.transport())
    }

    /// Bytes `conn` has not yet taken (its queue and the batch being
    /// written), or `None` for an unknown connection: never more than
    /// `hard_limit`.
    pub fn queued_bytes(&self, conn: ConnId) -> Option<usize> {
        entry(&self.slots, conn).map(|e| e.conn.queued_bytes())
    }

    /// The earliest instant at which [`Server::handle_timeout`] has work.
    fn poll_timeout(&self) -> Option<Instant> {
        let connections = self.timers.peek().map(|Reverse((at, _))| *at);
        let drain = self
            .drain_deadline
            .filter(|_| self.drained == Drain::Running);
        [connections, self.hub.poll_timeout(), drain]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether [`Server::shutdown`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// TCP connections the node holds, WebSocket or not.
    pub fn connection_count(&self) -> usize {
        self.live
    }

    /// The metrics in Prometheus text format; a shard's are the whole
    /// node's.
    pub fn metrics_text(&self) -> String {
        let figures = self.node_figures();
        metrics::render(&figures.counters, &figures.gauges)
    }

    /// This node's counters and gauges; a shard's own only, which it hands
    /// to the other shards of its node ([`NodeShards::others`]), without
    /// the node's history (the router's): cheap enough to share after
    /// every input.
    pub fn figures(&self) -> Figures {
        let history = self.hub.history_usage();
        let gauges = Gauges {
            connections: self.open_websockets,
            sockets: self.live as u64,
            channels: self.hub.channel_count() as u64,
            draining: u64::from(self.draining),
            backplane_up: u64::from(self.hub.is_store_up()),
            history_channels: history.channels as u64,
            history_bytes: history.bytes as u64,
        };
        Figures {
            counters: self.counters(),
            gauges,
        }
    }

    /// The figures of the whole node: this shard's with every other
    /// shard's, and the channels the router counts once for the node.
    fn node_figures(&self) -> Figures {
        let own = self.figures();
        match self.hub.node_figures() {
            Some((others, channels, history)) => {
                let mut figures = own + others;
                figures.gauges.channels = channels as u64;
                figures.gauges.history_channels = history.channels as u64;
                figures.gauges.history_bytes = history.bytes as u64;
                figures
            }
            None => own,
        }
    }

    /// The node's counters.
    pub fn counters(&self) -> Counters {
        Counters {
            backplane_errors_total: self.hub.store_failures(),
            backplane_request_errors_total: self.hub.store_refusals(),
            ..self.counters
        }
    }

    /// Handles everything `conn` and the connections its input touched
    /// have to say, then re-arms their timers and wakes their writers.
    fn settle(&mut self, conn: ConnId, now: Instant) {
        self.work.push(conn);
        self.settle_work(now);
    }

    fn settle_work(&mut self, now: Instant) {
        self.started.get_or_insert(now);
        while let Some(conn) = self.work.pop() {
            self.process(conn, now);
            if let Some(entry) = entry_mut(&mut self.slots, conn) {
                schedule_and_wake(conn, entry, &mut self.timers, &mut self.events);
            }
        }
    }

    /// The one place a connection's events are handled.
    fn process(&mut self, conn: ConnId, now: Instant) {
        loop {
            let Some(entry) = entry_mut(&mut self.slots, conn) else {
                return;
            };
            self.counters.messages_received_total += entry.conn.take_received();
            let Some(event) = entry.conn.poll_event() else {
                return;
            };
            match event {
                Event::HttpRequest(request) => self.route(conn, now, request),
                Event::Upgraded => {
                    entry.upgraded = true;
                    self.open_websockets += 1;
                    self.counters.connections_total += 1;
                }
                Event::Authenticate { token, headers } => {
                    let request = ConnectRequest {
                        conn,
                        token,
                        headers,
                        refresh: false,
                    };
                    self.ask_connect(conn, request);
                }
                // A refresh behind a request the application decides
                // waits for it, as the requests behind it do: its grants
                // must not change what that request's reply says.
                Event::Refresh { token } if entry.deciding.is_some() => {
                    self.hold(now, conn, Held::Refresh(token));
                }
                Event::Refresh { token } => self.ask_refresh(conn, token),
                Event::Authenticated => {
                    if let Some(identity) = entry.identity.take() {
                        let Identity {
                            user, grants, info, ..
                        } = *identity;
                        entry.info = info.clone().map(String::into_boxed_str);
                        self.hub.handle_authenticated(conn, &user, grants);
                        let connected = Notification::Connected { conn, user, info };
                        self.events.push_back(Output::Notify(connected));
                    }
                }
                Event::DecisionTimedOut => {
                    self.decided(now, conn, None, Err(Rejection::unavailable()));
                }
                Event::Reply(frame) if entry.deciding.is_some() => {
                    self.hold(now, conn, Held::Reply(frame));
                }
                Event::Reply(frame) => entry.conn.send_control(&self.config, now, frame),
                Event::Request(message) if entry.deciding.is_some() => {
                    self.hold(now, conn, Held::Request(message));
                }
                Event::Request(message) => self.handle_request(now, conn, message),
                Event::Closed { reason, by } => {
                    self.count_close(&reason, by);
                    let user = self.hub.user(conn).map(str::to_owned);
                    self.with_hub(now, |hub, outbox| hub.handle_disconnect(now, conn, outbox));
                    if let Some(user) = user {
                        let reason = reason.clone();
                        let disconnected = Notification::Disconnected { conn, user, reason };
                        self.events.push_back(Output::Notify(disconnected));
                    }
                    self.events.push_back(Output::Closed { conn, reason, by });
                }
            }
        }
    }

    /// Asks the application who a token proves; its verdict counts only
    /// while this decision is the connection's latest.
    /// Asks the application about the token of a `refresh`.
    fn ask_refresh(&mut self, conn: ConnId, token: String) {
        let request = ConnectRequest {
            conn,
            token,
            headers: Vec::new(),
            refresh: true,
        };
        self.ask_connect(conn, request);
    }

    fn ask_connect(&mut self, conn: ConnId, request: ConnectRequest) {
        let id = self.next_decision();
        if let Some(entry) = entry_mut(&mut self.slots, conn) {
            entry.authenticating = Some(id);
        }
        let decision = Decision::Authenticate { id, request };
        self.events.push_back(Output::Decide(decision));
    }

    fn next_decision(&mut self) -> DecisionId {
        self.decisions += 1;
        DecisionId(self.decisions)
    }

    /// Hands a request to the hub, or asks the application first: an `rpc`
    /// always, a channel request when its namespace leaves it to the
    /// application.
    fn handle_request(&mut self, now: Instant, conn: ConnId, message: ClientMessage) {
        let asked = match &message {
            ClientMessage::Rpc { method, data, .. } => Some(Asked::Rpc {
                method: method.clone(),
                data: data.get().to_owned(),
            }),
            _ => self
                .hub
                .question(conn, &message)
                .map(|(operation, channel)| Asked::Channel {
                    operation,
                    channel,
                    data: match &message {
                        ClientMessage::Publish { payload, .. } => Some(payload.get().to_owned()),
                        _ => None,
                    },
                }),
        };
        let Some(asked) = asked else {
            return self.with_hub(now, |hub, outbox| {
                hub.handle_message(now, conn, message, outbox);
            });
        };
        let id = self.next_decision();
        let user = self.hub.user(conn).unwrap_or_default().to_owned();
        let Some(entry) = entry_mut(&mut self.slots, conn) else {
            return;
        };
        let info = entry.info.as_deref().map(str::to_owned);
        let decision = match asked {
            Asked::Channel {
                operation,
                channel,
                data,
            } => Decision::Channel {
                id,
                operation,
                request: ChannelRequest {
                    conn,
                    user,
                    info,
                    channel,
                    data,
                },
            },
            Asked::Rpc { method, data } => Decision::Rpc {
                id,
                request: RpcRequest {
                    conn,
                    user,
                    info,
                    method,
                    data,
                },
            },
        };
        let held = VecDeque::new();
        entry.deciding = Some(Box::new(Deciding { id, message, held }));
        entry.conn.set_request_held(&self.config, now, true);
        self.events.push_back(Output::Decide(decision));
    }

    /// Keeps what arrives behind a request that waits for the application;
    /// beyond `max_pending_before_auth` of them the connection closes 1008,
    /// as before an auth verdict.
    fn hold(&mut self, now: Instant, conn: ConnId, held: Held) {
        let config = &self.config;
        let Some(entry) = entry_mut(&mut self.slots, conn) else {
            return;
        };
        let Some(deciding) = entry.deciding.as_mut() else {
            return;
        };
        if deciding.held.len() >= config.max_pending_before_auth {
            let reason = "too many messages waiting for a decision";
            return entry
                .conn
                .close(now, CloseCode::POLICY_VIOLATION, reason, config);
        }
        deciding.held.push_back(held);
    }

    /// The answer to the request of `conn` that waits for the application
    /// (the decision `id`; `None` when the core gives up on it at
    /// `decision_timeout`): the request is answered, then what the
    /// connection sent behind it, in order, until another request waits.
    fn decided(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: Option<DecisionId>,
        answer: Result<Option<Box<RawValue>>, Rejection>,
    ) {
        let config = &self.config;
        let Some(entry) = entry_mut(&mut self.slots, conn) else {
            return;
        };
        let answered = |deciding: &mut Box<Deciding>| id.is_none_or(|id| id == deciding.id);
        let Some(deciding) = entry.deciding.take_if(answered) else {
            return;
        };
        entry.conn.set_request_held(config, now, false);
        let Deciding {
            message, mut held, ..
        } = *deciding;
        self.with_hub(now, |hub, outbox| match message {
            ClientMessage::Rpc { id, .. } => match answer {
                Ok(data) => hub.answer_rpc(conn, id, data.unwrap_or_else(null), outbox),
                Err(rejection) => hub.reject(conn, Some(id), rejection, outbox),
            },
            message => hub.handle_decided(now, conn, message, answer, outbox),
        });
        while let Some(next) = held.pop_front() {
            let Some(entry) = entry_mut(&mut self.slots, conn) else {
                return;
            };
            if let Some(deciding) = entry.deciding.as_mut() {
                // A request held here asked the application in turn: the
                // rest waits behind it, in order.
                deciding.held.push_back(next);
                continue;
            }
            match next {
                Held::Reply(frame) => entry.conn.send_control(&self.config, now, frame),
                Held::Request(message) => self.handle_request(now, conn, message),
                // Unless it timed out while it waited; what came behind it
                // waits in the connection until its verdict.
                Held::Refresh(token) if entry.conn.is_refreshing() => {
                    entry.conn.refresh_asked(&self.config, now);
                    self.ask_refresh(conn, token);
                }
                Held::Refresh(_) => {}
            }
        }
        self.settle(conn, now);
    }

    /// Lends the hub an outbox over the connections, for one call.
    fn with_hub<R>(
        &mut self,
        now: Instant,
        call: impl FnOnce(&mut Hub, &mut NodeOutbox<'_>) -> R,
    ) -> R {
        let mut outbox = NodeOutbox {
            slots: &mut self.slots,
            config: &self.config,
            now,
            work: &mut self.work,
            timers: &mut self.timers,
            events: &mut self.events,
            counters: &mut self.counters,
            compressed: compressed::Compressed::new(&mut self.deflater),
        };
        call(&mut self.hub, &mut outbox)
    }

    fn count_close(&mut self, reason: &CloseReason, by: ClosedBy) {
        self.open_websockets = self.open_websockets.saturating_sub(1);
        match (reason.code, by) {
            (_, ClosedBy::HeartbeatTimeout) => self.counters.heartbeat_timeouts_total += 1,
            (CloseCode::AUTH_REQUIRED | CloseCode::FORBIDDEN, ClosedBy::Server) => {
                self.counters.auth_failures_total += 1;
            }
            (CloseCode::SLOW_CONSUMER, ClosedBy::Server) => {
                self.counters.slow_consumer_closes_total += 1;
            }
            _ => {}
        }
    }

    fn release(&mut self, conn: ConnId) {
        let index = conn.0 as u32 as usize;
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if slot.generation != (conn.0 >> 32) as u32 || slot.entry.is_none() {
            return;
        }
        let refused = slot.entry.as_ref().is_some_and(|entry| entry.refused);
        slot.entry = None;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        if !refused {
            self.live -= 1;
            self.hub.close_socket();
        }
    }

    fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            slot.entry
                .as_ref()
                .map(|_| ConnId(u64::from(slot.generation) << 32 | index as u64))
        })
    }
}

/// What a request asks of the application, before the node names the
/// decision.
enum Asked {
    Channel {
        operation: Operation,
        channel: Channel,
        data: Option<String>,
    },
    Rpc {
        method: String,
        data: String,
    },
}

/// The application's answer as raw JSON, or `INTERNAL` when it is not
/// JSON.
fn json(text: String) -> Result<Box<RawValue>, Rejection> {
    RawValue::from_string(text).map_err(|_| Rejection::internal())
}

/// The JSON `null`: the result of an `rpc` the application allowed without
/// data.
fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is JSON")
}

/// The node id of a seed: 16 hex digits of a SplitMix64 step, so that
/// nearby seeds give unrelated ids.
pub(crate) fn node_id(seed: u64) -> String {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("{:016x}", z ^ (z >> 31))
}

#[cfg(test)]
mod tests;
