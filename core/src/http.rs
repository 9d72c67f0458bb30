//! The HTTP/1.1 side of Tether's single port, sans-IO.
//!
//! # Theory of operation
//!
//! A server connection starts in HTTP. Its bytes go into a [`RequestParser`]
//! which, once the request head (and, for a plain request, its body) is
//! complete, yields one classified [`Request`]: a WebSocket [`Upgrade`] that
//! passed every check of RFC 6455 section 4.2.1, or a plain [`HttpRequest`]
//! with its [`Route`]. Anything else is an [`HttpError`] whose
//! [`response`](HttpError::response) is the full answer to write before
//! closing. After an upgrade, [`RequestParser::into_remaining`] hands over
//! the bytes that followed the head: a client may send its first frames
//! without waiting for the 101.
//!
//! Tether serves one request per TCP connection: every answer other than
//! the 101 says `Connection: close`, and the parser stops after one request.
//!
//! The client side mirrors it: [`upgrade_request`] writes the handshake,
//! [`ResponseParser`] checks the server's answer (RFC 6455 section 4.1) and
//! keeps the frames that followed it.
//!
//! Both ends negotiate permessage-deflate (RFC 7692) in
//! `Sec-WebSocket-Extensions` (module `extensions`): the upgrade carries
//! the answer the server gives, the client's [`Handshake`] what it agreed.
//!
//! An upgrade that another HTTP server parsed (an application's own
//! server, hyper under axum) is checked by [`check_upgrade`] with the same
//! rules, from the parts that server has: the node never re-parses a head.
//!
//! Every parser looks at a bounded window of its input, so it holds a
//! bounded amount of memory, and decides the same way however the bytes
//! were split into reads.

mod accepted;
mod base64;
mod classify;
mod client;
mod extensions;
mod headers;
mod request;
mod response;

pub use accepted::{AcceptedUpgrade, UpgradeHead, check_upgrade};
pub use client::{Handshake, HandshakeError, ResponseParser, client_key, upgrade_request};
pub use extensions::Deflate;
pub use request::{ApiMethod, HttpRequest, Request, RequestLimits, RequestParser, Route};
pub use response::{HttpError, accept_response, response};

/// The WebSocket subprotocol Tether speaks (PROTOCOL.md section 1).
pub const PROTOCOL: &str = "tether.v1";
