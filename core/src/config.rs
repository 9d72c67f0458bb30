//! Server settings, with the names and defaults of PROTOCOL.md.

use std::time::Duration;

use crate::access::{ChannelPattern, Namespace};
use crate::queue::QueueLimits;

mod validate;

pub use validate::{ConfigError, MAX_HTTP_HEAD, MAX_PAYLOAD_LIMIT, MIN_HTTP_HEAD};

/// Every tunable of a Tether server node, named as in PROTOCOL.md.
///
/// `Default` gives the protocol's defaults. The binary fills it from a TOML
/// file; embedders build it directly. [`ServerConfig::validate`] holds the
/// rules across fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// Time from accepting a TCP connection to a complete HTTP request head;
    /// a client that is slower is disconnected without an answer.
    pub handshake_timeout: Duration,
    /// How long the server waits for the peer's close frame after sending
    /// its own before closing the TCP connection anyway.
    pub close_timeout: Duration,
    /// Time from the upgrade to the `auth` message before close 4001.
    pub auth_timeout: Duration,
    /// How long the application may take to answer a decision (PROTOCOL.md
    /// section 13): past it a channel request or an `rpc` is answered
    /// `UNAVAILABLE`, a `refresh` too, and an `auth` closes 1013; a later
    /// answer is ignored.
    pub decision_timeout: Duration,
    /// Header fields of the WebSocket upgrade request handed to the
    /// application with the `auth` decision (lower case, at most
    /// [`MAX_FORWARD_HEADERS`]); none by default, since a cookie is a
    /// credential.
    pub forward_headers: Vec<String>,
    /// Interval between server Pings; an unanswered Ping at the next tick
    /// terminates the connection.
    pub heartbeat_interval: Duration,
    /// Largest incoming message in bytes; larger closes with 1009. A
    /// compressed message counts inflated.
    pub max_payload: usize,
    /// Accept permessage-deflate (RFC 7692) when a client offers it
    /// (PROTOCOL.md section "Compression").
    pub compression: bool,
    /// Smallest message payload, in bytes, sent compressed to a client
    /// that agreed on permessage-deflate; smaller ones go uncompressed.
    pub compression_min_size: usize,
    /// Outbound queue size in bytes above which channel messages are dropped.
    pub high_water: usize,
    /// Outbound queue size in bytes that closes the connection with 4008.
    pub hard_limit: usize,
    /// How long a queue may stay above `high_water` before close 4008.
    pub slow_timeout: Duration,
    /// Publications kept per channel for recovery.
    pub history_size: usize,
    /// How long a publication stays recoverable.
    pub history_ttl: Duration,
    /// Bytes the node's history may hold over all channels: each entry's
    /// frame plus an estimate of its bookkeeping. Beyond it the oldest
    /// entries go first. Not used with a backplane, whose history is in
    /// Redis.
    pub history_max_bytes: usize,
    /// Channels that may hold history at once, on a node or in a shared
    /// backplane. Beyond it the oldest history goes first.
    pub history_max_channels: usize,
    /// Idempotency records a node keeps over all channels and publishers.
    /// Beyond it the oldest record goes first, and a retry of its key is
    /// published again: the bound that keeps ever-new keys from filling
    /// the node's memory.
    pub idempotency_max_records: usize,
    /// Sustained messages per second accepted from one connection.
    pub rate_limit: u32,
    /// Messages one connection may send in a burst above the rate.
    pub rate_burst: u32,
    /// Channels one connection may be subscribed to at once.
    pub max_subscriptions: usize,
    /// Origins allowed to open a WebSocket; empty means any origin.
    pub allowed_origins: Vec<String>,
    /// Channel patterns whose undelivered messages coalesce to the newest;
    /// a trailing `*` matches any suffix (`ticker:*`).
    pub latest_only: Vec<String>,
    /// Upper bound on flushing queues during graceful shutdown.
    pub shutdown_timeout: Duration,
    /// Concurrent connections accepted; further ones get HTTP 503.
    pub max_connections: usize,
    /// Authenticated WebSocket connections one user may hold on this node;
    /// the one beyond it is closed 4029 at its auth verdict. Per node: a
    /// count over all nodes would ask the backplane at every `auth`.
    pub max_connections_per_user: usize,
    /// Channels new to the node (which it holds nothing for) that one user
    /// may bring into existence per minute, by subscribe or publish; the
    /// request for one more is refused `LIMIT_EXCEEDED`. So fresh channel
    /// names are no way around the node-wide history bounds.
    pub max_new_channels_per_user: usize,
    /// Messages kept, in order, between `auth` and its verdict.
    pub max_pending_before_auth: usize,
    /// Largest HTTP request head (request line and headers) in bytes.
    pub max_http_head: usize,
    /// How long a repeated publish `id` is recognised as a retry.
    pub idempotency_window: Duration,
    /// How long a node's presence entries live in the backplane without
    /// being refreshed.
    pub presence_ttl: Duration,
    /// Channels one `POST /api/broadcast` may publish to; a longer list is
    /// refused `400 LIMIT_EXCEEDED` and nothing is published.
    pub api_max_broadcast_channels: usize,
    /// Channel names one `POST /api/channels` answers with at most; its
    /// `total` still counts every match.
    pub api_max_channels: usize,
    /// Whether `GET /` serves the demo chat page; when false it is a 404.
    /// The browser client (`/tether.js`) is served either way.
    pub demo: bool,
    /// Who may do what on which channel: the first namespace whose pattern
    /// matches a channel governs it, and a channel that none matches is
    /// refused `FORBIDDEN`. Empty by default: every channel but the
    /// user's own `user:<id>` is closed until a namespace opens it.
    pub namespaces: Vec<Namespace>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            auth_timeout: Duration::from_secs(10),
            decision_timeout: Duration::from_secs(5),
            forward_headers: Vec::new(),
            heartbeat_interval: Duration::from_secs(30),
            max_payload: 64 * 1024,
            compression: true,
            compression_min_size: 128,
            high_water: 256 * 1024,
            hard_limit: 4 * 1024 * 1024,
            slow_timeout: Duration::from_secs(10),
            history_size: 100,
            history_ttl: Duration::from_secs(300),
            history_max_bytes: 128 * 1024 * 1024,
            history_max_channels: 100_000,
            idempotency_max_records: 100_000,
            rate_limit: 100,
            rate_burst: 200,
            max_subscriptions: 128,
            allowed_origins: Vec::new(),
            latest_only: Vec::new(),
            shutdown_timeout: Duration::from_secs(10),
            max_connections: 100_000,
            max_connections_per_user: 100,
            max_new_channels_per_user: 1_000,
            max_pending_before_auth: 32,
            max_http_head: 8 * 1024,
            idempotency_window: Duration::from_secs(60),
            presence_ttl: Duration::from_secs(15),
            api_max_broadcast_channels: 1_000,
            api_max_channels: 10_000,
            demo: false,
            namespaces: Vec::new(),
        }
    }
}

