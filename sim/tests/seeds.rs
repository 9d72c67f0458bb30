//! Many seeds of every short scenario: each run must keep every invariant.
//! A failure names the seed and the one command that replays it.

use tether_sim::{Scenario, Size, run};

/// Runs `seeds` seeds of `scenario` and fails with every failing seed's
/// report and replay command.
fn run_seeds(scenario: Scenario, seeds: u64) {
    let mut failures = Vec::new();
    for seed in 0..seeds {
        let report = run(scenario, Size::Short, seed);
        if !report.passed() {
            failures.push(format!(
                "{scenario} seed {seed}:\n  {}\n  replay: {}",
                report.failures.join("\n  "),
                report.replay_command()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn steady_chat_keeps_every_invariant() {
    run_seeds(Scenario::SteadyChat, 80);
}

#[test]
fn flapping_client_keeps_every_invariant() {
    run_seeds(Scenario::FlappingClient, 80);
}

#[test]
fn healing_partition_keeps_every_invariant() {
    run_seeds(Scenario::HealingPartition, 80);
}

#[test]
fn slow_consumer_is_caught_and_keeps_every_invariant() {
    run_seeds(Scenario::SlowConsumer, 30);
}

#[test]
fn restart_storm_keeps_every_invariant() {
    run_seeds(Scenario::RestartStorm, 12);
}

#[test]
fn restart_storm_without_jitter_keeps_every_invariant() {
    run_seeds(Scenario::RestartStormNoJitter, 12);
}

#[test]
fn cluster_chat_keeps_every_invariant() {
    run_seeds(Scenario::ClusterChat, 30);
}

#[test]
fn backplane_outage_keeps_every_invariant() {
    run_seeds(Scenario::BackplaneOutage, 30);
}

#[test]
fn backplane_partition_keeps_every_invariant() {
    run_seeds(Scenario::BackplanePartition, 30);
}

#[test]
fn cluster_crash_keeps_every_invariant() {
    run_seeds(Scenario::ClusterCrash, 30);
}

#[test]
fn refresh_storm_keeps_grants_and_every_invariant() {
    run_seeds(Scenario::RefreshStorm, 12);
}

#[test]
fn sharded_chat_keeps_every_invariant() {
    run_seeds(Scenario::ShardedChat, 30);
}

#[test]
fn sharded_cluster_chat_keeps_every_invariant() {
    run_seeds(Scenario::ShardedClusterChat, 8);
}

#[test]
fn sharded_backplane_outage_keeps_every_invariant() {
    run_seeds(Scenario::ShardedBackplaneOutage, 8);
}

#[test]
fn sharded_backplane_partition_keeps_every_invariant() {
    run_seeds(Scenario::ShardedBackplanePartition, 8);
}

#[test]
fn sharded_cluster_crash_keeps_every_invariant() {
    run_seeds(Scenario::ShardedClusterCrash, 8);
}
