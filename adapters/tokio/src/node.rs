//! The core behind its lock, and the node's life: inputs and their drains,
//! decisions, the deadline, accepting, and the stop.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tether_core::{
    BackplaneTask, ConnId, Decision, Handler, Instant, Notification, Output, PublishError, Server,
    ServerConfig, StoreEvent, StoreRequest, Verdict,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time;
use tracing::{info, warn};

use crate::connection::{self, Link, Listener};
use crate::shards::ShardLink;

/// The answer to one [`crate::Handle::publish`].
pub(crate) type Published = oneshot::Receiver<Result<u64, PublishError>>;

/// The core, the adapter's side of its connections, and what the tasks
/// wait on.
pub(crate) struct Node {
    state: Mutex<State>,
    handler: Arc<dyn Handler>,
    /// The origin of the core's time line.
    start: time::Instant,
    /// The deadline of the core's last `Output::Timeout`.
    deadline: watch::Sender<Option<Instant>>,
    /// Holds a permit once the core said `Output::Drained`.
    drained: Notify,
    /// Kept for [`Node::use_backplane`], which makes the core anew.
    seed: u64,
    /// The node's other shards, when it runs several (`shards.rs`).
    shard: Option<ShardLink>,
}

/// What a drain leaves for the application, to hand over once the lock
/// is released.
#[derive(Default)]
struct Asked {
    decisions: VecDeque<Decision>,
    notifications: Vec<Notification>,
}

/// Everything behind the lock.
pub(crate) struct State {
    /// The sans-IO node.
    pub(crate) core: Server,
    /// Each connection's wakes.
    links: HashMap<ConnId, Arc<Link>>,
    /// Publications of the application waiting for their outcome, by token.
    publications: HashMap<u64, oneshot::Sender<Result<u64, PublishError>>>,
    next_token: u64,
    /// Where the core's store requests go; `None` without a backplane and
    /// once the node stopped.
    requests: Option<UnboundedSender<StoreRequest>>,
    /// `run` has returned: publications are no longer answered.
    stopped: bool,
    /// A shard's store requests, until the end of the drain loop.
    pub(crate) pending: Vec<StoreRequest>,
    /// A shard's events wait in the router.
    woken: bool,
}

impl Node {
    /// A node around `core`, made from `seed`.
    pub(crate) fn new(core: Server, seed: u64, handler: Arc<dyn Handler>) -> Node {
        Node {
            state: Mutex::new(State {
                core,
                links: HashMap::new(),
                publications: HashMap::new(),
                next_token: 0,
                requests: None,
                stopped: false,
                pending: Vec::new(),
                woken: false,
            }),
            handler,
            start: time::Instant::now(),
            deadline: watch::Sender::new(None),
            drained: Notify::new(),
            seed,
            shard: None,
        }
    }

    /// This node as shard `link.index` of a node whose clock starts at
    /// `start`, as every shard's does.
    pub(crate) fn in_shard(mut self, link: ShardLink, start: time::Instant) -> Node {
        self.shard = Some(link);
        self.start = start;
        self
    }

    /// The requests of this node's backplane, taken for the shards made
    /// from it to share.
    pub(crate) fn take_backplane(&self) -> Option<UnboundedSender<StoreRequest>> {
        self.lock().requests.take()
    }

    /// A shard's core made anew, in front of the node's router as it now
    /// stands.
    pub(crate) fn replace_core(&self, core: Server) {
        self.lock().core = core;
    }

    /// What every shard of a node made from this one starts from: its
    /// config, seed, handler and clock.
    pub(crate) fn parts(&self) -> (ServerConfig, u64, Arc<dyn Handler>, time::Instant) {
        let config = self.lock().core.config().clone();
        (config, self.seed, Arc::clone(&self.handler), self.start)
    }

    /// Every shard of the node this one belongs to: itself alone when it
    /// runs one.
    pub(crate) fn shard_nodes(self: &Arc<Self>) -> Vec<Arc<Node>> {
        match &self.shard {
            Some(link) => link.shards.nodes().to_vec(),
            None => vec![Arc::clone(self)],
        }
    }

    /// The shard an accepted connection goes to, and whether the node had
    /// room for it (`None`: this node counts its connections itself).
    pub(crate) fn spread(self: &Arc<Self>) -> (Arc<Node>, Option<bool>) {
        match &self.shard {
            Some(link) => {
                let (node, counted) = link.shards.spread();
                (node, Some(counted))
            }
            None => (Arc::clone(self), None),
        }
    }

    /// The shard a WebSocket another server upgraded goes to: the shards
    /// in turn, like accepted connections (itself when the node runs one).
    #[cfg(feature = "axum")]
    pub(crate) fn next_shard(self: &Arc<Self>) -> Arc<Node> {
        match &self.shard {
            Some(link) => link.shards.next(),
            None => Arc::clone(self),
        }
    }