/// File descriptors a node keeps for itself beside one per connection: the
/// standard streams, the listener, the poller, the links to a backplane,
/// the files of the embedding process, and the refused connections that
/// hold one while their `503` goes out.
pub const RESERVED_FILE_DESCRIPTORS: u64 = 64;

/// The most header fields [`ServerConfig::forward_headers`] may name:
/// each is copied per connection until its `auth` is decided.
pub const MAX_FORWARD_HEADERS: usize = 16;

/// The most connections a node can admit when its process may open
/// `open_files` file descriptors (`RLIMIT_NOFILE`): each connection takes
/// one, and [`RESERVED_FILE_DESCRIPTORS`] stay for the rest. Admitting no
/// more than this, the node answers `503 too many connections` where the
/// operating system would otherwise refuse to accept. An adapter applies
/// it at start-up to the soft limit, when lower than `max_connections`,
/// and warns saying so (PROTOCOL.md section 11).
pub fn connections_within_open_files(open_files: u64) -> usize {
    usize::try_from(open_files.saturating_sub(RESERVED_FILE_DESCRIPTORS)).unwrap_or(usize::MAX)
}

impl ServerConfig {
    /// The protocol defaults with every channel open to every authenticated
    /// user (one namespace `*`): the channels of the standalone server's
    /// `--dev`. For trying things out and for tests; a production node
    /// lists its namespaces.
    pub fn dev() -> ServerConfig {
        let everything = ChannelPattern::new("*").expect("`*` is a pattern");
        ServerConfig {
            namespaces: vec![Namespace::open(everything)],
            ..ServerConfig::default()
        }
    }

    /// The byte thresholds of the outbound queue.
    pub fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            high_water: self.high_water,
            hard_limit: self.hard_limit,
        }
    }

    /// Whether `channel` matches one of the `latest_only` patterns.
    pub fn is_latest_only(&self, channel: &str) -> bool {
        self.latest_only
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => channel.starts_with(prefix),
                None => channel == pattern,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_protocol_defaults() {
        let config = ServerConfig::default();
        assert_eq!(config.auth_timeout, Duration::from_secs(10));
        assert_eq!(config.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(config.max_payload, 65_536);
        assert!(config.compression);
        assert_eq!(config.compression_min_size, 128);
        assert_eq!(config.high_water, 262_144);
        assert_eq!(config.hard_limit, 4_194_304);
        assert_eq!(config.history_size, 100);
        assert_eq!(config.max_subscriptions, 128);
        assert_eq!(config.max_pending_before_auth, 32);
    }

    #[test]
    fn connections_leave_the_reserved_descriptors_free() {
        assert_eq!(connections_within_open_files(1024), 960);
        assert_eq!(connections_within_open_files(256), 192);
        assert_eq!(connections_within_open_files(64), 0);
        assert_eq!(connections_within_open_files(0), 0);
    }

    #[test]
    fn latest_only_patterns_match_prefixes_and_exact_names() {
        let config = ServerConfig {
            latest_only: vec!["ticker:*".into(), "scores".into()],
            ..ServerConfig::default()
        };
        assert!(config.is_latest_only("ticker:BTC"));
        assert!(config.is_latest_only("scores"));
        assert!(!config.is_latest_only("scores:live"));
        assert!(!config.is_latest_only("chat"));
    }
}
