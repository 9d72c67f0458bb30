//! The shards of one node (`threads`): the world's nodes, each a core
//! [`Server`](tether_core::Server) made with `Server::shard`, in front of
//! one [`Router`], driven as the adapters drive them.
//!
//! A shard's drain loop collects its store requests and, once its core
//! has nothing else to say, hands them to the router and feeds back the
//! events the router holds for it, at the same instant (the adapter does
//! both under one lock). Every other shard the router names is woken a
//! little later, as another thread would be ([`HAND_OFF`], drawn from the
//! run's generator), and then takes its events in the store's order. The
//! store's own deadlines (history expiry) are driven by one timer of the
//! world, once. Each shard's figures are shared after its drain, so that
//! any shard's `/metrics` tells the whole node.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tether_core::{Figures, Instant, NodeShards, Router, StoreEvent, StoreRequest};

use super::{Ev, World};
use crate::setup::Setup;

/// The longest a woken shard's thread takes to start on its events.
const HAND_OFF: Duration = Duration::from_micros(200);

/// What the shards share, and what the world keeps for them.
#[derive(Debug)]
pub(super) struct Shards {
    router: Arc<Mutex<Router>>,
    figures: Arc<Mutex<Vec<Figures>>>,
    /// Each shard's requests since its last exchange.
    pending: Vec<Vec<StoreRequest>>,
    /// When the store's timer is armed.
    timer_at: Option<Instant>,
}

impl Shards {
    /// The shards of one node with the settings of `setup`, its nodes
    /// being the shards; `seed` names the node.
    pub(super) fn new(setup: &Setup, seed: u64) -> Shards {
        Shards {
            router: Arc::new(Mutex::new(Router::new(&setup.server, seed, setup.nodes))),
            figures: Arc::new(Mutex::new(vec![Figures::default(); setup.nodes])),
            pending: vec![Vec::new(); setup.nodes],
            timer_at: None,
        }
    }

    /// What shard `shard`'s core reaches the node through.
    pub(super) fn view(&self, shard: usize) -> Box<dyn NodeShards> {
        Box::new(View {
            shard,
            router: self.router.clone(),
            figures: self.figures.clone(),
        })
    }

    /// Queues a request of `shard` for its next exchange.
    pub(super) fn request(&mut self, shard: usize, request: StoreRequest) {
        self.pending[shard].push(request);
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
        call(&mut self.router.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn others(&self) -> Figures {
        let figures = self.figures.lock().unwrap_or_else(PoisonError::into_inner);
        let others = figures.iter().enumerate();
        others
            .filter(|(shard, _)| *shard != self.shard)
            .fold(Figures::default(), |sum, (_, figures)| sum + *figures)
    }
}

impl World {
    /// Hands `shard`'s requests to the router and feeds the events it holds
    /// for the shard back; `true` when the shard's core was fed. Other
    /// shards with events are woken.
    pub(super) fn exchange(&mut self, shard: usize) -> bool {
        let now = self.now;
        let Some(shards) = &mut self.shards else {
            return false;
        };
        let requests = std::mem::take(&mut shards.pending[shard]);
        if requests.is_empty() {
            return false;
        }
        let mut events = Vec::new();
        let mut woken = Vec::new();
        let next = {
            let mut router = shards.router.lock().unwrap_or_else(PoisonError::into_inner);
            for request in requests {
                router.handle_request(now, shard, request);
            }
            router.take_events(shard, &mut events);
            while let Some(other) = router.poll_woken() {
                if other != shard {
                    woken.push(other);
                }
            }
            router.poll_timeout()
        };
        for other in woken {
            let at = now + crate::net::draw(HAND_OFF, &mut self.rng);
            self.schedule.push(at, Ev::ShardWoken(other));
        }
        self.arm_store_timer(next);
        self.feed(shard, events)
    }

    /// A shard's thread wakes up for the events the router holds for it.
    pub(super) fn shard_woken(&mut self, shard: usize) {
        let Some(shards) = &self.shards else {
            return;
        };
        let mut events = Vec::new();
        shards
            .router
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take_events(shard, &mut events);
        self.feed(shard, events);
        self.drain_node(shard);
    }

    /// The store's deadline: history and idempotency records expire.
    pub(super) fn store_timer(&mut self) {
        let now = self.now;
        let Some(shards) = &mut self.shards else {
            return;
        };
        if shards.timer_at.is_some_and(|at| at <= now) {
            shards.timer_at = None;
        }
        let next = {
            let mut router = shards.router.lock().unwrap_or_else(PoisonError::into_inner);
            router.handle_timeout(now);
            router.poll_timeout()
        };
        self.arm_store_timer(next);
    }

    /// Shares the figures of `shard`'s core with the other shards.
    pub(super) fn share_figures(&mut self, shard: usize) {
        let (Some(shards), Some(server)) = (&self.shards, &self.nodes[shard].server) else {
            return;
        };
        shards
            .figures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[shard] = server.figures();
    }

    /// Whether the world's nodes are the shards of one node.
    pub(super) fn sharded(&self) -> bool {
        self.shards.is_some()
    }

    fn arm_store_timer(&mut self, next: Option<Instant>) {
        let (Some(shards), Some(at)) = (&mut self.shards, next) else {
            return;
        };
        if shards.timer_at.is_none_or(|armed| at < armed) {
            shards.timer_at = Some(at);
            self.schedule.push(at.max(self.now), Ev::StoreTimer);
        }
    }

    /// Feeds `events` to `shard`'s core; `true` when there were any.
    fn feed(&mut self, shard: usize, events: Vec<StoreEvent>) -> bool {
        let now = self.now;
        let fed = !events.is_empty();
        if let Some(server) = &mut self.nodes[shard].server {
            for event in events {
                server.handle_store_event(now, event);
            }
        }
        fed
    }
}
