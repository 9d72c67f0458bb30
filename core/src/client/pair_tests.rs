//! A client session and the server's connection machine wired in memory and
//! stepped in virtual time.
//!
//! The channel side of the server (the hub) is played by [`MiniHub`], a few
//! lines that keep one history in the test: it answers `subscribe` (with
//! replay after `since`), `publish` and the presence snapshot the way
//! PROTOCOL.md section 4 says, so that reconnect and recovery can be checked
//! end to end against the real handshake, auth gate, framing and heartbeat.

use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::*;
use crate::config::ServerConfig;
use crate::connection::{AuthVerdict, Connection, Event as ServerEvent, Transport};
use crate::envelope::{
    Channel, ClientMessage, ServerMessage, encode_publication, encode_server_message,
};
use crate::frame::text_frame;
use crate::time::Instant;

/// One channel's history and whether the current connection subscribed.
struct MiniHub {
    epoch: String,
    history: Vec<(u64, String)>,
    subscribed: bool,
}

impl MiniHub {
    fn head(&self) -> u64 {
        self.history.last().map_or(0, |(offset, _)| *offset)
    }

    /// Appends a publication and returns its frame.
    fn append(&mut self, payload: &str) -> (u64, Bytes) {
        let offset = self.head() + 1;
        self.history.push((offset, payload.to_owned()));
        (offset, publication(offset, payload))
    }
}

fn publication(offset: u64, payload: &str) -> Bytes {
    let payload = RawValue::from_string(payload.to_owned()).unwrap();
    text_frame(&encode_publication("news", &payload, Some("bob"), offset))
}

fn reply(message: &ServerMessage) -> Bytes {
    text_frame(&encode_server_message(message))
}

/// The pair: a client, at most one server connection, the hub, and the
/// network between them.
struct Pair {
    now: Instant,
    client: ClientSession,
    server_config: ServerConfig,
    conn: Option<Connection>,
    hub: MiniHub,
    server_up: bool,
    /// Bytes from server to client are lost (the server looks dead).
    partitioned: bool,
    dials: Vec<Instant>,
    last_server_bytes: Instant,
    log: Vec<String>,
    delivered: Vec<u64>,
}

const T0: Instant = Instant::from_millis(0);

impl Pair {
    fn new() -> Self {
        let config = ClientConfig {
            seed: 11,
            ..ClientConfig::new("tether.test", "secret")
        };
        let mut pair = Pair {
            now: T0,
            client: ClientSession::new(config, T0),
            server_config: ServerConfig::default(),
            conn: None,
            hub: MiniHub {
                epoch: "e1".into(),
                history: Vec::new(),
                subscribed: false,
            },
            server_up: true,
            partitioned: false,
            dials: Vec::new(),
            last_server_bytes: T0,
            log: Vec::new(),
            delivered: Vec::new(),
        };
        pair.settle();
        pair
    }

