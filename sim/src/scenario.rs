//! The scenarios: each builds a [`Setup`] from the run's generator, in a
//! short size (a few clients, for many seeds in CI) or a long one (many
//! clients, for `--long`), and says what its run must show besides the
//! invariants.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use tether_core::{Backoff, Channel, Instant, ServerConfig};

use crate::grants;
use crate::net::LinkProfile;
use crate::setup::{Backend, BackplaneSpec, ClientSpec, Fault, Setup};
use crate::world::Outcome;

/// How big a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// A few clients and a short fault window: many seeds in little time.
    Short,
    /// Many clients (10,000 in the restart storms) and longer windows.
    Long,
}

/// A named situation to simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Chat rooms with steady traffic, some connections reset and one peer
    /// vanishing without a word.
    SteadyChat,
    /// The node crashes and restarts under every client, which reconnect
    /// with the default backoff (1 s base, 1 s jitter).
    RestartStorm,
    /// The same crash, with clients whose backoff has no jitter.
    RestartStormNoJitter,
    /// A firehose channel (25 KB/s) with fast subscribers and one on a thin
    /// link (8 KB/s).
    SlowConsumer,
    /// A chat where one client's connection is reset again and again, and
    /// at last vanishes without a word.
    FlappingClient,
    /// Half the clients are cut off from the node for 5 to 70 s, then the
    /// partition heals.
    HealingPartition,
    /// Three nodes on a backplane, clients spread over them, steady chat
    /// with some connections reset and one peer vanishing.
    ClusterChat,
    /// Three nodes on a backplane that is unreachable for 5 s.
    BackplaneOutage,
    /// Three nodes on a backplane; one is cut off from it for 2 to 20 s,
    /// then the partition heals.
    BackplanePartition,
    /// The restart storm, with a feed channel that takes a token grant:
    /// while the node crashes and every client reconnects, applications
    /// refresh tokens that take the grant away or give it back, and the
    /// backend publishes on the feed throughout. No feed publication may
    /// reach a connection whose current token does not grant it.
    RefreshStorm,
    /// Three nodes on a backplane; one crashes for 20 s: its clients move
    /// to the others and recover from the central history, and a user
    /// whose only connection went silent with it leaves everywhere.
    ClusterCrash,
    /// One node of three shards (`threads = 3`) in front of one router,
    /// clients spread over the shards, steady chat with some connections
    /// reset and one peer vanishing.
    ShardedChat,
    /// The cluster chat on three nodes of two shards each, every node's
    /// router on the node's one link to the backplane, clients spread over
    /// every shard of every node.
    ShardedClusterChat,
    /// The backplane outage under nodes of two shards each.
    ShardedBackplaneOutage,
    /// The backplane partition under nodes of two shards each: every shard
    /// of the node cut off hears its link go down and come back, and the
    /// node restates its members in one `Rejoin`.
    ShardedBackplanePartition,
    /// The cluster crash under nodes of two shards each: the node goes
    /// down with both shards and its router.
    ShardedClusterCrash,
}

