//! Runs Tether's sans-IO core on tokio: a WebSocket server node
//! ([`Server`]) and a reconnecting client ([`Client`]).
//!
//! The core ([`tether_core::Server`], [`tether_core::ClientSession`])
//! decides everything; this crate carries bytes, time and the
//! application's decisions in and out of it, by the core's one rule: feed
//! one input, then drain `poll_output` until it returns a deadline.
//!
//! # Design of the node
//!
//! - **One lock.** The core sits behind one `std::sync::Mutex`, held to feed
//!   one input and drain what it caused, never across an `.await`. Every
//!   input is short CPU work, so the lock is the simplest way to let the
//!   tasks of a multi-threaded runtime share one core: the task that read
//!   the bytes feeds them and wakes the writers they concern, with no queue
//!   of inputs in between to bound.
//! - **One task per connection**, which reads, writes and closes as one
//!   `select!` over the socket's two halves and the core's order to close:
//!   a peer that does not read blocks only its own writes, and the core's
//!   backpressure decides its fate. [`Server::run`] accepts; one more task
//!   sleeps until the core's deadline.
//! - **Decisions** ([`tether_core::Output::Decide`]) are each a task that
//!   awaits the application's [`Handler`] (on tokio's
//!   blocking pool when [`Handler::may_block`]
//!   says its futures may block), so a slow one stalls no other
//!   connection; notifications go to the handler once the lock is
//!   released.
//! - **The backplane** ([`Server::with_backplane`]) runs as a task of its
//!   own, fed through two unbounded channels, in the order the core made
//!   its requests and the store gave its events.
//!
//! Any runtime with the `net` and `time` drivers runs a node, the
//! `tether` binary a multi-threaded one.
//!
//! # Inside an axum application
//!
//! With the `axum` feature, `Handle::routes` gives the node's
//! WebSocket endpoint (and on request its metrics and the browser client)
//! as routes to merge into an application's axum `Router`, beside its own
//! routes on its own port: a node made with [`Server::without_listener`]
//! then listens on nothing itself, and [`Server::run`] keeps its time and
//! backplane. hyper parses the upgrade request; the node checks the parts
//! hyper parsed with its own rules, and hyper's upgraded stream is served
//! by the same per-connection task as an accepted socket. The module
//! `mount` says how; `examples/axum_chat.rs` is a whole application.
//!
//! # The client
//!
//! The [`client`] module drives one [`tether_core::ClientSession`] from one
//! task that owns it, with the smol client's API and the core's
//! [`ClientError`] and [`TokenProvider`], which every client shares; its
//! documentation says how.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Context;

use tether_core::{Backplane, BackplaneTask, PublishError, ServerConfig, StoreEvent};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio_rustls::TlsAcceptor;
use tracing::warn;

pub mod client;
mod connection;
#[cfg(feature = "axum")]
pub mod mount;
mod node;
mod shards;

pub use client::{Client, ClientError, Connector, TokenProvider};
use connection::Listener;
use node::Node;
/// A node's certificate and key, for `Server::with_tls`.
pub use tether_tls::ServerTls;

/// What a node is started with: the options every runtime takes.
pub use tether_core::NodeOptions as ServerOptions;
/// The application's side of a node: the one handler trait of every
/// runtime (PROTOCOL.md section 13), with what its methods take and give.
pub use tether_core::{
    ChannelRequest, ConnectRequest, Handler, Identity, Notification, Rejection, RpcRequest,
    async_trait,
};

/// Connections the kernel may hold before `accept`: enough for a thousand
/// clients connecting at once without dropped SYNs, which their kernels
/// retry only a second later (std listens with 128).
const LISTEN_BACKLOG: i32 = 1024;

/// A node bound to its address (or without a listener, beside an
/// application's own HTTP server), not yet serving.
pub struct Server {
    node: Arc<Node>,
    /// `None` for a node whose connections another server hands over.
    listener: Option<std::net::TcpListener>,
    /// The backplane's task and the end its events arrive at.
    backplane: Option<(BackplaneTask, UnboundedReceiver<StoreEvent>)>,
    /// The handshake of every accepted connection, when the node speaks
    /// TLS.
    tls: Option<TlsAcceptor>,
}

impl Server {
    /// Binds `options.listen` and makes the node's core; fails on a bad
    /// config (naming its key) or an address that cannot be bound. Needs
    /// no runtime: the listener joins one in [`Server::run`].
    pub fn bind(options: ServerOptions) -> io::Result<Server> {
        let listen = options.listen;
        let mut server = Server::without_listener(options)?;
        let listener = std::net::TcpListener::bind(listen)?;
        // Listening again only sets the backlog (std listens with 128).
        rustix::net::listen(&listener, LISTEN_BACKLOG)?;
        listener.set_nonblocking(true)?;
        server.listener = Some(listener);
        Ok(server)
    }

    /// Makes the node's core without a listener of its own, for an
    /// application whose HTTP server hands it the WebSockets it upgraded
    /// (with the `axum` feature: `Handle::routes`); `options.listen` is
    /// not bound. Fails on a bad config, naming its key. [`Server::run`]
    /// must run as long as the application serves: it keeps the node's
    /// time (auth deadlines, heartbeats) and its backplane.
    pub fn without_listener(options: ServerOptions) -> io::Result<Server> {
        let ServerOptions {
            config,
            handler,
            seed,
            ..
        } = options;
        let seed = seed.unwrap_or_else(os_seed);
        let config = within_open_files(config);
        let core = tether_core::Server::new(config, seed)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        Ok(Server {
            node: Arc::new(Node::new(core, seed, handler)),
            listener: None,
            backplane: None,
            tls: None,
        })
    }

