//! A client session and a server node (connection machine and hub) wired in
//! memory and stepped in virtual time.
//!
//! The node can run its hub in memory mode (its history dies with it) or on
//! a [`MemoryStore`] kept outside the node, standing for a shared backplane
//! whose history survives the node's restart. Nothing here is scripted: the
//! client's bytes go through the real handshake, auth gate, framing, hub and
//! store, and the server's bytes come back the same way.

use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::*;
use crate::access::Grants;
use crate::config::ServerConfig;
use crate::connection::{AuthVerdict, Connection, Event as ServerEvent};
use crate::envelope::Channel;
use crate::hooks::Rejection;
use crate::hub::{Hub, MemoryStore, Outbox, StoreRequest};
use crate::ids::ConnId;
use crate::queue::CoalesceKey;
use crate::time::Instant;

/// The hub's outbox: frames for the one connection of the pair.
struct ToConnection<'a> {
    conn: Option<(ConnId, &'a mut Connection)>,
    config: &'a ServerConfig,
    now: Instant,
}

impl Outbox for ToConnection<'_> {
    fn send_control(&mut self, to: ConnId, frame: Bytes) {
        if let Some((id, conn)) = &mut self.conn
            && *id == to
        {
            conn.send_control(self.config, self.now, frame);
        }
    }

    fn send_publication(&mut self, to: ConnId, frame: &Bytes, key: Option<CoalesceKey>) {
        if let Some((id, conn)) = &mut self.conn
            && *id == to
        {
            let key = key.map(|key| CoalesceKey(key.0));
            conn.send_publication(self.config, self.now, frame, key);
        }
    }
}

/// Where the node keeps its channels' history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum History {
    /// In the node: lost when it restarts.
    InNode,
    /// In a backplane outside the node: survives its restarts.
    Backplane,
}

/// The pair: a client, a node that may be down, and the network between.
struct Pair {
    now: Instant,
    client: ClientSession,
    config: ServerConfig,
    history: History,
    /// The node's hub; `None` while the node is down.
    hub: Option<Hub>,
    backplane: MemoryStore,
    restarts: u32,
    conn: Option<(ConnId, Connection)>,
    conns_accepted: u64,
    /// Bytes from server to client are lost (the server looks dead).
    partitioned: bool,
    dials: Vec<Instant>,
    last_server_bytes: Instant,
    log: Vec<String>,
    delivered: Vec<u64>,
}

const T0: Instant = Instant::from_millis(0);

fn news() -> Channel {
    Channel::new("news").unwrap()
}

impl Pair {
    fn new(history: History) -> Self {
        let client_config = ClientConfig {
            seed: 11,
            ..ClientConfig::new("tether.test", "secret")
        };
        let config = ServerConfig::dev();
        let mut pair = Pair {
            now: T0,
            client: ClientSession::new(T0, client_config),
            backplane: MemoryStore::new(&config, "bp"),
            hub: None,
            config,
            history,
            restarts: 0,
            conn: None,
            conns_accepted: 0,
            partitioned: false,
            dials: Vec::new(),
            last_server_bytes: T0,
            log: Vec::new(),
            delivered: Vec::new(),
        };
        pair.start_node();
        pair.settle();
        pair
    }

    /// Starts the node; with a backplane, the node connects to it first.
    fn start_node(&mut self) {
        self.hub = Some(match self.history {
            History::InNode => Hub::new(&self.config, &format!("node{}", self.restarts)),
            History::Backplane => Hub::with_external_store(&self.config, u64::from(self.restarts)),
        });
        self.restarts += 1;
        self.store_traffic();
    }

    /// The node dies: its connection vanishes without a close frame and
    /// dials fail until [`Pair::start_node`].
    fn crash_node(&mut self) {
        self.hub = None;
        self.conn = None;
        self.client.handle_transport_closed(self.now);
        self.settle();
    }

