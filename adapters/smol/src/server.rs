//! A Tether server node on smol.
//!
//! # Design
//!
//! One thread runs the whole node on a [`LocalExecutor`], under
//! [`crate::block_on`]: an accept task, a task per connection, one timer
//! task and one command task. They share the core
//! [`tether_core::Server`] through an `Rc<RefCell<_>>`; a borrow is
//! never held across an `await`, so there is no lock and no
//! contention, and fan-out is a loop over queues in one address space.
//! With [`Server::with_threads`] the node runs that loop once per thread,
//! as shards of one node (`server/shards.rs`).
//!
//! - A connection task owns its socket, registered once with the thread's
//!   reactor (edge-triggered epoll or kqueue, see `reactor.rs`). It waits
//!   for the socket to be readable or for a wake from the core (frames
//!   queued, or a close), reads into the node's one shared buffer (an idle
//!   connection owns no read buffer), and writes frames taken from the core
//!   only as fast as the socket accepts them, so what stays queued in the
//!   core is what the peer has not taken: that is what backpressure
//!   measures.
//! - The listener, the connections, the core's deadline and the node's
//!   other timers (shutdown, refusals, accept retries) are the reactor's, so
//!   that a node out of file descriptors needs none to go on; async-io
//!   carries only the backplane's sockets, on its own thread, whose
//!   wake-ups reach the node through [`crate::block_on`]'s waker.
//! - A socket ends as the core says ([`Transport`]): closed, half-closed
//!   after a failed connection, or aborted with a reset for a slow
//!   consumer.
//! - When accepting fails (no file descriptor left) the accept task waits
//!   [`tether_core::ACCEPT_RETRY`] and tries again, with one warning
//!   per spell of failures.
//! - The timer task runs the core's timeouts once the reactor finds the
//!   core's earliest deadline passed; every input re-arms that deadline.
//! - The command task carries [`Handle`] calls (publish, shutdown) from any
//!   thread into the node.
//! - With a [`Backplane`] ([`Server::with_backplane`]) the core runs in
//!   backplane mode: the drain loop hands its store requests to the
//!   backplane's task, in order, and a store task feeds the store's events
//!   back. After a graceful shutdown the node lets the backplane carry the
//!   last requests (the departures of its users) before `run` returns.
//!
//! - With TLS ([`Server::with_tls`]) a connection task holds a
//!   [`tether_tls::Session`] and drives it over the same socket: what it
//!   reads is deciphered into the node's one plaintext buffer before the
//!   core sees it, and what the core queues is enciphered a batch at a time
//!   and written out like plaintext frames, so the same budget bounds it.
//!   The core's handshake timer starts at accept and so covers the TLS
//!   handshake: a client that trickles its hello, or never completes it,
//!   is closed at `handshake_timeout` like one that trickles its request.
//!
//! Every input is followed by `Node::dispatch`, the drain loop of the
//! core's outputs: it wakes the connections with frames, hands decisions to
//! the decision task, store requests to the backplane and outcomes to
//! [`Handle::publish`] callers, notifications to the [`Handler`], logs
//! closes, and re-arms the deadline. The decision task awaits the handler
//! for each decision in a task of its own (on smol's blocking pool when
//! the handler may block), so a slow decision stalls only its connection.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use futures_lite::future;
use smol::LocalExecutor;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tether_core::{
    Backplane, CloseCode, ConnId, Decision, Handler, Instant, Output, PublishError, Server as Core,
    StoreEvent, StoreRequest, Transport, Verdict, connections_within_open_files,
};

use tether_tls::{Received, ServerTls, Session};

use crate::reactor::Reactor;
use crate::signal::Signal;
use crate::socket::Registered;

mod shards;

/// Bytes taken from the core per write: bounds what a connection holds
/// outside the core's accounting.
const WRITE_BUDGET: usize = 64 * 1024;
/// Frames handed to one `writev`, from an array on the stack.
const SLICES_PER_WRITE: usize = 64;
/// The node's one read buffer.
const READ_BUFFER: usize = 64 * 1024;
/// Connections the kernel may hold before `accept`: enough for a thousand
/// clients reconnecting at once without dropped SYNs (std's default is 128).
const LISTEN_BACKLOG: i32 = 1024;

/// What a node needs to start: the options every runtime takes.
pub use tether_core::NodeOptions as ServerOptions;