    /// Runs the node as `threads` shards (PROTOCOL.md, `threads`; see
    /// `shards.rs`), each a core of its own with the connections handed to
    /// it at accept, all on the runtime `run` runs on; 1, the default,
    /// keeps one core, and 0 counts as 1. Call it before
    /// [`Server::handle`]; with a backplane (set before or after) the
    /// shards share the node's one link to it. A node without a listener
    /// spreads what other servers hand it over its shards in turn.
    pub fn with_threads(mut self, threads: usize) -> Server {
        if threads > 1 {
            let nodes = shards::Shards::make(&self.node, threads);
            self.node = Arc::clone(&nodes[0]);
        }
        self
    }

    /// Shares the node's channels with other nodes through `backplane`
    /// (such as `tether_redis::RedisBackplane`). Call it before
    /// [`Server::run`] and before using a [`Handle`]: it makes the core
    /// anew.
    pub fn with_backplane(mut self, backplane: impl Backplane + 'static) -> Server {
        let (requests, mut requested) = mpsc::unbounded_channel();
        let (events, received) = mpsc::unbounded_channel();
        let node_id = self.node.use_backplane(requests);
        let source = move |cx: &mut Context<'_>| requested.poll_recv(cx);
        // Refused only once the node stopped listening: the core has
        // answered whatever the event concerned.
        let sink = move |event| drop(events.send(event));
        let task = Box::new(backplane).run(&node_id, Box::new(source), Box::new(sink));
        self.backplane = Some((task, received));
        self
    }

    /// Speaks TLS on every connection the node accepts, with `tls`'s
    /// certificate (re-read by [`ServerTls::reload`], wherever it is
    /// called): HTTPS and `wss://` only. A node without a listener needs
    /// none: the application's HTTP server terminates TLS for the
    /// connections it hands over.
    pub fn with_tls(mut self, tls: ServerTls) -> Server {
        self.tls = Some(TlsAcceptor::from(tls.config()));
        self
    }

    /// The address the node listens on; an error for a node without a
    /// listener.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Some(listener) => listener.local_addr(),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the node has no listener of its own",
            )),
        }
    }

    /// A handle to shut the node down or publish from the application,
    /// usable from any thread, before and while the node runs.
    pub fn handle(&self) -> Handle {
        Handle {
            node: Arc::clone(&self.node),
        }
    }

    /// Serves until the graceful shutdown ([`Handle::shutdown`]) is over,
    /// then closes what is left, lets the backplane carry its last
    /// requests (within `shutdown_timeout`) and returns. Must run inside a
    /// tokio runtime with I/O and time enabled. A node without a listener
    /// accepts nothing itself: it runs its time and backplane for the
    /// connections handed to it.
    pub async fn run(self) -> io::Result<()> {
        let listener = self
            .listener
            .map(tokio::net::TcpListener::from_std)
            .transpose()?;
        let listener = listener.map(|listener| Listener {
            listener,
            tls: self.tls,
        });
        self.node.run(listener, self.backplane).await;
        Ok(())
    }
}

/// A seed drawn from the operating system's randomness (through the
/// standard library's hasher keys), for the runs that are not to be
/// reproduced: a node's epoch, a client's masks and keys.
pub(crate) fn os_seed() -> u64 {
    RandomState::new().hash_one(0u8)
}

/// `config` with `max_connections` lowered to what the process's file
/// descriptor limit allows (PROTOCOL.md section 11), saying so: beyond it
/// the core answers `503` where accepting would fail.
fn within_open_files(mut config: ServerConfig) -> ServerConfig {
    let open_files = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    if let Some(open_files) = open_files {
        let limit = tether_core::connections_within_open_files(open_files);
        if limit < config.max_connections {
            warn!(
                limit,
                configured = config.max_connections,
                "max_connections lowered to fit the file descriptor limit (RLIMIT_NOFILE {open_files})"
            );
            config.max_connections = limit;
        }
    }
    config
}

/// Commands for a node, from any thread.
#[derive(Clone)]
pub struct Handle {
    node: Arc<Node>,
}

impl Handle {
    /// Starts the graceful shutdown (PROTOCOL.md section 3): no new
    /// connections, close 1001 for every WebSocket; [`Server::run`]
    /// returns when it is over.
    pub fn shutdown(&self) {
        for node in self.node.shard_nodes() {
            node.input(|state, now| state.core.shutdown(now));
        }
    }

    /// Publishes `payload` (JSON text) on `channel` as the HTTP API does
    /// (no sender), giving its offset once the node (or its backplane)
    /// assigned one. A node that stopped answers
    /// [`PublishError::Unavailable`].
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<u64, PublishError> {
        let published = self.node.publish(channel, payload);
        published.await.unwrap_or(Err(PublishError::Unavailable))
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;
    use std::time::Duration;

    use tether_core::{ConnectRequest, Handler, Identity, Rejection, async_trait};

    use super::*;

    struct Nobody;

    #[async_trait]
    impl Handler for Nobody {
        async fn connect(&self, _request: ConnectRequest) -> Result<Identity, Rejection> {
            Err(Rejection::forbidden())
        }

        fn authorize_api(&self, _authorization: Option<&str>) -> bool {
            false
        }
    }

    #[test]
    fn a_bound_node_holds_more_connections_than_stds_backlog_before_it_accepts() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = Server::bind(ServerOptions::new(listen, Arc::new(Nobody))).unwrap();
        let addr = server.local_addr().unwrap();
        // Beyond the backlog the kernel drops the SYN and the client's
        // retries find the queue as full: the connect times out.
        let held: Vec<TcpStream> = (0..300)
            .map(|n| {
                TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .unwrap_or_else(|error| panic!("connection {n}: {error}"))
            })
            .collect();
        assert_eq!(held.len(), 300);
    }
}
