//! `tether bench fanout` with its subscribers spread over nodes sharing
//! Redis and its publisher on another: what the backplane benchmark runs.

use std::process::Command;

use serde_json::Value;

use crate::http::metric;
use crate::support::Cluster;

#[test]
fn the_fanout_benchmark_spreads_its_subscribers_over_the_target_nodes() {
    let cluster = Cluster::start();
    let [a, b, c] = &cluster.nodes;
    let url = |addr| format!("ws://{addr}/ws");
    let output = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["bench", "--url", &url(a.addr), "fanout"])
        .args(["--subscribers", "4", "--messages", "100", "--window", "8"])
        .args(["--timeout", "20"])
        .args(["--target", &url(b.addr), "--target", &url(c.addr)])
        .output()
        .expect("tether bench runs");
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    for (key, expected) in [
        ("nodes", 2),
        ("deliveries", 400),
        ("lost", 0),
        ("gaps", 0),
        ("duplicates", 0),
        ("acks", 100),
    ] {
        assert_eq!(report[key], expected, "{key} in {report}");
    }
    let connections = |addr| metric(addr, "tether_connections_total");
    assert_eq!(
        [a.addr, b.addr, c.addr].map(connections),
        [1, 2, 2],
        "the publisher on a, two subscribers on each of b and c"
    );
}
