//! Target `deflate_bytes`: any bytes from a client after a handshake that
//! agreed on permessage-deflate (RFC 7692), and auth.
//!
//! The contract of [`server_bytes`](super::server_bytes), with compressed
//! frames in play: RSV1 is honoured on the first frame of a data message
//! only (1002 elsewhere), a compressed message is inflated whole or in
//! fragments, bounded by `max_payload` on its inflated size (1009, with no
//! more than that inflated), and invalid DEFLATE closes 1007. Every
//! publication goes to the client compressed, and the client's reader
//! inflates it. The input format is that of `server_bytes`.

/// Runs the contract on `data`.
pub fn check(data: &[u8]) {
    super::server_bytes::run(data, true);
}
