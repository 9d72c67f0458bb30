//! The server API (`POST /api/<method>`, PROTOCOL.md section 2): once the
//! application has checked the key ([`Decision::AuthorizeApi`]), each
//! request is parsed (module `bodies`), handed to the hub, and answered
//! when the store answers; errors are `{"code":...,"message":...}` with
//! their HTTP status.
//!
//! A request that waits for the store holds its ticket in the node's
//! table of waiters: its connection is answered when the ticket's answer
//! comes out of the hub, `503 UNAVAILABLE` if the link fails first, so no
//! request waits longer than the link lasts. A broadcast waits for one
//! ticket per channel and is answered when the last one is.
//!
//! [`Decision::AuthorizeApi`]: super::Decision::AuthorizeApi

mod bodies;

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::envelope::{ApiPublishBody, Channel, ErrorCode, IdempotencyKey};
use crate::http::{HttpRequest, Route};
use crate::hub::{ApiAnswer, ApiOutcome, ApiPublish, ApiRequest, NodeStats};
use crate::ids::ConnId;
use crate::time::Instant;

use super::slots::entry_mut;
use super::{Output, PublishError, Server};

pub(crate) use bodies::{ApiCall, parse_api_call};

/// Why a request could not be carried out.
pub(super) const UNAVAILABLE: &str = "the backplane is unavailable; retry later";

/// The version every node reports in `POST /api/info`.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Who waits for the answer to a ticket of the HTTP API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ApiWaiter {
    /// A request on this connection, answered from the answer alone.
    Http(ConnId),
    /// Channel `index` of the broadcast on this connection.
    Broadcast {
        /// The HTTP connection.
        conn: ConnId,
        /// The channel's place in the request.
        index: usize,
    },
    /// A [`Server::publish`] call, with the caller's token.
    App(u64),
}

/// A broadcast that waits for some of its channels' offsets.
#[derive(Debug)]
pub(super) struct Broadcast {
    channels: Vec<Channel>,
    /// Each channel's offset, `Err` when it could not be published,
    /// `None` while it waits.
    outcomes: Vec<Option<Result<u64, ()>>>,
}

impl Server {
    /// Carries out an API request whose key the application accepted;
    /// `None` when its answer waits for the backplane.
    pub(super) fn api_call(
        &mut self,
        conn: ConnId,
        now: Instant,
        request: &HttpRequest,
    ) -> Option<(u16, String)> {
        let Route::Api(method) = request.route else {
            return Some(not_found());
        };
        let call = match parse_api_call(method, &request.body, &self.config) {
            Ok(call) => call,
            Err(error) => return Some((400, error_body(error.code, &error.message))),
        };
        let request = match call {
            ApiCall::Publish(body) => return self.api_publish(conn, now, body),
            ApiCall::Broadcast {
                channels,
                payload,
                idempotency_key,
            } => return self.api_broadcast(conn, now, channels, payload, idempotency_key),
            ApiCall::Hub(request) => request,
            ApiCall::Info => ApiRequest::Info(self.node_wide_stats(now)),
        };
        let outcome = self.with_hub(now, |hub, outbox| hub.api_request(now, request, outbox));
        self.settle_api(now);
        match outcome {
            ApiOutcome::Answered(answer) => Some(answer_body(answer)),
            ApiOutcome::Pending(ticket) => {
                self.api_waiting.insert(ticket, ApiWaiter::Http(conn));
                None
            }
        }
    }

    /// Publishes the body of a `POST /api/publish`; `None` when the answer
    /// waits for the backplane.
    fn api_publish(
        &mut self,
        conn: ConnId,
        now: Instant,
        body: ApiPublishBody,
    ) -> Option<(u16, String)> {
        let published = self.with_hub(now, |hub, outbox| {
            hub.publish_from_api(
                now,
                body.channel,
                body.payload,
                body.idempotency_key,
                outbox,
            )
        });
        self.settle_api(now);
        match published {
            ApiPublish::Published { offset } => Some(answer_body(ApiAnswer::Published(offset))),
            ApiPublish::Pending { ticket } => {
                self.api_waiting.insert(ticket, ApiWaiter::Http(conn));
                None
            }
            ApiPublish::Unavailable => Some(answer_body(ApiAnswer::Unavailable)),
        }
    }

