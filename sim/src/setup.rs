//! What a run is made of: the nodes' settings, every client with its link
//! and habits, the backend's publications, and the faults with their
//! instants. Scenarios build a [`Setup`]; the world plays it.

use std::time::Duration;

use tether_core::{BACKPLANE_BACKOFF, Backoff, Channel, ClientConfig, Instant, ServerConfig};

use crate::net::LinkProfile;

/// How long the backplane adapter waits for an answer before it counts the
/// link as failed (the Redis adapter's response timeout).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest a shard's thread takes to start on the events its node's
/// router holds for it, once woken.
pub const HAND_OFF: Duration = Duration::from_micros(200);

/// Everything a run needs besides its seed.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The settings of every node.
    pub server: ServerConfig,
    /// Server nodes.
    pub nodes: usize,
    /// The shards (`threads`) of each node. With 1, each node is one core
    /// [`tether_core::Server`] of its own. With more, each node's shards
    /// stand in front of the node's one [`tether_core::Router`]: its store
    /// in memory, or, with a backplane, its one link to the shared store.
    /// The world runs `nodes * shards` cores, named `node0`, `node1`, ...
    /// in node order (node `n`'s shards are cores `n * shards` to
    /// `n * shards + shards - 1`); a client dials a core.
    pub shards: usize,
    /// The shared store, when the nodes form a cluster over a backplane
    /// ([`crate::backplane`]); `None` gives each node a store of its own,
    /// in memory.
    pub backplane: Option<BackplaneSpec>,
    /// Bytes a node's socket holds that its link has not carried yet: the
    /// kernel's send buffer. A node writes only while there is room.
    pub send_buffer: usize,
    /// The clients, in the order of their indices.
    pub clients: Vec<ClientSpec>,
    /// Publications made by the application on a node (the HTTP API's
    /// path), at a steady rate.
    pub backend: Option<Backend>,
    /// Faults and the instants they strike.
    pub faults: Vec<(Instant, Fault)>,
    /// No fault strikes after this instant; convergence is checked a
    /// [`Setup::convergence_bound`] later, and the run ends there.
    pub faults_end: Instant,
    /// Reconnect figures are measured from this instant.
    pub mark: Instant,
}

/// How the nodes of a cluster reach their shared store.
#[derive(Clone, Debug)]
pub struct BackplaneSpec {
    /// Latency and jitter of every node's link to the store.
    pub link: LinkProfile,
    /// Whether the store's answers and its topic messages travel over two
    /// connections, each in order but in no order with each other, as with
    /// the Redis adapter (and in the cluster scenarios). Without, every
    /// event of the store reaches a node in the one order the store
    /// produced them.
    pub two_streams: bool,
}

/// One client: when it starts, as whom, over which link, doing what.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    /// When its session is created (and dials).
    pub start: Instant,
    /// Its user id.
    pub user: String,
    /// Whether its first token grants the feed channels
    /// ([`crate::grants`]).
    pub feeds: bool,
    /// The core it dials: a node, or one shard of a node (see
    /// [`Setup::shards`]); a connection lives its whole life there.
    pub node: usize,
    /// Its network link.
    pub link: LinkProfile,
    /// The channels it tracks from the start.
    pub channels: Vec<Channel>,
    /// Mean interval between its publications, if it publishes; each goes
    /// to one of its channels.
    pub publish_every: Option<Duration>,
    /// Its reconnect schedule.
    pub backoff: Backoff,
}

/// A steady stream of application publications on one node.
#[derive(Clone, Debug)]
pub struct Backend {
    /// The core that publishes (see [`Setup::shards`]).
    pub node: usize,
    /// The channel published to.
    pub channel: Channel,
    /// Interval between publications.
    pub every: Duration,
    /// Size of each payload, in bytes of JSON string content.
    pub payload_len: usize,
    /// The first publication.
    pub from: Instant,
    /// No publication after this.
    pub until: Instant,
}

