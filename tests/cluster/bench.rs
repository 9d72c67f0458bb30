//! `tether-loadgen fanout` with its subscribers spread over nodes sharing
//! Redis and its publisher on another: what the backplane benchmark runs.

use clap::Parser;
use tether_loadgen::{BenchArgs, execute};

use crate::support::Cluster;
use tether_testkit::metrics::metric;

#[test]
fn the_fanout_benchmark_spreads_its_subscribers_over_the_target_nodes() {
    let cluster = Cluster::start();
    let [a, b, c] = &cluster.nodes;
    let url = |addr| format!("ws://{addr}/ws");
    let (a_url, b_url, c_url) = (url(a.addr), url(b.addr), url(c.addr));
    let args = BenchArgs::parse_from([
        "tether-loadgen",
        "--url",
        &a_url,
        "fanout",
        "--subscribers",
        "4",
        "--messages",
        "100",
        "--window",
        "8",
        "--timeout",
        "20",
        "--target",
        &b_url,
        "--target",
        &c_url,
    ]);
    let report = execute(&args).expect("the run completes");
    assert_eq!(report.get("error"), None, "{report:?}");
    for (key, expected) in [
        ("nodes", 2),
        ("deliveries", 400),
        ("lost", 0),
        ("gaps", 0),
        ("duplicates", 0),
        ("acks", 100),
    ] {
        assert_eq!(
            report.get(key),
            Some(&expected.into()),
            "{key} in {report:?}"
        );
    }
    let connections = |addr| metric(addr, "tether_connections_total");
    assert_eq!(
        [a.addr, b.addr, c.addr].map(connections),
        [1, 2, 2],
        "the publisher on a, two subscribers on each of b and c"
    );
}
