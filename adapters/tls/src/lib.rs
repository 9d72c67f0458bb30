//! TLS for Tether's nodes and clients, written once for every runtime.
//!
//! - [`ServerTls`]: a node's certificate and key, read from PEM files, with
//!   errors that say which file is at fault, and re-read on demand
//!   ([`ServerTls::reload`], on SIGHUP in the binary) without touching an
//!   open connection: new handshakes get the new certificate, established
//!   ones keep theirs.
//! - [`Connector`]: what a client trusts, Mozilla's roots or a CA file,
//!   and the server name it checks, taken from the URL's host;
//!   [`read_ca_file`], the same check of a CA file for a client that takes
//!   the PEM itself (the Redis backplane's).
//! - [`Session`]: a rustls connection driven without I/O, for the adapters
//!   that move bytes themselves (the smol node on its own reactor, the
//!   blocking node's reader and writer threads, the smol and blocking
//!   clients): ciphertext in, plaintext out, and the other way round.
//! - [`ClientOutput`]: a client driver's write queue with a [`Session`] in
//!   front of it for `wss://`, the one glue of the smol and tokio clients.
//!
//! Every configuration uses rustls' `ring` provider, passed explicitly, so
//! that no process-wide default is needed. The core knows nothing of TLS:
//! it sees the plaintext, and its handshake timer, started when the TCP
//! connection is accepted, bounds the TLS handshake as well as the HTTP
//! upgrade.

mod client;
mod client_link;
mod error;
mod server;
mod session;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use client::{Connector, read_ca_file, server_name};
pub use client_link::ClientOutput;
pub use error::{TlsError, TlsFile};
pub use server::ServerTls;
pub use session::{Received, Session};

/// The one crypto provider of every Tether TLS configuration: `ring`.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The ALPN protocol a node offers and a client asks for: WebSocket
/// upgrades are HTTP/1.1 requests (RFC 6455).
const HTTP_1_1: &[u8] = b"http/1.1";

#[cfg(test)]
mod tests;
