//! The core's server node behind one lock, and everything done with that
//! lock held: feeding inputs, dispatching events, arming the timer thread.
//!
//! Every thread that has an input (a reader with bytes, a writer with a
//! closed socket, the timer thread, the application's [`Handle`]) calls
//! [`Node::input`]; the outputs the input caused are carried out before the
//! lock is let go, except the application's decisions, which are taken
//! with the lock released, each on a thread of its own (a handler may be
//! slow), and fed back from there, and its notifications, handed over
//! with the lock released.
//!
//! [`Handle`]: super::Handle

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant as Clock};

use bytes::Bytes;
use futures_lite::future;
use socket2::SockRef;
use tether_core::{
    ConnId, Decision, Handler, Instant, Output, PublishError, Server as Core, StoreEvent,
    StoreRequest, Transport, Verdict,
};

/// Bytes a writer takes from the core per pass: what backpressure leaves
/// outside the core's queue while a write is in flight.
const WRITE_BUDGET: usize = 64 * 1024;

/// One server node shared by the accept, timer, reader and writer threads.
pub struct Node {
    state: Mutex<State>,
    /// Wakes the timer thread when an input made the next deadline earlier.
    timer: Condvar,
    /// Wakes `run` when shutdown starts and when the last connection leaves.
    drained: Condvar,
    /// The origin of the core's time line.
    start: Clock,
    handler: Arc<dyn Handler>,
    /// The node itself, for the threads that answer its decisions.
    this: Weak<Node>,
}

/// Everything behind the node's lock.
struct State {
    core: Core,
    links: HashMap<ConnId, Link>,
    /// The core's next deadline, from its last [`Output::Timeout`].
    deadline: Option<Instant>,
    /// The deadline the timer thread is sleeping until (`None`: none).
    timer_until: Option<Instant>,
    /// The shutdown started.
    draining: bool,
    /// The core said [`Output::Drained`].
    drained: bool,
    /// `run` is returning: the timer and accept threads end.
    stopped: bool,
    /// Where the core's store requests go, with a backplane.
    store_requests: Option<async_channel::Sender<StoreRequest>>,
    /// Publications of the application, by token, waiting for their outcome.
    publishes: HashMap<u64, SyncSender<Result<u64, PublishError>>>,
    next_publish: u64,
}

/// The adapter's side of one connection.
struct Link {
    stream: Arc<TcpStream>,
    /// Wakes the connection's writer thread; one pending wake is enough.
    wake: SyncSender<()>,
}

/// What [`Node::admit`] decided about a new TCP connection.
pub enum ConnectionAdmission {
    /// Serve it: the writer waits on `wake`.
    Accepted {
        /// The core's name for the connection.
        conn: ConnId,
        /// Signalled whenever the connection has frames or must close.
        wake: Receiver<()>,
        /// The core refused it (draining, at capacity): it only has its
        /// `503` to write and the client's end to wait for.
        refused: bool,
    },
    /// The node has stopped; stop accepting.
    Stopped,
}

impl Node {
    /// A node around `core` whose clock starts now.
    pub fn new(core: Core, handler: Arc<dyn Handler>) -> Arc<Self> {
        Arc::new_cyclic(|this| Node {
            state: Mutex::new(State {
                core,
                links: HashMap::new(),
                deadline: None,
                timer_until: None,
                draining: false,
                drained: false,
                stopped: false,
                store_requests: None,
                publishes: HashMap::new(),
                next_publish: 0,
            }),
            timer: Condvar::new(),
            drained: Condvar::new(),
            start: Clock::now(),
            handler,
            this: this.clone(),
        })
    }

    /// Feeds one input to the core and settles everything it caused.
    pub fn input<R>(&self, input: impl FnOnce(&mut Core, Instant) -> R) -> R {
        let mut state = self.lock();
        let result = input(&mut state.core, self.now());
        self.settle(state);
        result
    }

    /// Runs the node in backplane mode from now on, with `core` made for it:
    /// its store requests go to `requests`. Called before any connection.
    pub fn attach_backplane(&self, core: Core, requests: async_channel::Sender<StoreRequest>) {
        let mut state = self.lock();
        state.core = core;
        state.store_requests = Some(requests);
        self.settle(state);
    }

    /// Feeds the backplane's events to the core, a batch per lock, until
    /// the backplane is gone.
    pub fn feed_store_events(&self, events: &async_channel::Receiver<StoreEvent>) {
        while let Ok(event) = events.recv_blocking() {
            let mut state = self.lock();
            state.core.handle_store_event(self.now(), event);
            while let Ok(event) = events.try_recv() {
                state.core.handle_store_event(self.now(), event);
            }
            self.settle(state);
        }
    }

