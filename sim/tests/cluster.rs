//! A hand-built cluster: two nodes on a backplane with links of exactly
//! 1 ms, one client on each, and the backplane unreachable for 5 s.

use std::time::Duration;

use tether_core::{BACKPLANE_BACKOFF, Backoff, Channel, Instant, ServerConfig};
use tether_sim::World;
use tether_sim::net::LinkProfile;
use tether_sim::setup::{BackplaneSpec, ClientSpec, Fault, STORE_TIMEOUT, Setup};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

fn client(node: usize, publish_every: Option<Duration>) -> ClientSpec {
    ClientSpec {
        start: Instant::ZERO,
        user: format!("u{node}"),
        feeds: false,
        node,
        link: LinkProfile {
            max_chunk: 64 * 1024,
            ..LinkProfile::lan(10 * MS, Duration::ZERO)
        },
        channels: vec![Channel::new("news").unwrap()],
        publish_every,
        backoff: Backoff::default(),
    }
}

/// The instants (from the trace's microseconds) of the lines that contain
/// `needle`.
fn instants_of(lines: &[String], needle: &str) -> Vec<Instant> {
    lines
        .iter()
        .filter(|line| line.contains(needle))
        .map(|line| {
            let micros: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
            Instant::from_origin(Duration::from_micros(micros))
        })
        .collect()
}

#[test]
fn an_outage_refuses_publishes_and_the_cluster_comes_back_in_order() {
    let outage = Instant::ZERO + 10 * SECOND;
    let until = outage + 5 * SECOND;
    let setup = Setup {
        server: ServerConfig {
            presence_ttl: 60 * SECOND,
            ..ServerConfig::dev()
        },
        nodes: 2,
        shards: 1,
        backplane: Some(BackplaneSpec {
            link: LinkProfile::lan(MS, Duration::ZERO),
            two_streams: false,
        }),
        send_buffer: 16 * 1024,
        clients: vec![client(0, None), client(1, Some(SECOND))],
        backend: None,
        faults: vec![(outage, Fault::BackplaneOutage { until })],
        faults_end: until,
        mark: outage,
    };
    let outcome = World::new(setup, 5).keep_trace(usize::MAX).run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    let lines = &outcome.tail;

    // Both nodes open their links at once: one round trip.
    for node in ["node0", "node1"] {
        assert_eq!(
            instants_of(lines, &format!("{node} store up #1"))[0],
            Instant::ZERO + 2 * MS
        );
        // The reset reaches each adapter one latency into the outage.
        let down = instants_of(lines, &format!("{node} store down"));
        assert_eq!(down[0], outage + MS);
        // Back within a refused attempt's backoff cap and jitter after it.
        let up = instants_of(lines, &format!("{node} store up"));
        let back = *up.last().unwrap();
        assert!(
            back > until,
            "{node} up at {back} before the end of the outage"
        );
        assert!(back <= until + BACKPLANE_BACKOFF.cap + BACKPLANE_BACKOFF.jitter + 2 * MS);
        assert!(back < until + STORE_TIMEOUT + BACKPLANE_BACKOFF.cap + BACKPLANE_BACKOFF.jitter);
    }
    assert!(outcome.unavailable > 0, "no publish was refused");

    // Client 0, on the other node, gets client 1's publications before
    // and after the outage, and never one during it.
    let received = instants_of(lines, "c0 message news@");
    assert!(received.iter().any(|at| *at < outage));
    assert!(received.iter().any(|at| *at > until));
    assert!(
        received
            .iter()
            .all(|at| *at < outage + 20 * MS || *at > until),
        "a publication crossed the outage: {received:?}"
    );
    assert_eq!(
        instants_of(lines, "c0 disconnected").len(),
        0,
        "connections stay during an outage"
    );
}
