//! Bytes a session handed out in [`Transmit::Write`](super::Transmit::Write)
//! that the socket has not taken yet, for an adapter that writes without
//! blocking.
//!
//! The session forgets what it hands out, so an adapter whose writes may
//! be partial keeps the rest here. It is the adapters' plumbing, not a
//! decision of the session: the queue exists so that a server slow to read
//! never stops the adapter from reading and keeping the session's
//! deadlines, and its length tells the adapter when to stop taking the
//! application's commands.

use std::collections::VecDeque;
use std::io;

use bytes::{Buf, Bytes};

/// A queue of frames for one socket, written front first.
#[derive(Debug, Default)]
pub struct WriteQueue {
    chunks: VecDeque<Bytes>,
    queued: usize,
}

impl WriteQueue {
    /// Queues `bytes` behind everything already queued.
    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.queued += bytes.len();
            self.chunks.push_back(bytes);
        }
    }

    /// The bytes to write next, if any.
    pub fn front(&self) -> Option<&[u8]> {
        self.chunks.front().map(|chunk| &chunk[..])
    }

    /// Forgets the first `written` bytes: the socket took them.
    pub fn advance(&mut self, written: usize) {
        let Some(chunk) = self.chunks.front_mut() else {
            return;
        };
        let written = written.min(chunk.len());
        chunk.advance(written);
        self.queued -= written;
        if chunk.is_empty() {
            self.chunks.pop_front();
        }
    }

    /// Bytes queued in total.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Forgets everything: the socket is gone.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.queued = 0;
    }

    /// Hands the queue to `write` (a write that does not wait, on a socket
    /// about to be closed) until it takes nothing more, then forgets the
    /// rest: what a close frame, usually, gets before the socket goes.
    pub fn flush_now(&mut self, mut write: impl FnMut(&[u8]) -> io::Result<usize>) {
        while let Some(chunk) = self.front() {
            match write(chunk) {
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
        let mut queue = WriteQueue::default();
        queue.push(Bytes::from_static(b"abc"));
        queue.push(Bytes::new());
        queue.push(Bytes::from_static(b"de"));
        assert_eq!(queue.queued(), 5);
        queue.advance(2);
        assert_eq!(queue.front(), Some(&b"c"[..]));
        queue.advance(1);
        assert_eq!(queue.front(), Some(&b"de"[..]));
        assert_eq!(queue.queued(), 2);
        queue.clear();
        assert_eq!((queue.front(), queue.queued()), (None, 0));
    }

    #[test]
    fn flush_now_writes_what_the_socket_takes_and_forgets_the_rest() {
        let mut queue = WriteQueue::default();
        queue.push(Bytes::from_static(b"close"));
        queue.push(Bytes::from_static(b"more"));
        let mut written = Vec::new();
        // The socket takes three bytes, then two, then would block.
        let mut room = vec![3, 2].into_iter();
        queue.flush_now(|chunk| match room.next() {
            Some(n) => {
                written.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        });
        assert_eq!(written, b"close");
        assert_eq!((queue.front(), queue.queued()), (None, 0));
    }
}