/// A bound, not yet running, server node.
pub struct Server {
    listener: TcpListener,
    options: ServerOptions,
    commands: (Sender<Command>, Receiver<Command>),
    backplane: Option<Box<dyn Backplane>>,
    /// Shards, one per thread (`threads`).
    threads: usize,
    tls: Option<ServerTls>,
}

/// Controls a running node from any thread.
#[derive(Clone, Debug)]
pub struct Handle {
    commands: Sender<Command>,
}

enum Command {
    Publish {
        channel: String,
        payload: String,
        reply: Sender<Result<u64, PublishError>>,
    },
    Shutdown,
}

impl Server {
    /// Binds the listening socket.
    ///
    /// `max_connections` is lowered, with a warning, to what the process's
    /// file descriptor limit allows (see
    /// [`connections_within_open_files`]).
    pub fn bind(mut options: ServerOptions) -> io::Result<Server> {
        let listener = listen(options.listen)?;
        if let Some(limit) = open_files().map(connections_within_open_files)
            && options.config.max_connections > limit
        {
            tracing::warn!(
                configured = options.config.max_connections,
                limit,
                "max_connections lowered: each connection takes a file descriptor, and \
                 the process may open too few for more (RLIMIT_NOFILE, ulimit -n)"
            );
            options.config.max_connections = limit;
        }
        Ok(Server {
            listener,
            options,
            commands: async_channel::unbounded(),
            backplane: None,
            threads: 1,
            tls: None,
        })
    }

    /// Speaks TLS on every connection, with `tls`'s certificate (re-read
    /// by [`ServerTls::reload`], wherever it is called): HTTPS and `wss://`
    /// only.
    pub fn with_tls(mut self, tls: ServerTls) -> Server {
        self.tls = Some(tls);
        self
    }

    /// Shares the node's channels with other nodes through `backplane`
    /// instead of keeping them in the node.
    pub fn with_backplane(mut self, backplane: impl Backplane + 'static) -> Server {
        self.backplane = Some(Box::new(backplane));
        self
    }

    /// Runs the node as `threads` shards, one per thread (PROTOCOL.md,
    /// `threads`; see `server/shards.rs`); 1, the default, runs it all on
    /// the thread that runs it, and 0 counts as 1. With a backplane the
    /// shards share the node's one link to it.
    pub fn with_threads(mut self, threads: usize) -> Server {
        self.threads = threads.max(1);
        self
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle to publish and to shut the node down.
    pub fn handle(&self) -> Handle {
        Handle {
            commands: self.commands.0.clone(),
        }
    }

    /// Runs the node until a graceful shutdown completes. The future is not
    /// `Send`: run it on a thread of its own, with [`crate::block_on`], whose
    /// poller waits for the node's sockets (any other executor gets an
    /// error).
    pub async fn run(self) -> io::Result<()> {
        if self.threads > 1 {
            let threads = self.threads;
            return shards::run(self, threads).await;
        }
        let executor = LocalExecutor::new();
        executor.run(self.serve(&executor)).await
    }

    async fn serve(self, executor: &LocalExecutor<'static>) -> io::Result<()> {
        let reactor = Reactor::current()?;
        let listener = Registered::new(self.listener, &reactor)?;
        let seed = self.options.seed.unwrap_or_else(|| fastrand::u64(..));
        let shutdown_timeout = self.options.config.shutdown_timeout;
        let (store_requests, requests) = async_channel::unbounded();
        let (events, store_events) = async_channel::unbounded();
        let invalid = |error| io::Error::new(io::ErrorKind::InvalidInput, error);
        let (core, backplane) = match self.backplane {
            Some(backplane) => {
                let core = Core::with_backplane(self.options.config, seed).map_err(invalid)?;
                let (requests, events) = crate::backplane::ends(requests, events);
                let task = backplane.run(core.node_id(), requests, events);
                (core, Some(executor.spawn(task)))
            }
            None => (Core::new(self.options.config, seed).map_err(invalid)?, None),
        };
        let (decisions, decided) = async_channel::unbounded();
        let node = Rc::new(Node {
            core: RefCell::new(core),
            store_requests,
            decisions,
            handler: self.options.handler.clone(),
            publishes: RefCell::new(HashMap::new()),
            next_publish: Cell::new(0),
            start: std::time::Instant::now(),
            wakers: RefCell::new(HashMap::new()),
            read_buffer: RefCell::new(vec![0; READ_BUFFER].into_boxed_slice()),
            plaintext: RefCell::default(),
            tls: self.tls,
            reactor,
            drained: async_channel::bounded(1),
            shard: None,
        });
        executor.spawn(timer_loop(node.clone())).detach();
        executor
            .spawn(command_loop(node.clone(), self.commands.1))
            .detach();
        if backplane.is_some() {
            executor
                .spawn(store_loop(node.clone(), store_events))
                .detach();
        }
        node.dispatch();
        let drained = async {
            let _ = node.drained.1.recv().await;
        };
        let serving = future::or(
            accept_loop(&node, &listener, executor),
            decide_loop(&node, &decided, executor),
        );
        future::or(serving, drained).await;
        node.store_requests.close();
        if let Some(backplane) = backplane {
            let last_requests = async {
                backplane.await;
            };
            let deadline = async {
                node.sleep(shutdown_timeout).await;
                tracing::warn!("shutdown timeout reached before the backplane was done");
            };
            future::or(last_requests, deadline).await;
        }
        Ok(())
    }
}

/// The process's limit on open file descriptors, where it has one.
fn open_files() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// A listening socket with a backlog for reconnect storms.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

impl Handle {
    /// Publishes `payload` (JSON text) on `channel` as the HTTP API does.
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<u64, PublishError> {
        let (reply, answer) = async_channel::bounded(1);
        let command = Command::Publish {
            channel: channel.to_owned(),
            payload: payload.to_owned(),
            reply,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| PublishError::Unavailable)?;
        answer.recv().await.map_err(|_| PublishError::Unavailable)?
    }

