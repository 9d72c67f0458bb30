//! Same seed, same trace: the hash of each short scenario's event log for a
//! fixed seed. A change to the core or the simulator that changes what
//! happens changes these hashes; update them only after reading the new
//! trace (`cargo run -p tether-sim -- --seed 1 --scenario NAME --trace`).

use tether_sim::{Scenario, Size, run};

const GOLDEN: [(Scenario, u64); 12] = [
    (Scenario::SteadyChat, 0x99f8_9e31_565e_3e78),
    (Scenario::RestartStorm, 0x2561_22d7_8017_7288),
    (Scenario::RestartStormNoJitter, 0x205d_d473_12ee_f627),
    (Scenario::SlowConsumer, 0x4767_ade8_eda3_b5da),
    (Scenario::FlappingClient, 0xfb9b_bde3_9af9_8d02),
    (Scenario::HealingPartition, 0x5e8f_09cf_8d3b_a3f3),
    (Scenario::ClusterChat, 0x8be6_9bde_e7ce_94a8),
    (Scenario::BackplaneOutage, 0xa22e_7590_f5fb_f95d),
    (Scenario::BackplanePartition, 0xacc2_5f15_38d9_64b3),
    (Scenario::ClusterCrash, 0x8717_9203_7ba4_2947),
    (Scenario::RefreshStorm, 0xd9b6_78e2_8f20_4837),
    (Scenario::ShardedChat, 0xf697_4ced_b262_93fa),
];

#[test]
fn each_scenario_hashes_to_its_golden_value_for_seed_1() {
    let mismatches: Vec<String> = GOLDEN
        .iter()
        .filter_map(|&(scenario, golden)| {
            let hash = run(scenario, Size::Short, 1).outcome.hash;
            (hash != golden).then(|| format!("{scenario}: {hash:016x}, golden {golden:016x}"))
        })
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn a_run_repeats_exactly_and_another_seed_differs() {
    let first = run(Scenario::FlappingClient, Size::Short, 42).outcome;
    let again = run(Scenario::FlappingClient, Size::Short, 42).outcome;
    let other = run(Scenario::FlappingClient, Size::Short, 43).outcome;
    assert_eq!((first.hash, first.lines), (again.hash, again.lines));
    assert_eq!(first.tail, again.tail);
    assert_ne!(first.hash, other.hash);
}

#[test]
fn a_sharded_run_repeats_exactly() {
    let first = run(Scenario::ShardedChat, Size::Short, 7).outcome;
    let again = run(Scenario::ShardedChat, Size::Short, 7).outcome;
    assert_eq!((first.hash, first.lines), (again.hash, again.lines));
    assert_eq!(first.tail, again.tail);
}
