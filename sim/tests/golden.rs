//! Same seed, same trace: the hash of each short scenario's event log for a
//! fixed seed. A change to the core or the simulator that changes what
//! happens changes these hashes; update them only after reading the new
//! trace (`cargo run -p tether-sim -- --seed 1 --scenario NAME --trace`).

use tether_sim::{Scenario, Size, run};

const GOLDEN: [(Scenario, u64); 10] = [
    (Scenario::SteadyChat, 0xd98a_02b0_9b7e_c1a5),
    (Scenario::RestartStorm, 0x46b0_57c5_9cb2_0283),
    (Scenario::RestartStormNoJitter, 0xfdc1_3853_3c03_b7b9),
    (Scenario::SlowConsumer, 0xc6e2_0c4e_8798_204b),
    (Scenario::FlappingClient, 0x4106_95d7_8711_b938),
    (Scenario::HealingPartition, 0x3df2_1188_c7f1_460d),
    (Scenario::ClusterChat, 0xd1b1_45ab_1d43_c33b),
    (Scenario::BackplaneOutage, 0x8f70_f29d_9805_78ca),
    (Scenario::BackplanePartition, 0x77c3_61d7_caee_8446),
    (Scenario::ClusterCrash, 0x084a_765a_18b7_38a6),
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