    /// Starts the graceful shutdown (PROTOCOL.md section 3); `run` returns
    /// when it completes.
    pub fn shutdown(&self) {
        let _ = self.commands.try_send(Command::Shutdown);
    }
}

/// What every task of the node shares.
struct Node {
    core: RefCell<Core>,
    /// Where the core's store requests go (nowhere in memory mode).
    store_requests: Sender<StoreRequest>,
    /// Where the core's decisions go, to be taken off the node's thread.
    decisions: Sender<Decision>,
    /// The application: answers decisions, hears notifications.
    handler: Arc<dyn Handler>,
    /// Publications of [`Handle::publish`] by token, waiting for their
    /// outcome.
    publishes: RefCell<HashMap<u64, Sender<Result<u64, PublishError>>>>,
    next_publish: Cell<u64>,
    start: std::time::Instant,
    wakers: RefCell<HashMap<ConnId, Rc<Signal>>>,
    read_buffer: RefCell<Box<[u8]>>,
    /// What TLS connections decipher from the read buffer, for the core.
    plaintext: RefCell<Vec<u8>>,
    /// The node's certificate, when it speaks TLS.
    tls: Option<ServerTls>,
    /// Waits for the node's sockets and the core's next deadline.
    reactor: Rc<Reactor>,
    /// Hears the core's [`Output::Drained`].
    drained: (Sender<()>, Receiver<()>),
    /// The node's other shards, when it runs several.
    shard: Option<shards::ShardLink>,
}

impl Node {
    fn now(&self) -> Instant {
        Instant::from_origin(self.start.elapsed())
    }

    /// Resolves `duration` from now, in the node's reactor.
    async fn sleep(&self, duration: Duration) {
        self.reactor
            .sleep_until(std::time::Instant::now() + duration)
            .await;
    }

    /// The drain loop after every input: carries out every output of the
    /// core until only its next deadline is left, which the reactor waits
    /// for.
    fn dispatch(&self) {
        let mut core = self.core.borrow_mut();
        loop {
            match core.poll_output() {
                Output::Wake(conn) => {
                    if let Some(signal) = self.wakers.borrow().get(&conn) {
                        signal.raise();
                    }
                }
                Output::Decide(decision) => {
                    let _ = self.decisions.try_send(decision);
                }
                Output::Notify(notification) => notification.deliver(self.handler.as_ref()),
                Output::Store(request) => match &self.shard {
                    Some(shard) => shard.request(request),
                    None => {
                        let _ = self.store_requests.try_send(request);
                    }
                },
                Output::Published { token, result } => {
                    if let Some(reply) = self.publishes.borrow_mut().remove(&token) {
                        let _ = reply.try_send(result);
                    }
                }
                Output::Closed { conn, reason, by } => log_close(conn, &reason, by),
                Output::Drained => {
                    let _ = self.drained.0.try_send(());
                }
                Output::Timeout(next) => {
                    if let Some(shard) = &self.shard {
                        if shard.exchange(&mut core, self.now()) {
                            continue;
                        }
                        shard.share_figures(&core);
                    }
                    self.reactor
                        .set_deadline(next.map(|at| self.start + at.since_origin()));
                    return;
                }
            }
        }
    }

