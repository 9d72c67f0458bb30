//! The node's plain HTTP side: the routes it answers itself, the publish
//! API (its key checked outside, its publication possibly waiting for the
//! backplane), and the `503` of a refused connection.

use bytes::Bytes;

use crate::envelope::{ErrorCode, parse_api_publish};
use crate::http::{HttpRequest, Route};
use crate::hub::ApiPublish;
use crate::ids::ConnId;
use crate::time::Instant;
use tether_web::{self as web, HTML, JS, TEXT};

use super::slots::entry_mut;
use super::{Decision, Output, PublishError, Server};

/// Why the core refuses a TCP connection it accepts: it answers `503`
/// with the reason, half-closes and lingers like any final answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The node is shutting down.
    Draining,
    /// `max_connections` connections are open.
    AtCapacity,
}

impl Refusal {
    /// The complete HTTP response.
    pub(super) fn response(self) -> Bytes {
        let body: &[u8] = match self {
            Refusal::Draining => b"draining",
            Refusal::AtCapacity => b"too many connections",
        };
        Bytes::from(crate::http::response(503, "text/plain", body))
    }
}

/// Who waits for a publication the store has not answered yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ApiWaiter {
    /// A `POST /api/publish` on this connection.
    Http(ConnId),
    /// A [`Server::publish`] call, with the caller's token.
    App(u64),
}

impl Server {
    pub(super) fn route(&mut self, conn: ConnId, now: Instant, request: HttpRequest) {
        let (status, content_type, body) = match request.route {
            Route::Health if self.draining => (503, "text/plain", "draining".to_owned()),
            Route::Health if !self.hub.is_store_up() => {
                (503, "text/plain", "backplane down".to_owned())
            }
            Route::Health => (200, "text/plain", "ok".to_owned()),
            Route::Metrics => (200, "text/plain; version=0.0.4", self.metrics_text()),
            Route::ClientScript => (200, JS, web::CLIENT_SCRIPT.to_owned()),
            Route::ClientTypes => (200, TEXT, web::CLIENT_TYPES.to_owned()),
            Route::DemoPage if self.config.demo => (200, HTML, web::DEMO_PAGE.to_owned()),
            Route::NotFound | Route::DemoPage => (404, "text/plain", "not found".to_owned()),
            Route::Publish => {
                let authorization = request.authorization.clone();
                if let Some(entry) = entry_mut(&mut self.slots, conn) {
                    entry.api_request = Some(request);
                }
                self.events
                    .push_back(Output::Decide(Decision::AuthorizeApi {
                        conn,
                        authorization,
                    }));
                return;
            }
        };
        let config = &self.config;
        if let Some(entry) = entry_mut(&mut self.slots, conn) {
            entry
                .conn
                .respond(config, now, status, content_type, body.as_bytes());
        }
    }

    /// Publishes the body of a `POST /api/publish`; `None` when the answer
    /// waits for the backplane.
    pub(super) fn api_publish(
        &mut self,
        conn: ConnId,
        now: Instant,
        body: &[u8],
    ) -> Option<(u16, String)> {
        let text = match std::str::from_utf8(body) {
            Ok(text) => text,
            Err(_) => {
                let body = error_body(ErrorCode::InvalidJson, "body is not UTF-8");
                return Some((400, body));
            }
        };
        let request = match parse_api_publish(text) {
            Ok(request) => request,
            Err(error) => return Some((400, error_body(error.code, &error.message))),
        };
        let published = self.with_hub(now, |hub, outbox| {
            hub.publish_from_api(
                now,
                request.channel,
                request.payload,
                request.idempotency_key,
                outbox,
            )
        });
        self.settle_work(now);
        match published {
            ApiPublish::Published { offset } => Some(api_published(offset)),
            ApiPublish::Pending { ticket } => {
                self.api_waiting.insert(ticket, ApiWaiter::Http(conn));
                None
            }
            ApiPublish::Unavailable => Some(api_unavailable()),
        }
    }

    /// Answers the publications the backplane has answered or given up on.
    pub(super) fn finish_api_publications(&mut self, now: Instant) {
        loop {
            let (ticket, outcome) = if let Some((ticket, offset)) = self.hub.poll_api_published() {
                (ticket, Ok(offset))
            } else if let Some(ticket) = self.hub.poll_api_unavailable() {
                (ticket, Err(PublishError::Unavailable))
            } else {
                return;
            };
            match self.api_waiting.remove(&ticket) {
                Some(ApiWaiter::App(token)) => self.events.push_back(Output::Published {
                    token,
                    result: outcome,
                }),
                Some(ApiWaiter::Http(conn)) => {
                    let (status, body) = match outcome {
                        Ok(offset) => api_published(offset),
                        Err(_) => api_unavailable(),
                    };
                    let config = &self.config;
                    if let Some(entry) = entry_mut(&mut self.slots, conn) {
                        entry.conn.respond(
                            config,
                            now,
                            status,
                            "application/json",
                            body.as_bytes(),
                        );
                        self.work.push(conn);
                    }
                }
                None => {}
            }
        }
    }
}

/// Why a publication could not be made.
pub(super) const UNAVAILABLE: &str = "the backplane is unavailable; retry later";

pub(super) fn api_published(offset: u64) -> (u16, String) {
    (200, format!(r#"{{"offset":{offset}}}"#))
}

pub(super) fn api_unavailable() -> (u16, String) {
    (503, error_body(ErrorCode::Unavailable, UNAVAILABLE))
}

pub(super) fn error_body(code: ErrorCode, message: &str) -> String {
    serde_json::json!({ "code": code.as_str(), "message": message }).to_string()
}
