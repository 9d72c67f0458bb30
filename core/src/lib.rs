//! Sans-IO core of Tether: deterministic state machines for a real-time
//! WebSocket messaging server and client.
//!
//! Nothing in this crate reads a clock, touches a socket, spawns, sleeps or
//! locks. Time ([`time::Instant`]) and randomness (seeds) are inputs; bytes
//! to write, decisions for the application and the next deadline are
//! outputs.
//!
//! # Driving a server node
//!
//! An adapter owns one [`server::Server`] (made with a seed from OS
//! randomness) and follows one rule: **feed one input, then drain
//! [`server::Server::poll_output`] until it returns
//! [`server::Output::Timeout`]; then wait for I/O or that deadline.**
//!
//! ```text
//! input   accept | handle_accept_failed | handle_read | handle_written
//!         | handle_transport_closed | handle_timeout | handle_auth_verdict
//!         | handle_api_verdict | handle_store_event | publish | shutdown
//!                                                       (now first)
//! drain   loop { match server.poll_output() {
//!           Wake(conn)      -> poll_transmit, write, handle_written; act on transport(conn)
//!           Decide(d)       -> decide outside (as long as it takes), answer later
//!           Store(request)  -> hand to the backplane, in order
//!           Published{..}   -> tell the caller of publish(token)
//!           Closed{..}      -> log
//!           Drained         -> the graceful shutdown is over: stop
//!           Timeout(at)     -> break: wait for I/O or `at`, then handle_timeout
//!         } }
//! ```
//!
//! While draining, an adapter may write frames ([`server::Server::poll_transmit`]
//! and [`server::Server::handle_written`]) and read
//! [`server::Server::transport`]; every other input waits until the drain
//! is over, and is followed by a drain of its own. A decision may be
//! answered at any later time, after any other input: the connection keeps
//! its later requests in order meanwhile, and no other connection waits.
//! Nothing is acknowledged implicitly: bytes handed out by `poll_transmit`
//! count against the connection's backlog until `handle_written`. A writer
//! asks [`server::Server::transport`] again after each `handle_written`:
//! once a `CloseAfterFlush` is flushed, the order to close or half-close
//! comes from there, not from a `Wake`.
//!
//! `core/examples/serve.rs` is a complete node driven this way on `std`
//! alone (threads and one lock): the reference for a new adapter. Run it
//! with `cargo run -p tether-core --example serve -- 127.0.0.1:8080`.

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
