//! Tether on `std::net` and threads: a server node and a client, each a thin
//! driver of the sans-IO core, for programs that want no async runtime.
//!
//! The adapter moves bytes, time and commands; every decision (protocol,
//! timers, backpressure, reconnects) is the core's. Each machine of the core
//! sits behind one `Mutex` that is never held across a socket read or write
//! and never held while sleeping: threads block on their sockets or on a
//! condition variable, lock only to hand the core an input or take its
//! outputs, and act on the outputs after unlocking.
//!
//! - [`Server`]: a reader thread and a writer thread per connection, one
//!   timer thread, one accept thread. An idle connection costs two blocked
//!   threads with small stacks and no polling. With a backplane
//!   ([`tether_core::Backplane`]) two more threads run its task
//!   and feed its events to the core.
//! - [`Client`]: a reconnecting client over the core's session, with a
//!   blocking API and events as an iterator.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tether_blocking::{Client, Server, ServerOptions};
//! use tether_core::{Authorizer, ClientConfig, Event, Identity, ServerConfig};
//!
//! struct AnyToken;
//!
//! impl Authorizer for AnyToken {
//!     fn authenticate(&self, token: &str) -> Option<Identity> {
//!         Some(Identity::user(token))
//!     }
//!     fn authorize_api(&self, _authorization: Option<&str>) -> bool {
//!         false
//!     }
//! }
//!
//! # fn main() -> std::io::Result<()> {
//! let mut options = ServerOptions::new("127.0.0.1:8080".parse().unwrap(), Arc::new(AnyToken));
//! // Every channel open to every user, as in development.
//! options.config = ServerConfig::dev();
//! let server = Server::bind(options)?;
//! let handle = server.handle();
//! let running = std::thread::spawn(move || server.run());
//!
//! let client = Client::connect(ClientConfig::new("127.0.0.1:8080", "alice"))?;
//! client.subscribe("news").expect("a valid channel");
//! for event in client.events() {
//!     if let Event::Subscribed { .. } = event {
//!         break;
//!     }
//! }
//! handle.publish("news", r#"{"headline":"hello"}"#).expect("published");
//! client.close();
//! handle.shutdown();
//! running.join().expect("the server thread")?;
//! # Ok(())
//! # }
//! ```

mod client;
mod io;
mod server;
mod tls;

pub use client::{Client, ClientError, Connector, TokenProvider};
pub use server::{Handle, Server, ServerOptions};
/// The application's side of a node: the one handler trait of every
/// runtime (PROTOCOL.md section 13), with what its methods take and give.
pub use tether_core::{
    ChannelRequest, ConnectRequest, Handler, Identity, Notification, Rejection, RpcRequest,
    async_trait,
};
/// A node's certificate and key, for `Server::with_tls`.
pub use tether_tls::ServerTls;
