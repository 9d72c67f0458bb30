//! The links between the nodes and the shared store: a node's requests
//! travel to the [`Backplane`] model over its link, the model's answers and
//! topic messages travel back, and outages and partitions break the links
//! as a Redis outage or a lost route would.
//!
//! A node of several shards has one link, held by its router: the
//! router's requests go over it and what it brings goes into the router
//! (module `shard_side`), never to a shard directly; its failure reaches
//! every shard of the node through the router.
//!
//! Each node's link is a sequence of connections (generations). A
//! `Connect` opens a new one: answered `Up` one round trip later, or
//! refused (`Down`) one round trip later while the store is unreachable,
//! or left unanswered (`Down` after [`STORE_TIMEOUT`]) across a partition.
//! Requests go out in order over one stream, and answers and topic
//! messages come back in the order the store produced them, or, with
//! [`BackplaneSpec::two_streams`], over two streams (the Redis adapter's
//! command and pub/sub connections), each in order, in no fixed order
//! between them. Requests
//! made while the adapter has no open connection are dropped (the core has
//! answered them already); a request sent into a partition makes the
//! adapter give up on the link [`STORE_TIMEOUT`] later (the lease renewal,
//! every quarter of `presence_ttl`, guarantees one; an answer lost to a
//! partition that began after its request left does not count). Nothing of a connection
//! that failed reaches the node afterwards.

use tether_core::{StoreEvent, StoreRequest};

use crate::backplane::{Backplane, Delivery};
use crate::net::Pipe;
use crate::setup::STORE_TIMEOUT;

use super::{Ev, World};

/// A node's link to the shared store.
#[derive(Debug, Default)]
pub(super) struct StoreLink {
    /// The node's name in the store: unique per incarnation.
    pub(super) name: String,
    /// The current connection; every open attempt and failure starts a
    /// new one.
    pub(super) generation: u64,
    pub(super) state: LinkState,
    /// Nothing passes between the node and the store before this.
    pub(super) partitioned_until: tether_core::Instant,
    /// A failure is already scheduled for a lost request.
    timeout_armed: bool,
    requests: Pipe,
    replies: Pipe,
    messages: Pipe,
}

/// What the adapter knows of its connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum LinkState {
    /// No connection; requests are dropped.
    #[default]
    Closed,
    /// A `Connect` is out.
    Connecting,
    /// The connection carries requests.
    Open,
}

impl StoreLink {
    /// A closed link for the node named `name`.
    pub(super) fn named(name: String) -> Self {
        StoreLink {
            name,
            ..StoreLink::default()
        }
    }

    /// Starts a new connection: whatever belonged to the old one is void.
    fn renew(&mut self, state: LinkState) {
        self.generation += 1;
        self.state = state;
        self.timeout_armed = false;
        self.requests = Pipe::default();
        self.replies = Pipe::default();
        self.messages = Pipe::default();
    }
}

impl World {
    /// A request the node made: on its way to the store, or lost.
    pub(super) fn send_to_store(&mut self, node: usize, request: StoreRequest) {
        let now = self.now;
        let Some(spec) = self.setup.backplane.clone() else {
            return;
        };
        let link = &mut self.links[node];
        let partitioned = link.partitioned_until > now;
        if matches!(request, StoreRequest::Connect) {
            link.renew(LinkState::Connecting);
            let generation = link.generation;
            if !partitioned {
                let at = link.requests.send_end(now, &spec.link, &mut self.rng);
                self.schedule.push(
                    at,
                    Ev::ToStore {
                        node,
                        generation,
                        request,
                    },
                );
            }
            self.schedule
                .push(now + STORE_TIMEOUT, Ev::ConnectTimeout { node, generation });
            self.store_mut().drop_link(node);
            let owner = self.link_owner();
            self.record(format_args!("{owner}{node} store connect #{generation}"));
            return;
        }
        match link.state {
            LinkState::Open if partitioned => {
                if !link.timeout_armed {
                    link.timeout_armed = true;
                    let generation = link.generation;
                    self.schedule
                        .push(now + STORE_TIMEOUT, Ev::StoreFailed { node, generation });
                }
                let owner = self.link_owner();
                self.record(format_args!("{owner}{node} store request lost"));
            }
            LinkState::Open => {
                let generation = link.generation;
                let at = link.requests.send_end(now, &spec.link, &mut self.rng);
                self.schedule.push(
                    at,
                    Ev::ToStore {
                        node,
                        generation,
                        request,
                    },
                );
            }
            LinkState::Closed | LinkState::Connecting => {
                let owner = self.link_owner();
                self.record(format_args!("{owner}{node} store request dropped, no link"));
            }
        }
    }

