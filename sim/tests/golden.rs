//! Same seed, same trace: the hash of each short scenario's event log for a
//! fixed seed. A change to the core or the simulator that changes what
//! happens changes these hashes; update them only after reading the new
//! trace (`cargo run -p tether-sim -- --seed 1 --scenario NAME --trace`).

use tether_sim::{Scenario, Size, run};

const GOLDEN: [(Scenario, u64); 16] = [
    (Scenario::SteadyChat, 0x47a2_b522_e3c6_836d),
    (Scenario::RestartStorm, 0xc961_ac9a_6bb9_39c0),
    (Scenario::RestartStormNoJitter, 0x62f9_47fc_0913_0cc5),
    (Scenario::SlowConsumer, 0x85a5_efe4_420a_9c6f),
    (Scenario::FlappingClient, 0x251a_a01a_99df_62f7),
    (Scenario::HealingPartition, 0x65e9_c46d_104d_72a4),
    (Scenario::ClusterChat, 0xa343_2dd2_384f_506c),
    (Scenario::BackplaneOutage, 0xa775_7384_2997_422c),
    (Scenario::BackplanePartition, 0x45a1_17d4_e0aa_af79),
    (Scenario::ClusterCrash, 0x65b3_2183_da0a_b713),
    (Scenario::RefreshStorm, 0xea95_9602_27dd_d6c1),
    (Scenario::ShardedChat, 0x76f9_93ff_451a_0d68),
    (Scenario::ShardedClusterChat, 0x718d_a53e_cfca_30c4),
    (Scenario::ShardedBackplaneOutage, 0x0111_7e2e_373c_722b),
    (Scenario::ShardedBackplanePartition, 0xca78_d14c_71cc_08b8),
    (Scenario::ShardedClusterCrash, 0xb627_6e6d_b168_dd47),
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

#[test]
fn a_run_of_nodes_of_shards_on_the_backplane_repeats_exactly() {
    let first = run(Scenario::ShardedBackplanePartition, Size::Short, 7).outcome;
    let again = run(Scenario::ShardedBackplanePartition, Size::Short, 7).outcome;
    assert_eq!((first.hash, first.lines), (again.hash, again.lines));
    assert_eq!(first.tail, again.tail);
    assert_eq!(first.rejoins, again.rejoins);
}
