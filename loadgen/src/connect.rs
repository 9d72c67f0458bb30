//! `connect`: N clients start connecting at the same moment; each opens
//! TCP, upgrades, sends `auth` and waits for `auth_ack`. Every client holds
//! its connection until all have finished, so the server has N connections
//! open at the end.

use std::io;
use std::time::Duration;

use smol::channel::{self, Receiver};
use smol::future;

use super::args::ConnectArgs;
use super::report::{Report, round1};
use super::runtime::{Spawner, sleep};
use super::socket::{Target, WsConn};
use super::stats::{Clock, Samples};

const READ_BUFFER: usize = 4 * 1024;

/// Runs the scenario.
pub async fn run(spawner: Spawner, target: Target, args: ConnectArgs) -> io::Result<Report> {
    let clock = Clock::start();
    let timeout = Duration::from_secs(args.timeout);
    let (release_tx, release_rx) = channel::bounded::<()>(1);
    let (done_tx, done_rx) = channel::unbounded::<Result<u64, String>>();
    let start_ns = clock.now_ns();
    for i in 0..args.clients {
        let target = target.clone();
        let done = done_tx.clone();
        let release = release_rx.clone();
        spawner
            .spawn(async move {
                let attempt = async {
                    let mut conn = WsConn::open(&target, i as u64, READ_BUFFER).await?;
                    conn.authenticate(&format!("connect-{i}")).await?;
                    Ok::<_, io::Error>(conn)
                };
                let late = async {
                    sleep(timeout).await;
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "not authenticated in time",
                    ))
                };
                let outcome = future::or(attempt, late).await;
                let _ = done
                    .send(
                        outcome
                            .as_ref()
                            .map(|_| clock.now_ns() - start_ns)
                            .map_err(|e| e.to_string()),
                    )
                    .await;
                hold_until(release, outcome.ok()).await;
            })
            .detach();
    }
    drop(done_tx);

    let mut samples = Samples::with_capacity(args.clients);
    let mut failures = 0;
    let mut first_error = None;
    let mut last_ns = 0;
    for _ in 0..args.clients {
        match done_rx.recv().await {
            Ok(Ok(ns)) => {
                samples.push(ns);
                last_ns = last_ns.max(ns);
            }
            Ok(Err(error)) => {
                failures += 1;
                first_error = first_error.or(Some(error));
            }
            Err(_) => break,
        }
    }
    drop(release_tx);

    let connected = samples.len();
    let latency = samples.percentiles_us();
    let all_ms = last_ns as f64 / 1e6;
    let mut report = Report::new("connect");
    report
        .set("clients", args.clients)
        .set("connected", connected)
        .set("failures", failures)
        .set("all_connected_ms", round1(all_ms))
        .set("p50_ms", round1(latency.p50_us / 1e3))
        .set("p99_ms", round1(latency.p99_us / 1e3));
    if let Some(error) = &first_error {
        report.set("error", error.as_str());
    }
    report.summary = format!(
        "connect {} clients at once: {connected} authenticated, {failures} failed; last one after {all_ms:.1} ms, p50 {:.1} ms p99 {:.1} ms{}",
        args.clients,
        latency.p50_us / 1e3,
        latency.p99_us / 1e3,
        first_error.map_or_else(String::new, |e| format!(" (first error: {e})")),
    );
    Ok(report)
}

/// Keeps `conn` open until the run releases every client.
async fn hold_until(release: Receiver<()>, conn: Option<WsConn>) {
    let _ = release.recv().await;
    drop(conn);
}