    /// The socket of `conn` is gone: the core forgets the connection.
    fn closed(&self, conn: ConnId) {
        self.wakers.borrow_mut().remove(&conn);
        self.core
            .borrow_mut()
            .handle_transport_closed(self.now(), conn);
        self.dispatch();
    }
}

/// Feeds a verdict to the core, on the node's thread.
fn feed(node: &Node, verdict: Verdict) {
    if let Verdict::Authenticate {
        conn,
        identity: Ok(identity),
        ..
    } = &verdict
    {
        tracing::info!(%conn, user = %identity.user, "authenticated");
    }
    node.core.borrow_mut().handle_verdict(node.now(), verdict);
    node.dispatch();
}

/// Takes the core's decisions: an answer the handler gives at once is fed
/// in line; one it has to wait for becomes a task of the node's executor,
/// so a slow one delays only its connection, or, when the handler says
/// its futures may block ([`Handler::may_block`]), is polled on smol's
/// blocking pool, off the node's thread. Answers are fed back on the
/// node's thread.
async fn decide_loop(
    node: &Rc<Node>,
    decided: &Receiver<Decision>,
    executor: &LocalExecutor<'static>,
) {
    while let Ok(decision) = decided.recv().await {
        let pending = match decision.decide_now(node.handler.clone()) {
            Ok(verdict) => {
                feed(node, verdict);
                continue;
            }
            Err(pending) => pending,
        };
        let node = node.clone();
        let task = async move {
            let verdict = if node.handler.may_block() {
                smol::unblock(move || future::block_on(pending)).await
            } else {
                pending.await
            };
            feed(&node, verdict);
        };
        executor.spawn(task).detach();
    }
}

fn log_close(conn: ConnId, reason: &tether_core::CloseReason, by: tether_core::ClosedBy) {
    match reason.code {
        CloseCode::AUTH_REQUIRED | CloseCode::FORBIDDEN => {
            tracing::warn!(%conn, code = %reason.code, reason = %reason.reason, "auth failed");
        }
        CloseCode::SLOW_CONSUMER => {
            tracing::warn!(%conn, code = %reason.code, "closed slow consumer");
        }
        _ => tracing::info!(%conn, code = %reason.code, reason = %reason.reason, ?by, "closed"),
    }
}

/// Accepts until the node stops; answers refused connections with their
/// 503 while draining or at capacity.
async fn accept_loop(
    node: &Rc<Node>,
    listener: &Registered<TcpListener>,
    executor: &LocalExecutor<'static>,
) {
    loop {
        let accepted = listener.accept().await.and_then(|(stream, _)| {
            stream.set_nonblocking(true)?;
            Ok(stream)
        });
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                let retry = node.core.borrow_mut().handle_accept_failed(node.now());
                if retry.starts_spell {
                    tracing::warn!(
                        %error,
                        "accept failed; retrying every {:?}, without logging it again until \
                         a connection is accepted",
                        tether_core::ACCEPT_RETRY
                    );
                }
                let at = node.start + retry.at.since_origin();
                node.reactor.sleep_until(at).await;
                continue;
            }
        };
        match &node.shard {
            Some(shard) => {
                if let Some((stream, counted)) = shard.spread(stream) {
                    adopt(node, stream, Some(counted), executor);
                }
            }
            None => adopt(node, stream, None, executor),
        }
    }
}

