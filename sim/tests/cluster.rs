//! Hand-built clusters on a backplane with links of exactly 1 ms: two
//! nodes, one client on each, and the backplane unreachable for 5 s; and
//! two nodes of two shards each, one silent client on each shard, and one
//! node cut off from the backplane for 5 s.

use std::time::Duration;

use tether_core::{BACKPLANE_BACKOFF, Backoff, Channel, Instant, ServerConfig};
use tether_sim::World;
use tether_sim::net::LinkProfile;
use tether_sim::setup::{BackplaneSpec, ClientSpec, Fault, HAND_OFF, STORE_TIMEOUT, Setup};

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

#[test]
fn a_cut_link_reaches_every_shard_of_its_node_only_and_the_node_rejoins_as_one() {
    let cut = Instant::ZERO + 10 * SECOND;
    let until = cut + 5 * SECOND;
    let setup = Setup {
        server: ServerConfig::dev(),
        nodes: 2,
        shards: 2,
        backplane: Some(BackplaneSpec {
            link: LinkProfile::lan(MS, Duration::ZERO),
            two_streams: true,
        }),
        send_buffer: 16 * 1024,
        clients: (0..4).map(|core| client(core, None)).collect(),
        backend: None,
        faults: vec![(cut, Fault::BackplanePartition { node: 0, until })],
        faults_end: until,
        mark: cut,
    };
    let outcome = World::new(setup, 5).keep_trace(usize::MAX).run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    let lines = &outcome.tail;

    // Each router opens its node's one link: one round trip.
    for router in ["router0", "router1"] {
        assert_eq!(
            instants_of(lines, &format!("{router} store up #1")),
            [Instant::ZERO + 2 * MS]
        );
    }
    // Node 0's lease renewals run every quarter of `presence_ttl` from
    // then; the first after the cut goes unanswered, and the router gives
    // up on the link STORE_TIMEOUT later.
    let renew = ServerConfig::dev().presence_ttl / 4;
    let lost = Instant::ZERO + 2 * MS + renew * 3;
    assert_eq!(instants_of(lines, "router0 store request lost")[0], lost);
    let down = instants_of(lines, "router0 store down")[0];
    assert_eq!(down, lost + STORE_TIMEOUT);
    assert!(instants_of(lines, "router1 store down").is_empty());

    // Both shards of node 0 hear it a hand-off later, those of node 1
    // never; all of node 0's hear the link come back after the heal.
    for core in 0..2 {
        let news: Vec<&(Instant, usize, bool)> = outcome
            .news
            .iter()
            .filter(|(_, at, _)| *at == core)
            .collect();
        let first_down = news.iter().find(|(_, _, up)| !up).expect("a Down").0;
        assert!(first_down > down && first_down <= down + HAND_OFF);
        let last = news.last().expect("news");
        assert!(last.2 && last.0 > until, "core {core} heard {news:?}");
    }
    for core in 2..4 {
        let heard: Vec<bool> = outcome
            .news
            .iter()
            .filter(|(_, at, _)| *at == core)
            .map(|(_, _, up)| *up)
            .collect();
        assert_eq!(heard, [true], "core {core} hears only the first Up");
    }

    // Back up, node 0 restates its members in one Rejoin, which leaves
    // as the last of its shards restates (at the instant it hears `Up`)
    // and crosses the 1 ms link; the store still held the node's lease,
    // so there is no second round.
    let back = *instants_of(lines, "router0 store up").last().unwrap();
    let last_up = outcome
        .news
        .iter()
        .filter(|(at, core, up)| *core < 2 && *up && *at >= back)
        .map(|(at, _, _)| *at)
        .max()
        .unwrap();
    let rejoins: Vec<Instant> = outcome
        .rejoins
        .iter()
        .filter(|(at, from)| *from == 0 && *at > back)
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(rejoins, [last_up + MS]);
}
