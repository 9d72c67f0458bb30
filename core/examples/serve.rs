//! A complete Tether node on one port, on `std` alone: the reference for
//! writing a runtime adapter.
//!
//! `cargo run -p tether-core --example serve -- 127.0.0.1:8080` serves the
//! whole protocol (WebSocket, `/healthz`, `/metrics`, the client script) and
//! prints `listening on ADDR` (port 0 picks a free port). Every token is its
//! user id, as in development; with no API key, `POST /api/publish` is
//! answered 401. std cannot catch signals, so closing standard input
//! (Ctrl-D) starts the graceful shutdown; the process exits when it is over.
//!
//! The core sits behind one `Mutex`, held to feed one input and drain what
//! it caused, never across a socket call or a sleep. Every thread with an
//! input calls [`Node::input`]: the accept loop, a reader and a writer per
//! connection, the timer thread and the standard input thread.

// This file is an adapter: the core's purity lints (`core/clippy.toml`)
// are not for it.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Instant as Clock;

use tether_core::{
    Authorizer, ConnId, Decision, Identity, Instant, Output, Server, ServerConfig, Transport,
};

/// Bytes a writer takes at a time: what sits outside the core's queue, and
/// its backpressure, while a write is in flight.
const WRITE_BUDGET: usize = 64 * 1024;

/// As in development: every token is its user id (the core closes 4003 one
/// that is no valid user id), and no API key is set.
struct AnyToken;

impl Authorizer for AnyToken {
    fn authenticate(&self, token: &str) -> Option<Identity> {
        Some(Identity::user(token))
    }

    fn authorize_api(&self, _authorization: Option<&str>) -> bool {
        false
    }
}

/// The core and the adapter's side of its connections.
struct Node {
    state: Mutex<State>,
    /// Wakes the timer thread when the core's deadline changes.
    timer: Condvar,
    /// The origin of the core's time line.
    start: Clock,
}

/// Everything behind the lock.
struct State {
    core: Server,
    /// Each connection's socket and the wake of its writer.
    links: HashMap<ConnId, (Arc<TcpStream>, SyncSender<()>)>,
    /// The deadline of the core's last `Output::Timeout`.
    deadline: Option<Instant>,
}

fn main() -> io::Result<()> {
    let listen = std::env::args().nth(1);
    let listener = TcpListener::bind(listen.as_deref().unwrap_or("127.0.0.1:8080"))?;
    // The seed names this run of the node. std's hash keys come from OS
    // randomness, so a restarted node never repeats an epoch.
    let seed = RandomState::new().hash_one(0u8);
    let core = Server::new(ServerConfig::dev(), seed).map_err(io::Error::other)?;
    println!("listening on {}", listener.local_addr()?);
    let (links, deadline) = (HashMap::new(), None);
    let node = Arc::new(Node {
        state: Mutex::new(State {
            core,
            links,
            deadline,
        }),
        timer: Condvar::new(),
        start: Clock::now(),
    });
    let timers = Arc::clone(&node);
    thread::spawn(move || timers.run_timers());
    let stdin = Arc::clone(&node);
    thread::spawn(move || {
        // A read error ends the input as surely as its end does.
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        stdin.input(|state, now| state.core.shutdown(now));
    });
    accept_loop(&node, &listener);
    Ok(())
}

impl Node {
    /// The one rule: feed one input at the current instant and drain the
    /// outputs until `Timeout`; then answer the decisions collected, each
    /// answer an input with a drain of its own.
    fn input<R>(&self, feed: impl FnOnce(&mut State, Instant) -> R) -> R {
        let mut decisions = VecDeque::new();
        let mut state = self.lock();
        let result = feed(&mut state, self.now());
        self.drain(&mut state, &mut decisions);
        drop(state);
        while let Some(decision) = decisions.pop_front() {
            // Decided without the lock: a real check may be slow, and must
            // hold up no other connection.
            let verdict = decision.ask(&AnyToken);
            let mut state = self.lock();
            state.core.handle_verdict(self.now(), verdict);
            self.drain(&mut state, &mut decisions);
        }
        result
    }

    /// Carries out the core's outputs until only a deadline is left.
    fn drain(&self, state: &mut State, decisions: &mut VecDeque<Decision>) {
        loop {
            match state.core.poll_output() {
                Output::Wake(conn) => state.wake(conn),
                Output::Decide(decision) => decisions.push_back(decision),
                Output::Closed { conn, reason, by } => eprintln!("{conn} closed {reason} ({by:?})"),
                // The node is the whole process, so stopping is exiting;
                // sockets that outlived `shutdown_timeout` close with it.
                Output::Drained => std::process::exit(0),
                // Only a node made with `Server::with_backplane` asks a
                // store, and only `Server::publish` is answered with
                // `Published`: this node uses neither. An application that
                // observes would pass notifications to `Handler::notify`.
                Output::Store(_) | Output::Published { .. } | Output::Notify(_) => {}
                Output::Timeout(deadline) => {
                    if deadline != state.deadline {
                        state.deadline = deadline;
                        self.timer.notify_one();
                    }
                    return;
                }
            }
        }
    }