    /// Makes the core anew, with a backplane whose requests go to
    /// `requests`; gives the node's id, the backplane's name for it.
    /// A shard puts the node's router in front of the backplane instead,
    /// and every shard's core is made anew.
    pub(crate) fn use_backplane(&self, requests: UnboundedSender<StoreRequest>) -> String {
        let mut state = self.lock();
        let config: ServerConfig = state.core.config().clone();
        if let Some(link) = &self.shard {
            drop(state);
            return link.shards.use_backplane(&config, requests);
        }
        state.core = Server::with_backplane(config, self.seed)
            .expect("the same config passed validation when the node was bound");
        state.requests = Some(requests);
        state.core.node_id().to_owned()
    }

    /// The one rule: feed one input at the current instant and drain the
    /// outputs until `Timeout`; then, with the lock released, hand over
    /// the notifications and answer the decisions collected.
    pub(crate) fn input<R>(self: &Arc<Self>, feed: impl FnOnce(&mut State, Instant) -> R) -> R {
        let mut asked = Asked::default();
        let result = self.feed(feed, &mut asked);
        self.answer(asked);
        result
    }

    /// Hands the notifications to the handler, then answers the decisions,
    /// each answer an input with a drain of its own. An answer the handler
    /// gives at once is fed in line; on the runtime any other is a task
    /// (on the blocking pool when the handler says it may block), so a
    /// slow one delays only its connection; off the runtime (a handle's
    /// caller) the calling thread waits for it, as it serves no
    /// connection.
    fn answer(self: &Arc<Self>, mut asked: Asked) {
        loop {
            for notification in asked.notifications.drain(..) {
                notification.deliver(self.handler.as_ref());
            }
            let Some(decision) = asked.decisions.pop_front() else {
                return;
            };
            let pending = match decision.decide_now(Arc::clone(&self.handler)) {
                Ok(verdict) => {
                    log_authenticated(&verdict);
                    self.feed(
                        |state, now| state.core.handle_verdict(now, verdict),
                        &mut asked,
                    );
                    continue;
                }
                Err(pending) => pending,
            };
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                let verdict = futures_lite::future::block_on(pending);
                self.feed(
                    |state, now| state.core.handle_verdict(now, verdict),
                    &mut asked,
                );
                continue;
            };
            let node = Arc::clone(self);
            if self.handler.may_block() {
                runtime.spawn_blocking(move || {
                    node.feed_verdict(futures_lite::future::block_on(pending));
                });
            } else {
                runtime.spawn(async move { node.feed_verdict(pending.await) });
            }
        }
    }

    /// Feeds the application's answer to a decision.
    fn feed_verdict(self: &Arc<Self>, verdict: Verdict) {
        log_authenticated(&verdict);
        self.input(|state, now| state.core.handle_verdict(now, verdict));
    }

    /// Feeds one input under the lock and drains what it caused, keeping
    /// the decisions for after the lock.
    fn feed<R>(&self, feed: impl FnOnce(&mut State, Instant) -> R, asked: &mut Asked) -> R {
        let mut state = self.lock();
        let result = feed(&mut state, self.now());
        loop {
            match state.core.poll_output() {
                Output::Wake(conn) => state.wake(conn),
                Output::Decide(decision) => asked.decisions.push_back(decision),
                Output::Notify(notification) => asked.notifications.push(notification),
                Output::Store(request) if self.shard.is_some() => {
                    ShardLink::request(&mut state, request);
                }
                Output::Store(request) => {
                    // Without a sender the node has stopped: the store
                    // hears no more of it.
                    if let Some(requests) = &state.requests {
                        let _ = requests.send(request);
                    }
                }
                Output::Published { token, result } => {
                    if let Some(waiter) = state.publications.remove(&token) {
                        let _ = waiter.send(result);
                    }
                }
                Output::Closed { conn, reason, by } => info!(%conn, ?by, "closed {reason}"),
                Output::Drained => self.drained.notify_one(),
                Output::Timeout(deadline) => {
                    if let Some(shard) = &self.shard {
                        let woken = std::mem::take(&mut state.woken);
                        if shard.exchange(&mut state, self.now(), woken) {
                            continue;
                        }
                        shard.share_figures(&state.core);
                    }
                    self.deadline.send_if_modified(|current| {
                        let changed = *current != deadline;
                        *current = deadline;
                        changed
                    });
                    return result;
                }
            }
        }
    }

    /// Publishes from the application; the receiver gets the outcome.
    pub(crate) fn publish(self: &Arc<Self>, channel: &str, payload: &str) -> Published {
        let (waiter, published) = oneshot::channel();
        self.input(|state, now| {
            if state.stopped {
                let _ = waiter.send(Err(PublishError::Unavailable));
                return;
            }
            let token = state.next_token;
            state.next_token += 1;
            state.publications.insert(token, waiter);
            state.core.publish(now, token, channel, payload);
        });
        published
    }

    /// Checks an upgrade request another server parsed, by the node's own
    /// rules; `None` once the node has stopped.
    #[cfg(feature = "axum")]
    pub(crate) fn check_upgrade(
        &self,
        head: &tether_core::UpgradeHead<'_>,
    ) -> Option<Result<tether_core::AcceptedUpgrade, tether_core::HttpError>> {
        let state = self.lock();
        state.is_serving().then(|| state.core.check_upgrade(head))
    }

    /// Serves on `listener`, if the node has one, and the connections
    /// other servers hand over, until the core is drained; then closes
    /// what is left and gives the backplane its last requests.
    pub(crate) async fn run(
        self: &Arc<Self>,
        listener: Option<Listener>,
        backplane: Option<(BackplaneTask, UnboundedReceiver<StoreEvent>)>,
    ) {
        let mut tasks = JoinSet::new();
        let shards = self.shard_nodes();
        for node in &shards {
            tasks.spawn(Arc::clone(node).run_timers());
        }
        if let Some(link) = &self.shard {
            tasks.spawn(Arc::clone(&link.shards).run_store_timer(self.start));
            for node in &shards {
                tasks.spawn(Arc::clone(node).run_woken());
            }
        }
        let mut store = backplane.map(|(task, mut events)| {
            let node = Arc::clone(self);
            match &self.shard {
                Some(link) => {
                    let shards = Arc::clone(&link.shards);
                    tasks.spawn(shards.run_store_events(self.start, events));
                }
                None => {
                    tasks.spawn(async move {
                        while let Some(event) = events.recv().await {
                            node.input(|state, now| state.core.handle_store_event(now, event));
                        }
                    });
                }
            }
            tokio::spawn(task)
        });
        // A new core has outputs before any input: a backplane node's first
        // store request asks to connect.
        for node in &shards {
            node.input(|_, _| ());
        }
        let drained = async {
            for node in &shards {
                node.drained.notified().await;
            }
        };
        match &listener {
            Some(listener) => tokio::select! {
                () = connection::accept_loop(self, listener, &mut tasks) => {}
                () = drained => {}
            },
            None => drained.await,
        }
        // Sockets that outlived `shutdown_timeout` close here. The core
        // needs no word of them: their sessions ended with the 1001, and
        // their users' departures are among the requests already made.
        tasks.shutdown().await;
        let mut shutdown_timeout = Default::default();
        for node in &shards {
            let mut state = node.lock();
            state.stopped = true;
            state.requests = None;
            state.publications.clear();
            // Streams other servers handed over run on tasks of their own.
            for link in state.links.values() {
                link.close.notify_one();
            }
            shutdown_timeout = state.core.config().shutdown_timeout;
        }
        if let Some(link) = &self.shard {
            link.shards.close_backplane();
        }
        if let Some(task) = &mut store {
            if time::timeout(shutdown_timeout, &mut *task).await.is_err() {
                warn!("the backplane did not finish its last requests within shutdown_timeout");
            }
            task.abort();
        }
    }

    /// A shard: takes the events the router holds for it whenever it is
    /// woken for them.
    async fn run_woken(self: Arc<Self>) {
        let Some(link) = &self.shard else {
            return;
        };
        loop {
            link.shards.woken(link.index).await;
            self.input(|state, _| state.woken = true);
        }
    }

    /// Sleeps until the core's deadline, or until it changes, and fires it.
    async fn run_timers(self: Arc<Self>) {
        let mut deadline = self.deadline.subscribe();
        loop {
            let at = *deadline.borrow_and_update();
            let changed = deadline.changed();
            let woken = match at {
                Some(at) => time::timeout_at(self.clock(at), changed).await,
                None => Ok(changed.await),
            };
            match woken {
                Err(_due) => self.input(|state, now| state.core.handle_timeout(now)),
                Ok(Ok(())) => {}
                // The node is gone.
                Ok(Err(_)) => return,
            }
        }
    }

    /// The core's clock: time since the node was made.
    fn now(&self) -> Instant {
        Instant::from_origin(self.start.elapsed())
    }

    /// The runtime's instant of the core's `at`.
    pub(crate) fn clock(&self, at: Instant) -> time::Instant {
        self.start + at.since_origin()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("the core panicked mid-input")
    }
}

impl State {
    /// Whether the node still takes connections: [`Node::run`] has not
    /// returned.
    #[cfg(feature = "axum")]
    pub(crate) fn is_serving(&self) -> bool {
        !self.stopped
    }

    /// `conn` has frames to write or wants its socket closed.
    fn wake(&self, conn: ConnId) {
        if let Some(link) = self.links.get(&conn) {
            if self.core.transport(conn).closes_now() {
                link.close.notify_one();
            } else {
                link.wake.notify_one();
            }
        }
    }

    /// A new connection's wakes.
    pub(crate) fn link(&mut self, conn: ConnId, link: Arc<Link>) {
        self.links.insert(conn, link);
    }

    /// `conn`'s socket is closed: the core forgets the connection.
    pub(crate) fn closed(&mut self, now: Instant, conn: ConnId) {
        self.links.remove(&conn);
        self.core.handle_transport_closed(now, conn);
    }
}

/// Logs an accepted token, as operators read it.
fn log_authenticated(verdict: &Verdict) {
    if let Verdict::Authenticate {
        conn,
        identity: Ok(identity),
        ..
    } = verdict
    {
        info!(%conn, user = %identity.user, "authenticated");
    }
}