    /// Publishes from the application and waits (unlocked) for the offset,
    /// which a backplane may take a round trip to give.
    pub fn publish(&self, channel: &str, payload: &str) -> Result<u64, PublishError> {
        let mut state = self.lock();
        let (reply, answer) = sync_channel(1);
        state.next_publish += 1;
        let token = state.next_publish;
        state.publishes.insert(token, reply);
        state.core.publish(self.now(), token, channel, payload);
        self.settle(state);
        answer.recv().map_err(|_| PublishError::Unavailable)?
    }

    /// A TCP connection arrived: registers it with the core, or says why not.
    pub fn admit(&self, stream: &Arc<TcpStream>) -> ConnectionAdmission {
        let mut state = self.lock();
        if state.stopped {
            return ConnectionAdmission::Stopped;
        }
        let conn = state.core.accept(self.now());
        let refused = state.core.transport(conn) != Transport::Open;
        let (sender, wake) = sync_channel(1);
        let link = Link {
            stream: Arc::clone(stream),
            wake: sender,
        };
        state.links.insert(conn, link);
        self.settle(state);
        ConnectionAdmission::Accepted {
            conn,
            wake,
            refused,
        }
    }

    /// Accepting failed: how long to wait before accepting again and
    /// whether the failure starts a spell of them (log it then); `None`
    /// once the node has stopped.
    pub fn accept_failed(&self) -> Option<(Duration, bool)> {
        let mut state = self.lock();
        if state.stopped {
            return None;
        }
        let now = self.now();
        let retry = state.core.handle_accept_failed(now);
        Some((retry.at - now, retry.starts_spell))
    }

    /// Moves `conn`'s next frames into `batch` and says what to do with the
    /// socket once they are written; the bytes moved go to [`Node::written`].
    pub fn take_frames(&self, conn: ConnId, batch: &mut Vec<Bytes>) -> (usize, Transport) {
        let mut state = self.lock();
        let moved = state.core.poll_transmit(conn, WRITE_BUDGET, batch);
        (moved, state.core.transport(conn))
    }

    /// `bytes` that [`Node::take_frames`] gave for `conn` are written.
    pub fn written(&self, conn: ConnId, bytes: usize) {
        if bytes > 0 {
            self.lock().core.handle_written(conn, bytes);
        }
    }

    /// `conn`'s socket is finished (end of stream, an error, or the core
    /// asked for it): shuts it down and tells the core.
    pub fn transport_closed(&self, conn: ConnId) {
        let mut state = self.lock();
        let now = self.now();
        state.disconnect(conn, now);
        self.settle(state);
    }

    /// The timer thread: sleeps until the core's next deadline (or until an
    /// input makes it earlier), fires it, and ends when the node stops.
    pub fn run_timers(&self) {
        let mut state = self.lock();
        loop {
            if state.stopped {
                return;
            }
            let now = self.now();
            match state.deadline {
                Some(at) if at <= now => {
                    state.core.handle_timeout(now);
                    self.settle(state);
                    state = self.lock();
                }
                Some(at) => {
                    state.timer_until = Some(at);
                    state = wait_for(&self.timer, state, Some(at - now));
                }
                None => {
                    state.timer_until = None;
                    state = wait_for(&self.timer, state, None);
                }
            }
        }
    }

    /// Starts the graceful shutdown: the core closes every WebSocket with
    /// 1001 behind its queue, refuses new connections and says when the
    /// drain is over (at most `shutdown_timeout` later).
    pub fn shutdown(&self) {
        let mut state = self.lock();
        state.draining = true;
        state.core.shutdown(self.now());
        self.settle(state);
    }

    /// Blocks until the core says the drain is over.
    pub fn wait_until_drained(&self) {
        let mut state = self.lock();
        while !state.drained {
            state = wait_for(&self.drained, state, None);
        }
    }