impl Scenario {
    /// Every scenario, in the order runs go through them.
    pub const ALL: [Scenario; 16] = [
        Scenario::SteadyChat,
        Scenario::RestartStorm,
        Scenario::RestartStormNoJitter,
        Scenario::SlowConsumer,
        Scenario::FlappingClient,
        Scenario::HealingPartition,
        Scenario::ClusterChat,
        Scenario::BackplaneOutage,
        Scenario::BackplanePartition,
        Scenario::ClusterCrash,
        Scenario::RefreshStorm,
        Scenario::ShardedChat,
        Scenario::ShardedClusterChat,
        Scenario::ShardedBackplaneOutage,
        Scenario::ShardedBackplanePartition,
        Scenario::ShardedClusterCrash,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::SteadyChat => "steady-chat",
            Scenario::RestartStorm => "restart-storm",
            Scenario::RestartStormNoJitter => "restart-storm-no-jitter",
            Scenario::SlowConsumer => "slow-consumer",
            Scenario::FlappingClient => "flapping-client",
            Scenario::HealingPartition => "healing-partition",
            Scenario::ClusterChat => "cluster-chat",
            Scenario::BackplaneOutage => "backplane-outage",
            Scenario::BackplanePartition => "backplane-partition",
            Scenario::ClusterCrash => "cluster-crash",
            Scenario::RefreshStorm => "refresh-storm",
            Scenario::ShardedChat => "sharded-chat",
            Scenario::ShardedClusterChat => "sharded-cluster-chat",
            Scenario::ShardedBackplaneOutage => "sharded-backplane-outage",
            Scenario::ShardedBackplanePartition => "sharded-backplane-partition",
            Scenario::ShardedClusterCrash => "sharded-cluster-crash",
        }
    }

    /// The scenario called `name`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The setup of this scenario, drawn from `rng`.
    pub fn setup(self, size: Size, rng: &mut fastrand::Rng) -> Setup {
        match self {
            Scenario::SteadyChat => steady_chat(size, rng),
            Scenario::RestartStorm => restart_storm(size, rng, Backoff::default()),
            Scenario::RestartStormNoJitter => {
                let backoff = Backoff {
                    jitter: Duration::ZERO,
                    ..Backoff::default()
                };
                restart_storm(size, rng, backoff)
            }
            Scenario::SlowConsumer => slow_consumer(size, rng),
            Scenario::FlappingClient => flapping_client(size, rng),
            Scenario::HealingPartition => healing_partition(size, rng),
            Scenario::ClusterChat => cluster_chat(size, rng),
            Scenario::BackplaneOutage => backplane_outage(size, rng),
            Scenario::BackplanePartition => backplane_partition(size, rng),
            Scenario::ClusterCrash => cluster_crash(size, rng),
            Scenario::RefreshStorm => refresh_storm(size, rng),
            Scenario::ShardedChat => sharded_chat(size, rng),
            Scenario::ShardedClusterChat => sharded(cluster_chat(size, rng)),
            Scenario::ShardedBackplaneOutage => sharded(backplane_outage(size, rng)),
            Scenario::ShardedBackplanePartition => sharded(backplane_partition(size, rng)),
            Scenario::ShardedClusterCrash => sharded(cluster_crash(size, rng)),
        }
    }

    /// What the run must have shown besides the invariants, as failures.
    pub fn expectations(self, outcome: &Outcome) -> Vec<String> {
        let mut failures = Vec::new();
        if outcome.figures.delivered == 0 {
            failures.push("no publication was delivered".to_owned());
        }
        match self {
            Scenario::RestartStorm | Scenario::RestartStormNoJitter => {
                if outcome.figures.all_resubscribed.is_none() {
                    failures.push("some client never subscribed again".to_owned());
                }
            }
            Scenario::SlowConsumer => {
                if outcome.slow_consumer_closes == 0 || outcome.dropped == 0 {
                    failures.push(format!(
                        "the slow consumer was not caught: {} drops, {} closes 4008",
                        outcome.dropped, outcome.slow_consumer_closes
                    ));
                }
            }
            Scenario::BackplaneOutage
            | Scenario::BackplanePartition
            | Scenario::ShardedBackplaneOutage
            | Scenario::ShardedBackplanePartition => {
                if outcome.unavailable == 0 {
                    failures.push("no request was refused UNAVAILABLE".to_owned());
                }
                if let Some(nodes) = self.links_cut() {
                    failures.extend(links_failed(outcome, nodes).err());
                }
            }
            Scenario::ClusterCrash | Scenario::ShardedClusterCrash => {
                if outcome.recovered == 0 {
                    failures.push("no client recovered from the central history".to_owned());
                }
                let crash = Instant::ZERO + CLUSTER_CRASH_AT;
                let bound = crash + ServerConfig::dev().presence_ttl;
                let left = outcome.leaves.iter().any(|(at, client, user)| {
                    *client == 0 && user == "u1" && *at > crash && *at <= bound
                });
                if !left {
                    failures.push(format!(
                        "u1 did not leave within presence_ttl of the crash: {:?}",
                        outcome.leaves
                    ));
                }
            }
            Scenario::RefreshStorm => {
                if outcome.revoked == 0 || outcome.feed_delivered == 0 {
                    failures.push(format!(
                        "the grants were not exercised: {} refreshes took one away, {} feed deliveries",
                        outcome.revoked, outcome.feed_delivered
                    ));
                }
            }
            Scenario::SteadyChat
            | Scenario::FlappingClient
            | Scenario::HealingPartition
            | Scenario::ClusterChat
            | Scenario::ShardedChat
            | Scenario::ShardedClusterChat => {}
        }
        failures
    }

    /// How many nodes of shards lose their link to the store: every one
    /// in the sharded outage, one in the sharded partition.
    fn links_cut(self) -> Option<usize> {
        match self {
            Scenario::ShardedBackplaneOutage => Some(CLUSTER_NODES),
            Scenario::ShardedBackplanePartition => Some(1),
            _ => None,
        }
    }
}

