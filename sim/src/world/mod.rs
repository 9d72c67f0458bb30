//! The world of one run: client sessions, server nodes and the sockets
//! between them, driven by one event queue in virtual time.
//!
//! The world's `nodes` are its cores, each a core [`Server`]: a node of
//! its own each, or, with [`Setup::shards`] above 1, the shards of nodes,
//! each node's in front of its router (module `shard_side`). Sockets and
//! timers belong to cores; links to the shared store, crashes and
//! partitions from the store belong to nodes.
//!
//! # Theory of operation
//!
//! Every input to a machine is an [`Ev`] in the [`Schedule`], popped in
//! (instant, sequence) order. Handling it feeds one machine, and then that
//! machine is drained: a client session's socket actions and events, a
//! node's events, wakes and socket closes, until it has nothing more to
//! say; whatever must reach another machine goes through the network as a
//! new event at a later instant. Last, the machine's next deadline is put in
//! the schedule as a timer event (lazily: a timer that is no longer due pops,
//! finds nothing to do and re-arms the real one).
//!
//! Sockets are the world's own ([`SocketId`], never reused), because a node
//! that restarts starts counting its connection ids again. Each has two
//! [`Pipe`]s over its client's link. A node writes only while the sender
//! side of its pipe has room (the setup's `send_buffer`), so a slow link leaves the
//! backlog in the node's queue, where its backpressure policy sees it.
//!
//! Randomness: one generator, seeded once, draws every latency jitter,
//! chunk size, verdict delay and publication instant, in event order; the
//! sessions and nodes get their seeds from it. The same seed gives the same
//! run, event for event, and the [`Trace`] hash proves it.

mod backplane_side;
mod client_side;
mod convergence;
mod faults;
mod server_side;
mod shard_side;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use tether_core::{ClientSession, ConnId, Instant, Server, StoreEvent, StoreRequest};

use crate::backplane::Backplane;
use crate::check::{Checker, Violation};
use crate::net::Pipe;
use crate::schedule::Schedule;
use crate::setup::{Fault, Setup};
use crate::stats::{Figures, Stats};
use crate::trace::Trace;

/// Lines of the trace kept in full for a failure report.
pub const TRACE_TAIL: usize = 40;

/// Names a simulated socket; never reused within a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SocketId(u64);

/// Something that happens at an instant.
#[derive(Debug)]
enum Ev {
    /// A client's session is created and dials.
    Start(usize),
    /// A client session's deadline.
    ClientTimer(usize),
    /// A node's deadline.
    NodeTimer(usize),
    /// A client publishes.
    Publish(usize),
    /// The backend publishes.
    Backend,
    /// The connection request reaches the node.
    Syn(SocketId),
    /// The node's acceptance reaches the client.
    SynAck(SocketId),
    /// The node refused: the client's dial fails.
    Refused(SocketId),
    /// Bytes reach the node.
    ToServer(SocketId, Bytes),
    /// Bytes reach the client.
    ToClient(SocketId, Bytes),
    /// The end of the stream (or a reset) reaches the node.
    EndToServer(SocketId),
    /// The end of the stream (or a reset) reaches the client.
    EndToClient(SocketId),
    /// The node's socket has room again.
    Writable(SocketId),
    /// The authenticator's verdict on a token.
    Verdict {
        node: usize,
        incarnation: u32,
        conn: ConnId,
        token: String,
    },
    /// A crashed node starts again.
    Restart(usize),
    /// A fault strikes.
    Fault(Fault),
    /// A node's request reaches the shared store.
    ToStore {
        node: usize,
        generation: u64,
        request: StoreRequest,
    },
    /// An event of the shared store reaches a node.
    FromStore {
        node: usize,
        generation: u64,
        event: StoreEvent,
    },
    /// A node's attempt to connect to the store may have gone unanswered.
    ConnectTimeout { node: usize, generation: u64 },
    /// A node's adapter finds its connection to the store broken.
    StoreFailed { node: usize, generation: u64 },
    /// A shard's thread wakes up for the events its router holds for it.
    ShardWoken(usize),
    /// The deadline of a node's router.
    StoreTimer(usize),
}

