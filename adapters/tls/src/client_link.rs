//! The TLS of one client connection, between the client session's bytes
//! and the socket's, for the drivers that queue their writes in a
//! [`WriteQueue`] (the smol and tokio clients): [`ClientOutput`] is that
//! queue with the connection's TLS, when the client speaks `wss://`, in
//! front of it.

use std::io;

use bytes::Bytes;
use tether_core::WriteQueue;

use crate::{Connector, Session};

/// A client driver's write queue and, for `wss://`, the TLS of the
/// connection dialed or open: what the session writes is enciphered into
/// the queue, what the socket reads is deciphered for the session, and the
/// handshake's own messages join the queue as they come. Without a
/// [`Connector`] bytes pass as they are.
#[derive(Debug)]
pub struct ClientOutput {
    connector: Option<Connector>,
    tls: Option<ClientTls>,
    queue: WriteQueue,
}

impl ClientOutput {
    /// An empty queue; `connector` makes every connection speak TLS.
    pub fn new(connector: Option<Connector>) -> ClientOutput {
        ClientOutput {
            connector,
            tls: None,
            queue: WriteQueue::default(),
        }
    }

    /// Forgets the last connection and starts the next one's, to `host`
    /// (as dialed: `host` or `host:port`): with TLS, its hello is queued
    /// first. An error (a host that is no server name) fails the dial.
    pub fn dial(&mut self, host: &str) -> io::Result<()> {
        self.reset();
        if let Some(connector) = &self.connector {
            self.tls = Some(ClientTls::start(connector, host, &mut self.queue)?);
        }
        Ok(())
    }

    /// Queues `bytes` of the session, enciphered when the connection
    /// speaks TLS.
    pub fn write(&mut self, bytes: Bytes) {
        match &mut self.tls {
            // Enciphering into memory cannot fail.
            Some(tls) => drop(tls.send(&bytes, &mut self.queue)),
            None => self.queue.push(bytes),
        }
    }

    /// The session's bytes in what the socket read: `read` itself, or its
    /// plaintext. An error (a certificate refused, a malformed record)
    /// names the host and ends the connection.
    pub fn receive<'a>(&'a mut self, read: &'a [u8]) -> io::Result<&'a [u8]> {
        match &mut self.tls {
            Some(tls) => tls.receive(read, &mut self.queue),
            None => Ok(read),
        }
    }

    /// Queues what ends the connection's TLS (`close_notify`), if any,
    /// before the socket closes.
    pub fn close(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.close(&mut self.queue);
        }
    }

    /// Drops what is queued and the connection's TLS: the socket is gone.
    pub fn reset(&mut self) {
        self.queue.clear();
        self.tls = None;
    }

    /// The bytes waiting for the socket.
    pub fn queue(&self) -> &WriteQueue {
        &self.queue
    }

    /// The bytes waiting for the socket, to write from.
    pub fn queue_mut(&mut self) -> &mut WriteQueue {
        &mut self.queue
    }
}

/// A client connection's TLS, between the session's bytes and the queue.
#[derive(Debug)]
struct ClientTls {
    session: Session,
    host: String,
    plaintext: Vec<u8>,
}

impl ClientTls {
    /// Starts the TLS of a connection to `host` (as dialed: `host` or
    /// `host:port`): its hello joins `output`, to be written first.
    fn start(connector: &Connector, host: &str, output: &mut WriteQueue) -> io::Result<ClientTls> {
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
    fn send(&mut self, plaintext: &[u8], output: &mut WriteQueue) -> io::Result<()> {
        self.session.send(plaintext)?;
        self.queue(output);
        Ok(())
    }

    /// Deciphers `ciphertext` read from the socket: the plaintext for the
    /// session. What the handshake answers joins `output`. An error (a
    /// certificate refused, a malformed record) names the host and ends
    /// the connection.
    fn receive(&mut self, ciphertext: &[u8], output: &mut WriteQueue) -> io::Result<&[u8]> {
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
    fn close(&mut self, output: &mut WriteQueue) {
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
