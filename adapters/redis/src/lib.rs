//! A Redis backplane for Tether: several `tether serve` nodes share their
//! channels, offsets, history and presence through one Redis server
//! (PROTOCOL.md section 6).
//!
//! # Design
//!
//! The node's core decides everything: when to connect and retry (its
//! backoff), which channels to follow, when to renew its presence lease, and
//! the order of delivery, rebuilt from offsets. This crate carries the
//! core's requests to Redis and brings back events, as the core's one
//! [`Backplane`]: it depends on `tether-core` and the Redis client, and
//! every runtime adapter drives the same task. Every remaining decision
//! about shared state is made atomically inside Redis, by the Lua scripts
//! in `src/lua`:
//!
//! - **Publish** (`publish.lua`): the channel's next offset (a counter next
//!   to its epoch), the entry in its history (a list capped at
//!   `history_size`, entries older than `history_ttl` dropped), the
//!   idempotency record of the publication's `idempotency_key` in its
//!   publisher's scope (a user, or the HTTP API; `SET NX` for
//!   `idempotency_window`, whose value is the offset a retry gets back),
//!   and the `PUBLISH` of the encoded
//!   message to the nodes that follow the channel, all in one step. The
//!   publishing node encodes the message up to its offset
//!   ([`tether_core::encode_publication_prefix`]); the script
//!   appends the offset, so every node receives the complete JSON and
//!   frames it once for all its subscribers.
//! - **Epochs** live in Redis: a channel's epoch is created once, by the
//!   first script that needs it, from the asking node's name and the Redis
//!   clock; when the channel's state is lost (Redis restarted without
//!   persistence) or expires, the next use creates a new one.
//! - **Bounded channels**: every publish and read records a use of its
//!   channel in a sorted set (`remember` in `common.lua`); beyond
//!   `history_max_channels` the least recently used channels lose their
//!   epoch, offset and history, so a flood of publications to ever-new
//!   channels cannot fill Redis. Their next use starts a new epoch.
//! - **Read** (`read.lua`): a subscription's epoch, offset, users and, with
//!   `since`, the replay from the history; the same read answers a
//!   catch-up.
//! - **Presence** (`member.lua`, `lease.lua`, `rejoin.lua`): a user's
//!   connection count per channel over all nodes, with each node's own
//!   share in a hash of its own. Nodes hold leases in a sorted set; each
//!   renewal also removes the share of every node whose lease ran out and
//!   announces the departures (`-VERSION USER` on the channel's topic), so
//!   a dead node's users leave within `presence_ttl` on every node. Every
//!   announced change takes the next version of one counter, and every
//!   snapshot (`read.lua`, `presence.lua`) returns the version it reflects:
//!   changes arrive over the pub/sub connection and snapshots over the
//!   command connection, in no order with each other, and the core orders
//!   them by version.
//! - **Routing**: a node `SUBSCRIBE`s to a channel's topic only while the
//!   core follows it (it has local subscribers).
//! - **The server API** (`stats.lua`, `history.lua`, `channels.lua`,
//!   `info.lua`): presence counts, a history read with `since`, `limit`
//!   and order, the active channels (a set that `shift` in `common.lua`
//!   keeps with presence, filtered by the namespace glob), and the live
//!   nodes with the figures each registers with its lease (`lease.lua`).
//!   The API's orders (disconnect, unsubscribe) are `PUBLISH`ed on one
//!   control topic that every node `SUBSCRIBE`s to when it connects.
//!
//! # Why the async client
//!
//! The `redis` crate's async client with its `smol-comp` feature (its
//! sockets and timers on `async-io`) makes the link one future, which a
//! smol node runs as one more task on its thread next to the connection
//! tasks and a blocking node runs on a thread of its own. Its pub/sub
//! connection splits into a sink (subscribe, unsubscribe) and a stream of
//! messages, so the node can follow a new channel while messages keep
//! arriving. The synchronous client would need a thread per connection, a
//! blocking pub/sub reader that cannot subscribe while it waits, and
//! channels in between, for no gain.

mod keys;
mod link;
mod scripts;
mod wire;

use std::time::Duration;

use tether_core::{Backplane, BackplaneTask, EventSink, RequestSource, ServerConfig};

/// What every key and pub/sub topic of Tether starts with.
pub const KEY_PREFIX: &str = "tether:";

/// A node's link to a Redis server, ready to run on either runtime
/// (`tether_smol::Server::with_backplane`,
/// `tether_blocking::Server::with_backplane`).
#[derive(Clone, Debug)]
pub struct RedisBackplane {
    client: redis::Client,
    history_size: usize,
    history_ttl: Duration,
    history_max_channels: usize,
    idempotency_window: Duration,
}

impl RedisBackplane {
    /// A backplane at `url` (`redis://HOST:PORT[/DB]`, or `rediss://` for
    /// TLS, trusting Mozilla's roots) keeping history and idempotency
    /// records as `config` says. Only the URL is checked here; the node
    /// connects when it runs.
    pub fn new(url: &str, config: &ServerConfig) -> Result<RedisBackplane, redis::RedisError> {
        Ok(RedisBackplane::with_client(
            redis::Client::open(url)?,
            config,
        ))
    }

    /// A backplane at `url` (`rediss://HOST:PORT[/DB]`) that trusts only
    /// the CA certificates in `ca_pem` (PEM): for a Redis whose certificate
    /// a private CA signed. The server name is the URL's host.
    pub fn trusting(
        url: &str,
        ca_pem: Vec<u8>,
        config: &ServerConfig,
    ) -> Result<RedisBackplane, redis::RedisError> {
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca_pem),
        };
        let client = redis::Client::build_with_tls(url, certificates)?;
        Ok(RedisBackplane::with_client(client, config))
    }

    fn with_client(client: redis::Client, config: &ServerConfig) -> RedisBackplane {
        RedisBackplane {
            client,
            history_size: config.history_size,
            history_ttl: config.history_ttl,
            history_max_channels: config.history_max_channels,
            idempotency_window: config.idempotency_window,
        }
    }

    /// What the commands of node `node` need besides the request.
    fn context(&self, node: &str) -> wire::Context {
        wire::Context {
            keys: keys::Keys::new(KEY_PREFIX),
            node: node.replace([' ', '\n'], "_"),
            history_size: self.history_size,
            history_ttl: self.history_ttl,
            history_max_channels: self.history_max_channels,
            idempotency_window: self.idempotency_window,
        }
    }
}

impl Backplane for RedisBackplane {
    fn run(
        self: Box<Self>,
        node: &str,
        requests: Box<dyn RequestSource>,
        events: Box<dyn EventSink>,
    ) -> BackplaneTask {
        let context = self.context(node);
        Box::pin(link::run(self.client, context, requests, events))
    }
}