    /// Publishes `payload` on each of `channels`, with `key` on each;
    /// `None` when some offsets wait for the backplane. While the link is
    /// down nothing is published: `503`.
    fn api_broadcast(
        &mut self,
        conn: ConnId,
        now: Instant,
        channels: Vec<Channel>,
        payload: Box<RawValue>,
        key: Option<IdempotencyKey>,
    ) -> Option<(u16, String)> {
        if !self.hub.is_store_up() {
            return Some(answer_body(ApiAnswer::Unavailable));
        }
        let mut outcomes = Vec::with_capacity(channels.len());
        for (index, channel) in channels.iter().enumerate() {
            let (payload, key) = (payload.clone(), key.clone());
            let published = self.with_hub(now, |hub, outbox| {
                hub.publish_from_api(now, channel.clone(), payload, key, outbox)
            });
            outcomes.push(match published {
                ApiPublish::Published { offset } => Some(Ok(offset)),
                ApiPublish::Pending { ticket } => {
                    let waiter = ApiWaiter::Broadcast { conn, index };
                    self.api_waiting.insert(ticket, waiter);
                    None
                }
                ApiPublish::Unavailable => Some(Err(())),
            });
        }
        self.settle_api(now);
        let broadcast = Broadcast { channels, outcomes };
        match broadcast_body(&broadcast) {
            Some(answer) => Some(answer),
            None => {
                self.broadcasts.insert(conn, broadcast);
                None
            }
        }
    }

    /// Answers the API requests the hub has answered (or given up on), and
    /// closes the connections an order told this node to close.
    pub(super) fn settle_api(&mut self, now: Instant) {
        while let Some((ticket, answer)) = self.hub.poll_api_answer() {
            match self.api_waiting.remove(&ticket) {
                Some(ApiWaiter::App(token)) => {
                    let result = match answer {
                        ApiAnswer::Published(offset) => Ok(offset),
                        _ => Err(PublishError::Unavailable),
                    };
                    self.events.push_back(Output::Published { token, result });
                }
                Some(ApiWaiter::Http(conn)) => {
                    let (status, body) = answer_body(answer);
                    self.api_respond(now, conn, status, &body);
                }
                Some(ApiWaiter::Broadcast { conn, index }) => {
                    self.broadcast_answered(now, conn, index, answer);
                }
                None => {}
            }
        }
        while let Some((conn, reason)) = self.hub.poll_close() {
            let config = &self.config;
            if let Some(entry) = entry_mut(&mut self.slots, conn) {
                entry.conn.close(now, reason.code, &reason.reason, config);
                self.work.push(conn);
            }
        }
        self.settle_work(now);
    }

    /// One channel of a broadcast got its answer; the last one answers the
    /// request.
    fn broadcast_answered(&mut self, now: Instant, conn: ConnId, index: usize, answer: ApiAnswer) {
        let Some(broadcast) = self.broadcasts.get_mut(&conn) else {
            return;
        };
        if let Some(outcome) = broadcast.outcomes.get_mut(index) {
            *outcome = Some(match answer {
                ApiAnswer::Published(offset) => Ok(offset),
                _ => Err(()),
            });
        }
        if let Some(body) = broadcast_body(broadcast) {
            self.broadcasts.remove(&conn);
            self.api_respond(now, conn, body.0, &body.1);
        }
    }

    /// Answers the API request on `conn` with `status` and a JSON `body`.
    fn api_respond(&mut self, now: Instant, conn: ConnId, status: u16, body: &str) {
        let config = &self.config;
        if let Some(entry) = entry_mut(&mut self.slots, conn) {
            entry
                .conn
                .respond(config, now, status, "application/json", body.as_bytes());
            self.work.push(conn);
        }
    }

