//! Defects the simulator found in the core, kept as regression tests.

use tether_core::config::ServerConfig;
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
