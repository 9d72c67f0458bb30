//! The TLS of one client connection, between the client session's bytes
//! and the socket's, for the drivers that queue their writes in a
//! [`WriteQueue`] (the smol and tokio clients).

use std::io;

use bytes::Bytes;
use tether_core::WriteQueue;

use crate::{Connector, Session};

/// A client connection's TLS: what the session writes is enciphered into
/// the driver's write queue, what the socket reads is deciphered for the
/// session, and the handshake's own messages join the queue as they come.
#[derive(Debug)]
pub struct ClientTls {
    session: Session,
    host: String,
    plaintext: Vec<u8>,
}

impl ClientTls {
    /// Starts the TLS of a connection to `host` (as dialed: `host` or
    /// `host:port`): its hello joins `output`, to be written first.
    pub fn start(
        connector: &Connector,
        host: &str,
        output: &mut WriteQueue,
    ) -> io::Result<ClientTls> {
        let mut tls = ClientTls {
            session: connector.connect(host)?,
            host: host.to_owned(),
            plaintext: Vec::new(),
        };
        tls.queue(output);
        Ok(tls)
    }

    /// Enciphers `plaintext` into `output` (kept until the handshake
    /// allows it out).
    pub fn send(&mut self, plaintext: &[u8], output: &mut WriteQueue) -> io::Result<()> {
        self.session.send(plaintext)?;
        self.queue(output);
        Ok(())
    }

    /// Deciphers `ciphertext` read from the socket: the plaintext for the
    /// session. What the handshake answers joins `output`. An error (a
    /// certificate refused, a malformed record) names the host and ends
    /// the connection.
    pub fn receive(&mut self, ciphertext: &[u8], output: &mut WriteQueue) -> io::Result<&[u8]> {
        self.plaintext.clear();
        let received = self.session.receive(ciphertext, &mut self.plaintext);
        // An alert for the server, on failure.
        self.queue(output);
        received.map_err(|error| {
            io::Error::new(error.kind(), format!("TLS with {}: {error}", self.host))
        })?;
        Ok(&self.plaintext)
    }

    /// Queues the `close_notify` alert, before the socket closes.
    pub fn close(&mut self, output: &mut WriteQueue) {
        self.session.close_notify();
        self.queue(output);
    }

    fn queue(&mut self, output: &mut WriteQueue) {
        if self.session.wants_write() {
            let mut ciphertext = Vec::new();
            self.session.take_ciphertext(&mut ciphertext);
            output.push(Bytes::from(ciphertext));
        }
    }
}
