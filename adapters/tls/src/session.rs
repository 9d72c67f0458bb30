//! A rustls connection without I/O: the adapter reads the socket and hands
//! the ciphertext in, takes the plaintext out for the core; it hands the
//! core's frames in and writes the ciphertext out.

use std::io::{self, IoSlice, Read, Write};

use bytes::Bytes;

use rustls::Connection;
use rustls::pki_types::CertificateDer;

/// One TLS connection, server's or client's, driven by its adapter.
///
/// Nothing is bounded here but by its caller: plaintext handed to
/// [`Session::send`] is kept (encrypted) until [`Session::take_ciphertext`]
/// takes it, so a writer hands in one batch at a time, the batch the core
/// allows, and writes it out before taking the next. Before the handshake
/// completes the plaintext waits unencrypted; a client's upgrade request
/// goes out as soon as the handshake allows.
#[derive(Debug)]
pub struct Session {
    connection: Box<Connection>,
}

/// What [`Session::receive`] found besides plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// The connection goes on.
    Open,
    /// The peer sent its `close_notify`: no more plaintext will come.
    Closed,
}

impl Session {
    pub(crate) fn new(mut connection: Connection) -> Session {
        // The caller bounds what it hands in (see the type's docs); rustls'
        // own limit would instead accept part of a frame.
        connection.set_buffer_limit(None);
        Session {
            connection: Box::new(connection),
        }
    }

    /// Takes `ciphertext`, as read from the socket, and appends the
    /// plaintext it completes to `plaintext`. An error (a malformed
    /// record, a handshake that failed, a certificate refused) ends the
    /// connection: an alert for the peer may wait in
    /// [`Session::take_ciphertext`], worth one try before the socket
    /// closes.
    pub fn receive(
        &mut self,
        mut ciphertext: &[u8],
        plaintext: &mut Vec<u8>,
    ) -> io::Result<Received> {
        let mut received = Received::Open;
        while !ciphertext.is_empty() {
            self.connection.read_tls(&mut ciphertext)?;
            let state = self
                .connection
                .process_new_packets()
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
            let ready = state.plaintext_bytes_to_read();
            if ready > 0 {
                let start = plaintext.len();
                plaintext.resize(start + ready, 0);
                self.connection
                    .reader()
                    .read_exact(&mut plaintext[start..])?;
            }
            if state.peer_has_closed() {
                received = Received::Closed;
            }
        }
        Ok(received)
    }

    /// Encrypts `plaintext` for the peer (or keeps it until the handshake
    /// is done); [`Session::take_ciphertext`] has it next.
    pub fn send(&mut self, plaintext: &[u8]) -> io::Result<()> {
        self.connection.writer().write_all(plaintext)
    }

    /// Encrypts `frames` as one stream of plaintext: they share records
    /// (up to 16 KiB each) instead of costing a record, its header and its
    /// tag each, which matters for a fan-out of small messages.
    pub fn send_frames(&mut self, frames: &[Bytes]) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = frames.iter().map(|frame| IoSlice::new(frame)).collect();
        let mut left = &mut slices[..];
        while !left.is_empty() {
            let taken = self.connection.writer().write_vectored(left)?;
            if taken == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut left, taken);
        }
        Ok(())
    }

    /// Whether ciphertext waits to be written: handshake messages, alerts,
    /// encrypted plaintext.
    pub fn wants_write(&self) -> bool {
        self.connection.wants_write()
    }

    /// Appends every byte waiting for the socket to `out`.
    pub fn take_ciphertext(&mut self, out: &mut Vec<u8>) {
        while self.connection.wants_write() {
            // Writing into a Vec cannot fail.
            let _ = self.connection.write_tls(out);
        }
    }

    /// Queues the `close_notify` alert: the peer learns that no more
    /// plaintext follows (a TLS half-close).
    pub fn close_notify(&mut self) {
        self.connection.send_close_notify();
    }

    /// The certificate chain the peer presented, once the handshake has
    /// got that far: which certificate a node served, for operators and
    /// tests.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.connection.peer_certificates()
    }

    /// Whether the handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        self.connection.is_handshaking()
    }
}
