//! Sans-IO core of Tether: deterministic state machines for a real-time
//! WebSocket messaging server and client.
//!
//! Nothing in this crate reads a clock, touches a socket, spawns, sleeps or
//! locks. Time ([`time::Instant`]) and randomness (seeds in the configs) are
//! inputs; bytes to write, events and the next deadline are outputs. Every
//! machine is driven the same way: feed an input with a `handle_*` method,
//! then drain its `poll_*` methods until they return nothing, then sleep until
//! `poll_timeout`.

pub mod auth;
pub mod backoff;
pub mod client;
pub mod close;
pub mod config;
pub mod connection;
pub mod envelope;
pub mod frame;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod http;
pub mod hub;
pub mod ids;
pub mod metrics;
pub mod queue;
pub mod rate;
pub mod server;
pub mod time;
pub mod timer;

#[cfg(test)]
mod testkit;
