//! A smol node on several threads: one shard per thread (`threads`,
//! PROTOCOL.md section 10).
//!
//! Each shard is the single-threaded node of `server.rs`: its own
//! [`crate::block_on`] and reactor, its own core [`Core`] (made with
//! [`Core::shard`]) and its own connections, which never leave it. What the
//! shards share is the node's [`Router`] (the store, and the counts of the
//! node's connections and users) behind one lock, and each shard's latest
//! figures for `/metrics`, each behind a lock of its own.
//!
//! - Connections are spread at accept: shard 0's thread accepts every
//!   connection and hands them out in turn, keeping every `threads`-th
//!   itself and sending the others' sockets to their shards. One acceptor
//!   spreads connections evenly and in a known order on every platform;
//!   `SO_REUSEPORT` listeners would spread them by a hash of the peer's
//!   address (unevenly for few connections, and not at all on some
//!   systems). A hand-over costs one channel send and, when that shard
//!   sleeps, one wake-up of its poller.
//! - A shard's drain loop collects its core's store requests and hands
//!   them to the router in one lock at the end of the loop, takes its own
//!   events in the same lock, and wakes each other shard the router names
//!   (once, however many events wait for it). A woken shard takes its
//!   events in one lock and feeds them to its core.
//! - A publication is encoded once by the router's store; each following
//!   shard gets the same frame, once, and hands it to its subscribers.
//! - Shard 0 also drives the store's timeouts (history and idempotency
//!   expiry, or the backplane link's retries and lease), alone; every
//!   shard's instants count from one start.
//! - With a backplane the router stands in front of the node's one link
//!   ([`Router::with_backplane`]): its task runs on shard 0's executor,
//!   the router's requests go to it in the router's order (taken under
//!   the router's lock, after every call into the router), and shard 0's
//!   store task feeds the backplane's events to the router and wakes the
//!   shards it names, as a single node carries its core's.
//! - [`Handle::publish`] goes to shard 0; [`Handle::shutdown`] reaches
//!   shard 0, which passes it on to every other shard. `run` returns once
//!   every shard has drained.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_channel::{Receiver, Sender};
use futures_lite::future;
use smol::LocalExecutor;
use tether_core::{Figures, Instant, NodeShards, Router, Server as Core, StoreEvent, StoreRequest};
use tether_tls::ServerTls;

use super::{
    Command, Node, READ_BUFFER, Server, ServerOptions, accept_loop, adopt, command_loop,
    decide_loop, timer_loop,
};
use crate::reactor::Reactor;
use crate::socket::Registered;

/// What the shards of a node share.
#[derive(Debug)]
struct Shared {
    router: Mutex<Routed>,
    /// Each shard's figures as of its last drain loop.
    figures: Vec<Mutex<Figures>>,
    /// Wakes a shard whose events wait in the router.
    wakes: Vec<Sender<()>>,
    /// Wakes shard 0's store timer: the store's next deadline came
    /// earlier.
    timer: Sender<()>,
    /// The instant every shard's clock counts from.
    start: std::time::Instant,
    /// The backplane task's requests, when the node has one.
    backplane: Option<Sender<StoreRequest>>,
}

/// The router and the store deadline shard 0's timer waits for.
#[derive(Debug)]
struct Routed {
    router: Router,
    armed: Option<Instant>,
}

impl Shared {
    fn routed(&self) -> MutexGuard<'_, Routed> {
        self.router.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After a call into the router, under its lock: hands its requests
    /// to the backplane, in order, and returns whether the store's next
    /// deadline came earlier (shard 0's timer is to be poked).
    fn settle(&self, routed: &mut Routed) -> bool {
        while let Some(request) = routed.router.poll_store_request() {
            if let Some(backplane) = &self.backplane {
                let _ = backplane.try_send(request);
            }
        }
        let next = routed.router.poll_timeout();
        let earlier = next.is_some() && (routed.armed.is_none() || next < routed.armed);
        if earlier {
            routed.armed = next;
        }
        earlier
    }
}

/// The node as one shard's core sees it.
#[derive(Debug)]
struct View {
    shard: usize,
    shared: Arc<Shared>,
}

impl NodeShards for View {
    fn with_router(&self, call: &mut dyn FnMut(&mut Router)) {
        call(&mut self.shared.routed().router);
    }

