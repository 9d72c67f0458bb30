//! The client half of Tether: a session that connects, authenticates,
//! subscribes, and keeps doing so across reconnects (PROTOCOL.md section 10).
//!
//! [`ClientSession`] is the machine; its module documentation explains how it
//! works and the decisions taken where the protocol is silent.

mod config;
mod event;
mod expiry;
mod offline;
mod requests;
mod session;
mod subscriptions;
mod wire;

pub use config::{ClientConfig, TokenSource};
pub use event::{Event, Output, RequestError, SendError, Transmit};
pub use session::ClientSession;

#[cfg(test)]
mod pair_tests;
#[cfg(test)]
mod tests;