/// Makes an accepted socket a connection of this node (or shard): the core
/// accepts it and a task drives it. A shard's acceptor has `counted` it
/// against the node's `max_connections` already. A socket the reactor
/// cannot take is closed.
fn adopt(
    node: &Rc<Node>,
    stream: TcpStream,
    counted: Option<bool>,
    executor: &LocalExecutor<'static>,
) {
    let stream = match Registered::new(stream, &node.reactor) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, "cannot register an accepted socket");
            return;
        }
    };
    let _ = stream.get_ref().set_nodelay(true);
    let conn = match counted {
        Some(counted) => node.core.borrow_mut().accept_counted(node.now(), counted),
        None => node.core.borrow_mut().accept(node.now()),
    };
    let wake = Rc::new(Signal::default());
    node.wakers.borrow_mut().insert(conn, wake.clone());
    node.dispatch();
    let tls = node.tls.as_ref().map(ServerTls::accept);
    executor
        .spawn(connection(node.clone(), conn, stream, wake, tls))
        .detach();
}

/// What ended a connection task's wait: the socket's readiness (or the
/// poller's failure to wait for it), or a wake from the core.
enum Wakeup {
    Readable(io::Result<()>),
    Woken,
}

async fn connection(
    node: Rc<Node>,
    conn: ConnId,
    stream: Registered<TcpStream>,
    wake: Rc<Signal>,
    mut tls: Option<Session>,
) {
    let mut batch = Vec::new();
    let mut half_closed = false;
    loop {
        if flush(&node, conn, &stream, &wake, &mut batch, &mut tls)
            .await
            .is_err()
        {
            break;
        }
        let transport = node.core.borrow().transport(conn);
        match transport {
            Transport::CloseNow | Transport::Abort => break,
            // A refused connection's `503` waits in its TLS session until
            // the handshake is over: the half-close waits with it.
            Transport::HalfClose
                if !half_closed && !tls.as_ref().is_some_and(Session::is_handshaking) =>
            {
                half_closed = true;
                if let Some(session) = &mut tls {
                    session.close_notify();
                    let _ = write_ciphertext(&stream, session).await;
                }
                // A peer already gone fails this; its end of stream follows.
                let _ = stream.get_ref().shutdown(Shutdown::Write);
            }
            _ => {}
        }
        // Everything queued is written: a wake raised meanwhile (often by
        // this task's own last read) announces nothing new.
        wake.clear();
        let readable = async { Wakeup::Readable(stream.readable().await) };
        let wake = async {
            wake.wait().await;
            Wakeup::Woken
        };
        match future::or(readable, wake).await {
            Wakeup::Readable(Ok(())) if !read(&node, conn, &stream, &mut tls) => break,
            Wakeup::Readable(Err(_)) => break,
            Wakeup::Readable(Ok(())) | Wakeup::Woken => {}
        }
    }
    if node.core.borrow().transport(conn) == Transport::Abort {
        // Closing with no linger resets the connection: the kernel drops
        // what the peer never took instead of keeping it to deliver.
        let _ = SockRef::from(stream.get_ref()).set_linger(Some(Duration::ZERO));
    } else {
        let _ = stream.get_ref().shutdown(Shutdown::Both);
    }
    node.closed(conn);
}

/// Reads what the socket has into the shared buffer and hands it to the
/// core, deciphered first with TLS; `false` once the peer is gone.
fn read(
    node: &Node,
    conn: ConnId,
    stream: &Registered<TcpStream>,
    tls: &mut Option<Session>,
) -> bool {
    let mut buffer = node.read_buffer.borrow_mut();
    match stream.read_now(&mut buffer) {
        Ok(0) => false,
        Ok(n) if let Some(session) = tls => {
            let mut plaintext = node.plaintext.borrow_mut();
            let received = session.receive(&buffer[..n], &mut plaintext);
            drop(buffer);
            if !plaintext.is_empty() {
                node.core
                    .borrow_mut()
                    .handle_read(node.now(), conn, &plaintext);
                plaintext.clear();
            }
            drop(plaintext);
            node.dispatch();
            match received {
                Ok(Received::Open) => true,
                Ok(Received::Closed) => false,
                Err(error) => {
                    tracing::debug!(%conn, %error, "TLS failed");
                    // The alert for the peer gets one try, without waiting.
                    let mut alert = Vec::new();
                    session.take_ciphertext(&mut alert);
                    let _ = stream.get_ref().write(&alert);
                    false
                }
            }
        }
        Ok(n) => {
            node.core
                .borrow_mut()
                .handle_read(node.now(), conn, &buffer[..n]);
            drop(buffer);
            node.dispatch();
            true
        }
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => true,
        Err(error) if error.kind() == io::ErrorKind::Interrupted => true,
        Err(_) => false,
    }
}