    /// Moves bytes, events and store traffic until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            while let Some(transmit) = self.client.poll_transmit() {
                moved = true;
                self.client_transmit(transmit);
            }
            while let Some(event) = self.conn.as_mut().and_then(|(_, conn)| conn.poll_event()) {
                moved = true;
                self.server_event(event);
            }
            moved |= self.store_traffic();
            moved |= self.server_transmit();
            while let Some(event) = self.client.poll_event() {
                moved = true;
                self.client_event(event);
            }
            if !moved {
                return;
            }
        }
    }

    fn client_transmit(&mut self, transmit: Transmit) {
        match transmit {
            Transmit::Dial { .. } => {
                self.dials.push(self.now);
                if self.hub.is_some() {
                    self.conns_accepted += 1;
                    let conn = Connection::new(&self.config, self.now);
                    self.conn = Some((ConnId(self.conns_accepted), conn));
                    self.client.handle_connected(self.now, 0);
                } else {
                    self.client.handle_connect_failed(self.now);
                }
            }
            Transmit::Write(bytes) => {
                if let Some((_, conn)) = &mut self.conn {
                    conn.handle_read(&self.config, self.now, &bytes);
                }
            }
            Transmit::Close => {
                if let Some((_, conn)) = &mut self.conn {
                    conn.handle_transport_closed();
                }
                while let Some(event) = self.conn.as_mut().and_then(|(_, conn)| conn.poll_event()) {
                    self.server_event(event);
                }
                self.conn = None;
            }
        }
    }

    fn server_event(&mut self, event: ServerEvent) {
        let (Some(hub), Some((id, conn))) = (&mut self.hub, &mut self.conn) else {
            return;
        };
        let id = *id;
        match event {
            ServerEvent::Authenticate { token, .. } | ServerEvent::Refresh { token } => {
                let verdict = match token.as_str() {
                    "secret" => AuthVerdict::Accept {
                        user: "ann".into(),
                        session: format!("s{}", id.0),
                        expiry: None,
                    },
                    _ => AuthVerdict::Reject(Rejection::forbidden()),
                };
                conn.handle_auth_verdict(&self.config, self.now, verdict);
            }
            ServerEvent::Authenticated => hub.handle_authenticated(id, "ann", Grants::default()),
            ServerEvent::Reply(frame) => conn.send_control(&self.config, self.now, frame),
            ServerEvent::Request(message) => {
                let mut outbox = ToConnection {
                    conn: Some((id, conn)),
                    config: &self.config,
                    now: self.now,
                };
                hub.handle_message(self.now, id, message, &mut outbox);
            }
            ServerEvent::Closed { .. } => {
                let mut outbox = ToConnection {
                    conn: None,
                    config: &self.config,
                    now: self.now,
                };
                hub.handle_disconnect(self.now, id, &mut outbox);
            }
            // This pair holds no request for the application.
            ServerEvent::HttpRequest(_) | ServerEvent::Upgraded | ServerEvent::DecisionTimedOut => {
            }
        }
    }

    /// Carries hub requests to the backplane and its events back (to the
    /// node if it is up); true if anything moved.
    fn store_traffic(&mut self) -> bool {
        let mut moved = false;
        while let Some(request) = self.hub.as_mut().and_then(Hub::poll_store_request) {
            moved = true;
            self.backplane.handle_request(self.now, request);
        }
        while let Some(event) = self.backplane.poll_event() {
            moved = true;
            if let Some(hub) = &mut self.hub {
                let mut outbox = ToConnection {
                    conn: self.conn.as_mut().map(|(id, conn)| (*id, conn)),
                    config: &self.config,
                    now: self.now,
                };
                hub.handle_store_event(self.now, event, &mut outbox);
            }
        }
        moved
    }

    /// Carries the server's queued bytes to the client; true if any moved.
    fn server_transmit(&mut self) -> bool {
        let Some((_, conn)) = &mut self.conn else {
            return false;
        };
        let mut frames = Vec::new();
        crate::testkit::written_all(&self.config, conn, &mut frames);
        let bytes: Vec<u8> = frames.concat();
        let closing = conn.transport().closes_now();
        if !bytes.is_empty() && !self.partitioned {
            self.last_server_bytes = self.now;
            self.client.handle_read(self.now, &bytes);
        }
        if closing {
            while let Some(event) = self.conn.as_mut().and_then(|(_, conn)| conn.poll_event()) {
                self.server_event(event);
            }
            self.conn = None;
            self.client.handle_transport_closed(self.now);
        }
        !bytes.is_empty() || closing
    }

    fn client_event(&mut self, event: Event) {
        match event {
            Event::Message { offset, .. } => self.delivered.push(offset),
            Event::Connected { session, .. } => self.log.push(format!("connected {session}")),
            Event::Disconnected {
                reason,
                will_reconnect,
            } => self
                .log
                .push(format!("disconnected {reason} reconnect={will_reconnect}")),
            Event::Subscribed {
                offset, recovered, ..
            } => {
                self.log
                    .push(format!("subscribed at {offset} recovered={recovered:?}"));
            }
            _ => {}
        }
    }

    /// Advances to the earliest deadline of any machine, fires it, settles.
    fn step(&mut self) -> Instant {
        let at = [
            self.client.poll_timeout(),
            self.conn.as_ref().and_then(|(_, conn)| conn.poll_timeout()),
            self.hub.as_ref().and_then(Hub::poll_timeout),
            self.backplane.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("a deadline is armed");
        self.now = at;
        self.client.handle_timeout(at);
        if let Some((_, conn)) = &mut self.conn {
            conn.handle_timeout(&self.config, at);
        }
        if let Some(hub) = &mut self.hub {
            hub.handle_timeout(at);
        }
        self.backplane.handle_timeout(at);
        self.settle();
        at
    }

    /// Steps until `done` holds; a thousand steps without it fail the test.
    fn step_until(&mut self, mut done: impl FnMut(&Pair) -> bool) {
        for _ in 0..1_000 {
            if done(self) {
                return;
            }
            self.step();
        }
        panic!("condition not reached");
    }

    /// A publication on `news` from elsewhere: the node's HTTP API when it
    /// is up, another node of the backplane when it is down.
    fn publish_elsewhere(&mut self, payload: &str) {
        let payload = RawValue::from_string(payload.to_owned()).unwrap();
        match &mut self.hub {
            Some(hub) => {
                let mut outbox = ToConnection {
                    conn: self.conn.as_mut().map(|(id, conn)| (*id, conn)),
                    config: &self.config,
                    now: self.now,
                };
                hub.publish_from_api(self.now, news(), payload, None, &mut outbox);
            }
            None => {
                let request = StoreRequest::Publish {
                    ticket: None,
                    channel: news(),
                    payload,
                    sender: None,
                    idempotency_key: None,
                };
                self.backplane.handle_request(self.now, request);
            }
        }
        self.settle();
    }
}

