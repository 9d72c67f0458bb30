//! Nodes of several shards (`threads`): the world's cores, each a core
//! [`Server`](tether_core::Server) made with `Server::shard`, in front of
//! their node's one [`Router`], driven as the adapters drive them.
//!
//! A shard's drain loop collects its store requests and, once its core
//! has nothing else to say, hands them to its node's router and feeds back
//! the events the router holds for it, at the same instant (the adapter
//! does both under one lock). Every other shard the router names is woken
//! a little later, as another thread would be ([`HAND_OFF`], drawn from
//! the run's generator), and then takes its events in the store's order.
//! Each router's own deadlines (history expiry, or the link's retries and
//! lease) are driven by one timer of the world per node. Each shard's
//! figures are shared after its drain, so that any shard's `/metrics`
//! tells its whole node.
//!
//! With a backplane, the router (not a shard) holds the node's one link
//! to the store: what it asks after any call into it goes over that link
//! in its order, and what the link brings goes into the router, which
//! wakes the shards it concerns (module `backplane_side`). A crash takes
//! the router down with every shard of its node; the node restarts with
//! a new router, under a new name.

use std::sync::{Arc, Mutex, PoisonError};

use tether_core::{Figures, Instant, NodeShards, Router, StoreEvent, StoreRequest};

use super::{Ev, World};
use crate::setup::{HAND_OFF, Setup};

/// What the shards of every node share, and what the world keeps for them.
#[derive(Debug)]
pub(super) struct Shards {
    /// Each node's router and figures.
    nodes: Vec<Routed>,
    /// Each core's requests since its last exchange.
    pending: Vec<Vec<StoreRequest>>,
}

/// One node's router, shared by its shards.
#[derive(Debug)]
struct Routed {
    /// `None` while the node is down.
    router: Option<Arc<Mutex<Router>>>,
    /// Each shard's figures as of its last drain.
    figures: Arc<Mutex<Vec<Figures>>>,
    /// When the router's timer is armed.
    timer_at: Option<Instant>,
}

impl Shards {
    /// The nodes of `setup`, each of `setup.shards` shards, none started
    /// yet ([`Shards::start`]).
    pub(super) fn new(setup: &Setup) -> Shards {
        let nodes = (0..setup.nodes)
            .map(|_| Routed {
                router: None,
                figures: Arc::new(Mutex::new(Vec::new())),
                timer_at: None,
            })
            .collect();
        Shards {
            nodes,
            pending: vec![Vec::new(); setup.cores()],
        }
    }

    /// Starts `node` (again) with a new router for its shards, in front of
    /// a store in memory or of the backplane of `setup`; `seed` names this
    /// run of the node. Returns the name the store knows the node by.
    pub(super) fn start(&mut self, setup: &Setup, node: usize, seed: u64) -> String {
        let router = match setup.backplane {
            Some(_) => Router::with_backplane(&setup.server, seed, setup.shards),
            None => Router::new(&setup.server, seed, setup.shards),
        };
        let name = router.node_id().to_owned();
        let routed = &mut self.nodes[node];
        routed.router = Some(Arc::new(Mutex::new(router)));
        routed.figures = Arc::new(Mutex::new(vec![Figures::default(); setup.shards]));
        routed.timer_at = None;
        for core in setup.cores_of(node) {
            self.pending[core].clear();
        }
        name
    }

    /// `node` crashed: its router is gone with its shards.
    pub(super) fn stop(&mut self, node: usize) {
        let routed = &mut self.nodes[node];
        routed.router = None;
        routed.timer_at = None;
    }

    /// What shard `shard` of `node` reaches its node through.
    pub(super) fn view(&self, node: usize, shard: usize) -> Box<dyn NodeShards> {
        let routed = &self.nodes[node];
        Box::new(View {
            shard,
            router: routed.router.clone().expect("a started node"),
            figures: routed.figures.clone(),
        })
    }

    /// Queues a request of `core` for its next exchange.
    pub(super) fn request(&mut self, core: usize, request: StoreRequest) {
        self.pending[core].push(request);
    }

    /// The router of `node`, while it runs.
    pub(super) fn router(&self, node: usize) -> Option<Arc<Mutex<Router>>> {
        self.nodes[node].router.clone()
    }
}

/// The node seen from one shard.
#[derive(Debug)]
struct View {
    shard: usize,
    router: Arc<Mutex<Router>>,
    figures: Arc<Mutex<Vec<Figures>>>,
}

impl NodeShards for View {
    fn with_router(&self, call: &mut dyn FnMut(&mut Router)) {
        call(&mut lock(&self.router));
    }

    fn others(&self) -> Figures {
        let figures = self.figures.lock().unwrap_or_else(PoisonError::into_inner);
        let others = figures.iter().enumerate();
        others
            .filter(|(shard, _)| *shard != self.shard)
            .fold(Figures::default(), |sum, (_, figures)| sum + *figures)
    }
}

fn lock(router: &Mutex<Router>) -> std::sync::MutexGuard<'_, Router> {
    router.lock().unwrap_or_else(PoisonError::into_inner)
}

impl World {
    /// Hands `core`'s requests to its node's router and feeds the events
    /// it holds for the shard back; `true` when the shard's core was fed.
    /// Other shards with events are woken.
    pub(super) fn exchange(&mut self, core: usize) -> bool {
        let now = self.now;
        let (node, shard) = self.setup.place(core);
        let Some(shards) = &mut self.shards else {
            return false;
        };
        let requests = std::mem::take(&mut shards.pending[core]);
        let Some(router) = shards.router(node) else {
            return false;
        };
        if requests.is_empty() {
            return false;
        }
        let mut events = Vec::new();
        let woken = {
            let mut router = lock(&router);
            for request in requests {
                router.handle_request(now, shard, request);
            }
            router.take_events(shard, &mut events);
            std::iter::from_fn(|| router.poll_woken())
                .filter(|&other| other != shard)
                .collect()
        };
        self.wake(node, woken);
        self.settle(node);
        self.feed(core, events)
    }

