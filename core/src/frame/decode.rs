//! The incremental frame decoder: bytes in, whole messages out.

use bytes::{Bytes, BytesMut};

use super::error::{DecodeError, Violation};
use super::header::{self, Context, Header, Opcode};
use super::mask::apply_mask;
use super::{Message, Role};
use crate::close::CloseCode;
use crate::deflate::{Between, InflateError, Inflater};

/// Turns the bytes a peer sends into [`Message`]s, checking every rule of
/// RFC 6455 framing on the way.
///
/// Feed received bytes with [`feed`](Self::feed), then call
/// [`poll_message`](Self::poll_message) until it returns `Ok(None)`; the
/// decoder then holds at most one incomplete frame (at most `max_payload` + 14
/// bytes) plus what the next read brings. An idle decoder owns no heap
/// memory.
///
/// Under permessage-deflate ([`with_deflate`](Self::with_deflate)) a
/// message whose first frame has RSV1 set is inflated as its frames arrive,
/// and `max_payload` bounds its inflated size: inflating stops as soon as
/// the output would pass it (close 1009).
///
/// The decoder stops for good at two points:
/// - after an error, every later poll returns the same error and fed bytes
///   are dropped (the connection is being failed anyway);
/// - after a Close message, every later poll returns `Ok(None)` and fed bytes
///   are dropped (RFC 6455 section 5.5.1: nothing may follow a Close).
#[derive(Debug)]
pub struct FrameDecoder {
    role: Role,
    max_payload: usize,
    /// Received bytes not yet decoded start at `buf[start]`.
    buf: Vec<u8>,
    start: usize,
    /// The fragmented data message being reassembled.
    partial: Option<Partial>,
    /// Inflates compressed messages, when permessage-deflate was agreed.
    inflater: Option<Inflater>,
    state: State,
}

#[derive(Debug)]
struct Partial {
    text: bool,
    /// The first frame had RSV1 set: `data` is what its payload inflates to.
    compressed: bool,
    /// Payload bytes received on the wire, which the header checks bound.
    received: usize,
    data: Vec<u8>,
    /// Bytes of `data` known to be a valid UTF-8 prefix, so that invalid
    /// text fails on the fragment that carries it.
    utf8_checked: usize,
}

#[derive(Debug)]
enum State {
    Open,
    Closed,
    Failed(DecodeError),
}

impl FrameDecoder {
    /// A decoder for frames received by `role`, refusing any message larger
    /// than `max_payload` bytes.
    pub fn new(role: Role, max_payload: usize) -> Self {
        FrameDecoder {
            role,
            max_payload,
            buf: Vec::new(),
            start: 0,
            partial: None,
            inflater: None,
            state: State::Open,
        }
    }

    /// A decoder for a connection that agreed on permessage-deflate (RFC
    /// 7692): RSV1 may mark a message as compressed. `peer_keeps_context`
    /// says whether the peer compresses with the window of its earlier
    /// messages, which is then kept. If not, a server keeps nothing between
    /// messages, so that an idle connection costs no inflate state, and a
    /// client keeps its inflate state and resets it, saving an allocation
    /// per message (client memory is not the constraint).
    pub fn with_deflate(role: Role, max_payload: usize, peer_keeps_context: bool) -> Self {
        let between = match role {
            _ if peer_keeps_context => Between::Window,
            Role::Client => Between::State,
            Role::Server => Between::Nothing,
        };
        FrameDecoder {
            inflater: Some(Inflater::new(between)),
            ..FrameDecoder::new(role, max_payload)
        }
    }

