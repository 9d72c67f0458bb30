//! The server: one node of Tether on a TCP port, served by threads.
//!
//! # Threads
//!
//! - The accept thread takes TCP connections and registers them with the
//!   core, or answers the core's refusal (draining, at capacity).
//! - Each connection has a reader thread blocked in `read` and a writer
//!   thread blocked on a wake channel; both have small stacks. An idle
//!   connection therefore costs two sleeping threads and no polling.
//! - One timer thread sleeps until the core's next deadline and is woken
//!   early when an input makes that deadline earlier.
//! - With a [`Backplane`], one thread runs it and one feeds its events to
//!   the core; the core's store requests are handed over wherever an input
//!   is settled. After a graceful shutdown the node lets the backplane
//!   carry its last requests (its users' departures) within
//!   `shutdown_timeout`.
//! - The thread that calls [`Server::run`] waits for the shutdown to
//!   complete.
//!
//! The core sits behind one lock, held only to feed an input or take
//! frames, never across a socket read or write and never while sleeping.

mod backplane;
mod capacity;
mod node;
mod socket;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use async_channel::Receiver;
use tether_core::StoreRequest;
use tether_tls::ServerTls;

use tether_core::{
    Backplane, PublishError, Server as Core, ServerConfig, connections_within_open_files,
};

use node::Node;

/// Everything [`Server::bind`] needs: the options every runtime takes.
pub use tether_core::NodeOptions as ServerOptions;

/// A bound server node, ready to [`run`](Server::run).
pub struct Server {
    node: Arc<Node>,
    listener: TcpListener,
    local_addr: SocketAddr,
    /// The node's settings, for a core made again in backplane mode.
    config: ServerConfig,
    /// This run's seed, for a core made again in backplane mode.
    seed: u64,
    /// The core's name for this run, which names the node in a backplane.
    node_id: String,
    /// The shared store and the core's requests to it, with a backplane.
    backplane: Option<(Box<dyn Backplane>, Receiver<StoreRequest>)>,
    tls: Option<ServerTls>,
}

/// Controls a running server from the application; cheap to clone and
/// usable from any thread.
#[derive(Clone)]
pub struct Handle {
    node: Arc<Node>,
}

impl Server {
    /// Binds the listening socket and builds the node; nothing is accepted
    /// until [`Server::run`].
    ///
    /// `max_connections` is lowered to what the process's threads and file
    /// descriptors allow (see [`Server::max_connections`]), with a warning.
    pub fn bind(options: ServerOptions) -> io::Result<Server> {
        let listener = TcpListener::bind(options.listen)?;
        let local_addr = listener.local_addr()?;
        let seed = options.seed.unwrap_or_else(|| fastrand::u64(..));
        let mut config = options.config;
        if let Some(limit) = capacity::max_map_count().map(capacity::connection_limit)
            && config.max_connections > limit
        {
            tracing::warn!(
                configured = config.max_connections,
                limit,
                "max_connections lowered: each connection takes two threads, and more \
                 would exhaust the process's memory maps (vm.max_map_count)"
            );
            config.max_connections = limit;
        }
        if let Some(limit) = capacity::open_files().map(connections_within_open_files)
            && config.max_connections > limit
        {
            tracing::warn!(
                configured = config.max_connections,
                limit,
                "max_connections lowered: each connection takes a file descriptor, and \
                 the process may open too few for more (RLIMIT_NOFILE, ulimit -n)"
            );
            config.max_connections = limit;
        }
        let core = Core::new(config.clone(), seed)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let node_id = core.node_id().to_owned();
        let node = Node::new(core, options.handler);
        Ok(Server {
            node,
            listener,
            local_addr,
            config,
            seed,
            node_id,
            backplane: None,
            tls: None,
        })
    }

    /// The most connections the node admits at once: `max_connections`,
    /// lowered where the system allows fewer threads (Linux's
    /// `vm.max_map_count`) or file descriptors (`RLIMIT_NOFILE`). Beyond it
    /// a connection is answered `503`.
    pub fn max_connections(&self) -> usize {
        self.config.max_connections
    }

    /// Shares the node's channels with other nodes through `backplane`
    /// (PROTOCOL.md section 6) instead of keeping them in process. Handles
    /// taken before stay valid.
    pub fn with_backplane(mut self, backplane: impl Backplane + 'static) -> Server {
        let (requests, received) = async_channel::unbounded();
        let core = Core::with_backplane(self.config.clone(), self.seed)
            .expect("the config passed Core::new in bind");
        self.node.attach_backplane(core, requests);
        self.backplane = Some((Box::new(backplane), received));
        self
    }