    /// A request reaches the store.
    pub(super) fn store_receives(&mut self, node: usize, generation: u64, request: StoreRequest) {
        if self.links[node].generation != generation {
            return;
        }
        let now = self.now;
        if now < self.store_down_until {
            if matches!(request, StoreRequest::Connect) {
                let at = now + self.store_delay();
                self.schedule.push(at, Ev::StoreFailed { node, generation });
            }
            return;
        }
        if matches!(request, StoreRequest::Connect) {
            self.store_says(node, generation, false, StoreEvent::Up);
            return;
        }
        if matches!(request, StoreRequest::Rejoin { .. }) {
            self.rejoins.push((now, node));
        }
        let name = self.links[node].name.clone();
        let deliveries = self.store_mut().handle(now, &name, node, request);
        for delivery in deliveries {
            match delivery {
                Delivery::Reply(event) => self.store_says(node, generation, false, event),
                Delivery::Topic(channel, event) => {
                    for follower in self.store_mut().followers(&channel) {
                        let current = self.links[follower].generation;
                        self.store_says(follower, current, true, event.clone());
                    }
                }
                Delivery::Everyone(event) => {
                    for other in 0..self.links.len() {
                        let current = self.links[other].generation;
                        self.store_says(other, current, true, event.clone());
                    }
                }
            }
        }
    }

    /// The store sends `event` to the node over connection `generation`:
    /// on the pub/sub stream for topic messages, the command stream for
    /// answers.
    fn store_says(&mut self, node: usize, generation: u64, topic: bool, event: StoreEvent) {
        let Some(spec) = self.setup.backplane.clone() else {
            return;
        };
        let now = self.now;
        let link = &mut self.links[node];
        if link.partitioned_until > now || link.generation != generation {
            return;
        }
        let pipe = if topic && spec.two_streams {
            &mut link.messages
        } else {
            &mut link.replies
        };
        let at = pipe.send_end(now, &spec.link, &mut self.rng);
        self.schedule.push(
            at,
            Ev::FromStore {
                node,
                generation,
                event,
            },
        );
    }

    /// An event of the store reaches the node.
    pub(super) fn node_hears_store(&mut self, node: usize, generation: u64, event: StoreEvent) {
        let link = &mut self.links[node];
        if link.generation != generation || link.state == LinkState::Closed {
            return;
        }
        if matches!(event, StoreEvent::Up) {
            if link.state != LinkState::Connecting {
                return;
            }
            link.state = LinkState::Open;
            let owner = self.link_owner();
            self.record(format_args!("{owner}{node} store up #{generation}"));
        }
        self.node_hears(node, event);
    }

    /// A `Connect` went unanswered for the adapter's timeout.
    pub(super) fn connect_timeout(&mut self, node: usize, generation: u64) {
        let link = &self.links[node];
        if link.generation == generation && link.state == LinkState::Connecting {
            self.store_link_failed(node, generation);
        }
    }

    /// The adapter finds its connection broken (or refused): the node
    /// hears `Down`, and nothing more of that connection.
    pub(super) fn store_link_failed(&mut self, node: usize, generation: u64) {
        let link = &mut self.links[node];
        if link.generation != generation || link.state == LinkState::Closed {
            return;
        }
        link.renew(LinkState::Closed);
        self.store_mut().drop_link(node);
        let owner = self.link_owner();
        self.record(format_args!("{owner}{node} store down"));
        self.node_hears(node, StoreEvent::Down);
    }

    /// What the node's link brings reaches the node: its router, when it
    /// has shards, or its one core.
    fn node_hears(&mut self, node: usize, event: StoreEvent) {
        if self.sharded() {
            self.router_hears_store(node, event);
            return;
        }
        let now = self.now;
        if let StoreEvent::Up | StoreEvent::Down = event {
            let up = matches!(event, StoreEvent::Up);
            self.news.push((now, node, up));
        }
        if let Some(server) = &mut self.nodes[node].server {
            server.handle_store_event(now, event);
        }
        self.drain_node(node);
    }

    /// Whose link the trace's lines about it name: the node's own, or, for
    /// a node of shards, its router's (`nodeN` names core N there).
    fn link_owner(&self) -> &'static str {
        if self.sharded() { "router" } else { "node" }
    }

    /// The store becomes unreachable until `until`: every connection to it
    /// is reset, and each adapter hears it one latency later.
    pub(super) fn store_outage(&mut self, until: tether_core::Instant) {
        self.store_down_until = self.store_down_until.max(until);
        for node in 0..self.links.len() {
            self.store_mut().drop_link(node);
            let link = &self.links[node];
            if link.state == LinkState::Closed || link.partitioned_until > self.now {
                continue;
            }
            let generation = link.generation;
            let at = self.now + self.store_delay();
            self.schedule.push(at, Ev::StoreFailed { node, generation });
        }
    }

    /// The node crashed: its connection to the store is gone with it.
    pub(super) fn store_forgets(&mut self, node: usize) {
        if self.setup.backplane.is_none() {
            return;
        }
        self.links[node].renew(LinkState::Closed);
        self.store_mut().drop_link(node);
    }

    /// One way across a node's link to the store.
    fn store_delay(&mut self) -> std::time::Duration {
        let link = &self.setup.backplane.as_ref().expect("a cluster").link;
        link.latency + crate::net::draw(link.jitter, &mut self.rng)
    }

    fn store_mut(&mut self) -> &mut Backplane {
        self.store.as_mut().expect("a cluster has a store")
    }
}