    /// A shard's thread wakes up for the events its router holds for it.
    pub(super) fn shard_woken(&mut self, core: usize) {
        let (node, shard) = self.setup.place(core);
        let Some(router) = self.shards.as_ref().and_then(|shards| shards.router(node)) else {
            return;
        };
        let mut events = Vec::new();
        lock(&router).take_events(shard, &mut events);
        self.feed(core, events);
        self.drain_node(core);
    }

    /// `node`'s router hears `event` from its link to the store (in the
    /// order the link brought them), and wakes the shards it concerns.
    pub(super) fn router_hears_store(&mut self, node: usize, event: StoreEvent) {
        let now = self.now;
        let Some(router) = self.shards.as_ref().and_then(|shards| shards.router(node)) else {
            return;
        };
        if let StoreEvent::Up | StoreEvent::Leased { lapsed: true } = event {
            self.rounds[node] += 1;
        }
        let woken = {
            let mut router = lock(&router);
            router.handle_store_event(now, event);
            std::iter::from_fn(|| router.poll_woken()).collect()
        };
        self.wake(node, woken);
        self.settle(node);
    }

    /// The deadline of `node`'s router: history and idempotency records
    /// expire, or the link is reopened or the lease renewed.
    pub(super) fn store_timer(&mut self, node: usize) {
        let now = self.now;
        let Some(shards) = &mut self.shards else {
            return;
        };
        let routed = &mut shards.nodes[node];
        if routed.timer_at.is_some_and(|at| at <= now) {
            routed.timer_at = None;
        }
        let Some(router) = routed.router.clone() else {
            return;
        };
        lock(&router).handle_timeout(now);
        self.settle(node);
    }

    /// After a call into `node`'s router: its requests go over the node's
    /// link, in order, and its timer is armed for its next deadline.
    pub(super) fn settle(&mut self, node: usize) {
        let Some(router) = self.shards.as_ref().and_then(|shards| shards.router(node)) else {
            return;
        };
        let (requests, next) = {
            let mut router = lock(&router);
            let requests: Vec<StoreRequest> =
                std::iter::from_fn(|| router.poll_store_request()).collect();
            (requests, router.poll_timeout())
        };
        for request in requests {
            self.send_to_store(node, request);
        }
        self.arm_store_timer(node, next);
    }

    /// Shares the figures of `core`'s server with the other shards of its
    /// node.
    pub(super) fn share_figures(&mut self, core: usize) {
        let (Some(shards), Some(server)) = (&self.shards, &self.nodes[core].server) else {
            return;
        };
        let (node, shard) = self.setup.place(core);
        let mut figures = shards.nodes[node]
            .figures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = figures.get_mut(shard) {
            *slot = server.figures();
        }
    }

    /// Whether the world's nodes are made of several shards each.
    pub(super) fn sharded(&self) -> bool {
        self.shards.is_some()
    }

    /// A node of shards restates its members in one `Rejoin` per round of
    /// restating (its link came up, or its lease lapsed), not one per
    /// shard: the router merges what its shards restate.
    pub(super) fn check_rejoins(&mut self) {
        if !self.sharded() {
            return;
        }
        for (node, &rounds) in self.rounds.clone().iter().enumerate() {
            let rejoins = self
                .rejoins
                .iter()
                .filter(|(_, from)| *from == node)
                .count() as u64;
            if rejoins > rounds {
                self.violation(format!(
                    "router{node} sent {rejoins} rejoins for {rounds} rounds of restating"
                ));
            }
        }
    }

    /// Whether `node`'s router holds a running link to the store; `None`
    /// when the node has no router in front of a backplane.
    pub(super) fn router_store_up(&self, node: usize) -> Option<bool> {
        self.setup.backplane.as_ref()?;
        let router = self.shards.as_ref()?.router(node)?;
        Some(lock(&router).is_store_up())
    }

    /// Schedules each of `node`'s shards in `woken` to take its events a
    /// hand-off later.
    fn wake(&mut self, node: usize, woken: Vec<usize>) {
        let first = self.setup.cores_of(node).start;
        for shard in woken {
            let at = self.now + crate::net::draw(HAND_OFF, &mut self.rng);
            self.schedule.push(at, Ev::ShardWoken(first + shard));
        }
    }

    fn arm_store_timer(&mut self, node: usize, next: Option<Instant>) {
        let (Some(shards), Some(at)) = (&mut self.shards, next) else {
            return;
        };
        let routed = &mut shards.nodes[node];
        if routed.timer_at.is_none_or(|armed| at < armed) {
            routed.timer_at = Some(at);
            self.schedule.push(at.max(self.now), Ev::StoreTimer(node));
        }
    }

    /// Feeds `events` to `core`'s server; `true` when there were any.
    fn feed(&mut self, core: usize, events: Vec<StoreEvent>) -> bool {
        let now = self.now;
        let fed = !events.is_empty();
        for event in &events {
            if let StoreEvent::Up | StoreEvent::Down = event {
                let up = matches!(event, StoreEvent::Up);
                self.news.push((now, core, up));
            }
        }
        if let Some(server) = &mut self.nodes[core].server {
            for event in events {
                server.handle_store_event(now, event);
            }
        }
        fed
    }
}