/// A client and what the world knows about it.
#[derive(Debug)]
struct Client {
    session: Option<ClientSession>,
    /// The socket of the current dial or connection.
    socket: Option<SocketId>,
    /// The node and incarnation of the last dial, for attributing gaps.
    serving: Option<(usize, u32)>,
    /// Nothing passes between this client and the nodes before this.
    partitioned_until: Instant,
    timer_at: Option<Instant>,
    published: u64,
    /// A vanish struck while the client was not connected: its next
    /// connection goes silent right after its `auth_ack`.
    vanish_pending: bool,
    /// Whether the token of the session grants the feeds (its next `auth`).
    token_grants: bool,
    /// Whether the token of the last dial grants them (its `auth`).
    auth_grants: bool,
    /// Whether the token the connection is on grants them: the last `auth`
    /// after its `auth_ack`, the last refresh after its `refreshed`.
    grants: bool,
    /// Refresh requests out, with whether their token grants the feeds.
    refreshes: BTreeMap<String, bool>,
}

/// A core (a node, or a shard of one) and what the world knows about it.
#[derive(Debug)]
struct Node {
    /// `None` while crashed.
    server: Option<Server>,
    incarnation: u32,
    /// Its open sockets, by its own connection id.
    sockets: BTreeMap<ConnId, SocketId>,
    timer_at: Option<Instant>,
    /// Offsets the clients of this incarnation found missing in live
    /// delivery; never more than the node dropped.
    gaps: u64,
}

/// One TCP connection between a client and a node.
#[derive(Debug)]
struct Socket {
    client: usize,
    node: usize,
    incarnation: u32,
    /// The node's id for it, once accepted.
    conn: Option<ConnId>,
    client_open: bool,
    server_open: bool,
    /// Everything sent on it is lost and neither end is told.
    silent: bool,
    /// A `Writable` event is scheduled.
    writable_pending: bool,
    up: Pipe,
    down: Pipe,
}

/// The result of a run.
#[derive(Debug)]
pub struct Outcome {
    /// The hash of the event log.
    pub hash: u64,
    /// Lines in the event log.
    pub lines: u64,
    /// When the run ended.
    pub end: Instant,
    /// Broken invariants, in the order found.
    pub violations: Vec<Violation>,
    /// The last lines of the event log.
    pub tail: Vec<String>,
    /// The measured figures.
    pub figures: Figures,
    /// Channel messages the nodes dropped, over all incarnations.
    pub dropped: u64,
    /// Connections the nodes closed with 4008.
    pub slow_consumer_closes: u64,
    /// Connections the nodes cut for a missed heartbeat.
    pub heartbeat_timeouts: u64,
    /// Client requests refused `UNAVAILABLE` (the backplane was down).
    pub unavailable: u64,
    /// Subscriptions confirmed with `recovered: true`.
    pub recovered: u64,
    /// Refreshes that took the feeds' grant away, acknowledged.
    pub revoked: u64,
    /// Feed publications delivered.
    pub feed_delivered: u64,
    /// Every `leave` a client saw: when, which client, whose.
    pub leaves: Vec<(Instant, usize, String)>,
    /// Every `Up` (true) and `Down` (false) a core heard of the link to
    /// the shared store: when, which core.
    pub news: Vec<(Instant, usize, bool)>,
    /// Every `Rejoin` the shared store received: when, from which node.
    pub rejoins: Vec<(Instant, usize)>,
}

/// A run in progress.
#[derive(Debug)]
pub struct World {
    setup: Setup,
    now: Instant,
    rng: fastrand::Rng,
    schedule: Schedule<Ev>,
    clients: Vec<Client>,
    nodes: Vec<Node>,
    sockets: BTreeMap<SocketId, Socket>,
    sockets_opened: u64,
    checker: Checker,
    trace: Trace,
    stats: Stats,
    /// Counters of the node incarnations that crashed.
    retired: tether_core::Counters,
    /// The shared store of a cluster.
    store: Option<Backplane>,
    /// Each node's link to the store (empty without one).
    links: Vec<backplane_side::StoreLink>,
    /// Each node's router, when the nodes are made of shards.
    shards: Option<shard_side::Shards>,
    /// The store is unreachable before this.
    store_down_until: Instant,
    /// Requests the clients saw refused `UNAVAILABLE`.
    unavailable: u64,
    /// Subscriptions confirmed with `recovered: true`.
    recovered: u64,
    /// Refreshes that took the feeds' grant away, acknowledged.
    revoked: u64,
    /// Feed publications delivered.
    feed_delivered: u64,
    /// Every `leave` a client saw.
    leaves: Vec<(Instant, usize, String)>,
    /// Every `Up` and `Down` a core heard of the store's link.
    news: Vec<(Instant, usize, bool)>,
    /// Every `Rejoin` the store received, and from which node.
    rejoins: Vec<(Instant, usize)>,
    /// The rounds of restating each node of shards went through: its
    /// link came up, or its lease was found lapsed.
    rounds: Vec<u64>,
}

