//! Same seed, same trace: the hash of each short scenario's event log for a
//! fixed seed. A change to the core or the simulator that changes what
//! happens changes these hashes; update them only after reading the new
//! trace (`cargo run -p tether-sim -- --seed 1 --scenario NAME --trace`).

use tether_sim::{Scenario, Size, run};

const GOLDEN: [(Scenario, u64); 10] = [
    (Scenario::SteadyChat, 0x8b9f_dca5_e4c4_badc),
    (Scenario::RestartStorm, 0xb8d5_b068_3d26_6269),
    (Scenario::RestartStormNoJitter, 0xe2f5_bfa2_f179_5889),
    (Scenario::SlowConsumer, 0xc6e2_0c4e_8798_204b),
    (Scenario::FlappingClient, 0x9eec_f751_280a_cc09),
    (Scenario::HealingPartition, 0x5d31_0a16_49a3_102f),
    (Scenario::ClusterChat, 0xe00d_2f84_7536_8197),
    (Scenario::BackplaneOutage, 0xa9fe_8d67_44bc_c7cb),
    (Scenario::BackplanePartition, 0x06f7_74fb_c350_4b53),
    (Scenario::ClusterCrash, 0x1b86_6e1e_d0eb_2b2d),
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
