//! What a runtime adapter's server node is started with: the same for
//! every runtime, so that one program can start any of them.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::ServerConfig;
use crate::handler::Handler;

/// Everything an adapter's `Server::bind` needs.
#[derive(Clone)]
pub struct NodeOptions {
    /// The node's settings (PROTOCOL.md names and defaults).
    pub config: ServerConfig,
    /// The address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The application: decides tokens, channel requests, `rpc` calls and
    /// API keys, and observes notifications. An adapter asks it where a
    /// slow decision delays only its own connection. Any
    /// [`Authorizer`](crate::Authorizer) is one.
    pub handler: Arc<dyn Handler>,
    /// Names this run of the node, from which the core makes its epochs and
    /// session ids; `None` draws it from OS randomness, so that a restarted
    /// node never repeats an epoch. Tests fix it.
    pub seed: Option<u64>,
}

impl NodeOptions {
    /// Options with the protocol's default settings and a random seed.
    pub fn new(listen: SocketAddr, handler: Arc<dyn Handler>) -> Self {
        NodeOptions {
            config: ServerConfig::default(),
            listen,
            handler,
            seed: None,
        }
    }
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("config", &self.config)
            .field("listen", &self.listen)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}
