//! The standalone server's application: an HTTP backend, asked through
//! the `[proxy]` URLs (PROTOCOL.md section 13, "The HTTP proxy").
//!
//! [`ProxyHandler`] answers the core's decisions: a token goes to
//! `connect_url` when it is set and to the node's own authorizer (JWT or
//! `--dev`) otherwise; a channel request of a `backend` namespace to
//! `subscribe_url` or `publish_url`; an `rpc` to `rpc_url` (`NOT_FOUND`
//! without it). API keys stay with the node's authorizer. Each failure of
//! the backend fails the one request it was asked for, is logged at warn
//! (never with a token or a header value), and never stalls the node: a
//! slow request ends at `proxy.timeout`, and one beyond
//! `proxy.max_concurrency` is answered `UNAVAILABLE` at once.

mod client;
mod wire;

use std::sync::Arc;

use tether_core::{
    ChannelRequest, ConnectRequest, ErrorCode, Handler, Identity, Rejection, RpcRequest,
    async_trait,
};
use tracing::warn;

use crate::auth::{NodeAuthorizer, unix_now_ms};
use crate::secret::mask_url_password;
use crate::settings::ProxySettings;

pub use client::MAX_ANSWER_BYTES;
use client::{Backend, Failure};

/// Decides for a node through the `[proxy]` backend, and through the
/// node's authorizer for API keys and, without `connect_url`, tokens.
pub struct ProxyHandler {
    backend: Backend,
    /// Decides API keys always, and tokens without `connect_url`.
    authorizer: Arc<NodeAuthorizer>,
    connect_url: Option<String>,
    subscribe_url: Option<String>,
    publish_url: Option<String>,
    rpc_url: Option<String>,
}

impl ProxyHandler {
    /// A handler asking the backend of `settings` (validated), with
    /// `authorizer` for API keys and for tokens when `connect_url` is
    /// unset.
    pub fn new(settings: &ProxySettings, authorizer: Arc<NodeAuthorizer>) -> ProxyHandler {
        ProxyHandler {
            backend: Backend::new(settings),
            authorizer,
            connect_url: settings.connect_url.clone(),
            subscribe_url: settings.subscribe_url.clone(),
            publish_url: settings.publish_url.clone(),
            rpc_url: settings.rpc_url.clone(),
        }
    }

    /// Asks the backend at `url` for the `decision` whose body is `body`
    /// and reads the answer with `read`. A failure is logged and answered
    /// as PROTOCOL.md section 13 says: `UNAVAILABLE` for a timeout or the
    /// bound on requests in flight, `INTERNAL` for anything else.
    fn ask<T>(
        &self,
        decision: &'static str,
        url: &str,
        body: Result<String, wire::Malformed>,
        read: impl FnOnce(&[u8]) -> Result<wire::Answer<T>, wire::Malformed>,
    ) -> Result<T, Rejection> {
        let answer = body
            .map_err(Failure::Malformed)
            .and_then(|body| self.backend.post(url, body))
            .and_then(|answer| read(&answer).map_err(Failure::Malformed));
        answer.unwrap_or_else(|failure| {
            warn!(
                decision,
                backend = %mask_url_password(url),
                error = %failure,
                "proxy backend failed"
            );
            Err(rejection(&failure))
        })
    }
}

/// What the client is told of a failure.
fn rejection(failure: &Failure) -> Rejection {
    match failure {
        Failure::Busy(_) => Rejection::new(ErrorCode::Unavailable, "the application is busy"),
        Failure::Timeout(_) => Rejection::new(
            ErrorCode::Unavailable,
            "the application's backend did not answer in time",
        ),
        Failure::Transport(_) | Failure::Status(_) | Failure::Oversized | Failure::Malformed(_) => {
            Rejection::internal()
        }
    }
}

#[async_trait]
impl Handler for ProxyHandler {
    async fn connect(&self, request: ConnectRequest) -> Result<Identity, Rejection> {
        let Some(url) = &self.connect_url else {
            return Handler::connect(self.authorizer.as_ref(), request).await;
        };
        let body = Ok(wire::connect_body(&request));
        self.ask("connect", url, body, |answer| {
            wire::identity(answer, unix_now_ms())
        })
    }

    async fn subscribe(&self, request: ChannelRequest) -> Result<Option<String>, Rejection> {
        let Some(url) = &self.subscribe_url else {
            return Err(Rejection::forbidden());
        };
        self.ask("subscribe", url, wire::channel_body(&request), wire::data)
    }

    async fn publish(&self, request: ChannelRequest) -> Result<Option<String>, Rejection> {
        let Some(url) = &self.publish_url else {
            return Err(Rejection::forbidden());
        };
        self.ask("publish", url, wire::channel_body(&request), wire::data)
    }

    async fn rpc(&self, request: RpcRequest) -> Result<String, Rejection> {
        let Some(url) = &self.rpc_url else {
            return Err(Rejection::unknown_method());
        };
        let result = self.ask("rpc", url, wire::rpc_body(&request), wire::data)?;
        Ok(result.unwrap_or_else(|| "null".to_owned()))
    }

    fn authorize_api(&self, authorization: Option<&str>) -> bool {
        Handler::authorize_api(self.authorizer.as_ref(), authorization)
    }

    /// Every backend request blocks its thread until it is answered.
    fn may_block(&self) -> bool {
        true
    }
}
