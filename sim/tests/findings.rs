//! Defects the simulator found in the core, kept as regression tests.

use tether_core::ServerConfig;
use tether_sim::{Scenario, Size, World};

/// A consumer that takes a sixth of a firehose behind a socket buffer as
/// large as `high_water` must be closed 4008, like one behind a small
/// buffer: its messages are being dropped all along.
///
/// It was not, on most seeds, while half of `high_water` alone ended a slow
/// spell: drops cap the queue near `high_water`, each batch the socket takes
/// leaves it at about half, and the slow timer restarted with every batch.
/// A spell with drops now ends only when the queue is drained.
#[test]
fn a_trickle_consumer_behind_a_large_socket_buffer_is_closed() {
    let mut uncaught = Vec::new();
    for seed in 0..10 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut setup = Scenario::SlowConsumer.setup(Size::Short, &mut rng);
        setup.server = ServerConfig {
            high_water: 16 * 1024,
            hard_limit: 64 * 1024,
            max_payload: 32 * 1024,
            ..setup.server
        };
        let outcome = World::new(setup, rng.u64(..)).run();
        assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
        if outcome.slow_consumer_closes == 0 {
            uncaught.push((seed, outcome.dropped));
        }
    }
    assert!(
        uncaught.is_empty(),
        "(seed, messages dropped) with no close 4008: {uncaught:?}"
    );
}

/// The violations of `scenario` over seeds 0 to 4, with `adjust` applied
/// to each setup.
fn violations_with(
    scenario: Scenario,
    adjust: impl Fn(&mut tether_sim::setup::Setup),
) -> Vec<String> {
    (0..5)
        .flat_map(|seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut setup = scenario.setup(Size::Short, &mut rng);
            adjust(&mut setup);
            let outcome = World::new(setup, rng.u64(..)).run();
            outcome
                .violations
                .into_iter()
                .map(move |v| format!("seed {seed}: {v}"))
        })
        .collect()
}

/// With the Redis adapter, a store's answers and its pub/sub messages
/// travel over two connections. A new subscriber's own `join` (published
/// by its `Join`, before the read that answers its `subscribe`) could then
/// arrive after the answer, whose snapshot already held the user: the
/// subscriber, active by then, heard a `join` of a user it had in its view.
/// Presence changes and snapshots now carry the store's presence versions,
/// and each local channel keeps one view ordered by them.
#[test]
fn a_subscriber_never_hears_a_join_of_a_user_in_its_snapshot() {
    let violations = violations_with(Scenario::ClusterChat, |setup| {
        if let Some(backplane) = &mut setup.backplane {
            backplane.two_streams = true;
        }
    });
    assert!(violations.is_empty(), "{violations:#?}");
}

/// With the default `presence_ttl` (15 s), leases lapse during a 5 s
/// outage of the store. The first node back removes the others' presence
/// and announces their users' departures, and the others' rejoins announce
/// them again; a node that does not follow its channels yet (its link is
/// still down, or it renews its lease before it follows) misses the
/// departures, and its subscribers then hear a `join` of a user they still
/// have. Open: after the link is back the hub sends no fresh snapshot, so
/// the views stay wrong wherever a change was missed.
#[test]
fn presence_deltas_stay_consistent_across_a_backplane_outage_with_short_leases() {
    let violations = violations_with(Scenario::BackplaneOutage, |setup| {
        setup.server.presence_ttl = ServerConfig::dev().presence_ttl;
    });
    assert!(violations.is_empty(), "{violations:#?}");
}

/// A client that comes back recovers two channels in one go. Its first
/// subscription's answer lags the node and is asked again; the second's
/// is current, but its `subscribed` (and replay) waits in the
/// connection's reply order behind the first. The subscriber was let into
/// the second channel's deliveries at once, so its next publications
/// reached the client before its own `subscribed` and replay, and the
/// client, already past them, lost the replay (seed 169 of
/// `sharded-cluster-chat`: offsets 14 to 77 of a channel). An answer that
/// waits behind an earlier reply is now held until its turn, and admitted
/// then (module `core/src/hub/store_events.rs`).
#[test]
fn a_recovery_held_behind_an_earlier_reply_delivers_its_replay_first() {
    let report = tether_sim::run(Scenario::ShardedClusterChat, Size::Short, 169);
    assert!(report.passed(), "{:#?}", report.failures);
}
