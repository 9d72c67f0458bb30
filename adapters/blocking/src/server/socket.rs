//! The threads that move bytes: one accept thread for the node, and a
//! reader and a writer for each connection.
//!
//! A reader blocks in `read` and hands what arrives to the core. A writer
//! sleeps until the core wakes it, takes a batch of frames under the lock
//! and writes them without it, so a socket that does not drain blocks only
//! its own writer while the core's queue for it grows and the core's
//! backpressure policy decides what happens.

use std::io::{self, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread;

use bytes::Bytes;
use tether_core::{ConnId, Transport};
use tether_tls::{Received, ServerTls};

use super::node::{ConnectionAdmission, Node};
use crate::io::{spawn_socket_thread, write_frames};
use crate::tls::Secured;

/// Accepts connections until the node stops. The core answers the ones it
/// refuses (503), like any other.
///
/// After a failed accept (no file descriptor left, most often) the thread
/// sleeps until the core's retry instant and accepts again; the failure is
/// logged once per spell, not on every retry.
///
/// With `tls`, every connection speaks TLS: its threads share a
/// [`Secured`] session, started here.
pub fn accept_loop(node: &Arc<Node>, listener: &TcpListener, tls: Option<&ServerTls>) {
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => Arc::new(stream),
            Err(error) => {
                let Some((retry_in, starts_spell)) = node.accept_failed() else {
                    return;
                };
                if starts_spell {
                    tracing::warn!(
                        %error,
                        "accept failed; retrying every {:?}, without logging it again until \
                         a connection is accepted",
                        tether_core::ACCEPT_RETRY
                    );
                }
                thread::sleep(retry_in);
                continue;
            }
        };
        let secured = tls.map(|tls| Arc::new(Secured::new(tls.accept())));
        match node.admit(&stream) {
            ConnectionAdmission::Accepted {
                conn,
                wake,
                refused: false,
            } => serve(node, conn, Link { stream, secured }, wake),
            ConnectionAdmission::Accepted {
                conn,
                wake,
                refused: true,
            } => answer_refused(node, conn, Link { stream, secured }, wake),
            ConnectionAdmission::Stopped => return,
        }
    }
}

/// A connection's socket and, with TLS, its session.
#[derive(Clone)]
struct Link {
    stream: Arc<TcpStream>,
    secured: Option<Arc<Secured>>,
}

impl Link {
    /// Whether the connection's TLS handshake is over; a plain one has
    /// none.
    fn handshaken(&self) -> bool {
        self.secured
            .as_ref()
            .is_none_or(|secured| !secured.is_handshaking())
    }

    /// Writes `frames`, enciphered with TLS.
    fn write(&self, frames: &[Bytes]) -> io::Result<()> {
        match &self.secured {
            Some(secured) => secured.write(&self.stream, frames),
            None => write_frames(&self.stream, frames),
        }
    }
}

/// Starts `conn`'s reader and writer threads.
fn serve(node: &Arc<Node>, conn: ConnId, link: Link, wake: Receiver<()>) {
    // Frames are whole messages already; waiting to coalesce them only adds
    // latency. Failure leaves Nagle on, which is slower but correct.
    let _ = link.stream.set_nodelay(true);
    let reader = {
        let (node, link) = (Arc::clone(node), link.clone());
        spawn_socket_thread(format!("tether-read-{conn}"), move || {
            read_loop(&node, conn, &link);
        })
    };
    let writer = reader.and_then(|_| {
        let node = Arc::clone(node);
        spawn_socket_thread(format!("tether-write-{conn}"), move || {
            write_loop(&node, conn, &link, &wake);
        })
    });
    if let Err(error) = writer {
        tracing::warn!(%conn, %error, "cannot start the connection's threads");
        node.transport_closed(conn);
    }
}

