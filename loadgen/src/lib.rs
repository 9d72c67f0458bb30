//! `tether-loadgen`: a load generator for Tether and for any server that
//! speaks the message shapes of PROTOCOL.md. Kept out of the `tether`
//! binary, which carries only what a user runs: `serve` and `connect`.
//!
//! # Design
//!
//! Every simulated client is a raw socket driven by the core's own frame
//! codec and handshake helpers ([`socket`]), not the full client library:
//! a load generator must spend as little CPU per message as it can, since
//! it shares the machine with the server it measures. Incoming messages are
//! not parsed as JSON; [`scan`] picks the few fields a scenario needs (type,
//! offset, sequence number, timestamp) straight out of the bytes, in any key
//! order, which works for every peer because each writes compact JSON.
//!
//! End-to-end latency comes from a timestamp in the payload: the publisher
//! (or the pinging client) writes the nanoseconds since the run started, and
//! the receiver, in the same process, subtracts it from its own reading of
//! the same monotonic clock.
//!
//! Scenarios ([`fanout`], [`rtt`], [`idle`], [`connect`]) run their clients
//! as tasks on a small multi-threaded executor ([`runtime`]). Each run
//! prints one JSON line on stdout (for scripts) and a human summary on
//! stderr. Every run is bounded in connections and in time, and only
//! targets loopback addresses: the load generator refuses any other.

pub mod args;
mod connect;
mod fanout;
mod idle;
mod report;
mod rtt;
mod runtime;
mod scan;
mod socket;
mod stats;
mod tls;

#[cfg(test)]
mod tests;

pub use args::{BenchArgs, Scenario};
pub use report::Report;

/// Runs the scenario `args` names and prints its report. A run that a
/// client's error cut short fails after printing: it measured too little to
/// be a figure. A rate limit gets a hint, since a default server refuses
/// what a load generator sends.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    let report = execute(args).map_err(|error| error.to_string())?;
    report.print(args.peer.as_deref());
    match report.get("error").and_then(|error| error.as_str()) {
        None => Ok(()),
        Some(error) => {
            let hint = if error.contains("RATE_LIMITED") {
                "; the server's rate limit refused the load: bench a server started with \
                 `--config benches/tether.toml` (no rate limit, a larger high_water)"
            } else {
                ""
            };
            Err(format!(
                "a client failed, so the figures above are not a measurement: {error}{hint}"
            ))
        }
    }
}

/// Runs the scenario `args` names and returns its report.
pub fn execute(args: &BenchArgs) -> std::io::Result<Report> {
    let tls = tls::client_config(args.ca.as_deref(), args.insecure)?;
    let mut target = socket::Target::parse(&args.url, tls.as_ref())?;
    target.deflate = args.deflate;
    let threads = args.threads.max(1);
    let scenario = args.scenario.clone();
    runtime::block_on(threads, |spawner| async move {
        match scenario {
            Scenario::Fanout(scenario) => fanout::run(spawner, target, scenario).await,
            Scenario::Rtt(scenario) => rtt::run(spawner, target, scenario).await,
            Scenario::Idle(scenario) => idle::run(spawner, target, scenario).await,
            Scenario::Connect(scenario) => connect::run(spawner, target, scenario).await,
        }
    })
}
