//! PROTOCOL.md section 11, "File descriptors": the `tether` binary under a
//! low `ulimit -n` lowers `max_connections` to what the limit allows, says
//! so, and answers `503 too many connections` beyond it; when accepting
//! fails anyway (no descriptor left) it stays up, backs off, logs the
//! failure once per spell, and accepts again once descriptors are free.

use std::net::TcpStream;

use serde_json::json;

use crate::harness::{Runtime, TETHER};
use tether_testkit::http::get;
use tether_testkit::metrics::metric;
use tether_testkit::process::Process;
use tether_testkit::ws::{Ws, tcp};

/// The `ulimit -n` the node runs under.
const OPEN_FILES: u64 = 256;

/// `max_connections` under [`OPEN_FILES`]: the limit less the 64
/// descriptors the node keeps for itself.
const LOWERED: usize = 192;

/// The warning of a spell of failed accepts.
const ACCEPT_FAILED: &str = "accept failed";

/// Most warnings the test may see: one per spell, and releasing the
/// descriptors below can split the node's one spell into a few (a retry
/// that finds only some descriptors free accepts them and fails again).
const MOST_WARNINGS: usize = 10;

/// Starts the binary on `runtime` from a shell that runs `script` first.
fn start(runtime: Runtime, script: &str) -> Process {
    Process::start_after(TETHER, script, &runtime.dev_binary_args())
}

fn max_connections_is_lowered_to_the_file_limit(runtime: Runtime) {
    let process = start(runtime, &format!("ulimit -n {OPEN_FILES}"));
    let lowered = process.wait_for_line("(RLIMIT_NOFILE");
    assert!(lowered.contains(&format!("limit={LOWERED}")), "{lowered}");
    let addr = process.listening_on();
    // Idle connections hold their descriptors (and their slots) until the
    // handshake timeout, far beyond this test.
    let _idle: Vec<TcpStream> = (0..LOWERED).map(|_| tcp(addr)).collect();
    let refused = get(addr, "/healthz");
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (503, "too many connections")
    );
}

fn the_node_survives_running_out_of_file_descriptors(runtime: Runtime) {
    // A hundred descriptors inherited from the shell leave the node fewer
    // free descriptors than the connections it admits: accepting fails
    // (EMFILE) before the node would answer 503.
    let script = format!(
        "ulimit -n {OPEN_FILES}\nfor fd in $(seq 100 199); do eval \"exec $fd</dev/null\"; done"
    );
    let process = start(runtime, &script);
    let addr = process.listening_on();
    let mut early = Ws::auth(addr, "early");
    early.subscribe("room");

    let idle: Vec<TcpStream> = (0..LOWERED).map(|_| tcp(addr)).collect();
    process.wait_for_line(ACCEPT_FAILED);
    // Out of descriptors, the node still serves the connections it has.
    early.send_json(json!({"type": "ping", "id": "p"}));
    assert_eq!(early.recv(), json!({"type": "pong", "id": "p"}));

    drop(idle);
    let mut late = Ws::auth(addr, "late");
    late.send_json(json!({"type": "publish", "channel": "room", "payload": 1, "id": "m"}));
    assert_eq!(late.recv(), json!({"type": "ack", "id": "m", "offset": 1}));
    assert_eq!(early.recv_type("message")["sender"], "late");

    let warnings = 1 + process.count_lines(ACCEPT_FAILED);
    assert!(
        warnings <= MOST_WARNINGS,
        "{warnings} warnings of failed accepts"
    );
    assert!(metric(addr, "tether_accept_errors_total") >= 1);
}

runtime_tests! {
    max_connections_is_lowered_to_the_file_limit => smol, blocking, tokio;
    the_node_survives_running_out_of_file_descriptors => smol, blocking, tokio;
}
