//! Tether on smol: a server node and a client, each a thin driver of the
//! sans-IO core. The adapter moves bytes, time and commands; every decision
//! is the core's.

pub mod backplane;
pub mod client;
pub mod server;

pub use backplane::{Backplane, BackplaneTask};
pub use server::{Handle, Server, ServerOptions};
