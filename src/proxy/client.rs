//! The HTTP side of the proxy: one `POST` of JSON per decision, within the
//! node's bound on requests in flight, the request timeout and the bound
//! on an answer's size, each failure told apart so that the handler can
//! answer it with its code (PROTOCOL.md section 13, "The HTTP proxy").
//!
//! The client is `ureq`: blocking, so a request holds a thread while it
//! waits. The proxy handler says so ([`tether_core::Handler::may_block`])
//! and every runtime polls its decisions on threads that may block, never
//! on those that serve connections.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ureq::Agent;

use crate::secret::Redacted;
use crate::settings::ProxySettings;

/// The largest answer read from the backend; a longer one is a failure.
pub const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// Why a backend request gave no answer to read.
#[derive(Debug)]
pub(crate) enum Failure {
    /// `proxy.max_concurrency` requests were already out: not sent.
    Busy(usize),
    /// No complete answer within `proxy.timeout`.
    Timeout(Duration),
    /// The request could not be made or the answer not read: nothing
    /// listens, the connection broke, the answer is not HTTP.
    Transport(ureq::Error),
    /// The backend answered with a status other than 2xx.
    Status(u16),
    /// The answer is longer than [`MAX_ANSWER_BYTES`].
    Oversized,
    /// The answer is not one the protocol defines.
    Malformed(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Busy(bound) => write!(
                f,
                "{bound} requests already in flight (proxy.max_concurrency)"
            ),
            Failure::Timeout(timeout) => write!(f, "no answer within {timeout:?} (proxy.timeout)"),
            Failure::Transport(error) => write!(f, "request failed: {error}"),
            Failure::Status(status) => write!(f, "answered HTTP {status}"),
            Failure::Oversized => write!(f, "answer over {MAX_ANSWER_BYTES} bytes"),
            Failure::Malformed(why) => write!(f, "malformed answer: {why}"),
        }
    }
}

/// The backend as the node calls it: one HTTP agent (keeping connections
/// open between requests), the static header fields, and the count of
/// requests in flight.
pub(crate) struct Backend {
    agent: Agent,
    headers: Vec<(String, Redacted<String>)>,
    timeout: Duration,
    max_in_flight: usize,
    in_flight: AtomicUsize,
}

impl Backend {
    /// A client with the settings' timeout, bound and header fields. It
    /// follows no redirect, takes no proxy from the environment, and
    /// reads a status other than 2xx as a failure of its own.
    pub(crate) fn new(settings: &ProxySettings) -> Backend {
        let config = Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(concat!("tether/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections_per_host(settings.max_concurrency)
            .build();
        Backend {
            agent: config.new_agent(),
            headers: settings.headers.clone(),
            timeout: settings.timeout,
            max_in_flight: settings.max_concurrency,
            in_flight: AtomicUsize::new(0),
        }
    }

    /// `POST`s `body` (JSON) to `url` and gives the answer's body, if the
    /// backend answered 2xx in time with at most [`MAX_ANSWER_BYTES`].
    /// Beyond `max_concurrency` requests in flight it sends nothing.
    pub(crate) fn post(&self, url: &str, body: String) -> Result<Vec<u8>, Failure> {
        let _slot = self.slot()?;
        let mut request = self
            .agent
            .post(url)
            .header("content-type", "application/json");
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.expose().as_str());
        }
        let mut response = request.send(body).map_err(|error| self.failure(error))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure::Status(status.as_u16()));
        }
        response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .map_err(|error| self.failure(error))
    }

    /// A place among the requests in flight, given back when dropped.
    fn slot(&self) -> Result<Slot<'_>, Failure> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_in_flight).then_some(n + 1)
            })
            .map_err(|_| Failure::Busy(self.max_in_flight))?;
        Ok(Slot(&self.in_flight))
    }

    fn failure(&self, error: ureq::Error) -> Failure {
        match error {
            ureq::Error::Timeout(_) => Failure::Timeout(self.timeout),
            ureq::Error::BodyExceedsLimit(_) => Failure::Oversized,
            other => Failure::Transport(other),
        }
    }
}

/// One request's place among those in flight.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