impl World {
    /// A world for `setup`, every random choice drawn from `seed`.
    pub fn new(setup: Setup, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut schedule = Schedule::default();
        for (index, spec) in setup.clients.iter().enumerate() {
            schedule.push(spec.start, Ev::Start(index));
        }
        for (at, fault) in &setup.faults {
            schedule.push(*at, Ev::Fault(fault.clone()));
        }
        if let Some(backend) = &setup.backend {
            schedule.push(backend.from, Ev::Backend);
        }
        let mut links = Vec::new();
        let mut shards = (setup.shards > 1).then(|| shard_side::Shards::new(&setup));
        let nodes = (0..setup.nodes)
            .flat_map(|node| boot(&setup, node, 0, &mut rng, &mut links, shards.as_mut()).0)
            .map(|server| Node {
                server: Some(server),
                incarnation: 0,
                sockets: BTreeMap::new(),
                timer_at: None,
                gaps: 0,
            })
            .collect();
        let clients = setup
            .clients
            .iter()
            .map(|spec| Client {
                session: None,
                socket: None,
                serving: None,
                partitioned_until: Instant::ZERO,
                timer_at: None,
                published: 0,
                vanish_pending: false,
                token_grants: spec.feeds,
                auth_grants: false,
                grants: false,
                refreshes: BTreeMap::new(),
            })
            .collect();
        let store = setup
            .backplane
            .as_ref()
            .map(|_| Backplane::new(&setup.server));
        World {
            rounds: vec![0; setup.nodes],
            checker: Checker::new(setup.clients.len()),
            stats: Stats::new(setup.clients.len(), setup.mark),
            setup,
            now: Instant::ZERO,
            rng,
            schedule,
            clients,
            nodes,
            sockets: BTreeMap::new(),
            sockets_opened: 0,
            trace: Trace::new(TRACE_TAIL),
            retired: Default::default(),
            store,
            links,
            shards,
            store_down_until: Instant::ZERO,
            unavailable: 0,
            recovered: 0,
            revoked: 0,
            feed_delivered: 0,
            leaves: Vec::new(),
            news: Vec::new(),
            rejoins: Vec::new(),
        }
    }

    /// Keeps the last `lines` lines of the trace for the outcome, instead
    /// of the default [`TRACE_TAIL`].
    pub fn keep_trace(mut self, lines: usize) -> Self {
        self.trace = Trace::new(lines);
        self
    }

    /// Plays the setup to its end, checks convergence there, and reports.
    pub fn run(mut self) -> Outcome {
        let end = self.setup.end();
        if self.sharded() {
            for node in 0..self.setup.nodes {
                self.settle(node);
            }
        }
        for core in 0..self.nodes.len() {
            self.drain_node(core);
        }
        while let Some((at, event)) = self.schedule.pop_until(end) {
            self.now = at;
            self.handle(event);
        }
        self.now = end;
        self.check_convergence();
        self.outcome()
    }

    fn handle(&mut self, event: Ev) {
        match event {
            Ev::Start(client) => self.start_client(client),
            Ev::ClientTimer(client) => self.client_timer(client),
            Ev::NodeTimer(node) => self.node_timer(node),
            Ev::Publish(client) => self.client_publishes(client),
            Ev::Backend => self.backend_publishes(),
            Ev::Syn(socket) => self.syn(socket),
            Ev::SynAck(socket) => self.syn_ack(socket),
            Ev::Refused(socket) => self.refused(socket),
            Ev::ToServer(socket, bytes) => self.bytes_reach_server(socket, &bytes),
            Ev::ToClient(socket, bytes) => self.bytes_reach_client(socket, &bytes),
            Ev::EndToServer(socket) => self.end_to_server(socket),
            Ev::EndToClient(socket) => self.end_to_client(socket),
            Ev::Writable(socket) => self.writable(socket),
            Ev::Verdict {
                node,
                incarnation,
                conn,
                token,
            } => self.verdict(node, incarnation, conn, token),
            Ev::Restart(node) => self.restart(node),
            Ev::Fault(fault) => self.strike(fault),
            Ev::ToStore {
                node,
                generation,
                request,
            } => self.store_receives(node, generation, request),
            Ev::FromStore {
                node,
                generation,
                event,
            } => self.node_hears_store(node, generation, event),
            Ev::ConnectTimeout { node, generation } => self.connect_timeout(node, generation),
            Ev::StoreFailed { node, generation } => self.store_link_failed(node, generation),
            Ev::ShardWoken(shard) => self.shard_woken(shard),
            Ev::StoreTimer(node) => self.store_timer(node),
        }
    }