/// Something that goes wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The node's process dies, with every shard of it: its sockets are
    /// reset, its memory lost; it starts again, as a new incarnation,
    /// `down_for` later.
    Crash {
        /// The node.
        node: usize,
        /// Time until the restart.
        down_for: Duration,
    },
    /// The client's current connection is reset in the middle of the
    /// network: both ends learn it one latency later.
    Reset {
        /// The client.
        client: usize,
    },
    /// The client's connection goes silent in both directions and neither
    /// end is told: a half-open connection, left to the heartbeats. When
    /// the client is not connected, its next connection goes silent right
    /// after its `auth_ack`.
    Vanish {
        /// The client.
        client: usize,
    },
    /// The shared store is unreachable until `until`: every node's link to
    /// it is reset, and connecting is refused until then. Its state
    /// survives.
    BackplaneOutage {
        /// When it is reachable again.
        until: Instant,
    },
    /// Nothing gets through between the node and the shared store until
    /// `until` (every shard of it, behind the node's one link): requests
    /// and events are lost, and the node finds out when a
    /// request it sends meanwhile (or a connection attempt) goes unanswered
    /// for the adapter's response timeout.
    BackplanePartition {
        /// The node cut off.
        node: usize,
        /// When the partition heals.
        until: Instant,
    },
    /// The client's application gets a new token, which grants the feed
    /// channels ([`crate::grants`]) or not, and refreshes the connection
    /// with it; granted, it also subscribes to the feeds of its spec again.
    Regrant {
        /// The client.
        client: usize,
        /// Whether the new token grants the feeds.
        granted: bool,
    },
    /// Nothing gets through between the client and any node until `until`:
    /// bytes wait and arrive after the heal, new connections are not
    /// answered.
    Partition {
        /// The client.
        client: usize,
        /// When the partition heals.
        until: Instant,
    },
}

impl Setup {
    /// The time after the last fault within which presence must have
    /// converged and every connection that is gone must have left the node.
    ///
    /// Three clocks run at once after the last fault, and the bound is the
    /// slowest of them plus a second for the network: the node detects a
    /// peer that vanished within two heartbeat intervals and lets the
    /// socket linger at most `close_timeout`; a client detects a dead
    /// connection after `ping_idle + pong_timeout` of silence, or gives up
    /// a dial after `connect_timeout`, and then waits at most the backoff's
    /// cap plus its jitter before it dials again.
    pub fn convergence_bound(&self) -> Duration {
        let client = ClientConfig::new("", "");
        let backoff = self
            .clients
            .iter()
            .map(|spec| spec.backoff.cap + spec.backoff.jitter)
            .max()
            .unwrap_or_default();
        let node = self.server.heartbeat_interval * 2 + self.server.close_timeout;
        let silence = client.ping_idle + client.pong_timeout + backoff;
        let dial = client.connect_timeout + backoff;
        let store = match self.backplane {
            Some(_) => {
                let reconnect = STORE_TIMEOUT + BACKPLANE_BACKOFF.cap + BACKPLANE_BACKOFF.jitter;
                reconnect.max(self.server.presence_ttl)
            }
            None => Duration::ZERO,
        };
        node.max(silence).max(dial).max(store) + Duration::from_secs(1)
    }

    /// The cores the world runs: every shard of every node.
    pub fn cores(&self) -> usize {
        self.nodes * self.shards
    }

    /// The cores that are node `node`'s shards.
    pub fn cores_of(&self, node: usize) -> std::ops::Range<usize> {
        node * self.shards..(node + 1) * self.shards
    }

    /// Where core `core` stands: its node, and which of the node's shards
    /// it is.
    pub fn place(&self, core: usize) -> (usize, usize) {
        (core / self.shards, core % self.shards)
    }

    /// The instant the run ends and convergence is checked.
    pub fn end(&self) -> Instant {
        self.faults_end + self.convergence_bound()
    }
}