    fn others(&self) -> Figures {
        let others = self.shared.figures.iter().enumerate();
        others
            .filter(|(shard, _)| *shard != self.shard)
            .map(|(_, figures)| *figures.lock().unwrap_or_else(PoisonError::into_inner))
            .fold(Figures::default(), |sum, figures| sum + figures)
    }
}

/// One shard's end of the node: what its drain loop hands to the router
/// and takes from it.
pub(super) struct ShardLink {
    shard: usize,
    shared: Arc<Shared>,
    requests: RefCell<Vec<StoreRequest>>,
    events: RefCell<Vec<StoreEvent>>,
    /// The router woke this shard: take its events at the next exchange.
    woken: Cell<bool>,
    /// The other shards' connections, when this shard accepts for the
    /// node (shard 0), each with whether it was counted, and whose turn
    /// is next.
    hand_over: Vec<Sender<(TcpStream, bool)>>,
    turn: Cell<usize>,
    /// The node's `max_connections`.
    max_connections: usize,
    /// The other shards' commands, when this shard takes the node's
    /// (shard 0).
    commands: Vec<Sender<Command>>,
}

impl ShardLink {
    /// Queues a store request of the core for the next exchange.
    pub(super) fn request(&self, request: StoreRequest) {
        self.requests.borrow_mut().push(request);
    }

    /// Hands the queued requests to the router and feeds this shard's
    /// events to `core`; `true` when the core was fed (it has outputs
    /// again). Takes the router's lock only when there is something to
    /// hand over or to take.
    pub(super) fn exchange(&self, core: &mut Core, now: Instant) -> bool {
        let mut requests = self.requests.borrow_mut();
        if requests.is_empty() && !self.woken.replace(false) {
            return false;
        }
        let mut events = self.events.borrow_mut();
        let mut woken = Vec::new();
        let poke_timer;
        {
            let mut routed = self.shared.routed();
            for request in requests.drain(..) {
                routed.router.handle_request(now, self.shard, request);
            }
            routed.router.take_events(self.shard, &mut events);
            while let Some(shard) = routed.router.poll_woken() {
                if shard != self.shard {
                    woken.push(shard);
                }
            }
            poke_timer = self.shared.settle(&mut routed);
        }
        drop(requests);
        for shard in woken {
            let _ = self.shared.wakes[shard].try_send(());
        }
        if poke_timer {
            let _ = self.shared.timer.try_send(());
        }
        let fed = !events.is_empty();
        for event in events.drain(..) {
            core.handle_store_event(now, event);
        }
        fed
    }

