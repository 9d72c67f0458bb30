//! A tokio node of several shards (`threads`, PROTOCOL.md section 10).
//!
//! Each shard is a [`Node`] of its own: a core made with
//! [`tether_core::Server::shard`] behind the shard's own lock, and the
//! connections handed to it at accept, which never leave it. The shards
//! share the node's [`Router`] behind one more lock, taken only while a
//! shard's lock is held (never the other way round), and each shard's
//! latest figures for `/metrics`.
//!
//! All shards run on the one multi-threaded runtime the node runs on, each
//! connection a task as before: the runtime spreads the tasks over its
//! worker threads, and a shard's lock is contended only by its own
//! connections. (A current-thread runtime per shard would keep each core
//! on one thread, at the price of a runtime, a driver and a thread pool
//! per shard; the smol node works that way.)
//!
//! - The accepting task counts each connection against the node's
//!   `max_connections` as it accepts it and hands the connections to the
//!   shards in turn.
//! - A shard's drain loop hands the store requests it collected to the
//!   router at its end and feeds back its own events in the same lock; a
//!   shard the router names is woken once ([`Notify`]), and its task takes
//!   its events in one input.
//! - One task drives the store's timeouts for the node.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tether_core::{Figures, Instant, NodeShards, Router, Server as Core, StoreRequest};
use tokio::sync::Notify;
use tokio::time;

use crate::node::{Node, State};

/// What the shards of a node share.
pub(crate) struct Shards {
    router: Mutex<Routed>,
    figures: Vec<Mutex<Figures>>,
    /// Each shard's "events wait in the router".
    wakes: Vec<Notify>,
    /// The store's deadline came earlier.
    timer: Notify,
    /// Every shard's node, in shard order.
    nodes: OnceLock<Vec<Arc<Node>>>,
    /// Whose turn the next accepted connection is.
    turn: AtomicUsize,
    /// The node's `max_connections`.
    max_connections: usize,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("shards", &self.wakes.len())
            .finish_non_exhaustive()
    }
}

/// The router and the deadline the store's timer waits for.
#[derive(Debug)]
struct Routed {
    router: Router,
    armed: Option<Instant>,
}

/// The node as one shard's core sees it.
#[derive(Debug)]
struct View {
    shard: usize,
    shards: Arc<Shards>,
}

impl NodeShards for View {
    fn with_router(&self, call: &mut dyn FnMut(&mut Router)) {
        call(&mut self.shards.routed().router);
    }

    fn others(&self) -> Figures {
        let figures = self.shards.figures.iter().enumerate();
        figures
            .filter(|(shard, _)| *shard != self.shard)
            .map(|(_, figures)| *figures.lock().unwrap_or_else(PoisonError::into_inner))
            .fold(Figures::default(), |sum, figures| sum + figures)
    }
}

/// One shard's place in its node.
#[derive(Debug)]
pub(crate) struct ShardLink {
    pub(crate) index: usize,
    pub(crate) shards: Arc<Shards>,
}

impl Shards {
    /// The shard nodes of a node of `threads` shards whose first shard
    /// `first` is (its config, seed and handler are every shard's);
    /// shard 0 first.
    pub(crate) fn make(first: &Node, threads: usize) -> Vec<Arc<Node>> {
        let (config, seed, handler, start) = first.parts();
        let shards = Arc::new(Shards {
            router: Mutex::new(Routed {
                router: Router::new(&config, seed, threads),
                armed: None,
            }),
            figures: (0..threads).map(|_| Mutex::default()).collect(),
            wakes: (0..threads).map(|_| Notify::new()).collect(),
            timer: Notify::new(),
            nodes: OnceLock::new(),
            turn: AtomicUsize::new(0),
            max_connections: config.max_connections,
        });
        let nodes: Vec<Arc<Node>> = (0..threads)
            .map(|index| {
                let view = View {
                    shard: index,
                    shards: Arc::clone(&shards),
                };
                let shard_seed = seed.wrapping_add(index as u64 + 1);
                let core = Core::shard(config.clone(), shard_seed, Box::new(view))
                    .expect("the same config passed validation when the node was bound");
                let link = ShardLink {
                    index,
                    shards: Arc::clone(&shards),
                };
                Arc::new(Node::new(core, shard_seed, handler.clone()).in_shard(link, start))
            })
            .collect();
        let _ = shards.nodes.set(nodes.clone());
        nodes
    }

    fn routed(&self) -> MutexGuard<'_, Routed> {
        self.router.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every shard's node.
    pub(crate) fn nodes(&self) -> &[Arc<Node>] {
        self.nodes.get().map_or(&[], Vec::as_slice)
    }

    /// The shard whose turn an accepted connection is, and whether the
    /// node had room for it (counted in the order of accepts).
    pub(crate) fn spread(&self) -> (Arc<Node>, bool) {
        let counted = self.routed().router.open_socket(self.max_connections);
        let nodes = self.nodes();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed) % nodes.len();
        (Arc::clone(&nodes[turn]), counted)
    }

    /// Waits until shard `index` has events in the router.
    pub(crate) async fn woken(&self, index: usize) {
        self.wakes[index].notified().await;
    }

    /// Expires the store's history and idempotency records at their
    /// deadlines, for the whole node.
    pub(crate) async fn run_store_timer(self: Arc<Self>, start: time::Instant) {
        loop {
            let armed = self.routed().armed;
            match armed {
                Some(at) => {
                    let _ =
                        time::timeout_at(start + at.since_origin(), self.timer.notified()).await;
                }
                None => self.timer.notified().await,
            }
            let now = Instant::from_origin(start.elapsed());
            let mut routed = self.routed();
            if routed.armed.is_some_and(|at| at <= now) {
                routed.router.handle_timeout(now);
                routed.armed = routed.router.poll_timeout();
            }
        }
    }
}

impl ShardLink {
    /// Hands the requests the shard's core made to the router and feeds
    /// the shard's events back; `true` when the core was fed. Called under
    /// the shard's lock, at the end of its drain loop.
    pub(crate) fn exchange(&self, state: &mut State, now: Instant, woken: bool) -> bool {
        if state.pending.is_empty() && !woken {
            return false;
        }
        let mut events = Vec::new();
        let mut others = Vec::new();
        let mut poke = false;
        {
            let mut routed = self.shards.routed();
            for request in state.pending.drain(..) {
                routed.router.handle_request(now, self.index, request);
            }
            routed.router.take_events(self.index, &mut events);
            while let Some(shard) = routed.router.poll_woken() {
                if shard != self.index {
                    others.push(shard);
                }
            }
            let next = routed.router.poll_timeout();
            if next.is_some() && (routed.armed.is_none() || next < routed.armed) {
                routed.armed = next;
                poke = true;
            }
        }
        for shard in others {
            self.shards.wakes[shard].notify_one();
        }
        if poke {
            self.shards.timer.notify_one();
        }
        let fed = !events.is_empty();
        for event in events {
            state.core.handle_store_event(now, event);
        }
        fed
    }

    /// Shares the core's figures with the other shards.
    pub(crate) fn share_figures(&self, core: &Core) {
        *self.shards.figures[self.index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = core.figures();
    }

    /// Queues a store request for the end of the drain loop.
    pub(crate) fn request(state: &mut State, request: StoreRequest) {
        state.pending.push(request);
    }
}