    /// Sleeps until the core's deadline, or until it changes, and fires it.
    fn run_timers(&self) {
        let mut state = self.lock();
        loop {
            let now = self.now();
            state = match state.deadline {
                Some(at) if at <= now => {
                    drop(state);
                    self.input(|state, now| state.core.handle_timeout(now));
                    self.lock()
                }
                Some(at) => self.timer.wait_timeout(state, at - now).expect(POISONED).0,
                None => self.timer.wait(state).expect(POISONED),
            };
        }
    }

    /// The core's clock: time since the node started.
    fn now(&self) -> Instant {
        Instant::from_origin(self.start.elapsed())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect(POISONED)
    }
}

/// A poisoned lock: the core panicked mid-input, and nothing can be trusted.
const POISONED: &str = "the core panicked";

impl State {
    /// `conn` has frames to write or wants its socket closed.
    fn wake(&mut self, conn: ConnId) {
        let Some((stream, writer)) = self.links.get(&conn) else {
            return;
        };
        if self.core.transport(conn).closes_now() {
            // `Abort` wants a reset (SO_LINGER 0): std has no stable linger
            // setter (socket2's `SockRef::set_linger` is one), so it closes
            // like `CloseNow`. The shutdown ends the reader (which reports
            // the close) and any write blocked on the peer.
            let _ = stream.shutdown(Shutdown::Both);
        } else {
            // Full: a wake is pending already.
            let _ = writer.try_send(());
        }
    }

    /// `conn`'s socket is done: shut it down, end its writer (by dropping
    /// its wake) and tell the core, which forgets the connection.
    fn closed(&mut self, now: Instant, conn: ConnId) {
        if let Some((stream, _)) = self.links.remove(&conn) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.core.handle_transport_closed(now, conn);
    }
}

/// Accepts connections until the process exits; the core itself answers
/// those it refuses (`503` while draining or at capacity).
fn accept_loop(node: &Arc<Node>, listener: &TcpListener) {
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => Arc::new(stream),
            Err(_) => {
                // Out of file descriptors, most often: retry when the core
                // says (`starts_spell` tells which failure to log).
                let (retry, now) = node.input(|s, now| (s.core.handle_accept_failed(now), now));
                thread::sleep(retry.at - now);
                continue;
            }
        };
        // Frames are whole messages: coalescing them only adds latency.
        let _ = stream.set_nodelay(true);
        let (wake, woken) = sync_channel(1);
        let conn = node.input(|state, now| {
            let conn = state.core.accept(now);
            state.links.insert(conn, (Arc::clone(&stream), wake));
            conn
        });
        let (reader, read_stream, writer) =
            (Arc::clone(node), Arc::clone(&stream), Arc::clone(node));
        let spawned = thread::Builder::new()
            .spawn(move || read_loop(&reader, conn, &read_stream))
            .and_then(|_| {
                thread::Builder::new().spawn(move || write_loop(&writer, conn, &stream, &woken))
            });
        if spawned.is_err() {
            node.input(|state, now| state.closed(now, conn));
        }
    }
}

/// Hands what the peer sends to the core until the socket ends.
fn read_loop(node: &Node, conn: ConnId, mut stream: &TcpStream) {
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => node.input(|state, now| state.core.handle_read(now, conn, &buffer[..read])),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    node.input(|state, now| state.closed(now, conn));
}

/// Each time it is woken, writes all the core has for `conn` and carries
/// out the core's `Transport` order.
fn write_loop(node: &Node, conn: ConnId, mut stream: &TcpStream, woken: &Receiver<()>) {
    let mut batch = Vec::new();
    while woken.recv().is_ok() {
        loop {
            let (moved, transport) = {
                let mut state = node.lock();
                let moved = state.core.poll_transmit(conn, WRITE_BUDGET, &mut batch);
                (moved, state.core.transport(conn))
            };
            // Without the lock: a peer that does not read blocks only this
            // thread, and the core's backpressure decides its fate.
            if batch.iter().try_for_each(|f| stream.write_all(f)).is_err() {
                let _ = stream.shutdown(Shutdown::Both); // the reader reports it
                return;
            }
            batch.clear();
            if moved > 0 {
                node.input(|state, _| state.core.handle_written(conn, moved));
            }
            match transport {
                // All is written: the peer reads an end of stream, and the
                // reader goes on until the peer's own.
                Transport::HalfClose => {
                    let _ = stream.shutdown(Shutdown::Write);
                    return;
                }
                // Said by a wake (which shut the socket down) or, after a
                // flush, only here. The reader reports the close.
                Transport::CloseNow | Transport::Abort => {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                Transport::Open | Transport::CloseAfterFlush if moved == 0 => break,
                Transport::Open | Transport::CloseAfterFlush => {}
            }
        }
    }
}
