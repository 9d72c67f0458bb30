//! The node's plain HTTP side: the routes it answers itself, the API
//! requests it hands to the application's key check (module `api` answers
//! them), and the answer of a refused connection.

use bytes::Bytes;

use crate::close::CloseCode;
use crate::http::{HttpRequest, Route};
use crate::ids::ConnId;
use crate::time::Instant;
use tether_web::{self as web, HTML, JS, TEXT};

use super::api::not_found;
use super::slots::entry_mut;
use super::{Decision, Output, Server};

/// Why the core refuses a connection it accepts: it answers `503` with
/// the reason, half-closes and lingers like any final answer; or, for a
/// WebSocket another server upgraded, sends a close frame.
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

    /// The close frame's code and reason for a connection whose `101`
    /// another server already sent: `1001` while draining, as every open
    /// WebSocket gets; `1013` at capacity. Both tell a client to come back
    /// later.
    pub(super) fn close(self) -> (CloseCode, &'static str) {
        match self {
            Refusal::Draining => (CloseCode::GOING_AWAY, "going away"),
            Refusal::AtCapacity => (CloseCode::TRY_AGAIN_LATER, "too many connections"),
        }
    }
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
            Route::ApiNotFound => {
                let (status, body) = not_found();
                (status, "application/json", body)
            }
            Route::Api(_) => {
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
}
