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
//!   threads with small stacks and no polling.
//! - [`Client`]: a reconnecting client over the core's session, with a
//!   blocking API and events as an iterator.

mod client;
mod io;
mod server;

pub use client::{Client, ClientError};
pub use server::{Handle, Server, ServerOptions};
