//! RFC 6455 framing for both ends of a connection.
//!
//! # Theory of operation
//!
//! Decoding is h11-style: the driver hands received bytes to
//! [`FrameDecoder::feed`], then calls [`FrameDecoder::poll_message`] until it
//! returns `Ok(None)`. The decoder reassembles fragmented data messages and
//! hands out control frames (which RFC 6455 section 5.4 lets a peer interleave
//! between fragments) the moment they are complete. Every header check runs as
//! soon as the bytes it needs are present, so an oversized frame is refused
//! before its payload arrives, and the result never depends on how the bytes
//! were split into reads.
//!
//! Encoding is a set of free functions that always produce one final frame:
//! Tether never fragments what it sends. Servers send unmasked frames; clients
//! mask every frame with a key the caller supplies (from a seeded generator:
//! there is no randomness in the core).
//!
//! The only extension is permessage-deflate (RFC 7692): once agreed, RSV1
//! on the first frame of a data message marks it compressed; the decoder
//! inflates it (module `deflate` holds the codec) and [`compressed_frame`]
//! makes one. Every other reserved bit must be zero.

mod decode;
mod encode;
mod error;
mod header;
mod mask;

pub use decode::FrameDecoder;
pub use encode::{
    close_frame, compressed_frame, encode_frame, masked_close_frame, masked_pong_frame,
    masked_text_frame, ping_frame, pong_frame, text_frame, text_frame_payload,
};
pub use error::{DecodeError, Violation};
pub use header::Opcode;

use bytes::Bytes;

use crate::close::CloseCode;

/// Which end of the connection a decoder sits on; it decides the masking rule
/// of RFC 6455 section 5.1 for incoming frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Receives frames from a client: every frame must be masked.
    Server,
    /// Receives frames from a server: no frame may be masked.
    Client,
}

/// One complete message (or control frame) received from the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message, reassembled from its fragments; always valid UTF-8.
    Text(Bytes),
    /// A binary message, reassembled from its fragments.
    Binary(Bytes),
    /// A Ping with its application data (at most 125 bytes).
    Ping(Bytes),
    /// A Pong with its application data (at most 125 bytes).
    Pong(Bytes),
    /// A Close frame: its status code and reason, or `None` when the frame
    /// carried no body (RFC 6455 section 7.1.5: "no status code received").
    Close(Option<(CloseCode, String)>),
}
