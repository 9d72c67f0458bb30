//! Tether on smol: a server node and a client, each a thin driver of the
//! sans-IO core. The adapter moves bytes, time and commands; every decision
//! is the core's.

mod backplane;
pub mod client;
mod reactor;
pub mod server;
mod signal;
mod socket;

pub use reactor::block_on;
pub use server::{Handle, Server, ServerOptions};
/// The application's side of a node: the one handler trait of every
/// runtime (PROTOCOL.md section 13), with what its methods take and give.
pub use tether_core::{
    ChannelRequest, ConnectRequest, Handler, Identity, Notification, Rejection, RpcRequest,
    async_trait,
};
/// A node's certificate and key, for `Server::with_tls`.
pub use tether_tls::ServerTls;