    /// Stops the node: the timer and accept threads end, the sockets of
    /// connections that outlived the shutdown deadline are shut down, the
    /// backplane gets no more requests, and waiting publishes fail.
    pub fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        state.store_requests = None;
        state.publishes.clear();
        for (_, link) in state.links.drain() {
            // The socket may already be gone; there is nothing left to do.
            let _ = link.stream.shutdown(Shutdown::Both);
        }
        self.timer.notify_one();
    }

    /// The core's clock: time since the node was made.
    fn now(&self) -> Instant {
        Instant::from_origin(self.start.elapsed())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means the core panicked mid-input: a broken
        // invariant, after which no input can be trusted to be handled.
        self.state.lock().expect("the server node panicked")
    }

    /// Carries out every output of the core until only a deadline is
    /// left, then, with the lock released, hands the notifications to the
    /// handler and each decision to a thread of its own. Releases the
    /// lock.
    fn settle(&self, mut state: MutexGuard<'_, State>) {
        let now = self.now();
        let mut decisions = Vec::new();
        let mut notifications = Vec::new();
        loop {
            match state.core.poll_output() {
                Output::Wake(conn) => state.wake(conn, now),
                Output::Decide(decision) => decisions.push(decision),
                Output::Notify(notification) => notifications.push(notification),
                Output::Store(request) => {
                    if let Some(requests) = &state.store_requests {
                        // Unbounded: the send fails only once the
                        // backplane is gone, when the core has answered
                        // the request already.
                        let _ = requests.try_send(request);
                    }
                }
                Output::Published { token, result } => {
                    if let Some(reply) = state.publishes.remove(&token) {
                        // The caller may have given up; nothing is lost.
                        let _ = reply.try_send(result);
                    }
                }
                Output::Closed { conn, reason, by } => {
                    tracing::info!(%conn, code = reason.code.0, reason = %reason.reason, ?by, "connection closed");
                }
                Output::Drained => {
                    state.drained = true;
                    self.drained.notify_all();
                }
                Output::Timeout(deadline) => {
                    state.deadline = deadline;
                    break;
                }
            }
        }
        if let Some(next) = state.deadline
            && state.timer_until.is_none_or(|until| next < until)
        {
            self.timer.notify_one();
        }
        drop(state);
        for notification in notifications {
            notification.deliver(self.handler.as_ref());
        }
        for decision in decisions {
            self.decide(decision);
        }
    }

    /// Asks the handler: an answer it gives at once is fed here; any other
    /// is awaited on a thread of its own, which may wait as long as the
    /// handler does (up to `decision_timeout`, when the core answers by
    /// itself), and fed back from there: no thread that serves other
    /// connections, nor the timer thread, ever waits for the application.
    fn decide(&self, decision: Decision) {
        let Some(node) = self.this.upgrade() else {
            return;
        };
        let pending = match decision.decide_now(Arc::clone(&self.handler)) {
            Ok(verdict) => return node.feed(verdict),
            Err(pending) => pending,
        };
        let spawned = std::thread::Builder::new()
            .name("tether-decision".into())
            .spawn(move || node.feed(future::block_on(pending)));
        if let Err(error) = spawned {
            // The core answers the decision itself at `decision_timeout`.
            tracing::warn!(%error, "no thread for a decision");
        }
    }

    /// Feeds the application's answer to a decision.
    fn feed(&self, verdict: Verdict) {
        if let Verdict::Authenticate {
            conn,
            identity: Ok(identity),
            ..
        } = &verdict
        {
            tracing::info!(%conn, user = %identity.user, "authenticated");
        }
        self.input(|core, now| core.handle_verdict(now, verdict));
    }
}

impl State {
    /// `conn` has frames to write or wants its socket closed.
    fn wake(&mut self, conn: ConnId, now: Instant) {
        let transport = self.core.transport(conn);
        if transport == Transport::Abort
            && let Some(link) = self.links.get(&conn)
        {
            // The socket closes with no linger once its reader and writer
            // let go of it: a reset, and the kernel drops what the peer
            // never took instead of keeping it to deliver.
            let _ = SockRef::from(&*link.stream).set_linger(Some(Duration::ZERO));
        }
        if transport.closes_now() {
            self.disconnect(conn, now);
        } else if let Some(link) = self.links.get(&conn) {
            // Full means a wake is already pending; disconnected means the
            // writer has ended and the reader is about to report it.
            let _ = link.wake.try_send(());
        }
    }

    /// Shuts `conn`'s socket down (unblocking its reader and writer, and
    /// ending the writer once its link is dropped) and tells the core.
    fn disconnect(&mut self, conn: ConnId, now: Instant) {
        if let Some(link) = self.links.remove(&conn) {
            // Shutting down a socket the peer already closed may fail; the
            // outcome is the same.
            let _ = link.stream.shutdown(Shutdown::Both);
        }
        self.core.handle_transport_closed(now, conn);
    }
}

/// Waits on `condvar`, at most `timeout` when given; the lock is released
/// while waiting.
fn wait_for<'a>(
    condvar: &Condvar,
    state: MutexGuard<'a, State>,
    timeout: Option<std::time::Duration>,
) -> MutexGuard<'a, State> {
    let poisoned = "the server node panicked";
    match timeout {
        Some(timeout) => condvar.wait_timeout(state, timeout).expect(poisoned).0,
        None => condvar.wait(state).expect(poisoned),
    }
}
