//! What the project's test targets share, written once: a test
//! authorizer, a bound on a test's time, the `tether` binary and
//! `redis-server` as child processes of a test, the plain WebSocket
//! and HTTP clients the tests speak to a node with, an HTTP server playing
//! the application's backend, key pairs made at test time for the JWT
//! tests, certificates made at test time for the TLS tests, and a client
//! that offers permessage-deflate and sees what arrived compressed.
//!
//! Every wait here is bounded, and every socket is on 127.0.0.1. The crate
//! is not published; the core's own unit tests keep their helpers
//! in-crate, since a dev-dependency of `tether-core` on this crate would
//! give those tests a second copy of the core's types.

pub mod authorizer;
pub mod backend;
pub mod bounded;
pub mod deflate;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod process;
pub mod redis;
pub mod tls;
pub mod ws;

pub use authorizer::TestAuthorizer;
pub use bounded::bounded;
