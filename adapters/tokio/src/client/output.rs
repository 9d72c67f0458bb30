//! Bytes the session handed out for the socket that the socket has not
//! taken yet.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};
use tokio::net::TcpStream;

/// A queue of frames for one socket, written front first.
///
/// It exists so that a server slow to read never stops the driver task from
/// reading and keeping the session's deadlines; its length tells the task
/// when to stop taking commands.
#[derive(Debug, Default)]
pub(super) struct Output {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Output {
    /// Queues `bytes` behind everything already queued.
    pub(super) fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.chunks.push_back(bytes);
        }
    }

    /// The bytes to write next, if any.
    pub(super) fn front(&self) -> Option<&[u8]> {
        self.chunks.front().map(|chunk| &chunk[..])
    }

    /// Forgets the first `written` bytes: the socket took them.
    pub(super) fn advance(&mut self, written: usize) {
        let Some(chunk) = self.chunks.front_mut() else {
            return;
        };
        let written = written.min(chunk.len());
        chunk.advance(written);
        self.len -= written;
        if chunk.is_empty() {
            self.chunks.pop_front();
        }
    }

    /// Bytes queued in total.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Forgets everything: the socket is gone.
    pub(super) fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// Writes what `stream` takes without waiting (a closing frame,
    /// usually), then forgets the rest: the socket is about to be closed.
    pub(super) fn flush_now(&mut self, stream: &TcpStream) {
        while let Some(chunk) = self.front() {
            match stream.try_write(chunk) {
                Ok(written) if written > 0 => self.advance(written),
                _ => break,
            }
        }
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_writes_keep_the_order_and_the_count() {
        let mut output = Output::default();
        output.push(Bytes::from_static(b"abc"));
        output.push(Bytes::new());
        output.push(Bytes::from_static(b"de"));
        assert_eq!(output.len(), 5);
        output.advance(2);
        assert_eq!(output.front(), Some(&b"c"[..]));
        output.advance(1);
        assert_eq!(output.front(), Some(&b"de"[..]));
        assert_eq!(output.len(), 2);
        output.clear();
        assert_eq!((output.front(), output.len()), (None, 0));
    }
}