    /// The node's figures at `now` as `POST /api/info` reports them: a
    /// shard's are the whole node's.
    pub(super) fn node_wide_stats(&self, now: Instant) -> NodeStats {
        let figures = self.node_figures();
        NodeStats {
            connections: figures.gauges.connections,
            channels: figures.gauges.channels,
            ..self.node_stats(now)
        }
    }

    /// The node's figures at `now`, as its leases report them.
    pub(super) fn node_stats(&self, now: Instant) -> NodeStats {
        NodeStats {
            connections: self.open_websockets,
            channels: self.hub.channel_count() as u64,
            uptime: self.started.map_or_else(Default::default, |started| {
                now.saturating_duration_since(started)
            }),
        }
    }
}

/// The HTTP answer to an API request from the store's answer.
fn answer_body(answer: ApiAnswer) -> (u16, String) {
    let body = match answer {
        ApiAnswer::Unavailable => return (503, error_body(ErrorCode::Unavailable, UNAVAILABLE)),
        ApiAnswer::Published(offset) => format!(r#"{{"offset":{offset}}}"#),
        ApiAnswer::Presence(users) => json!({ "users": users }).to_string(),
        ApiAnswer::PresenceStats { users, connections } => {
            json!({ "users": users, "connections": connections }).to_string()
        }
        ApiAnswer::History {
            epoch,
            offset,
            publications,
        } => {
            let publications: Vec<String> = publications
                .iter()
                .map(|text| String::from_utf8_lossy(text).into_owned())
                .collect();
            format!(
                r#"{{"epoch":{},"offset":{offset},"publications":[{}]}}"#,
                Value::from(epoch),
                publications.join(",")
            )
        }
        ApiAnswer::Channels { channels, total } => {
            let names: Vec<&str> = channels.iter().map(Channel::as_str).collect();
            json!({ "channels": names, "total": total }).to_string()
        }
        ApiAnswer::Sent => "{}".to_owned(),
        ApiAnswer::Info(nodes) => {
            let sum = |figure: fn(&NodeStats) -> u64| -> u64 {
                nodes.iter().map(|node| figure(&node.stats)).sum()
            };
            let totals = json!({
                "nodes": nodes.len(),
                "connections": sum(|stats| stats.connections),
                "channels": sum(|stats| stats.channels),
            });
            let nodes: Vec<Value> = nodes
                .iter()
                .map(|node| {
                    json!({
                        "id": node.id,
                        "connections": node.stats.connections,
                        "channels": node.stats.channels,
                        "uptime_ms": node.stats.uptime.as_millis() as u64,
                    })
                })
                .collect();
            json!({ "version": VERSION, "nodes": nodes, "totals": totals }).to_string()
        }
    };
    (200, body)
}

/// The answer to a broadcast once every channel has its outcome: each
/// channel, in the order asked, with its offset or its error.
fn broadcast_body(broadcast: &Broadcast) -> Option<(u16, String)> {
    let results = broadcast
        .channels
        .iter()
        .zip(&broadcast.outcomes)
        .map(|(channel, outcome)| match outcome {
            Some(Ok(offset)) => Some(json!({ "channel": channel.as_str(), "offset": offset })),
            Some(Err(())) => Some(json!({
                "channel": channel.as_str(),
                "error": { "code": ErrorCode::Unavailable.as_str(), "message": UNAVAILABLE },
            })),
            None => None,
        })
        .collect::<Option<Vec<Value>>>()?;
    Some((200, json!({ "results": results }).to_string()))
}

/// The answer to an API path that names no method.
pub(super) fn not_found() -> (u16, String) {
    let body = json!({ "code": "NOT_FOUND", "message": "no such API method" }).to_string();
    (404, body)
}

/// The body of an API error.
pub(super) fn error_body(code: ErrorCode, message: &str) -> String {
    json!({ "code": code.as_str(), "message": message }).to_string()
}

/// The broadcasts waiting for their offsets, by connection.
pub(super) type Broadcasts = BTreeMap<ConnId, Broadcast>;
