//! The command line of `tether-loadgen`.

use clap::{Args, Parser, Subcommand};

/// Arguments of `tether-loadgen`: where to, and which scenario.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "tether-loadgen",
    version,
    about = "Puts a running server under load (loopback only) and reports throughput, latency, memory or connect times."
)]
pub struct BenchArgs {
    /// WebSocket URL of the server under test; only loopback addresses are
    /// accepted.
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// For a wss:// URL: trust the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// For a wss:// URL: accept whatever certificate the server presents
    /// (benchmarks of a self-signed server on loopback only).
    #[arg(long)]
    pub insecure: bool,
    /// A name for the server under test, copied into the JSON line.
    #[arg(long, value_name = "NAME")]
    pub peer: Option<String>,
    /// Threads that run the simulated clients.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// Offer permessage-deflate on every connection, as browsers do, and
    /// inflate what the server sends compressed.
    #[arg(long)]
    pub deflate: bool,
    /// The scenario to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The load scenarios.
#[derive(Clone, Debug, Subcommand)]
pub enum Scenario {
    /// S subscribers on one channel, one publisher sending M messages of B
    /// bytes: deliveries per second, end-to-end latency, loss and gaps.
    Fanout(FanoutArgs),
    /// C connections doing `ping`/`pong` round trips: round trips per
    /// second and their latency.
    Rtt(RttArgs),
    /// N authenticated, subscribed, idle connections: the server's resident
    /// memory per connection.
    Idle(IdleArgs),
    /// N clients connecting and authenticating at once: time until all are
    /// connected, and failures.
    Connect(ConnectArgs),
}

/// Arguments of the `fanout` scenario.
#[derive(Clone, Debug, Args)]
pub struct FanoutArgs {
    /// Subscribers on the channel.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Messages the publisher sends.
    #[arg(long, default_value_t = 2_000)]
    pub messages: usize,
    /// Size of each payload in bytes (at least 48: it carries a sequence
    /// number and a timestamp).
    #[arg(long, default_value_t = 100)]
    pub bytes: usize,
    /// Payloads shaped like chat messages (a sender with a name and an
    /// avatar, a room, a sentence of text) instead of padding, so that
    /// compression meets realistic text.
    #[arg(long)]
    pub chat: bool,
    /// Messages in flight: message n is published once every subscriber
    /// has received message n - window, so no server queue grows without
    /// bound and nothing needs to be dropped.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Seconds after which the run stops, whatever is still missing.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// WebSocket URL of a node for the subscribers (loopback only); repeat
    /// it to spread them over several nodes sharing a backplane,
    /// subscriber i on target i modulo their number. The publisher stays
    /// on `--url`. Without any, the subscribers connect to `--url` too.
    #[arg(long = "target", value_name = "URL")]
    pub targets: Vec<String>,
}

/// Arguments of the `rtt` scenario.
#[derive(Clone, Debug, Args)]
pub struct RttArgs {
    /// Connections, each with one ping outstanding at a time.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Process id of the server, whose `/proc/<pid>/stat` gives the CPU
    /// time it spent over the measurement (reported per round trip).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
}

/// Arguments of the `idle` scenario.
#[derive(Clone, Debug, Args)]
pub struct IdleArgs {
    /// Connections to open and hold.
    #[arg(long, default_value_t = 1_000)]
    pub connections: usize,
    /// Process id of the server, whose `/proc/<pid>/status` gives its
    /// resident memory before and after.
    #[arg(long, value_name = "PID")]
    pub server_pid: u32,
    /// Connections being opened at the same time.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Seconds to wait, with every connection open, before reading the
    /// server's memory.
    #[arg(long, default_value_t = 2)]
    pub settle: u64,
}

/// Arguments of the `connect` scenario.
#[derive(Clone, Debug, Args)]
pub struct ConnectArgs {
    /// Clients that connect at the same moment.
    #[arg(long, default_value_t = 1_000)]
    pub clients: usize,
    /// Seconds a client may take to be authenticated before it counts as
    /// failed.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}
