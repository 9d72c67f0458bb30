//! The node inside an axum application (feature `axum`): its WebSocket
//! endpoint, and on request its metrics and the browser client, as routes
//! of the application's own [`Router`], beside the application's routes.
//!
//! ```no_run
//! # async fn app(handler: std::sync::Arc<dyn tether_core::Handler>) -> std::io::Result<()> {
//! use axum::{Router, routing::get};
//! use tether_tokio::{Server, ServerOptions};
//!
//! let unused = "127.0.0.1:0".parse().unwrap();
//! let node = Server::without_listener(ServerOptions::new(unused, handler))?;
//! let app = Router::new()
//!     .route("/", get(|| async { "the application's page" }))
//!     .merge(node.handle().routes().with_metrics().with_client().into_router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! tokio::spawn(node.run());
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! hyper parsed the request head: the node checks the parts hyper has
//! ([`tether_core::Server::check_upgrade`], the same rules and refusal
//! statuses as the node's own parser), the route answers the `101`, and
//! hyper's upgraded stream goes to the same per-connection task as a
//! socket the node accepted ([`tether_core::Server::accept_upgraded`]).
//! The application's own authentication and decisions are its
//! [`Handler`](tether_core::Handler), given in the node's options; the
//! [`Handle`] publishes from its other routes.
//!
//! What the mount does not serve: `/healthz` (the application has its
//! own health) and the server API (`POST /api/<method>`, behind the API
//! key): the application publishes, disconnects and reads through the
//! [`Handle`] instead, or runs a node with a listener of its own for the
//! API. A slow consumer's stream belongs to hyper, so it is closed rather
//! than reset (PROTOCOL.md section 11).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{
    CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
    SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use axum::http::{HeaderValue, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tether_core::{AcceptedUpgrade, HttpError, UpgradeHead};
use tokio::io::{ReadHalf, WriteHalf};

use crate::Handle;
use crate::connection::{self, Stream};
use crate::node::Node;

/// The path of the WebSocket endpoint (PROTOCOL.md section 1).
pub const WEBSOCKET_PATH: &str = "/ws";

/// The routes through which a node serves inside an axum application: made
/// with [`Handle::routes`], turned into a [`Router`] to merge into the
/// application's with [`Routes::into_router`].
#[derive(Clone)]
pub struct Routes {
    node: Arc<Node>,
    metrics: bool,
    client: bool,
}

impl Handle {
    /// The node's routes for an axum application: `/ws`, the WebSocket
    /// endpoint, with any method (the node answers a wrong one `405`, as
    /// its own parser does). The node serves them while [`crate::Server::run`]
    /// runs; a node made with [`crate::Server::without_listener`] serves
    /// nothing else.
    pub fn routes(&self) -> Routes {
        Routes {
            node: Arc::clone(&self.node),
            metrics: false,
            client: false,
        }
    }
}

impl Routes {
    /// Adds `GET /metrics`, the node's metrics in Prometheus text format
    /// (PROTOCOL.md section 9).
    pub fn with_metrics(mut self) -> Routes {
        self.metrics = true;
        self
    }

    /// Adds `GET /tether.js` and `GET /tether.d.ts`, the browser client
    /// and its TypeScript declarations (PROTOCOL.md section 11).
    pub fn with_client(mut self) -> Routes {
        self.client = true;
        self
    }

    /// The routes as a router for any application state, to merge into the
    /// application's router.
    pub fn into_router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let mut router = Router::new().route(WEBSOCKET_PATH, any(upgrade));
        if self.metrics {
            router = router.route("/metrics", get(metrics));
        }
        if self.client {
            router = router
                .route(
                    "/tether.js",
                    get(|| async { ([(CONTENT_TYPE, tether_web::JS)], tether_web::CLIENT_SCRIPT) }),
                )
                .route(
                    "/tether.d.ts",
                    get(|| async {
                        ([(CONTENT_TYPE, tether_web::TEXT)], tether_web::CLIENT_TYPES)
                    }),
                );
        }
        router.with_state(self.node)
    }
}

/// Checks an upgrade hyper parsed and answers it: the `101`, after which
/// the upgraded stream is the connection's on the shard whose turn it is,
/// or the node's refusal.
async fn upgrade(State(node): State<Arc<Node>>, mut request: Request) -> Response {
    let node = node.next_shard();
    let checked = {
        let headers: Vec<(&str, &[u8])> = request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        let head = UpgradeHead {
            method: request.method().as_str(),
            http_1_1: request.version() == Version::HTTP_11,
            headers: &headers,
        };
        node.check_upgrade(&head)
    };
    let accepted = match checked {
        Some(Ok(accepted)) => accepted,
        Some(Err(error)) => return refusal(&error),
        None => return (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response(),
    };
    let response = switching_protocols(&accepted);
    let upgraded = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        // The client may leave before the 101 reaches it: nothing to serve.
        if let Ok(upgraded) = upgraded.await {
            connection::serve_upgraded(node, accepted, TokioIo::new(upgraded)).await;
        }
    });
    response
}

/// The `101` of RFC 6455 section 4.2.2.
fn switching_protocols(accepted: &AcceptedUpgrade) -> Response {
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept = HeaderValue::from_str(accepted.accept_key()).expect("base64 is a header value");
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(protocol) = accepted.protocol() {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    }
    if let Some(deflate) = accepted.deflate() {
        headers.insert(SEC_WEBSOCKET_EXTENSIONS, HeaderValue::from_static(deflate));
    }
    response
}

/// The node's refusal of an upgrade: its status, header fields and reason.
fn refusal(error: &HttpError) -> Response {
    let status = StatusCode::from_u16(error.status()).expect("the core's statuses are valid");
    let mut response = (status, error.reason()).into_response();
    for (name, value) in error.headers() {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    let text = node.lock().core.metrics_text();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// hyper's upgraded stream, split for the connection's task.
impl Stream for TokioIo<Upgraded> {
    type Reader<'a> = ReadHalf<&'a mut TokioIo<Upgraded>>;
    type Writer<'a> = WriteHalf<&'a mut TokioIo<Upgraded>>;

    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        tokio::io::split(self)
    }

    /// hyper owns the socket under the stream: it closes normally.
    fn reset_on_drop(&self) {}
}
