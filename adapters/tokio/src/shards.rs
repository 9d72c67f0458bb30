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
//! - One task drives the store's timeouts for the node (with a backplane:
//!   the link's retries and the node's lease).
//! - With a backplane the router stands in front of the node's one link
//!   ([`Router::with_backplane`]): the router's requests go to the
//!   backplane's task in the router's order (taken under the router's
//!   lock after every call into it), and one task feeds the backplane's
//!   events to the router and wakes the shards it names, as a single
//!   node carries its core's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tether_core::{
    Figures, Instant, NodeShards, Router, Server as Core, ServerConfig, StoreEvent, StoreRequest,
};
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
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
    /// The backplane task's requests, when the node has one, until the
    /// node stops.
    backplane: Mutex<Option<UnboundedSender<StoreRequest>>>,
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
    /// The node's seed, each shard's drawn from it.
    seed: u64,
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
    /// When `first` has a backplane already, the shards share its link.
    pub(crate) fn make(first: &Node, threads: usize) -> Vec<Arc<Node>> {
        let (config, seed, handler, start) = first.parts();
        let backplane = first.take_backplane();
        let router = match backplane {
            Some(_) => Router::with_backplane(&config, seed, threads),
            None => Router::new(&config, seed, threads),
        };
        let shards = Arc::new(Shards {
            router: Mutex::new(Routed {
                router,
                armed: None,
                seed,
            }),
            figures: (0..threads).map(|_| Mutex::default()).collect(),
            wakes: (0..threads).map(|_| Notify::new()).collect(),
            timer: Notify::new(),
            nodes: OnceLock::new(),
            turn: AtomicUsize::new(0),
            max_connections: config.max_connections,
            backplane: Mutex::new(backplane),
        });
        let nodes: Vec<Arc<Node>> = (0..threads)
            .map(|index| {
                let shard_seed = seed.wrapping_add(index as u64 + 1);
                let core = shards.core(&config, index);
                let link = ShardLink {
                    index,
                    shards: Arc::clone(&shards),
                };
                Arc::new(Node::new(core, shard_seed, handler.clone()).in_shard(link, start))
            })
            .collect();
        let _ = shards.nodes.set(nodes.clone());
        shards.settle(&mut shards.routed());
        nodes
    }

    /// The core of shard `index`, made with `config` in front of the
    /// router as it stands.
    fn core(self: &Arc<Self>, config: &ServerConfig, index: usize) -> Core {
        let view = View {
            shard: index,
            shards: Arc::clone(self),
        };
        let seed = self.routed().seed.wrapping_add(index as u64 + 1);
        Core::shard(config.clone(), seed, Box::new(view))
            .expect("the same config passed validation when the node was bound")
    }

    /// Puts the router in front of a backplane whose requests go to
    /// `requests`, and makes every shard's core anew in front of it;
    /// gives the node's id, the backplane's name for it.
    pub(crate) fn use_backplane(
        self: &Arc<Self>,
        config: &ServerConfig,
        requests: UnboundedSender<StoreRequest>,
    ) -> String {
        let node_id = {
            let mut routed = self.routed();
            let seed = routed.seed;
            routed.router = Router::with_backplane(config, seed, self.wakes.len());
            routed.router.node_id().to_owned()
        };
        *self
            .backplane
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(requests);
        for (index, node) in self.nodes().iter().enumerate() {
            let core = self.core(config, index);
            node.replace_core(core);
        }
        self.settle(&mut self.routed());
        node_id
    }

    /// Lets the backplane's task end once it carried what it holds: the
    /// node stopped.
    pub(crate) fn close_backplane(&self) {
        *self
            .backplane
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Feeds the backplane's events to the router, a batch at a time, and
    /// wakes the shards it names, until the backplane stops.
    pub(crate) async fn run_store_events(
        self: Arc<Self>,
        start: time::Instant,
        mut events: UnboundedReceiver<StoreEvent>,
    ) {
        while let Some(event) = events.recv().await {
            let mut woken = Vec::new();
            let poke = {
                let mut routed = self.routed();
                let now = Instant::from_origin(start.elapsed());
                routed.router.handle_store_event(now, event);
                while let Ok(event) = events.try_recv() {
                    routed.router.handle_store_event(now, event);
                }
                while let Some(shard) = routed.router.poll_woken() {
                    woken.push(shard);
                }
                self.settle(&mut routed)
            };
            for shard in woken {
                self.wakes[shard].notify_one();
            }
            if poke {
                self.timer.notify_one();
            }
        }
    }

    fn routed(&self) -> MutexGuard<'_, Routed> {
        self.router.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After a call into the router, under its lock: hands its requests
    /// to the backplane, in order, and returns whether the store's next
    /// deadline came earlier (the store's timer is to be poked).
    fn settle(&self, routed: &mut Routed) -> bool {
        if let Some(requests) = &*self
            .backplane
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            while let Some(request) = routed.router.poll_store_request() {
                let _ = requests.send(request);
            }
        }
        let next = routed.router.poll_timeout();
        let earlier = next.is_some() && (routed.armed.is_none() || next < routed.armed);
        if earlier {
            routed.armed = next;
        }
        earlier
    }

    /// Every shard's node.
    pub(crate) fn nodes(&self) -> &[Arc<Node>] {
        self.nodes.get().map_or(&[], Vec::as_slice)
    }

    /// The shard whose turn an accepted connection is, and whether the
    /// node had room for it (counted in the order of accepts).
    pub(crate) fn spread(&self) -> (Arc<Node>, bool) {
        let counted = self.routed().router.open_socket(self.max_connections);
        (self.next(), counted)
    }

    /// The shard whose turn the next connection is, uncounted: a
    /// WebSocket another server upgraded is counted by its shard's core.
    pub(crate) fn next(&self) -> Arc<Node> {
        let nodes = self.nodes();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed) % nodes.len();
        Arc::clone(&nodes[turn])
    }

    /// Waits until shard `index` has events in the router.
    pub(crate) async fn woken(&self, index: usize) {
        self.wakes[index].notified().await;
    }

    /// Expires the store's history and idempotency records at their
    /// deadlines, or reopens the backplane's link and renews the node's
    /// lease, for the whole node.
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
                routed.armed = None;
                self.settle(&mut routed);
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
        let poke;
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
            poke = self.shards.settle(&mut routed);
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