    /// Moves bytes and events back and forth until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            while let Some(transmit) = self.client.poll_transmit() {
                moved = true;
                self.client_transmit(transmit);
            }
            while let Some(event) = self.conn.as_mut().and_then(Connection::poll_event) {
                moved = true;
                self.server_event(event);
            }
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
                if self.server_up {
                    self.conn = Some(Connection::new(&self.server_config, self.now));
                    self.client.handle_connected(self.now);
                } else {
                    self.client.handle_connect_failed(self.now);
                }
            }
            Transmit::Write(bytes) => {
                if let Some(conn) = &mut self.conn {
                    conn.handle_read(&self.server_config, self.now, &bytes);
                }
            }
            Transmit::Close => {
                if let Some(mut conn) = self.conn.take() {
                    conn.handle_transport_closed();
                    while let Some(event) = conn.poll_event() {
                        self.server_event(event);
                    }
                }
            }
        }
    }

    fn server_event(&mut self, event: ServerEvent) {
        let (config, now) = (&self.server_config, self.now);
        let Some(conn) = &mut self.conn else {
            if let ServerEvent::Closed { .. } = event {
                self.hub.subscribed = false;
            }
            return;
        };
        match event {
            ServerEvent::Authenticate { token } => {
                let verdict = match token.as_str() {
                    "secret" => AuthVerdict::Accept {
                        user: "ann".into(),
                        session: format!("s{}", self.dials.len()),
                    },
                    _ => AuthVerdict::Reject,
                };
                conn.handle_auth_verdict(config, now, verdict);
            }
            ServerEvent::Request(ClientMessage::Subscribe { id, channel, since }) => {
                let recovered = since.map(|since| {
                    let covered = since.epoch == self.hub.epoch
                        && self
                            .hub
                            .history
                            .first()
                            .is_none_or(|(first, _)| *first <= since.offset + 1);
                    if covered {
                        for (offset, payload) in &self.hub.history {
                            if *offset > since.offset {
                                conn.send_publication(
                                    config,
                                    now,
                                    &publication(*offset, payload),
                                    None,
                                );
                            }
                        }
                    }
                    covered
                });
                self.hub.subscribed = true;
                let subscribed = ServerMessage::Subscribed {
                    id,
                    channel: channel.clone(),
                    epoch: self.hub.epoch.clone(),
                    offset: self.hub.head(),
                    recovered,
                };
                conn.send_control(config, now, reply(&subscribed));
                let presence = ServerMessage::Presence {
                    id: None,
                    channel,
                    users: vec!["ann".into()],
                };
                conn.send_control(config, now, reply(&presence));
            }
            ServerEvent::Request(ClientMessage::Publish { id, payload, .. }) => {
                let (offset, frame) = self.hub.append(payload.get());
                if let Some(id) = id {
                    conn.send_control(config, now, reply(&ServerMessage::Ack { id, offset }));
                }
                if self.hub.subscribed {
                    conn.send_publication(config, now, &frame, None);
                }
            }
            ServerEvent::Closed { .. } => self.hub.subscribed = false,
            _ => {}
        }
    }

    /// Carries the server's queued bytes to the client; true if any moved.
    fn server_transmit(&mut self) -> bool {
        let Some(conn) = &mut self.conn else {
            return false;
        };
        let bytes: Vec<u8> = conn.transmit().flatten().copied().collect();
        conn.handle_written(&self.server_config, bytes.len());
        let closing = conn.transport() == Transport::CloseNow;
        if !bytes.is_empty() && !self.partitioned {
            self.last_server_bytes = self.now;
            self.client.handle_read(self.now, &bytes);
        }
        if closing {
            self.conn = None;
            self.hub.subscribed = false;
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
            Event::Subscribed { recovered, .. } => {
                self.log.push(format!("subscribed recovered={recovered:?}"));
            }
            _ => {}
        }
    }

    /// Advances to the earliest deadline of either side, fires it, settles.
    fn step(&mut self) -> Instant {
        let at = [
            self.client.poll_timeout(),
            self.conn.as_ref().and_then(Connection::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("a deadline is armed");
        self.now = at;
        self.client.handle_timeout(at);
        if let Some(conn) = &mut self.conn {
            conn.handle_timeout(&self.server_config, at);
        }
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

    /// Kills the server process: its connection vanishes without a close
    /// frame, and dials fail until it is back.
    fn crash_server(&mut self) {
        self.conn = None;
        self.hub.subscribed = false;
        self.server_up = false;
        self.client.handle_transport_closed(self.now);
        self.settle();
    }

    /// A publication from elsewhere (another client or the HTTP API).
    fn publish_elsewhere(&mut self, payload: &str) {
        let (_, frame) = self.hub.append(payload);
        if let (true, Some(conn)) = (self.hub.subscribed, &mut self.conn) {
            conn.send_publication(&self.server_config, self.now, &frame, None);
        }
        self.settle();
    }
}

#[test]
fn server_restart_recovers_exactly_the_missed_publications_in_order() {
    let mut pair = Pair::new();
    pair.client
        .subscribe(Channel::new("news").unwrap())
        .unwrap();
    pair.settle();
    pair.publish_elsewhere("1");
    pair.publish_elsewhere("2");
    assert_eq!(pair.delivered, [1, 2]);

    pair.now += Duration::from_secs(1);
    pair.crash_server();
    pair.publish_elsewhere("3");
    pair.publish_elsewhere("4");
    // The first redial fails while the server is down.
    pair.step();
    assert_eq!(pair.dials.len(), 2);
    pair.server_up = true;
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
            "subscribed recovered=None",
            "disconnected 1006 connection lost reconnect=true",
            "disconnected 1006 connect failed reconnect=true",
            "connected s3",
            "subscribed recovered=Some(true)",
        ]
    );
}

#[test]
fn a_server_that_goes_silent_is_declared_dead_at_the_exact_instant_and_redialed() {
    let mut pair = Pair::new();
    pair.client
        .subscribe(Channel::new("news").unwrap())
        .unwrap();
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
    let mut pair = Pair::new();
    pair.client.set_token("stale");
    pair.now += Duration::from_secs(1);
    pair.crash_server();
    pair.server_up = true;
    pair.step_until(|pair| pair.client.is_closed());
    assert_eq!(
        pair.log.last().unwrap(),
        "disconnected 4003 forbidden reconnect=false"
    );
    assert_eq!(pair.client.poll_timeout(), None);
    assert_eq!(pair.dials.len(), 2);
}