    /// Shares the core's figures with the other shards.
    pub(super) fn share_figures(&self, core: &Core) {
        *self.shared.figures[self.shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = core.figures();
    }

    /// Counts an accepted connection against the node's
    /// `max_connections`, in the order of accepts, and hands it to the
    /// shard whose turn it is: `Some` (with whether it was counted) to keep
    /// it here, `None` when it went to another shard.
    pub(super) fn spread(&self, stream: TcpStream) -> Option<(TcpStream, bool)> {
        let counted = self
            .shared
            .routed()
            .router
            .open_socket(self.max_connections);
        let turn = self.turn.get();
        self.turn.set((turn + 1) % (self.hand_over.len() + 1));
        match turn {
            0 => Some((stream, counted)),
            other => {
                if let Err(error) = self.hand_over[other - 1].try_send((stream, counted))
                    && counted
                {
                    // The shard is gone: its socket closes uncounted.
                    drop(error);
                    self.shared.routed().router.close_socket();
                }
                None
            }
        }
    }

    /// Passes the node's shutdown on to the other shards.
    pub(super) fn shut_down_others(&self) {
        for commands in &self.commands {
            let _ = commands.try_send(Command::Shutdown);
        }
    }
}

/// Runs `server` as `threads` shards until each has drained.
pub(super) async fn run(server: Server, threads: usize) -> io::Result<()> {
    let options = server.options;
    let tls = server.tls;
    let seed = options.seed.unwrap_or_else(|| fastrand::u64(..));
    let shutdown_timeout = options.config.shutdown_timeout;
    let (wakes, woken): (Vec<_>, Vec<_>) = (0..threads).map(|_| async_channel::bounded(1)).unzip();
    let (timer, timer_pokes) = async_channel::bounded(1);
    let (store_requests, requests) = async_channel::unbounded();
    let (events, store_events) = async_channel::unbounded();
    let router = match &server.backplane {
        Some(_) => Router::with_backplane(&options.config, seed, threads),
        None => Router::new(&options.config, seed, threads),
    };
    let backplane = server.backplane.map(|backplane| {
        let (requests, events) = crate::backplane::ends(requests, events);
        backplane.run(router.node_id(), requests, events)
    });
    let shared = Arc::new(Shared {
        router: Mutex::new(Routed {
            router,
            armed: None,
        }),
        figures: (0..threads).map(|_| Mutex::default()).collect(),
        wakes,
        timer,
        start: std::time::Instant::now(),
        backplane: backplane.is_some().then_some(store_requests),
    });
    shared.settle(&mut shared.routed());
    let mut woken = woken.into_iter();
    let mut hand_over = Vec::new();
    let mut commands = Vec::new();
    let (done, finished) = async_channel::unbounded();
    let first_woken = woken.next().expect("at least one shard");
    for shard in 1..threads {
        let (sockets, inbox) = async_channel::unbounded();
        let (command, command_inbox) = async_channel::unbounded();
        hand_over.push(sockets);
        commands.push(command);
        let shard = Shard {
            index: shard,
            seed: seed.wrapping_add(shard as u64 + 1),
            options: options.clone(),
            shared: shared.clone(),
            woken: woken.next().expect("a wake per shard"),
            commands: command_inbox,
            hand_over: Vec::new(),
            other_commands: Vec::new(),
            tls: tls.clone(),
        };
        let done = done.clone();
        std::thread::Builder::new()
            .name(format!("tether shard {shard}", shard = shard.index))
            .spawn(move || {
                let served = crate::block_on(async {
                    let executor = LocalExecutor::new();
                    executor
                        .run(shard.serve(&executor, Source::Inbox(inbox)))
                        .await
                });
                let _ = done.try_send(served);
            })?;
    }
    drop(done);
    let executor = LocalExecutor::new();
    let first = Shard {
        index: 0,
        seed: seed.wrapping_add(1),
        options,
        shared: shared.clone(),
        woken: first_woken,
        commands: server.commands.1,
        hand_over,
        other_commands: commands,
        tls,
    };
    let listener = server.listener;
    executor
        .run(async {
            let timer = executor.spawn(store_timer(shared.clone(), timer_pokes));
            let backplane = backplane.map(|task| executor.spawn(task));
            let feeding = backplane
                .as_ref()
                .map(|_| executor.spawn(store_loop(shared.clone(), store_events)));
            let mut outcome = first.serve(&executor, Source::Listener(listener)).await;
            while let Ok(served) = finished.recv().await {
                outcome = outcome.and(served);
            }
            drop(timer);
            drop(feeding);
            if let Some(backplane) = backplane {
                // Every shard has drained: the departures of their users
                // are among the last requests the backplane carries.
                if let Some(requests) = &shared.backplane {
                    requests.close();
                }
                let last_requests = async {
                    backplane.await;
                };
                let deadline = async {
                    if let Ok(reactor) = Reactor::current() {
                        reactor
                            .sleep_until(std::time::Instant::now() + shutdown_timeout)
                            .await;
                    }
                    tracing::warn!("shutdown timeout reached before the backplane was done");
                };
                future::or(last_requests, deadline).await;
            }
            outcome
        })
        .await
}

/// Feeds the backplane's events to the router, a batch at a time, and
/// wakes the shards it names: on shard 0, alone.
async fn store_loop(shared: Arc<Shared>, events: Receiver<StoreEvent>) {
    while let Ok(event) = events.recv().await {
        let mut woken = Vec::new();
        let poke_timer = {
            let mut routed = shared.routed();
            let now = Instant::from_origin(shared.start.elapsed());
            routed.router.handle_store_event(now, event);
            while let Ok(event) = events.try_recv() {
                routed.router.handle_store_event(now, event);
            }
            while let Some(shard) = routed.router.poll_woken() {
                woken.push(shard);
            }
            shared.settle(&mut routed)
        };
        for shard in woken {
            let _ = shared.wakes[shard].try_send(());
        }
        if poke_timer {
            let _ = shared.timer.try_send(());
        }
    }
}

/// Where a shard's connections come from.
enum Source {
    /// It accepts for the node.
    Listener(TcpListener),
    /// The accepting shard hands them over.
    Inbox(Receiver<(TcpStream, bool)>),
}

/// Where a serving shard takes its connections from.
enum Accept {
    /// Its registered listener.
    Listener(Registered<TcpListener>),
    /// The accepting shard's hand-overs.
    Inbox(Receiver<(TcpStream, bool)>),
}

/// What one shard starts with.
struct Shard {
    index: usize,
    seed: u64,
    options: ServerOptions,
    shared: Arc<Shared>,
    woken: Receiver<()>,
    commands: Receiver<Command>,
    hand_over: Vec<Sender<(TcpStream, bool)>>,
    other_commands: Vec<Sender<Command>>,
    /// The node's TLS, when it speaks it.
    tls: Option<ServerTls>,
}

impl Shard {
    /// Serves the shard's connections until it has drained.
    async fn serve(self, executor: &LocalExecutor<'static>, source: Source) -> io::Result<()> {
        let reactor = Reactor::current()?;
        let source = match source {
            Source::Listener(listener) => Accept::Listener(Registered::new(listener, &reactor)?),
            Source::Inbox(inbox) => Accept::Inbox(inbox),
        };
        let view = View {
            shard: self.index,
            shared: self.shared.clone(),
        };
        let invalid = |error| io::Error::new(io::ErrorKind::InvalidInput, error);
        let max_connections = self.options.config.max_connections;
        let core = Core::shard(self.options.config, self.seed, Box::new(view)).map_err(invalid)?;
        let (decisions, decided) = async_channel::unbounded();
        let link = ShardLink {
            shard: self.index,
            shared: self.shared.clone(),
            requests: RefCell::default(),
            events: RefCell::default(),
            woken: Cell::new(false),
            hand_over: self.hand_over,
            turn: Cell::new(0),
            max_connections,
            commands: self.other_commands,
        };
        let node = Rc::new(Node {
            core: RefCell::new(core),
            store_requests: async_channel::bounded(1).0,
            decisions,
            handler: self.options.handler.clone(),
            publishes: RefCell::new(HashMap::new()),
            next_publish: Cell::new(0),
            start: self.shared.start,
            wakers: RefCell::new(HashMap::new()),
            read_buffer: RefCell::new(vec![0; READ_BUFFER].into_boxed_slice()),
            plaintext: RefCell::default(),
            tls: self.tls,
            reactor: reactor.clone(),
            drained: async_channel::bounded(1),
            shard: Some(link),
        });
        executor.spawn(timer_loop(node.clone())).detach();
        executor
            .spawn(command_loop(node.clone(), self.commands))
            .detach();
        executor
            .spawn(events_loop(node.clone(), self.woken))
            .detach();
        node.dispatch();
        let drained = async {
            let _ = node.drained.1.recv().await;
        };
        let accepting = async {
            match source {
                Accept::Listener(listener) => accept_loop(&node, &listener, executor).await,
                Accept::Inbox(inbox) => {
                    while let Ok((stream, counted)) = inbox.recv().await {
                        adopt(&node, stream, Some(counted), executor);
                    }
                }
            }
            future::pending::<()>().await;
        };
        let serving = future::or(accepting, decide_loop(&node, &decided, executor));
        future::or(serving, drained).await;
        Ok(())
    }
}

/// Feeds the events the router holds for the shard whenever it wakes it.
async fn events_loop(node: Rc<Node>, woken: Receiver<()>) {
    while woken.recv().await.is_ok() {
        if let Some(link) = &node.shard {
            link.woken.set(true);
        }
        node.dispatch();
    }
}

/// Expires the store's history and idempotency records at their
/// deadlines, or reopens the backplane's link and renews the node's
/// lease: on shard 0, alone.
async fn store_timer(shared: Arc<Shared>, pokes: Receiver<()>) {
    let reactor = match Reactor::current() {
        Ok(reactor) => reactor,
        Err(_) => return,
    };
    loop {
        let armed = shared.routed().armed;
        match armed {
            Some(at) => {
                let sleep = async {
                    reactor.sleep_until(shared.start + at.since_origin()).await;
                };
                let poked = async {
                    let _ = pokes.recv().await;
                };
                future::or(sleep, poked).await;
            }
            None => {
                if pokes.recv().await.is_err() {
                    return;
                }
            }
        }
        let now = Instant::from_origin(shared.start.elapsed());
        let mut routed = shared.routed();
        if routed.armed.is_some_and(|at| at <= now) {
            routed.router.handle_timeout(now);
            routed.armed = None;
            shared.settle(&mut routed);
        }
    }
}
