//! A node's `/metrics`, read as the Prometheus text format: every sample's
//! name and whole-number value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::http::get;
use crate::ws::READ_TIMEOUT;

/// Every sample of a Prometheus text exposition, by name; comment and
/// blank lines are skipped. Panics on a line that is not `NAME VALUE` with
/// a whole-number value, as the node writes none.
pub fn parse(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (name, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample: {line:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("not a whole number: {line:?}"));
            (name.to_owned(), value)
        })
        .collect()
}

/// Every sample of the node's `/metrics` at `addr`, by name.
pub fn metrics(addr: SocketAddr) -> BTreeMap<String, u64> {
    let answer = get(addr, "/metrics");
    assert_eq!(answer.status, 200, "{answer:?}");
    parse(&answer.body)
}

/// The value of the metric `name`, which must be present.
pub fn metric(addr: SocketAddr, name: &str) -> u64 {
    *metrics(addr)
        .get(name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// Reads the metric `name` until `wanted` holds for its value, which it
/// returns; panics after [`READ_TIMEOUT`]. For what a test cannot see on
/// any socket it holds (the node's own bookkeeping after a peer is gone),
/// `/metrics` is the only observable, so it is polled.
pub fn wait_for_metric(addr: SocketAddr, name: &str, wanted: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let value = metric(addr, name);
        if wanted(value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed at {value} for {READ_TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_and_comments_skipped() {
        let text = "# HELP tether_connections Open connections.\n\
                    # TYPE tether_connections gauge\n\
                    tether_connections 3\n\n\
                    tether_messages_total 12\n";
        let samples = parse(text);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples["tether_connections"], 3);
        assert_eq!(samples["tether_messages_total"], 12);
    }

    #[test]
    #[should_panic(expected = "not a whole number")]
    fn a_value_that_is_not_a_whole_number_is_refused() {
        parse("tether_connections 1.5\n");
    }
}