/// That `nodes` nodes of shards saw their link to the store fail, every
/// shard of each: each shard that heard `Down` heard `Up` after its last
/// one, with the other shards of its node, and the store got a `Rejoin`
/// from the node after that.
fn links_failed(outcome: &Outcome, nodes: usize) -> Result<(), String> {
    let mut last: BTreeMap<usize, (Instant, Option<Instant>)> = BTreeMap::new();
    for &(at, core, up) in &outcome.news {
        match (last.get_mut(&core), up) {
            (Some(news), true) => news.1 = Some(at),
            (_, false) => {
                last.insert(core, (at, None));
            }
            (None, true) => {}
        }
    }
    let cut: BTreeSet<usize> = last.keys().map(|core| core / SHARDS).collect();
    if cut.len() != nodes {
        return Err(format!("{} nodes' links failed, not {nodes}", cut.len()));
    }
    for node in cut {
        let mut back = Instant::ZERO;
        for core in node * SHARDS..(node + 1) * SHARDS {
            match last.get(&core) {
                Some(&(down, Some(up))) if up > down => back = back.max(up),
                news => return Err(format!("core {core} of node{node} heard {news:?}")),
            }
        }
        if !outcome
            .rejoins
            .iter()
            .any(|&(at, from)| from == node && at > back)
        {
            return Err(format!(
                "node{node} did not rejoin after its link came back"
            ));
        }
    }
    Ok(())
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const SECOND: Duration = Duration::from_secs(1);

/// The send buffer of every node socket: Linux's default `tcp_wmem`.
const SEND_BUFFER: usize = 16 * 1024;

/// A chat over `rooms` rooms: each client is in one or two rooms and
/// publishes about every `every`; every fourth client is a second
/// connection of the previous client's user. Links: 1 to 50 ms one way,
/// up to 10 ms of jitter, and writes cut into segments, small pieces or
/// single bytes.
fn chat_clients(
    count: usize,
    rooms: usize,
    every: Option<Duration>,
    ramp: Duration,
    rng: &mut fastrand::Rng,
) -> Vec<ClientSpec> {
    (0..count)
        .map(|index| {
            let user = if index % 4 == 3 { index - 1 } else { index };
            let mut channels = vec![room(rng.usize(..rooms))];
            if rng.u8(..4) == 0 {
                let other = room(rng.usize(..rooms));
                if other != channels[0] {
                    channels.push(other);
                }
            }
            ClientSpec {
                start: Instant::ZERO + random_below(ramp, rng),
                user: format!("u{user}"),
                feeds: false,
                node: 0,
                link: random_link(rng),
                channels,
                publish_every: every,
                backoff: Backoff::default(),
            }
        })
        .collect()
}

fn room(index: usize) -> Channel {
    Channel::new(&format!("room-{index}")).expect("a valid channel name")
}

fn random_link(rng: &mut fastrand::Rng) -> LinkProfile {
    let latency = Duration::from_millis(rng.u64(1..=50));
    let jitter = Duration::from_micros(rng.u64(..=10_000));
    LinkProfile {
        max_chunk: [1_460, 1_460, 200, 7][rng.usize(..4)],
        ..LinkProfile::lan(latency, jitter)
    }
}

fn random_below(bound: Duration, rng: &mut fastrand::Rng) -> Duration {
    crate::net::draw(bound, rng)
}

fn by_size(size: Size, short: u64, long: u64) -> u64 {
    match size {
        Size::Short => short,
        Size::Long => long,
    }
}

fn steady_chat(size: Size, rng: &mut fastrand::Rng) -> Setup {
    let count = by_size(size, 12, 300) as usize;
    let window = SECOND * by_size(size, 40, 120) as u32;
    let clients = chat_clients(count, count / 4, Some(2 * SECOND), 2 * SECOND, rng);
    let mut faults = Vec::new();
    for _ in 0..by_size(size, 3, 30) {
        let at = Instant::ZERO + 5 * SECOND + random_below(window - 5 * SECOND, rng);
        faults.push((
            at,
            Fault::Reset {
                client: rng.usize(..count),
            },
        ));
    }
    let at = Instant::ZERO + 5 * SECOND + random_below(window / 2, rng);
    faults.push((
        at,
        Fault::Vanish {
            client: rng.usize(..count),
        },
    ));
    Setup {
        server: ServerConfig::dev(),
        nodes: 1,
        shards: 1,
        backplane: None,
        send_buffer: SEND_BUFFER,
        clients,
        backend: None,
        faults,
        faults_end: Instant::ZERO + window,
        mark: Instant::ZERO,
    }
}

fn restart_storm(size: Size, rng: &mut fastrand::Rng, backoff: Backoff) -> Setup {
    let count = by_size(size, 100, 10_000) as usize;
    let ramp = SECOND * by_size(size, 2, 10) as u32;
    let mut clients = chat_clients(count, count / 100, Some(60 * SECOND), ramp, rng);
    for client in &mut clients {
        client.backoff = backoff.clone();
    }
    let crash = Instant::ZERO + ramp + 5 * SECOND;
    let down_for = 2 * SECOND;
    Setup {
        server: ServerConfig::dev(),
        nodes: 1,
        shards: 1,
        backplane: None,
        send_buffer: SEND_BUFFER,
        clients,
        backend: None,
        faults: vec![(crash, Fault::Crash { node: 0, down_for })],
        faults_end: crash + down_for,
        mark: crash,
    }
}

fn refresh_storm(size: Size, rng: &mut fastrand::Rng) -> Setup {
    let mut setup = restart_storm(size, rng, Backoff::default());
    let feed = Channel::new("feed:news").expect("a valid channel name");
    let count = setup.clients.len();
    for client in &mut setup.clients {
        client.channels.push(feed.clone());
        client.feeds = rng.u8(..4) != 0;
    }
    let start = Instant::ZERO + SECOND;
    let until = setup.faults_end + 10 * SECOND;
    for _ in 0..by_size(size, 60, 3_000) {
        let at = start + random_below(until - start, rng);
        let fault = Fault::Regrant {
            client: rng.usize(..count),
            granted: rng.bool(),
        };
        setup.faults.push((at, fault));
    }
    setup.faults_end = until;
    setup.server = grants::with_feeds(setup.server);
    setup.backend = Some(Backend {
        node: 0,
        channel: feed,
        every: Duration::from_millis(100),
        payload_len: 20,
        from: start,
        until,
    });
    setup
}

fn slow_consumer(size: Size, rng: &mut fastrand::Rng) -> Setup {
    let fast = by_size(size, 4, 50) as usize;
    let window = SECOND * by_size(size, 30, 120) as u32;
    let firehose = Channel::new("firehose").expect("a valid channel name");
    let mut clients = chat_clients(fast + 1, 1, None, SECOND, rng);
    for client in &mut clients {
        client.channels = vec![firehose.clone()];
        client.link.max_chunk = client.link.max_chunk.max(200);
    }
    clients[0].link.bandwidth = Some(8_000);
    // The firehose's payloads (one letter repeated) would compress to
    // almost nothing for the clients, which offer permessage-deflate; the
    // scenario is about the bytes a thin link cannot take.
    let server = ServerConfig {
        high_water: 64 * 1024,
        hard_limit: 256 * 1024,
        compression: false,
        ..ServerConfig::dev()
    };
    Setup {
        server,
        nodes: 1,
        shards: 1,
        backplane: None,
        send_buffer: SEND_BUFFER,
        clients,
        backend: Some(Backend {
            node: 0,
            channel: firehose,
            every: Duration::from_millis(20),
            payload_len: 500,
            from: Instant::ZERO + 2 * SECOND,
            until: Instant::ZERO + window,
        }),
        faults: Vec::new(),
        faults_end: Instant::ZERO + window,
        mark: Instant::ZERO,
    }
}

fn flapping_client(size: Size, rng: &mut fastrand::Rng) -> Setup {
    let count = by_size(size, 8, 100) as usize;
    let window = SECOND * by_size(size, 30, 120) as u32;
    let mut clients = chat_clients(count, 2, Some(2 * SECOND), SECOND, rng);
    clients[0].publish_every = Some(SECOND / 2);
    let mut faults = Vec::new();
    let mut at = Instant::ZERO + 3 * SECOND;
    while at < Instant::ZERO + window {
        faults.push((at, Fault::Reset { client: 0 }));
        at += Duration::from_millis(500) + random_below(5 * SECOND, rng);
    }
    faults.push((Instant::ZERO + window, Fault::Vanish { client: 0 }));
    Setup {
        server: ServerConfig::dev(),
        nodes: 1,
        shards: 1,
        backplane: None,
        send_buffer: SEND_BUFFER,
        clients,
        backend: None,
        faults,
        faults_end: Instant::ZERO + window,
        mark: Instant::ZERO,
    }
}

fn healing_partition(size: Size, rng: &mut fastrand::Rng) -> Setup {
    let count = by_size(size, 10, 200) as usize;
    let clients = chat_clients(count, 2, Some(2 * SECOND), SECOND, rng);
    let start = Instant::ZERO + 10 * SECOND;
    let heal = start + 5 * SECOND + random_below(65 * SECOND, rng);
    let faults = (0..count / 2)
        .map(|client| {
            (
                start,
                Fault::Partition {
                    client,
                    until: heal,
                },
            )
        })
        .collect();
    Setup {
        server: ServerConfig::dev(),
        nodes: 1,
        shards: 1,
        backplane: None,
        send_buffer: SEND_BUFFER,
        clients,
        backend: None,
        faults,
        faults_end: heal,
        mark: start,
    }
}

/// Nodes in a cluster.
const CLUSTER_NODES: usize = 3;

/// When the node crashes in `cluster-crash`.
const CLUSTER_CRASH_AT: Duration = Duration::from_secs(10);

/// A chat over a cluster: `chat_clients` spread over the nodes in turn,
/// with links of 0.2 to 2 ms (and up to 0.5 ms of jitter) between each
/// node and the backplane.
fn cluster(
    count: usize,
    rooms: usize,
    every: Duration,
    window: Duration,
    rng: &mut fastrand::Rng,
) -> Setup {
    let mut clients = chat_clients(count, rooms, Some(every), 2 * SECOND, rng);
    for (index, client) in clients.iter_mut().enumerate() {
        client.node = index % CLUSTER_NODES;
    }
    let latency = Duration::from_micros(rng.u64(200..=2_000));
    Setup {
        server: ServerConfig::dev(),
        nodes: CLUSTER_NODES,
        shards: 1,
        backplane: Some(BackplaneSpec {
            link: LinkProfile::lan(latency, Duration::from_micros(500)),
            two_streams: true,
        }),
        send_buffer: SEND_BUFFER,
        clients,
        backend: None,
        faults: Vec::new(),
        faults_end: Instant::ZERO + window,
        mark: Instant::ZERO,
    }
}

fn cluster_chat(size: Size, rng: &mut fastrand::Rng) -> Setup {
    let count = by_size(size, 12, 300) as usize;
    let window = SECOND * by_size(size, 30, 120) as u32;
    let mut setup = cluster(count, count / 4, 2 * SECOND, window, rng);
    for _ in 0..by_size(size, 3, 30) {
        let at = Instant::ZERO + 5 * SECOND + random_below(window - 5 * SECOND, rng);
        let client = rng.usize(..count);
        setup.faults.push((at, Fault::Reset { client }));
    }
    let at = Instant::ZERO + 5 * SECOND + random_below(window / 2, rng);
    let client = rng.usize(..count);
    setup.faults.push((at, Fault::Vanish { client }));
    setup
}

/// The cluster chat on the shards of one node: the same clients spread the
/// same way, the same faults, with the router in place of the backplane.
fn sharded_chat(size: Size, rng: &mut fastrand::Rng) -> Setup {
    let setup = cluster_chat(size, rng);
    Setup {
        nodes: 1,
        shards: CLUSTER_NODES,
        backplane: None,
        ..setup
    }
}

/// Shards per node in the sharded clusters.
const SHARDS: usize = 2;

/// A cluster scenario on nodes of [`SHARDS`] shards each: every client
/// stays on its node, on the node's shards in turn (client `i` of node
/// `i % nodes` on its shard `i / nodes % SHARDS`), so that every shard of
/// every node has clients and the scenario's faults strike the same
/// nodes.
fn sharded(setup: Setup) -> Setup {
    let mut setup = Setup {
        shards: SHARDS,
        ..setup
    };
    let nodes = setup.nodes;
    for (index, client) in setup.clients.iter_mut().enumerate() {
        client.node = client.node * SHARDS + index / nodes % SHARDS;
    }
    setup
}

/// The store is unreachable for 5 s, 10 to 11 s in. Leases last half of a
/// `presence_ttl` of 60 s here, so they outlive the outage: with the
/// default 15 s, leases lapse during it, and the departures and returns
/// this announces are lost on the nodes that do not follow yet (see
/// `tests/findings.rs`).
fn backplane_outage(size: Size, rng: &mut fastrand::Rng) -> Setup {
    let count = by_size(size, 9, 300) as usize;
    let mut setup = cluster(count, 2, SECOND, 20 * SECOND, rng);
    setup.server.presence_ttl = 60 * SECOND;
    let start = Instant::ZERO + 10 * SECOND + random_below(SECOND, rng);
    let until = start + 5 * SECOND;
    setup.faults = vec![(start, Fault::BackplaneOutage { until })];
    setup.faults_end = until;
    setup.mark = start;
    setup
}

fn backplane_partition(size: Size, rng: &mut fastrand::Rng) -> Setup {
    let count = by_size(size, 9, 300) as usize;
    let mut setup = cluster(count, 2, SECOND, 30 * SECOND, rng);
    let start = Instant::ZERO + 8 * SECOND + random_below(2 * SECOND, rng);
    let until = start + 2 * SECOND + random_below(18 * SECOND, rng);
    let node = rng.usize(..CLUSTER_NODES);
    setup.faults = vec![(start, Fault::BackplanePartition { node, until })];
    setup.faults_end = until;
    setup.mark = start;
    setup
}

/// Node 1 crashes for 20 s. Client 1 (user `u1`, its only connection, on
/// node 1) goes silent at the same instant, so it takes the client half a
/// minute to notice: meanwhile `u1` must leave room 0, where client 0 (on
/// node 0) watches, within `presence_ttl`.
fn cluster_crash(size: Size, rng: &mut fastrand::Rng) -> Setup {
    let count = by_size(size, 12, 300) as usize;
    let mut setup = cluster(count, 3, 2 * SECOND, 40 * SECOND, rng);
    setup.clients[0].channels = vec![room(0)];
    setup.clients[1].channels = vec![room(0)];
    let crash = Instant::ZERO + CLUSTER_CRASH_AT;
    let down_for = 20 * SECOND;
    setup.faults = vec![
        (crash, Fault::Vanish { client: 1 }),
        (crash, Fault::Crash { node: 1, down_for }),
    ];
    setup.faults_end = crash + down_for;
    setup.mark = crash;
    setup
}