    /// Speaks TLS on every connection, with `tls`'s certificate (re-read
    /// by [`ServerTls::reload`], wherever it is called): HTTPS and `wss://`
    /// only. The connection's reader and writer threads share its session.
    pub fn with_tls(mut self, tls: ServerTls) -> Server {
        self.tls = Some(tls);
        self
    }

    /// The address the server listens on (with the actual port when bound
    /// to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to publish and to shut down, valid before and during
    /// [`Server::run`].
    pub fn handle(&self) -> Handle {
        Handle {
            node: Arc::clone(&self.node),
        }
    }

    /// Serves until a graceful shutdown completes: returns once
    /// [`Handle::shutdown`] was called and every connection is gone, or
    /// `shutdown_timeout` after the call at the latest. Until then new TCP
    /// connections are answered `503 draining`; the port closes on return.
    pub fn run(self) -> io::Result<()> {
        let Server {
            node,
            listener,
            local_addr,
            config,
            node_id,
            backplane,
            tls,
            ..
        } = self;
        let backplane = match backplane {
            Some((backplane, requests)) => {
                Some(run_backplane(&node, backplane, &node_id, requests)?)
            }
            None => None,
        };
        let timer = {
            let node = Arc::clone(&node);
            thread::Builder::new()
                .name("tether-timer".into())
                .spawn(move || node.run_timers())?
        };
        let acceptor = {
            let node = Arc::clone(&node);
            thread::Builder::new()
                .name("tether-accept".into())
                .spawn(move || socket::accept_loop(&node, &listener, tls.as_ref()))
        };
        let acceptor = match acceptor {
            Ok(acceptor) => acceptor,
            Err(error) => {
                node.stop();
                join(timer)?;
                return Err(error);
            }
        };
        node.wait_until_drained();
        node.stop();
        // The accept thread is blocked in `accept`: one connection wakes it
        // to see that the node stopped. If it fails, the thread is already
        // gone (the listener broke), which `join` reports.
        let _ = TcpStream::connect(wake_address(local_addr));
        join(acceptor)?;
        join(timer)?;
        if let Some(finished) = backplane
            && finished.recv_timeout(config.shutdown_timeout).is_err()
        {
            tracing::warn!("shutdown timeout reached before the backplane was done");
        }
        Ok(())
    }
}

/// Starts the backplane's thread and the thread that feeds its events to
/// the core. The receiver hears when both are done: the backplane carried
/// out every request the node made before it stopped.
fn run_backplane(
    node: &Arc<Node>,
    backplane: Box<dyn Backplane>,
    node_id: &str,
    requests: Receiver<StoreRequest>,
) -> io::Result<mpsc::Receiver<()>> {
    let (events, received) = async_channel::unbounded();
    let (done, finished) = mpsc::channel();
    let feeder = {
        let node = Arc::clone(node);
        thread::Builder::new()
            .name("tether-store-events".into())
            .spawn(move || node.feed_store_events(&received))?
    };
    backplane::spawn(backplane, node_id, requests, events, move || {
        let _ = feeder.join();
        let _ = done.send(());
    })?;
    Ok(finished)
}

impl Handle {
    /// Publishes `payload_json` (any JSON value, as text) on `channel` from
    /// the application, like the HTTP API: no `sender`, private `user:`
    /// channels allowed. Returns the publication's offset (with a backplane,
    /// once the store gave it), or why the channel name or payload is
    /// invalid or the backplane cannot take it.
    pub fn publish(&self, channel: &str, payload_json: &str) -> Result<u64, PublishError> {
        self.node.publish(channel, payload_json)
    }

    /// Starts the graceful shutdown of PROTOCOL.md section 3: new TCP
    /// connections get `503 draining`, every WebSocket gets close 1001 after
    /// its queued messages, and [`Server::run`] returns when all are gone
    /// or `shutdown_timeout` has passed. Calling it again changes nothing.
    pub fn shutdown(&self) {
        self.node.shutdown();
    }
}

/// Where to connect to reach a listener bound to `local`: the loopback
/// address of the same family when bound to every address.
fn wake_address(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

fn join(thread: thread::JoinHandle<()>) -> io::Result<()> {
    thread
        .join()
        .map_err(|_| io::Error::other("a server thread panicked"))
}