/// A refused connection needs one thread, not two: with TLS it first reads
/// the client's handshake to its end, so that the `503` goes out
/// enciphered where the client can read it; then it writes its `503`,
/// half-closes, and reads until the client's end of stream. The core's
/// linger (`close_timeout` from the accept) bounds all of it. Threads are
/// what bounds this runtime (memory maps), so a burst of refusals at
/// capacity must cost as little of them as it can.
fn answer_refused(node: &Arc<Node>, conn: ConnId, link: Link, wake: Receiver<()>) {
    let spawned = {
        let node = Arc::clone(node);
        spawn_socket_thread(format!("tether-refuse-{conn}"), move || {
            if !read_until(&node, conn, &link, Link::handshaken) {
                node.transport_closed(conn);
            } else if write_loop(&node, conn, &link, &wake) {
                read_loop(&node, conn, &link);
            }
        })
    };
    if let Err(error) = spawned {
        tracing::warn!(%conn, %error, "cannot start a refused connection's thread");
        node.transport_closed(conn);
    }
}

/// Hands everything the peer sends to the core until the socket ends.
fn read_loop(node: &Node, conn: ConnId, link: &Link) {
    read_until(node, conn, link, |_| false);
    node.transport_closed(conn);
}

/// Hands what the peer sends to the core until `done` holds, checked
/// before the first read and after each: true then, false if the socket
/// ends first.
fn read_until(node: &Node, conn: ConnId, link: &Link, done: impl Fn(&Link) -> bool) -> bool {
    // One page: every idle connection keeps this stack frame, and a larger
    // buffer would cost each of them more memory (measured in
    // BENCHMARKS.md) while typical messages fit one read anyway.
    let mut buffer = [0u8; 4 * 1024];
    let mut stream = &*link.stream;
    while !done(link) {
        match stream.read(&mut buffer) {
            Ok(0) => return false,
            Ok(read) => match &link.secured {
                None => node.input(|core, now| core.handle_read(now, conn, &buffer[..read])),
                Some(secured) if !read_secured(node, conn, link, secured, &buffer[..read]) => {
                    return false;
                }
                Some(_) => {}
            },
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Deciphers what the reader read, hands the plaintext to the core and
/// writes what the session has to answer (the handshake's messages, an
/// alert); false once the connection is over.
fn read_secured(node: &Node, conn: ConnId, link: &Link, secured: &Secured, read: &[u8]) -> bool {
    let mut plaintext = Vec::new();
    let received = secured.receive(read, &mut plaintext);
    if !plaintext.is_empty() {
        node.input(|core, now| core.handle_read(now, conn, &plaintext));
    }
    let answered = secured.write(&link.stream, &[]);
    match received {
        Ok(Received::Open) => answered.is_ok(),
        Ok(Received::Closed) => false,
        Err(error) => {
            tracing::debug!(%conn, %error, "TLS failed");
            false
        }
    }
}

/// Writes what the core queues for `conn`, as fast as the socket takes it,
/// and closes or half-closes the socket when the core says so; true when it
/// half-closed, so that the connection's reading goes on.
fn write_loop(node: &Node, conn: ConnId, link: &Link, wake: &Receiver<()>) -> bool {
    let mut batch = Vec::new();
    while wake.recv().is_ok() {
        loop {
            let (moved, transport) = node.take_frames(conn, &mut batch);
            let wrote = !batch.is_empty();
            if wrote && link.write(&batch).is_err() {
                node.transport_closed(conn);
                return false;
            }
            node.written(conn, moved);
            batch.clear();
            match transport {
                Transport::CloseNow | Transport::Abort => {
                    node.transport_closed(conn);
                    return false;
                }
                Transport::HalfClose => {
                    // The reader goes on until the peer's end of stream or
                    // the core's order to close; this writer has no more to
                    // write. A peer already gone fails the shutdown, and
                    // the reader sees that.
                    if let Some(secured) = &link.secured {
                        let _ = secured.close_notify(&link.stream);
                    }
                    let _ = link.stream.shutdown(Shutdown::Write);
                    return true;
                }
                Transport::Open | Transport::CloseAfterFlush => {}
            }
            if !wrote {
                break;
            }
        }
    }
    false
}