    /// Appends bytes received from the peer. Ignored once the decoder has
    /// stopped (after a Close or an error).
    pub fn feed(&mut self, bytes: &[u8]) {
        if !matches!(self.state, State::Open) || bytes.is_empty() {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed (or
    /// after a Close), or the reason the connection must be failed.
    pub fn poll_message(&mut self) -> Result<Option<Message>, DecodeError> {
        match &self.state {
            State::Open => {}
            State::Closed => return Ok(None),
            State::Failed(error) => return Err(error.clone()),
        }
        match self.decode() {
            Ok(Some(Message::Close(close))) => {
                self.stop(State::Closed);
                Ok(Some(Message::Close(close)))
            }
            Ok(message) => Ok(message),
            Err(error) => {
                self.stop(State::Failed(error.clone()));
                Err(error)
            }
        }
    }

    fn stop(&mut self, state: State) {
        self.buf = Vec::new();
        self.start = 0;
        self.partial = None;
        if let Some(inflater) = &mut self.inflater {
            inflater.release();
        }
        self.state = state;
    }

    /// Decodes frames until one completes a message or the bytes run out.
    fn decode(&mut self) -> Result<Option<Message>, DecodeError> {
        loop {
            let available = &self.buf[self.start..];
            let cx = Context {
                role: self.role,
                max_payload: self.max_payload,
                open_message: self.partial.as_ref().map(|p| p.received),
                deflate: self.inflater.is_some(),
            };
            let Some(header) = header::parse(available, &cx)? else {
                return Ok(None);
            };
            let end = header.len + header.payload_len;
            if available.len() < end {
                return Ok(None);
            }
            let payload = &available[header.len..end];
            let mut inflate = Inflate {
                inflater: self.inflater.as_mut(),
                limit: self.max_payload,
            };
            let message = match header.opcode {
                Opcode::Continuation => {
                    continue_message(&mut self.partial, &header, payload, &mut inflate)?
                }
                Opcode::Text | Opcode::Binary if !header.fin || header.compressed => {
                    self.partial = Some(start_message(&header, payload, &mut inflate)?);
                    if header.fin {
                        continue_message(&mut self.partial, &header, &[], &mut inflate)?
                    } else {
                        None
                    }
                }
                Opcode::Text => Some(Message::Text(validated(unmask(&header, payload))?)),
                Opcode::Binary => Some(Message::Binary(unmask(&header, payload))),
                Opcode::Ping => Some(Message::Ping(unmask(&header, payload))),
                Opcode::Pong => Some(Message::Pong(unmask(&header, payload))),
                Opcode::Close => Some(Message::Close(close_body(&unmask(&header, payload))?)),
            };
            self.consume(end);
            if message.is_some() {
                return Ok(message);
            }
        }
    }

    fn consume(&mut self, len: usize) {
        self.start += len;
        if self.start == self.buf.len() {
            self.buf = Vec::new();
            self.start = 0;
        }
    }
}

/// The inflater of a decoder, lent to the functions that add a fragment to
/// its message, with the limit on an inflated message.
struct Inflate<'a> {
    inflater: Option<&'a mut Inflater>,
    limit: usize,
}

impl Inflate<'_> {
    /// Inflates a piece of a compressed message into `out`; `last` ends the
    /// message.
    fn inflate(&mut self, piece: &[u8], out: &mut Vec<u8>, last: bool) -> Result<(), DecodeError> {
        let Some(inflater) = self.inflater.as_deref_mut() else {
            // The header parser refuses RSV1 unless deflate was agreed.
            return Err(DecodeError::Protocol(Violation::ReservedBits));
        };
        let mut result = inflater.inflate(piece, out, self.limit);
        if last && result.is_ok() {
            result = inflater.finish(out, self.limit);
        }
        result.map_err(|error| match error {
            InflateError::TooBig => DecodeError::TooBig { limit: self.limit },
            InflateError::Corrupt => DecodeError::InvalidCompressed,
        })
    }
}

/// Opens a message with its first frame; a compressed message goes this
/// way even when the frame is final, to be inflated.
fn start_message(
    header: &Header,
    payload: &[u8],
    inflate: &mut Inflate<'_>,
) -> Result<Partial, DecodeError> {
    let mut partial = Partial {
        text: header.opcode == Opcode::Text,
        compressed: header.compressed,
        received: 0,
        data: Vec::with_capacity(if header.compressed { 0 } else { payload.len() }),
        utf8_checked: 0,
    };
    append(&mut partial, header, payload, inflate, false)?;
    Ok(partial)
}

/// Adds a continuation to the open message; returns the message when the
/// continuation is its last fragment. The last frame of a compressed
/// message that fits in one frame comes here with an empty payload, after
/// [`start_message`] took its bytes.
fn continue_message(
    open: &mut Option<Partial>,
    header: &Header,
    payload: &[u8],
    inflate: &mut Inflate<'_>,
) -> Result<Option<Message>, DecodeError> {
    let Some(mut partial) = open.take() else {
        // The header parser refuses a continuation with no open message.
        return Err(DecodeError::Protocol(Violation::UnexpectedContinuation));
    };
    append(&mut partial, header, payload, inflate, header.fin)?;
    if !header.fin {
        *open = Some(partial);
        return Ok(None);
    }
    if partial.text && partial.utf8_checked != partial.data.len() {
        // A character cut off at the end of the message.
        return Err(DecodeError::InvalidUtf8);
    }
    let data = Bytes::from(partial.data);
    Ok(Some(if partial.text {
        Message::Text(data)
    } else {
        Message::Binary(data)
    }))
}

/// Adds one fragment's payload to its message, inflated if the message is
/// compressed (`last` ends it), checking text as it grows.
fn append(
    partial: &mut Partial,
    header: &Header,
    payload: &[u8],
    inflate: &mut Inflate<'_>,
    last: bool,
) -> Result<(), DecodeError> {
    partial.received += payload.len();
    if partial.compressed {
        let mut piece = payload.to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut piece, key);
        }
        inflate.inflate(&piece, &mut partial.data, last)?;
    } else {
        let from = partial.data.len();
        partial.data.extend_from_slice(payload);
        if let Some(key) = header.mask {
            apply_mask(&mut partial.data[from..], key);
        }
    }
    if partial.text {
        // Section 8.1: invalid UTF-8 fails the connection. Only a character
        // cut by the fragment boundary may stay unchecked for now.
        match std::str::from_utf8(&partial.data[partial.utf8_checked..]) {
            Ok(_) => partial.utf8_checked = partial.data.len(),
            Err(error) if error.error_len().is_none() => {
                partial.utf8_checked += error.valid_up_to();
            }
            Err(_) => return Err(DecodeError::InvalidUtf8),
        }
    }
    Ok(())
}

fn unmask(header: &Header, payload: &[u8]) -> Bytes {
    let mut data = BytesMut::from(payload);
    if let Some(key) = header.mask {
        apply_mask(&mut data, key);
    }
    data.freeze()
}

fn validated(text: Bytes) -> Result<Bytes, DecodeError> {
    match std::str::from_utf8(&text) {
        Ok(_) => Ok(text),
        Err(_) => Err(DecodeError::InvalidUtf8),
    }
}

/// Section 5.5.1: an empty body, or a two-byte code followed by a UTF-8
/// reason.
fn close_body(body: &[u8]) -> Result<Option<(CloseCode, String)>, DecodeError> {
    match body {
        [] => Ok(None),
        [_] => Err(DecodeError::Protocol(Violation::TruncatedCloseCode)),
        [high, low, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*high, *low]));
            // Section 7.4: codes reserved for local use or unassigned are
            // refused.
            if !code.is_sendable() {
                return Err(DecodeError::Protocol(Violation::UnsendableCloseCode(
                    code.0,
                )));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| DecodeError::InvalidCloseReason)?;
            Ok(Some((code, reason.to_owned())))
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod deflate_tests;
