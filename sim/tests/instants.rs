//! Deadlines in a hand-built world land at exact virtual instants: one
//! client on a 10 ms link without jitter, whose connection vanishes.

use std::time::Duration;

use tether_core::{Backoff, Channel, Instant, ServerConfig};
use tether_sim::World;
use tether_sim::net::LinkProfile;
use tether_sim::setup::{ClientSpec, Fault, Setup};

const MS: Duration = Duration::from_millis(1);

fn lonely_client(faults: Vec<(Instant, Fault)>, faults_end: Instant) -> Setup {
    Setup {
        server: ServerConfig::dev(),
        nodes: 1,
        shards: 1,
        backplane: None,
        send_buffer: 16 * 1024,
        clients: vec![ClientSpec {
            start: Instant::ZERO,
            user: "ann".into(),
            feeds: false,
            node: 0,
            link: LinkProfile {
                max_chunk: 64 * 1024,
                ..LinkProfile::lan(10 * MS, Duration::ZERO)
            },
            channels: vec![Channel::new("news").unwrap()],
            publish_every: None,
            backoff: Backoff::default(),
        }],
        backend: None,
        faults,
        faults_end,
        mark: Instant::ZERO,
    }
}

/// The instant (from the trace's microseconds) of the first line that
/// contains `needle`.
fn instant_of(lines: &[String], needle: &str) -> Instant {
    let line = lines
        .iter()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}"));
    let micros: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
    Instant::from_origin(Duration::from_micros(micros))
}

/// The delay of the reconnect announced as `attempt` (`#1`, `#2`, ...).
fn announced_delay(lines: &[String], attempt: &str) -> Duration {
    let needle = format!("reconnecting {attempt} in ");
    let line = lines.iter().find(|line| line.contains(&needle)).unwrap();
    let micros = line.rsplit(' ').next().unwrap().trim_end_matches("us");
    Duration::from_micros(micros.parse().unwrap())
}

#[test]
fn a_vanished_peer_is_detected_by_both_ends_at_their_exact_deadlines() {
    let vanish = Instant::ZERO + Duration::from_secs(5);
    let setup = lonely_client(vec![(vanish, Fault::Vanish { client: 0 })], vanish);
    let outcome = World::new(setup, 7).keep_trace(usize::MAX).run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    let lines = outcome.tail;

    // Dial at 0; SYN, SYN-ACK and the upgrade request take 10 ms each, so
    // the node's heartbeat starts at 30 ms: a Ping at 30.03 s goes
    // unanswered, and the next tick, at 60.03 s, cuts the connection.
    assert_eq!(instant_of(&lines, "c0 dial"), Instant::ZERO);
    assert_eq!(
        instant_of(&lines, "HeartbeatTimeout"),
        Instant::from_millis(60_030)
    );

    // The client last heard the node when its subscription was answered,
    // 20 ms after its auth_ack (subscribe out, answer back); 25 s of
    // silence later it pings, and 10 s after that it gives up.
    let connected = instant_of(&lines, "c0 connected");
    assert_eq!(instant_of(&lines, "c0 subscribed"), connected + 20 * MS);
    assert_eq!(
        instant_of(&lines, "heartbeat timeout reconnect=true"),
        connected + 20 * MS + Duration::from_secs(35)
    );
    assert_eq!(outcome.heartbeat_timeouts, 1);
}

#[test]
fn a_crashed_node_is_redialed_on_the_backoff_schedule() {
    let crash = Instant::ZERO + Duration::from_secs(5);
    let down_for = Duration::from_secs(3);
    let fault = Fault::Crash { node: 0, down_for };
    let setup = lonely_client(vec![(crash, fault)], crash + down_for);
    let outcome = World::new(setup, 11).keep_trace(usize::MAX).run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    let lines = outcome.tail;

    // The reset reaches the client 10 ms after the crash.
    assert_eq!(
        instant_of(&lines, "disconnected 1006 connection lost"),
        crash + 10 * MS
    );
    let dials: Vec<Instant> = lines
        .iter()
        .filter(|line| line.contains("c0 dial"))
        .map(|line| instant_of(std::slice::from_ref(line), "dial"))
        .collect();
    assert_eq!(dials.len(), 3, "the first dial, a refused one, the last");
    // Retry 1 waits 1 s plus jitter, and the dial goes out at exactly the
    // announced delay; it is refused 20 ms later (SYN out, reset back), and
    // retry 2 waits 2 s plus jitter.
    let first_wait = announced_delay(&lines, "#1");
    assert!(first_wait >= Duration::from_secs(1) && first_wait < Duration::from_secs(2));
    assert_eq!(dials[1], crash + 10 * MS + first_wait);
    let second_wait = announced_delay(&lines, "#2");
    assert!(second_wait >= Duration::from_secs(2) && second_wait < Duration::from_secs(3));
    assert_eq!(
        instant_of(&lines, "disconnected 1006 connect failed"),
        dials[1] + 20 * MS
    );
    assert_eq!(dials[2], dials[1] + 20 * MS + second_wait);
    let resubscribed = lines
        .iter()
        .filter(|line| line.contains("c0 subscribed news"))
        .nth(1)
        .expect("a subscription after the restart");
    assert!(
        resubscribed.ends_with("recovered=Some(false)"),
        "the node's history died with it: {resubscribed}"
    );
}
