//! Client settings, with the names and defaults of PROTOCOL.md section 10.

use std::fmt;
use std::time::Duration;

use crate::backoff::Backoff;

/// Where the token sent in `auth` (and in `refresh`) comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// This token, on every connection; the session never refreshes it, and
    /// a close `4004` (token expired) is final unless
    /// [`set_token`](super::ClientSession::set_token) replaced it since.
    Fixed(String),
    /// A token from the application, asked for with
    /// [`Output::TokenWanted`](super::Output::TokenWanted) before every
    /// connection and for every refresh: the session keeps a connection's
    /// token fresh and reconnects after a close `4004` with a new one.
    Provider,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Fixed(_) => f.write_str("Fixed(<hidden>)"),
            TokenSource::Provider => f.write_str("Provider"),
        }
    }
}

/// Everything a [`ClientSession`](super::ClientSession) needs to know before
/// it dials: where to, as whom, and how patient to be.
///
/// [`ClientConfig::new`] fills in the protocol's defaults; every field is
/// public so that callers can adjust any of them. Its `Debug` output hides
/// the token, so that logging a config or a session never leaks it.
#[derive(Clone, PartialEq)]
pub struct ClientConfig {
    /// The server's authority (`host` or `host:port`): the adapter dials it
    /// and the upgrade request names it in `Host`.
    pub host: String,
    /// The WebSocket endpoint's path, `/ws` by default.
    pub path: String,
    /// The `Origin` header to send, if any; servers without an allow-list
    /// accept a handshake without one.
    pub origin: Option<String>,
    /// The token sent in `auth`: a fixed one, or one asked for before every
    /// connection.
    pub token: TokenSource,
    /// The reconnect schedule, including the optional limit on attempts in a
    /// row (`max_attempts`, unlimited by default).
    pub backoff: Backoff,
    /// Silence from the server after which the client sends `{"type":"ping"}`.
    pub ping_idle: Duration,
    /// Further silence after that ping after which the connection is dead.
    pub pong_timeout: Duration,
    /// Deadline of a request made without an explicit one (`publish`).
    pub request_timeout: Duration,
    /// Time from a dial to `auth_ack` after which the attempt counts as
    /// failed: the adapter has no timers of its own.
    pub connect_timeout: Duration,
    /// How long [`close`](super::ClientSession::close) waits for the server
    /// to answer the close frame before dropping the socket anyway.
    pub close_timeout: Duration,
    /// Messages kept while not connected; one more makes `send` fail.
    pub offline_queue: usize,
    /// Seed of every random choice the session makes (frame masks, the
    /// handshake key, reconnect jitter, idempotency keys): same seed, same
    /// inputs, same outputs. Give every session its own: two sessions of
    /// one user with the same seed publish with the same keys, and the
    /// server takes the second session's publications for retries. 0, the
    /// default, asks the client adapter to draw one from the operating
    /// system ([`ClientConfig::with_fresh_seed`]).
    pub seed: u64,
    /// Largest message accepted from the server, in bytes; a compressed
    /// message counts inflated.
    pub max_payload: usize,
    /// Offer permessage-deflate (RFC 7692) in the handshake: the server's
    /// compressed messages are then inflated. What the client sends goes
    /// uncompressed, which the extension always allows.
    pub compression: bool,
}

impl ClientConfig {
    /// Settings for `host` with the fixed `token` and the protocol's
    /// defaults (set `token` to [`TokenSource::Provider`] for fresh tokens
    /// from the application): path
    /// `/ws`, no origin, backoff 1 s to 30 s with 1 s jitter and no attempt
    /// limit, ping after 25 s idle, dead 10 s later, requests and connects
    /// time out after 10 s, close waits 5 s, 1,000 queued messages, 64 KiB
    /// messages, seed 0, permessage-deflate offered.
    pub fn new(host: impl Into<String>, token: impl Into<String>) -> Self {
        ClientConfig {
            host: host.into(),
            path: "/ws".into(),
            origin: None,
            token: TokenSource::Fixed(token.into()),
            backoff: Backoff::default(),
            ping_idle: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            offline_queue: 1_000,
            seed: 0,
            max_payload: 64 * 1024,
            compression: true,
        }
    }

    /// This config with its seed of 0 (the default) replaced with
    /// `draw()`, a seed the client adapter draws from the operating
    /// system, so that two clients never share frame masks, reconnect
    /// jitter or idempotency keys; any other seed is kept, which makes a
    /// run reproducible. Every client applies it before making its session.
    pub fn with_fresh_seed(mut self, draw: impl FnOnce() -> u64) -> ClientConfig {
        if self.seed == 0 {
            self.seed = draw();
        }
        self
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("host", &self.host)
            .field("path", &self.path)
            .field("origin", &self.origin)
            .field("token", &self.token)
            .field("backoff", &self.backoff)
            .field("ping_idle", &self.ping_idle)
            .field("pong_timeout", &self.pong_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("offline_queue", &self.offline_queue)
            .field("seed", &self.seed)
            .field("max_payload", &self.max_payload)
            .field("compression", &self.compression)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_protocol_defaults() {
        let config = ClientConfig::new("example.com", "secret");
        assert_eq!(config.path, "/ws");
        assert_eq!(config.backoff.base, Duration::from_secs(1));
        assert_eq!(config.backoff.cap, Duration::from_secs(30));
        assert_eq!(config.backoff.jitter, Duration::from_secs(1));
        assert_eq!(config.backoff.max_attempts, None);
        assert_eq!(config.ping_idle, Duration::from_secs(25));
        assert_eq!(config.pong_timeout, Duration::from_secs(10));
        assert_eq!(config.request_timeout, Duration::from_secs(10));
        assert_eq!(config.offline_queue, 1_000);
        assert_eq!(config.max_payload, 65_536);
    }

    #[test]
    fn only_the_default_seed_is_replaced_with_a_drawn_one() {
        let drawn = ClientConfig::new("example.com", "secret").with_fresh_seed(|| 42);
        assert_eq!(drawn.seed, 42);
        let given = ClientConfig {
            seed: 7,
            ..ClientConfig::new("example.com", "secret")
        };
        let kept = given.with_fresh_seed(|| panic!("a given seed draws nothing"));
        assert_eq!(kept.seed, 7);
    }

    #[test]
    fn debug_output_hides_the_token() {
        let debug = format!("{:?}", ClientConfig::new("example.com", "secret"));
        assert!(debug.contains("example.com"));
        assert!(debug.contains("Fixed(<hidden>)"), "{debug}");
        assert!(!debug.contains("secret"), "{debug}");
    }
}
