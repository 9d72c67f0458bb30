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
