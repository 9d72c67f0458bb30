//! The client end of the world: sessions are created, fed what reaches them,
//! and drained; their socket actions become network events and their
//! application events go to the checker, the trace and the figures.

use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;
use tether_core::{
    ClientConfig, ClientMessage, ClientOutput as Output, ClientSession, ErrorCode, Event, Instant,
    RequestError, Transmit,
};

use super::{Ev, SocketId, World};
use crate::grants;

/// Clients stop publishing this long before the end of a run, so that every
/// request can be settled (a request times out after 10 s) before the
/// final check.
const QUIET: Duration = Duration::from_secs(15);

/// How long a refresh may wait for its answer.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(10);

impl World {
    pub(super) fn start_client(&mut self, client: usize) {
        let spec = &self.setup.clients[client];
        let config = ClientConfig {
            backoff: spec.backoff.clone(),
            seed: self.rng.u64(..),
            ..ClientConfig::new(
                format!("node{}", spec.node),
                grants::token(&spec.user, spec.feeds),
            )
        };
        let mut session = ClientSession::new(self.now, config);
        for channel in &spec.channels {
            session
                .subscribe(channel.clone())
                .expect("a new session takes subscriptions");
        }
        let publishes = spec.publish_every;
        self.clients[client].session = Some(session);
        self.record(format_args!("c{client} start"));
        self.drain_client(client);
        if let Some(every) = publishes {
            self.schedule_publish(client, every);
        }
    }

    pub(super) fn client_timer(&mut self, client: usize) {
        let now = self.now;
        let state = &mut self.clients[client];
        if state.timer_at == Some(now) {
            state.timer_at = None;
        }
        if let Some(session) = &mut state.session {
            session.handle_timeout(now);
        }
        self.drain_client(client);
    }

