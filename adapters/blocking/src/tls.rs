//! A TLS session shared by a connection's reader and writer threads.
//!
//! The reader deciphers under the session's lock and never holds it across
//! a socket call. Whoever writes (the writer with frames, the reader with
//! handshake messages) takes the write lock first, so that ciphertext
//! leaves in the order the session made it, then the session's lock just
//! long enough to encipher.

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use tether_tls::{Received, Session};

/// One connection's TLS.
pub struct Secured {
    session: Mutex<Session>,
    writing: Mutex<()>,
}

impl Secured {
    /// Wraps a session just started.
    pub fn new(session: Session) -> Secured {
        Secured {
            session: Mutex::new(session),
            writing: Mutex::new(()),
        }
    }

    /// Deciphers `ciphertext` into `plaintext`; see [`Session::receive`].
    pub fn receive(&self, ciphertext: &[u8], plaintext: &mut Vec<u8>) -> io::Result<Received> {
        lock(&self.session).receive(ciphertext, plaintext)
    }

    /// Enciphers `frames` and writes them to `stream` after whatever the
    /// session had waiting (handshake messages, an alert); with no frames,
    /// writes only that.
    ///
    /// With nothing to send it returns at once, without waiting for the
    /// write lock: a reader must not wait for a writer blocked on a peer
    /// that does not read.
    pub fn write(&self, mut stream: &TcpStream, frames: &[Bytes]) -> io::Result<()> {
        if frames.is_empty() && !lock(&self.session).wants_write() {
            return Ok(());
        }
        let _writing = lock(&self.writing);
        let mut ciphertext = Vec::new();
        {
            let mut session = lock(&self.session);
            session.send_frames(frames)?;
            session.take_ciphertext(&mut ciphertext);
        }
        if ciphertext.is_empty() {
            return Ok(());
        }
        stream.write_all(&ciphertext)
    }

    /// Whether the handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        lock(&self.session).is_handshaking()
    }

    /// Tells the peer that no more plaintext follows, before a half-close.
    pub fn close_notify(&self, stream: &TcpStream) -> io::Result<()> {
        lock(&self.session).close_notify();
        self.write(stream, &[])
    }
}

/// A lock whose holder panicked still guards a usable value: the session
/// fails its next call if it was left mid-way.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