/// Writes everything the core has queued for `conn`, batch by batch, as
/// fast as the socket takes it. A write blocked on a peer that does not read
/// is abandoned as soon as the core orders the socket closed (a slow
/// consumer cut, a close past its linger, a heartbeat timeout): the order
/// comes as a wake. With TLS, the batch is enciphered into one buffer first,
/// after the handshake's own messages.
async fn flush(
    node: &Node,
    conn: ConnId,
    stream: &Registered<TcpStream>,
    wake: &Signal,
    batch: &mut Vec<Bytes>,
    tls: &mut Option<Session>,
) -> io::Result<()> {
    loop {
        let moved = node
            .core
            .borrow_mut()
            .poll_transmit(conn, WRITE_BUDGET, batch);
        if let Some(session) = tls {
            session.send_frames(batch)?;
            batch.clear();
            if session.wants_write() {
                let mut ciphertext = Vec::new();
                session.take_ciphertext(&mut ciphertext);
                batch.push(Bytes::from(ciphertext));
            }
        }
        if batch.is_empty() {
            if moved == 0 {
                return Ok(());
            }
            // Kept by the session until its handshake lets it out.
            node.core.borrow_mut().handle_written(conn, moved);
            continue;
        }
        let close_ordered = async {
            loop {
                wake.wait().await;
                if node.core.borrow().transport(conn).closes_now() {
                    return Err(io::Error::other("the core closed the connection"));
                }
            }
        };
        future::or(write_frames(stream, batch), close_ordered).await?;
        if moved > 0 {
            node.core.borrow_mut().handle_written(conn, moved);
        }
        batch.clear();
    }
}

/// Writes what `session` has for the peer.
async fn write_ciphertext(stream: &Registered<TcpStream>, session: &mut Session) -> io::Result<()> {
    let mut ciphertext = Vec::new();
    session.take_ciphertext(&mut ciphertext);
    write_frames(stream, &[Bytes::from(ciphertext)]).await
}

async fn write_frames(stream: &Registered<TcpStream>, frames: &[Bytes]) -> io::Result<()> {
    let mut frame = 0;
    let mut offset = 0;
    while frame < frames.len() {
        let mut written = stream
            .write_with(|mut socket| {
                let mut slices = [IoSlice::new(&[]); SLICES_PER_WRITE];
                let pending = std::iter::once(&frames[frame][offset..])
                    .chain(frames[frame + 1..].iter().map(|f| &f[..]));
                let mut count = 0;
                for (slot, bytes) in slices.iter_mut().zip(pending) {
                    *slot = IoSlice::new(bytes);
                    count += 1;
                }
                socket.write_vectored(&slices[..count])
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

/// Runs the core's timeouts each time its deadline (re-armed by every
/// [`Node::dispatch`]) passes.
async fn timer_loop(node: Rc<Node>) {
    loop {
        node.reactor.deadline_passed().await;
        node.core.borrow_mut().handle_timeout(node.now());
        node.dispatch();
    }
}

async fn command_loop(node: Rc<Node>, commands: Receiver<Command>) {
    while let Ok(command) = commands.recv().await {
        match command {
            Command::Publish {
                channel,
                payload,
                reply,
            } => {
                let token = node.next_publish.get() + 1;
                node.next_publish.set(token);
                node.publishes.borrow_mut().insert(token, reply);
                node.core
                    .borrow_mut()
                    .publish(node.now(), token, &channel, &payload);
            }
            Command::Shutdown => {
                if let Some(shard) = &node.shard {
                    shard.shut_down_others();
                }
                tracing::info!("draining: waiting for connections to close");
                node.core.borrow_mut().shutdown(node.now());
            }
        }
        node.dispatch();
    }
}

/// Feeds the backplane's events to the core, a batch at a time.
async fn store_loop(node: Rc<Node>, events: Receiver<StoreEvent>) {
    while let Ok(event) = events.recv().await {
        {
            let mut core = node.core.borrow_mut();
            core.handle_store_event(node.now(), event);
            while let Ok(event) = events.try_recv() {
                core.handle_store_event(node.now(), event);
            }
        }
        node.dispatch();
    }
}
