//! One connection: a TCP socket the node accepted, or the stream of an
//! upgrade another HTTP server answered; read, written and closed by one
//! task, as the core orders.

use std::future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use tether_core::{ConnId, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::warn;

use crate::node::Node;

/// Bytes read at a time.
const READ_BUFFER: usize = 16 * 1024;

/// Bytes a writer takes from the core at a time: what sits outside the
/// core's queue, and its backpressure, while a write is in flight.
const WRITE_BUDGET: usize = 64 * 1024;

/// Frames handed to one `writev`.
const SLICES_PER_WRITE: usize = 64;

/// How the core reaches a connection's task. Each `Notify` keeps one
/// permit, so a wake given while the task is busy is not lost.
#[derive(Default)]
pub(crate) struct Link {
    /// The core has frames to write, or a transport to act on.
    pub(crate) wake: Notify,
    /// The core wants the socket closed now.
    pub(crate) close: Notify,
}

/// A connection's byte stream, read and written at once by its task.
pub(crate) trait Stream: Send + 'static {
    /// The reading half, borrowed from the stream.
    type Reader<'a>: AsyncRead + Unpin + Send
    where
        Self: 'a;
    /// The writing half, borrowed from the stream.
    type Writer<'a>: AsyncWrite + Unpin + Send
    where
        Self: 'a;

    /// The two halves, for one task to read and write at once.
    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>);

    /// Makes dropping the stream reset the connection (`SO_LINGER` 0)
    /// where the stream can: nothing queued is worth delivering.
    fn reset_on_drop(&self);
}

impl Stream for TcpStream {
    type Reader<'a> = tcp::ReadHalf<'a>;
    type Writer<'a> = tcp::WriteHalf<'a>;

    fn halves(&mut self) -> (tcp::ReadHalf<'_>, tcp::WriteHalf<'_>) {
        self.split()
    }

    fn reset_on_drop(&self) {
        let _ = self.set_zero_linger();
    }
}

/// The node's listening socket and, when it speaks TLS, the handshake
/// every connection it accepts goes through.
pub(crate) struct Listener {
    pub(crate) listener: TcpListener,
    pub(crate) tls: Option<TlsAcceptor>,
}

impl Stream for TlsStream<TcpStream> {
    type Reader<'a> = ReadHalf<&'a mut TlsStream<TcpStream>>;
    type Writer<'a> = WriteHalf<&'a mut TlsStream<TcpStream>>;

    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        tokio::io::split(self)
    }

    fn reset_on_drop(&self) {
        let _ = self.get_ref().0.set_zero_linger();
    }
}

/// Accepts connections for the core and spawns their tasks on `tasks`,
/// reaping those that ended; never returns. When accepting fails (no file
/// descriptor left, most often), waits as long as the core says and logs
/// only the failure that starts a spell.
pub(crate) async fn accept_loop(node: &Arc<Node>, listener: &Listener, tasks: &mut JoinSet<()>) {
    loop {
        tokio::select! {
            accepted = listener.listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (shard, counted) = node.spread();
                    admit(&shard, stream, counted, listener.tls.as_ref(), tasks);
                }
                Err(error) => {
                    let retry = node.input(|state, now| state.core.handle_accept_failed(now));
                    if retry.starts_spell {
                        warn!(%error, "accept failed; retrying every {:?}", tether_core::ACCEPT_RETRY);
                    }
                    time::sleep_until(node.clock(retry.at)).await;
                }
            },
            Some(joined) = tasks.join_next() => {
                if let Err(error) = joined
                    && error.is_panic()
                {
                    std::panic::resume_unwind(error.into_panic());
                }
            }
        }
    }
}

/// Gives `stream` to the core and spawns its task on `tasks`; the core
/// itself answers a connection it refuses (`503` while draining or at
/// capacity). A shard's acceptor has `counted` it against the node's
/// `max_connections` already. With `tls` the task starts with the TLS
/// handshake, which the core's handshake timer, started here, bounds.
fn admit(
    node: &Arc<Node>,
    stream: TcpStream,
    counted: Option<bool>,
    tls: Option<&TlsAcceptor>,
    tasks: &mut JoinSet<()>,
) {
    // Frames are whole messages: coalescing them only adds latency.
    let _ = stream.set_nodelay(true);
    let link = Arc::new(Link::default());
    let conn = node.input(|state, now| {
        let conn = match counted {
            Some(counted) => state.core.accept_counted(now, counted),
            None => state.core.accept(now),
        };
        state.link(conn, Arc::clone(&link));
        conn
    });
    match tls {
        Some(tls) => tasks.spawn(serve_tls(Arc::clone(node), conn, link, stream, tls.clone())),
        None => tasks.spawn(serve(Arc::clone(node), conn, link, stream)),
    };
}

