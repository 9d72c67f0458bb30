//! Same seed, same trace: the hash of each short scenario's event log for a
//! fixed seed. A change to the core or the simulator that changes what
//! happens changes these hashes; update them only after reading the new
//! trace (`cargo run -p tether-sim -- --seed 1 --scenario NAME --trace`).

use tether_sim::{Scenario, Size, run};

const GOLDEN: [(Scenario, u64); 10] = [
    (Scenario::SteadyChat, 0x8b9f_dca5_e4c4_badc),
    (Scenario::RestartStorm, 0xb8d5_b068_3d26_6269),
    (Scenario::RestartStormNoJitter, 0xe2f5_bfa2_f179_5889),
    (Scenario::SlowConsumer, 0x5090_2a91_0ec4_db51),
    (Scenario::FlappingClient, 0x9eec_f751_280a_cc09),
    (Scenario::HealingPartition, 0x5d31_0a16_49a3_102f),
    (Scenario::ClusterChat, 0x8980_1210_307b_1341),
    (Scenario::BackplaneOutage, 0x1b6a_1a15_5421_12c6),
    (Scenario::BackplanePartition, 0x06cd_cd34_6729_4408),
    (Scenario::ClusterCrash, 0xcd5d_0134_987d_3f5c),
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