#[test]
fn node_restart_recovers_exactly_the_missed_publications_in_order() {
    let mut pair = Pair::new(History::Backplane);
    pair.client.subscribe(news()).unwrap();
    pair.settle();
    pair.publish_elsewhere("1");
    pair.publish_elsewhere("2");
    assert_eq!(pair.delivered, [1, 2]);

    pair.now += Duration::from_secs(1);
    pair.crash_node();
    pair.publish_elsewhere("3");
    pair.publish_elsewhere("4");
    // The first redial fails while the node is down.
    pair.step();
    assert_eq!(pair.dials.len(), 2);
    pair.start_node();
    pair.publish_elsewhere("5");
    pair.step_until(|pair| pair.client.is_connected());
    pair.publish_elsewhere("6");

    assert_eq!(
        pair.delivered,
        [1, 2, 3, 4, 5, 6],
        "each exactly once, in order"
    );
    assert_eq!(
        pair.log,
        [
            "connected s1",
            "subscribed at 0 recovered=None",
            "disconnected 1006 connection lost reconnect=true",
            "disconnected 1006 connect failed reconnect=true",
            "connected s2",
            "subscribed at 5 recovered=Some(true)",
        ]
    );
}

#[test]
fn a_restart_that_loses_the_history_is_reported_and_the_new_epoch_delivered() {
    let mut pair = Pair::new(History::InNode);
    pair.client.subscribe(news()).unwrap();
    pair.settle();
    pair.publish_elsewhere("1");
    pair.publish_elsewhere("2");
    pair.crash_node();
    pair.start_node();
    pair.step_until(|pair| pair.client.is_connected());
    pair.settle();
    pair.publish_elsewhere(r#""first of the new epoch""#);
    assert_eq!(
        pair.delivered,
        [1, 2, 1],
        "offset 1 of the new epoch is new"
    );
    assert_eq!(
        pair.log[pair.log.len() - 1],
        "subscribed at 0 recovered=Some(false)"
    );
}

#[test]
fn a_node_that_goes_silent_is_declared_dead_at_the_exact_instant_and_redialed() {
    let mut pair = Pair::new(History::Backplane);
    pair.client.subscribe(news()).unwrap();
    pair.settle();
    pair.now += Duration::from_secs(3);
    pair.publish_elsewhere("1");
    let silent_since = pair.last_server_bytes;
    assert_eq!(silent_since, T0 + Duration::from_secs(3));
    pair.partitioned = true;
    pair.step_until(|pair| !pair.client.is_connected());
    assert_eq!(pair.now, silent_since + Duration::from_secs(35));
    assert_eq!(
        pair.log.last().unwrap(),
        "disconnected 1006 heartbeat timeout reconnect=true"
    );
    pair.partitioned = false;
    pair.publish_elsewhere("2");
    pair.step_until(|pair| pair.client.is_connected());
    pair.settle();
    assert_eq!(pair.dials.len(), 2);
    assert_eq!(pair.delivered, [1, 2]);
}

#[test]
fn a_rejected_token_is_final_against_the_real_auth_gate() {
    let mut pair = Pair::new(History::Backplane);
    pair.client.set_token("stale");
    pair.now += Duration::from_secs(1);
    pair.crash_node();
    pair.start_node();
    pair.step_until(|pair| pair.client.is_closed());
    assert_eq!(
        pair.log.last().unwrap(),
        "disconnected 4003 forbidden reconnect=false"
    );
    assert_eq!(pair.client.poll_timeout(), None);
    assert_eq!(pair.dials.len(), 2);
}
