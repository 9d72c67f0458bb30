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

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// What a sync flush ends with, removed by the sender and appended by the
/// receiver (RFC 7692 sections 7.2.1 and 7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The compression level: zlib's default, the usual balance of size and
/// speed for short text.
const LEVEL: u32 = 6;

/// Bytes of inflated output made room for at a time.
const INFLATE_CHUNK: usize = 16 * 1024;

/// Compresses messages one at a time, each on its own (no context
/// takeover), as raw DEFLATE with the largest window. Its state (about
/// 270 KiB, on the heap) is allocated once and reset per message, so a
/// node keeps one, not one per connection.
pub struct Deflater {
    compress: Compress,
}

impl Deflater {
    /// A compressor for raw DEFLATE at the default level.
    pub fn new() -> Self {
        Deflater {
            compress: Compress::new(Compression::new(LEVEL), false),
        }
    }

    /// The compressed form of `payload` as a permessage-deflate message
    /// carries it: a sync-flushed DEFLATE stream without its last four
    /// bytes, referring to nothing before this message.
    pub fn deflate(&mut self, payload: &[u8]) -> Vec<u8> {
        self.compress.reset();
        // Room for incompressible input (stored blocks cost 5 bytes per
        // 16 KiB) and the flush marker; grown if it is not enough.
        let mut out = Vec::with_capacity(payload.len() + payload.len() / 1024 + 64);
        let mut input = payload;
        loop {
            let before = self.compress.total_in();
            let result = self
                .compress
                .compress_vec(input, &mut out, FlushCompress::Sync);
            let consumed = (self.compress.total_in() - before) as usize;
            input = &input[consumed..];
            let full = out.len() == out.capacity();
            if result.is_err() || (input.is_empty() && !full) {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
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

/// What an [`Inflater`] keeps between two messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Between {
    /// The window: the peer keeps its compression context, and RFC 7692
    /// then requires it.
    Window,
    /// The state, reset for the next message: the peer compresses every
    /// message on its own, and the receiver saves an allocation per message
    /// for the memory of one state (a client's choice).
    State,
    /// Nothing: the peer compresses every message on its own, and an idle
    /// receiver holds no memory for the extension (the server's choice).
    Nothing,
}

/// Inflates the compressed messages of one direction of a connection.
///
/// Its state and window (about 40 KiB) are made for the first compressed
/// message and kept between messages as [`Between`] says.
pub struct Inflater {
    between: Between,
    state: Option<Box<Decompress>>,
    /// The current message ended its DEFLATE stream with a final block:
    /// what follows in the message is ignored, and the next message starts
    /// a new stream (RFC 7692 section 7.2.3.4).
    ended: bool,
}

impl Inflater {
    /// An inflater that keeps `between` two messages.
    pub fn new(between: Between) -> Self {
        Inflater {
            between,
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
            .get_or_insert_with(|| Box::new(Decompress::new(false)));
        let result = inflate_into(state, input, out, limit);
        if result == Ok(Step::Ended) {
            self.ended = true;
            self.state = None;
        }
        result.map(|_| ())
    }

    /// Ends the current message: inflates the removed tail, appending to
    /// `out` as [`inflate`](Self::inflate) does, and keeps for the next
    /// message what [`Between`] says.
    pub fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        let result = self.inflate(&TAIL, out, limit);
        self.ended = false;
        match (self.between, &mut self.state) {
            (Between::Window, _) | (Between::State, None) => {}
            (Between::State, Some(state)) => state.reset(false),
            (Between::Nothing, state) => *state = None,
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
            .field("between", &self.between)
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
    state: &mut Decompress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<Step, InflateError> {
    loop {
        let start = out.len();
        let room = (limit + 1).saturating_sub(start).min(INFLATE_CHUNK);
        out.resize(start + room, 0);
        let (read_before, written_before) = (state.total_in(), state.total_out());
        let result = state.decompress(input, &mut out[start..], FlushDecompress::None);
        let consumed = (state.total_in() - read_before) as usize;
        let written = (state.total_out() - written_before) as usize;
        out.truncate(start + written);
        input = &input[consumed..];
        if out.len() > limit {
            return Err(InflateError::TooBig);
        }
        match result {
            Ok(Status::StreamEnd) => return Ok(Step::Ended),
            Ok(Status::Ok | Status::BufError) => {}
            Err(_) => return Err(InflateError::Corrupt),
        }
        if input.is_empty() && written < room {
            return Ok(Step::NeedsInput);
        }
        if consumed == 0 && written == 0 {
            return Err(InflateError::Corrupt);
        }
    }
}

#[cfg(test)]
mod tests;