    fn outcome(self) -> Outcome {
        let mut counters = self.retired;
        for server in self.nodes.iter().filter_map(|node| node.server.as_ref()) {
            add_counters(&mut counters, &server.counters());
        }
        let figures = self.stats.figures();
        Outcome {
            hash: self.trace.hash(),
            lines: self.trace.lines(),
            end: self.now,
            violations: self.checker.violations().to_vec(),
            tail: self.trace.tail().map(str::to_owned).collect(),
            figures,
            dropped: counters.messages_dropped_total,
            slow_consumer_closes: counters.slow_consumer_closes_total,
            heartbeat_timeouts: counters.heartbeat_timeouts_total,
            unavailable: self.unavailable,
            recovered: self.recovered,
            revoked: self.revoked,
            feed_delivered: self.feed_delivered,
            leaves: self.leaves,
            news: self.news,
            rejoins: self.rejoins,
        }
    }

    /// The one-way delay of a control packet (SYN, RST) on `client`'s link.
    fn packet_delay(&mut self, client: usize) -> Duration {
        let link = &self.setup.clients[client].link;
        link.latency + crate::net::draw(link.jitter, &mut self.rng)
    }

    /// When bytes sent now by or to `client` may start to move.
    fn departure(&self, client: usize) -> Instant {
        self.now.max(self.clients[client].partitioned_until)
    }

    fn new_socket(&mut self, client: usize, node: usize) -> SocketId {
        self.sockets_opened += 1;
        let id = SocketId(self.sockets_opened);
        let socket = Socket {
            client,
            node,
            incarnation: self.nodes[node].incarnation,
            conn: None,
            client_open: true,
            server_open: false,
            silent: false,
            writable_pending: false,
            up: Pipe::default(),
            down: Pipe::default(),
        };
        self.sockets.insert(id, socket);
        id
    }

    /// Forgets a socket once neither end holds it.
    fn collect(&mut self, id: SocketId) {
        if self
            .sockets
            .get(&id)
            .is_some_and(|socket| !socket.client_open && !socket.server_open)
        {
            self.sockets.remove(&id);
        }
    }

    fn record(&mut self, line: std::fmt::Arguments<'_>) {
        self.trace.record(self.now, line);
    }

    fn violation(&mut self, what: String) {
        self.record(format_args!("VIOLATION {what}"));
        self.checker.report(self.now, what);
    }
}

/// A node incarnation's cores and its name: one core with its own memory
/// store, or on the cluster's backplane under a name of its own; or, in
/// `shards`, a new router and the shards in front of it. On a backplane,
/// the node's link is set up in `links` under the node's name.
fn boot(
    setup: &Setup,
    node: usize,
    incarnation: u32,
    rng: &mut fastrand::Rng,
    links: &mut Vec<backplane_side::StoreLink>,
    shards: Option<&mut shard_side::Shards>,
) -> (Vec<Server>, String) {
    let (servers, name) = match shards {
        Some(shards) => {
            let name = shards.start(setup, node, rng.u64(..));
            let servers = setup
                .cores_of(node)
                .map(|core| {
                    let seed = node_seed(core, incarnation, rng);
                    let (_, shard) = setup.place(core);
                    Server::shard(setup.server.clone(), seed, shards.view(node, shard))
                        .expect("a valid node config")
                })
                .collect();
            (servers, name)
        }
        None => {
            let seed = node_seed(node, incarnation, rng);
            let server = match setup.backplane {
                Some(_) => Server::with_backplane(setup.server.clone(), seed),
                None => Server::new(setup.server.clone(), seed),
            };
            let server = server.expect("a valid node config");
            let name = server.node_id().to_owned();
            (vec![server], name)
        }
    };
    if setup.backplane.is_some() {
        match links.get_mut(node) {
            Some(link) => link.name = name.clone(),
            None => links.push(backplane_side::StoreLink::named(name.clone())),
        }
    }
    (servers, name)
}

/// A node incarnation's seed: drawn from the run's generator as a real node
/// would draw it from OS randomness, unique per incarnation.
fn node_seed(node: usize, incarnation: u32, rng: &mut fastrand::Rng) -> u64 {
    (u64::from(rng.u16(..)) << 32) | ((node as u64) << 24) | u64::from(incarnation)
}

fn add_counters(total: &mut tether_core::Counters, more: &tether_core::Counters) {
    total.messages_dropped_total += more.messages_dropped_total;
    total.slow_consumer_closes_total += more.slow_consumer_closes_total;
    total.heartbeat_timeouts_total += more.heartbeat_timeouts_total;
}
