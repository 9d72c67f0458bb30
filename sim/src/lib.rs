//! Deterministic simulation of Tether: many client sessions and server
//! nodes, wired through a simulated network with faults, in one process, in
//! virtual time, from one seed.
//!
//! Everything that runs is the real sans-IO core: [`ClientSession`]s dial,
//! upgrade, authenticate, subscribe and publish over bytes that pass through
//! each node's [`Server`] (connection machines and hub). The simulator only
//! moves those bytes, with latency, jitter, random splits and bandwidth
//! limits, and makes things go wrong: resets, peers that vanish, partitions,
//! crashes. Same seed, same run: the [`trace`] of every run hashes to the
//! same value, so a failing seed replays exactly with
//! `cargo run -p tether-sim -- --seed S --scenario NAME`.
//!
//! Nodes may share one [`backplane`]: an in-memory model of the Redis
//! store (central offsets, history, idempotency, epochs, presence leases,
//! routing to following nodes), reached over simulated links that can fail.
//! A node may be made of several shards (`threads`), each a core `Server`
//! of its own, in front of the node's one [`Router`]: its store in memory,
//! or its one link to the shared store.
//!
//! Invariants are checked while the run goes on ([`check`]) and at its end,
//! a convergence bound after the last fault ([`setup::Setup::convergence_bound`]).
//!
//! [`ClientSession`]: tether_core::ClientSession
//! [`Server`]: tether_core::Server
//! [`Router`]: tether_core::Router

pub mod backplane;
pub mod check;
pub mod grants;
pub mod net;
pub mod scenario;
pub mod schedule;
pub mod setup;
pub mod stats;
pub mod trace;
pub mod world;

pub use scenario::{Scenario, Size};
pub use world::{Outcome, World};

/// One finished run, with what it takes to replay it.
#[derive(Debug)]
pub struct Report {
    /// The scenario run.
    pub scenario: Scenario,
    /// Its size.
    pub size: Size,
    /// The seed.
    pub seed: u64,
    /// What happened.
    pub outcome: Outcome,
    /// Invariant violations and unmet expectations, in the order found.
    pub failures: Vec<String>,
}

impl Report {
    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let long = match self.size {
            Size::Short => "",
            Size::Long => " --long",
        };
        format!(
            "cargo run -p tether-sim -- --seed {} --scenario {}{long}",
            self.seed, self.scenario
        )
    }

    /// Whether the run broke nothing.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs `scenario` at `size` from `seed`.
pub fn run(scenario: Scenario, size: Size, seed: u64) -> Report {
    run_keeping(scenario, size, seed, world::TRACE_TAIL)
}

/// Runs `scenario` at `size` from `seed`, keeping the last `lines` lines
/// of the trace in the outcome.
pub fn run_keeping(scenario: Scenario, size: Size, seed: u64, lines: usize) -> Report {
    let mut rng = fastrand::Rng::with_seed(seed);
    let setup = scenario.setup(size, &mut rng);
    let outcome = World::new(setup, rng.u64(..)).keep_trace(lines).run();
    let mut failures: Vec<String> = outcome.violations.iter().map(ToString::to_string).collect();
    failures.extend(scenario.expectations(&outcome));
    Report {
        scenario,
        size,
        seed,
        outcome,
        failures,
    }
}
