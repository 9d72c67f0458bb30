//! The DEFLATE codec of permessage-deflate (RFC 7692 section 7.2): what
//! compresses a message's payload and what inflates it, bounded.
//!
//! A message is compressed on its own: the compressor starts every message
//! with an empty window and ends it with a sync flush whose trailing
//! `00 00 ff ff` is removed (section 7.2.1). Such a message inflates with or
//! without the window of earlier messages, so it suits every agreement the
//! peers can reach.
//!
//! The inflater appends to a buffer it never lets grow past the caller's
//! limit (plus one byte, which tells a message that reaches the limit from
//! one that passes it): a decompression bomb stops there, with
//! [`InflateError::TooBig`], having allocated and inflated at most that.

use std::fmt;

use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, TDEFLStatus, compress, create_comp_flags_from_zip_params,
};
use miniz_oxide::inflate::stream::{InflateState, inflate};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

/// What a sync flush ends with, removed by the sender and appended by the
/// receiver (RFC 7692 sections 7.2.1 and 7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The compression level: zlib's default, the usual balance of size and
/// speed for short text.
const LEVEL: i32 = 6;

/// Negative window bits ask for raw DEFLATE (no zlib header), with the
/// largest window, 2^15 bytes: the only one the compressor makes.
const RAW_WINDOW_BITS: i32 = -15;

/// Bytes of inflated output made room for at a time.
const INFLATE_CHUNK: usize = 16 * 1024;

/// Compresses messages one at a time, each on its own (no context
/// takeover). Its tables (about 230 KiB) are allocated once and reused, so
/// a node keeps one, not one per connection.
pub struct Deflater {
    compressor: Box<CompressorOxide>,
}

impl Deflater {
    /// A compressor for raw DEFLATE at the default level.
    pub fn new() -> Self {
        let flags = create_comp_flags_from_zip_params(LEVEL, RAW_WINDOW_BITS, 0);
        Deflater {
            compressor: Box::new(CompressorOxide::new(flags)),
        }
    }

    /// The compressed form of `payload` as a permessage-deflate message
    /// carries it: a sync-flushed DEFLATE stream without its last four
    /// bytes, referring to nothing before this message.
    pub fn deflate(&mut self, payload: &[u8]) -> Vec<u8> {
        self.compressor.reset();
        // Room for incompressible input (stored blocks cost 5 bytes per
        // 64 KiB) and the flush marker in one call: miniz writes the marker
        // again when a sync flush resumes in a full buffer.
        let mut out = vec![0; payload.len() + payload.len() / 1024 * 8 + 64];
        let mut input = payload;
        let mut len = 0;
        loop {
            let (status, consumed, written) = compress(
                &mut self.compressor,
                input,
                &mut out[len..],
                TDEFLFlush::Sync,
            );
            len += written;
            input = &input[consumed..];
            let full = len == out.len();
            if status != TDEFLStatus::Okay || (input.is_empty() && !full) {
                break;
            }
            out.resize(out.len() * 2, 0);
        }
        out.truncate(len);
        if out.ends_with(&TAIL) {
            out.truncate(len - TAIL.len());
        }
        out
    }
}

impl Default for Deflater {
    fn default() -> Self {
        Deflater::new()
    }
}

impl fmt::Debug for Deflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Deflater")
    }
}

/// Why a compressed message cannot be inflated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The inflated message would pass the limit (close 1009).
    TooBig,
    /// The compressed bytes are not valid DEFLATE (close 1007).
    Corrupt,
}

/// Inflates the compressed messages of one direction of a connection.
///
/// Its window (about 43 KiB) exists only while a message is being inflated
/// when the peer compresses without context takeover, so an idle receiver
/// keeps none; when the peer keeps its context, the window is kept between
/// messages, as RFC 7692 requires.
pub struct Inflater {
    keep_context: bool,
    state: Option<Box<InflateState>>,
    /// The current message ended its DEFLATE stream with a final block:
    /// what follows in the message is ignored, and the next message starts
    /// a new stream (RFC 7692 section 7.2.3.4).
    ended: bool,
}

impl Inflater {
    /// An inflater for a peer that keeps its compression context between
    /// messages (`keep_context`), or starts every message afresh.
    pub fn new(keep_context: bool) -> Self {
        Inflater {
            keep_context,
            state: None,
            ended: false,
        }
    }

    /// Inflates `input`, the next compressed bytes of the current message,
    /// appending to `out`, which may hold at most `limit` bytes.
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        if self.ended {
            return Ok(());
        }
        let state = self
            .state
            .get_or_insert_with(|| InflateState::new_boxed(DataFormat::Raw));
        let result = inflate_into(state, input, out, limit);
        if result == Ok(Step::Ended) {
            self.ended = true;
            self.state = None;
        }
        result.map(|_| ())
    }

    /// Ends the current message: inflates the removed tail, appending to
    /// `out` as [`inflate`](Self::inflate) does, and drops the window unless
    /// the peer keeps its context.
    pub fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        let result = self.inflate(&TAIL, out, limit);
        self.ended = false;
        if !self.keep_context {
            self.state = None;
        }
        result
    }

    /// Drops the window: the connection reads no more messages.
    pub fn release(&mut self) {
        self.state = None;
    }

    /// Whether a window is held right now.
    pub fn holds_window(&self) -> bool {
        self.state.is_some()
    }
}

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflater")
            .field("keep_context", &self.keep_context)
            .field("holds_window", &self.holds_window())
            .field("ended", &self.ended)
            .finish()
    }
}

/// How a call to the inflater ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Every input byte was used; more may follow.
    NeedsInput,
    /// A final block ended the DEFLATE stream.
    Ended,
}

/// Inflates `input` into `out`, making room a chunk at a time and never
/// more than one byte past `limit`.
fn inflate_into(
    state: &mut InflateState,
    mut input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<Step, InflateError> {
    loop {
        let start = out.len();
        let room = (limit + 1).saturating_sub(start).min(INFLATE_CHUNK);
        out.resize(start + room, 0);
        let result = inflate(state, input, &mut out[start..], MZFlush::None);
        out.truncate(start + result.bytes_written);
        input = &input[result.bytes_consumed..];
        if out.len() > limit {
            return Err(InflateError::TooBig);
        }
        match result.status {
            Ok(MZStatus::StreamEnd) => return Ok(Step::Ended),
            Ok(_) | Err(MZError::Buf) => {}
            Err(_) => return Err(InflateError::Corrupt),
        }
        let progress = result.bytes_consumed > 0 || result.bytes_written > 0;
        if input.is_empty() && result.bytes_written < room {
            return Ok(Step::NeedsInput);
        }
        if !progress {
            return Err(InflateError::Corrupt);
        }
    }
}

#[cfg(test)]
mod tests;