/// Runs the TLS handshake of `stream`, then serves it; a handshake that
/// fails, or that the core cuts (its handshake timer), ends the
/// connection.
async fn serve_tls(
    node: Arc<Node>,
    conn: ConnId,
    link: Arc<Link>,
    stream: TcpStream,
    tls: TlsAcceptor,
) {
    let accepted = tokio::select! {
        accepted = tls.accept(stream) => accepted,
        () = link.close.notified() => Err(io::Error::other("closed by the core")),
    };
    match accepted {
        Ok(stream) => serve(node, conn, link, stream).await,
        Err(error) => {
            tracing::debug!(%conn, %error, "TLS handshake failed");
            node.input(|state, now| state.closed(now, conn));
        }
    }
}

/// Serves a WebSocket whose upgrade another HTTP server answered, past
/// its `101`, on the calling task, as an accepted socket is served; the
/// core refuses it (close 1001 or 1013) while draining or at capacity. A
/// node that stopped takes it no more: the stream is dropped.
#[cfg(feature = "axum")]
pub(crate) async fn serve_upgraded(
    node: Arc<Node>,
    upgrade: tether_core::AcceptedUpgrade,
    stream: impl Stream,
) {
    let link = Arc::new(Link::default());
    let conn = node.input(|state, now| {
        let conn = state
            .is_serving()
            .then(|| state.core.accept_upgraded(now, upgrade))?;
        state.link(conn, Arc::clone(&link));
        Some(conn)
    });
    if let Some(conn) = conn {
        serve(node, conn, link, stream).await;
    }
}

/// Reads and writes `conn` until its stream ends or the core closes it;
/// then closes the stream (with a reset on [`Transport::Abort`]) and tells
/// the core.
async fn serve(node: Arc<Node>, conn: ConnId, link: Arc<Link>, mut stream: impl Stream) {
    let (reader, writer) = stream.halves();
    tokio::select! {
        () = read(&node, conn, reader) => {}
        () = write(&node, conn, &link, writer) => {}
        () = link.close.notified() => {}
    }
    if node.lock().core.transport(conn) == Transport::Abort {
        // Nothing queued is worth delivering: the drop resets the
        // connection rather than keep its buffers to deliver them.
        stream.reset_on_drop();
    }
    drop(stream);
    node.input(|state, now| state.closed(now, conn));
}

/// Hands what the peer sends to the core until its end of stream or an
/// error.
async fn read(node: &Arc<Node>, conn: ConnId, mut reader: impl AsyncRead + Unpin) {
    let mut buffer = vec![0; READ_BUFFER];
    while let Ok(read @ 1..) = reader.read(&mut buffer).await {
        node.input(|state, now| state.core.handle_read(now, conn, &buffer[..read]));
    }
}

/// Each time it is woken, writes all the core has for `conn` and carries
/// out the core's [`Transport`] order; returns when the socket must close.
/// After a half-close it never returns: the reader goes on until the
/// peer's end of stream or the core's order to close.
async fn write(node: &Node, conn: ConnId, link: &Link, mut writer: impl AsyncWrite + Unpin) {
    let mut batch = Vec::new();
    loop {
        link.wake.notified().await;
        loop {
            // `poll_transmit`, `handle_written` and `transport` queue no
            // output: no drain follows them.
            let moved = node
                .lock()
                .core
                .poll_transmit(conn, WRITE_BUDGET, &mut batch);
            if write_frames(&mut writer, &batch).await.is_err() {
                return;
            }
            batch.clear();
            let transport = {
                let mut state = node.lock();
                if moved > 0 {
                    state.core.handle_written(conn, moved);
                }
                state.core.transport(conn)
            };
            match transport {
                Transport::HalfClose => {
                    let _ = writer.shutdown().await;
                    return future::pending().await;
                }
                Transport::CloseNow | Transport::Abort => return,
                Transport::Open | Transport::CloseAfterFlush if moved == 0 => break,
                Transport::Open | Transport::CloseAfterFlush => {}
            }
        }
    }
}

/// Writes `frames` in order, as many at a time as one `writev` takes.
async fn write_frames(writer: &mut (impl AsyncWrite + Unpin), frames: &[Bytes]) -> io::Result<()> {
    let mut frame = 0;
    let mut offset = 0;
    while frame < frames.len() {
        // The slices live in one poll, not in the connection's future, which
        // an idle connection keeps.
        let mut written = future::poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); SLICES_PER_WRITE];
            let pending = std::iter::once(&frames[frame][offset..])
                .chain(frames[frame + 1..].iter().map(|f| &f[..]));
            let mut count = 0;
            for (slot, bytes) in slices.iter_mut().zip(pending) {
                *slot = IoSlice::new(bytes);
                count += 1;
            }
            Pin::new(&mut *writer).poll_write_vectored(cx, &slices[..count])
        })
        .await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while frame < frames.len() && written >= frames[frame].len() - offset {
            written -= frames[frame].len() - offset;
            frame += 1;
            offset = 0;
        }
        offset += written;
    }
    Ok(())
}