    pub(super) fn client_publishes(&mut self, client: usize) {
        let spec = &self.setup.clients[client];
        let Some(every) = spec.publish_every else {
            return;
        };
        if spec.channels.is_empty() || self.now + QUIET > self.setup.end() {
            return;
        }
        let channel = spec.channels[self.rng.usize(..spec.channels.len())].clone();
        let state = &mut self.clients[client];
        state.published += 1;
        let text = format!(r#"{{"from":{client},"n":{}}}"#, state.published);
        let payload = RawValue::from_string(text).expect("the payload is JSON");
        let now = self.now;
        if let Some(session) = &mut state.session {
            match session.publish(now, channel, payload) {
                Ok(id) => {
                    self.checker.request_issued(now, client, id.as_str());
                    self.record(format_args!("c{client} publish {id}"));
                }
                Err(error) => self.record(format_args!("c{client} publish refused: {error}")),
            }
        }
        self.drain_client(client);
        self.schedule_publish(client, every);
    }

    pub(super) fn syn_ack(&mut self, id: SocketId) {
        let Some(socket) = self.sockets.get(&id) else {
            return;
        };
        let client = socket.client;
        if self.clients[client].socket == Some(id) && socket.client_open {
            let now = self.now;
            if let Some(session) = &mut self.clients[client].session {
                session.handle_connected(now, now.since_origin().as_millis() as u64);
            }
            self.drain_client(client);
        }
    }

    pub(super) fn refused(&mut self, id: SocketId) {
        let Some(socket) = self.sockets.get_mut(&id) else {
            return;
        };
        let client = socket.client;
        if self.clients[client].socket == Some(id) && socket.client_open {
            socket.client_open = false;
            self.clients[client].socket = None;
            let now = self.now;
            if let Some(session) = &mut self.clients[client].session {
                session.handle_connect_failed(now);
            }
            self.drain_client(client);
        }
        self.collect(id);
    }

    pub(super) fn bytes_reach_client(&mut self, id: SocketId, bytes: &[u8]) {
        let Some(socket) = self.sockets.get(&id) else {
            return;
        };
        let client = socket.client;
        if socket.silent || !socket.client_open || self.clients[client].socket != Some(id) {
            return;
        }
        let now = self.now;
        if let Some(session) = &mut self.clients[client].session {
            session.handle_read(now, bytes);
        }
        self.drain_client(client);
    }

    pub(super) fn end_to_client(&mut self, id: SocketId) {
        let Some(socket) = self.sockets.get_mut(&id) else {
            return;
        };
        let client = socket.client;
        if socket.silent || !socket.client_open {
            return;
        }
        socket.client_open = false;
        if self.clients[client].socket == Some(id) {
            self.clients[client].socket = None;
            let now = self.now;
            if let Some(session) = &mut self.clients[client].session {
                session.handle_transport_closed(now);
            }
            self.drain_client(client);
        }
        self.collect(id);
    }

    /// Carries out the session's socket actions and hands its events on,
    /// until it has nothing more; then arms its next deadline.
    pub(super) fn drain_client(&mut self, client: usize) {
        let next = loop {
            let Some(session) = &mut self.clients[client].session else {
                return;
            };
            match session.poll_output() {
                Output::Transmit(transmit) => self.client_transmit(client, transmit),
                // Simulated clients have fixed tokens and never want one.
                Output::TokenWanted => session.handle_token_failed(self.now),
                Output::Event(event) => self.client_event(client, event),
                Output::Timeout(next) => break next,
            }
        };
        self.arm_client(client, next);
    }

    fn arm_client(&mut self, client: usize, next: Option<Instant>) {
        let state = &mut self.clients[client];
        let Some(at) = next else {
            return;
        };
        if state.timer_at.is_none_or(|armed| at < armed) {
            state.timer_at = Some(at);
            self.schedule
                .push(at.max(self.now), Ev::ClientTimer(client));
        }
    }

    fn client_transmit(&mut self, client: usize, transmit: Transmit) {
        match transmit {
            Transmit::Dial { host } => self.dial(client, &host),
            Transmit::Write(bytes) => self.client_write(client, bytes),
            Transmit::Close => self.client_close(client),
        }
    }

    fn dial(&mut self, client: usize, host: &str) {
        self.stats.dialed(self.now);
        self.record(format_args!("c{client} dial {host}"));
        let node = host
            .strip_prefix("node")
            .and_then(|index| index.parse::<usize>().ok())
            .filter(|index| *index < self.nodes.len())
            .expect("clients dial the nodes of the setup");
        let home = node;
        let node = self.balance(home);
        if node != home {
            self.record(format_args!("c{client} dial reaches node{node}"));
        }
        let id = self.new_socket(client, node);
        // A session takes its token for an attempt when it dials.
        let state = &mut self.clients[client];
        state.auth_grants = state.token_grants;
        self.clients[client].socket = Some(id);
        self.clients[client].serving = Some((node, self.nodes[node].incarnation));
        if self.clients[client].partitioned_until > self.now {
            return;
        }
        let delay = self.packet_delay(client);
        self.schedule.push(self.now + delay, Ev::Syn(id));
    }

    fn client_write(&mut self, client: usize, bytes: Bytes) {
        let Some(id) = self.clients[client].socket else {
            return;
        };
        let start = self.departure(client);
        let link = &self.setup.clients[client].link;
        let Some(socket) = self.sockets.get_mut(&id) else {
            return;
        };
        if socket.silent {
            return;
        }
        for (at, chunk) in socket.up.send(start, bytes, link, &mut self.rng) {
            self.schedule.push(at, Ev::ToServer(id, chunk));
        }
    }

    /// The session dropped its socket: the node hears the end of the stream
    /// behind the bytes already sent.
    fn client_close(&mut self, client: usize) {
        let Some(id) = self.clients[client].socket.take() else {
            return;
        };
        let start = self.departure(client);
        let link = &self.setup.clients[client].link;
        if let Some(socket) = self.sockets.get_mut(&id) {
            socket.client_open = false;
            if socket.server_open && !socket.silent {
                let at = socket.up.send_end(start, link, &mut self.rng);
                self.schedule.push(at, Ev::EndToServer(id));
            }
        }
        self.collect(id);
    }

    fn client_event(&mut self, client: usize, event: Event) {
        let now = self.now;
        match event {
            Event::Connected { user, session, .. } => {
                let state = &mut self.clients[client];
                state.grants = state.auth_grants;
                self.stats.connected(now);
                self.checker.connected(client);
                self.record(format_args!("c{client} connected {user} {session}"));
                if self.clients[client].vanish_pending {
                    self.record(format_args!("c{client} vanishes"));
                    self.silence(client);
                }
            }
            Event::Disconnected {
                reason,
                will_reconnect,
            } => {
                self.checker.disconnected(client);
                self.record(format_args!(
                    "c{client} disconnected {reason} reconnect={will_reconnect}"
                ));
                if !will_reconnect {
                    self.violation(format!("client {client} gave up: {reason}"));
                }
            }
            Event::Reconnecting { attempt, delay } => {
                self.record(format_args!(
                    "c{client} reconnecting #{attempt} in {}us",
                    delay.as_micros()
                ));
            }
            Event::Subscribed {
                channel,
                epoch,
                offset,
                recovered,
                ..
            } => {
                self.stats.subscribed(now, client);
                if recovered == Some(true) {
                    self.recovered += 1;
                }
                self.checker
                    .subscribed(now, client, channel.as_str(), &epoch, offset, recovered);
                self.record(format_args!(
                    "c{client} subscribed {channel} {epoch}@{offset} recovered={recovered:?}"
                ));
            }
            Event::SubscribeFailed { channel, code, .. }
                if code == ErrorCode::Forbidden
                    && grants::is_feed(channel.as_str())
                    && !self.clients[client].grants =>
            {
                self.record(format_args!("c{client} {channel} refused: no grant"));
            }
            Event::SubscribeFailed {
                channel,
                code,
                message,
            } => self.violation(format!(
                "client {client}: subscribe to {channel} failed: {code} {message}"
            )),
            Event::Message {
                channel,
                payload,
                sender,
                offset,
            } => {
                self.stats.delivered += 1;
                if grants::is_feed(channel.as_str()) {
                    self.feed_delivered += 1;
                    if !self.clients[client].grants {
                        self.violation(format!(
                            "client {client}: {channel}@{offset} delivered without a grant"
                        ));
                    }
                }
                let gap = self.checker.message(
                    now,
                    client,
                    channel.as_str(),
                    offset,
                    payload.get(),
                    sender.as_deref(),
                );
                self.record(format_args!("c{client} message {channel}@{offset}"));
                if gap > 0 {
                    self.count_gap(client, gap);
                }
            }
            Event::Presence { channel, users } => {
                self.checker.presence(client, channel.as_str(), &users);
                self.record(format_args!("c{client} presence {channel} {users:?}"));
            }
            Event::Join { channel, user } => {
                self.checker
                    .presence_delta(now, client, channel.as_str(), &user, true);
                self.record(format_args!("c{client} join {channel} {user}"));
            }
            Event::Leave { channel, user } => {
                self.checker
                    .presence_delta(now, client, channel.as_str(), &user, false);
                self.leaves.push((now, client, user.clone()));
                self.record(format_args!("c{client} leave {channel} {user}"));
            }
            Event::Error { id, code, message } => {
                self.record(format_args!("c{client} error {id:?} {code} {message}"));
            }
            Event::Refreshed { expires_at } => {
                self.record(format_args!("c{client} refreshed until {expires_at:?}"));
            }
            Event::RefreshFailed { code, message } => {
                self.record(format_args!("c{client} refresh failed {code:?} {message}"));
            }
            Event::Unsubscribed { channel, reason } => {
                self.record(format_args!("c{client} unsubscribed {channel} {reason:?}"));
            }
            Event::RequestDone { id, result } => {
                self.checker.request_done(now, client, id.as_str());
                let state = &mut self.clients[client];
                if let Some(granted) = state.refreshes.remove(id.as_str())
                    && result.is_ok()
                {
                    if state.grants && !granted {
                        self.revoked += 1;
                    }
                    state.grants = granted;
                    if granted {
                        // An earlier refresh may have ended the feeds
                        // after this one's subscribe: the application
                        // subscribes again once the grant is in force.
                        self.subscribe_feeds(client);
                    }
                }
                if let Err(RequestError::Server {
                    code: ErrorCode::Unavailable,
                    ..
                }) = &result
                {
                    self.unavailable += 1;
                }
                let outcome = match &result {
                    Ok(_) => "ok".to_owned(),
                    Err(error) => error.to_string(),
                };
                self.record(format_args!("c{client} done {id} {outcome}"));
            }
        }
    }

    /// The client's application refreshes with a token that grants the
    /// feeds or not; granted, it subscribes to its feeds again.
    pub(super) fn regrant(&mut self, client: usize, granted: bool) {
        let now = self.now;
        let token = grants::token(&self.setup.clients[client].user, granted);
        let state = &mut self.clients[client];
        let Some(session) = &mut state.session else {
            return;
        };
        state.token_grants = granted;
        session.set_token(token.clone());
        let refresh = ClientMessage::Refresh { id: None, token };
        match session.request(now, refresh, REFRESH_TIMEOUT) {
            Ok(id) => {
                state.refreshes.insert(id.as_str().to_owned(), granted);
                self.checker.request_issued(now, client, id.as_str());
                self.record(format_args!("c{client} refresh {id} granted={granted}"));
            }
            Err(error) => self.record(format_args!("c{client} refresh refused: {error}")),
        }
        if granted {
            self.subscribe_feeds(client);
        }
        self.drain_client(client);
    }

    /// Subscribes to the feeds of the client's spec (again).
    fn subscribe_feeds(&mut self, client: usize) {
        let Some(session) = &mut self.clients[client].session else {
            return;
        };
        let feeds = self.setup.clients[client]
            .channels
            .iter()
            .filter(|channel| grants::is_feed(channel.as_str()));
        for channel in feeds {
            let _ = session.subscribe(channel.clone());
        }
    }

    /// A gap in live delivery must be covered by drops the node counted.
    fn count_gap(&mut self, client: usize, gap: u64) {
        let Some((node, incarnation)) = self.clients[client].serving else {
            return;
        };
        let state = &mut self.nodes[node];
        if state.incarnation != incarnation {
            return;
        }
        state.gaps += gap;
        let dropped = state
            .server
            .as_ref()
            .map_or(0, |server| server.counters().messages_dropped_total);
        let gaps = state.gaps;
        if gaps > dropped {
            self.violation(format!(
                "client {client}: clients of node {node} miss {gaps} offsets, the node dropped {dropped}"
            ));
        }
    }

    /// The node a dial for `home` reaches: `home` itself, unless it is a
    /// cluster's node that is down, when the load balancer in front of the
    /// cluster sends the dial to the next node that runs.
    fn balance(&self, home: usize) -> usize {
        if self.store.is_none() {
            return home;
        }
        let count = self.nodes.len();
        (0..count)
            .map(|step| (home + step) % count)
            .find(|&node| self.nodes[node].server.is_some())
            .unwrap_or(home)
    }

    fn schedule_publish(&mut self, client: usize, every: Duration) {
        let spread = every.as_nanos() as u64;
        let wait = Duration::from_nanos(spread / 2 + self.rng.u64(..spread.max(1)));
        self.schedule.push(self.now + wait, Ev::Publish(client));
    }
}
