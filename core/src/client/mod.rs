//! The client half of Tether: a session that connects, authenticates,
//! subscribes, and keeps doing so across reconnects (PROTOCOL.md section 10).
//!
//! [`ClientSession`] is the machine; its module documentation explains how it
//! works and the decisions taken where the protocol is silent.
//!
//! Beside it is what every client adapter (smol, tokio, blocking) would
//! otherwise write again, runtime-free: the [`ClientError`] of their calls,
//! the application's [`TokenProvider`], the [`Waiters`] whose requests'
//! outcomes skip the event stream, the [`WriteQueue`] of an adapter that
//! writes without blocking, and the decisions they must agree on: where a
//! dial goes ([`dial_address`], port 80 by default), when a seed is drawn
//! ([`ClientConfig::with_fresh_seed`]), how the wall clock is read
//! ([`unix_ms`]) and when a client is over
//! ([`ClientSession::is_finished`]).

mod config;
mod error;
mod event;
mod expiry;
mod host;
mod offline;
mod requests;
mod session;
mod subscriptions;
mod token;
mod waiters;
mod wire;
mod write_queue;

pub use config::{ClientConfig, TokenSource};
pub use error::{ClientError, publication_payload, published_offset, rpc_call, rpc_result};
pub use event::{Event, Output, RequestError, SendError, Transmit};
pub use expiry::unix_ms;
pub use host::{DEFAULT_PORT, InvalidHost, dial_address};
pub use session::ClientSession;
pub use token::{TokenFetch, TokenProvider};
pub use waiters::{Routed, Waiters};
pub use write_queue::WriteQueue;

#[cfg(test)]
mod pair_tests;
#[cfg(test)]
mod tests;
