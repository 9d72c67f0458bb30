//! `idle`: N connections, each authenticated and subscribed to a channel
//! of its own (`user:<id>`, the private-notification pattern), held open
//! while the server's resident memory is read.
//!
//! The figure is the growth of the server process's `VmRSS` (from
//! `/proc/<pid>/status`) divided by N: user-space memory only. What the
//! kernel keeps per socket (buffers, the socket itself) is not in it, and
//! is the same whatever the server.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use smol::channel::{self, Receiver, Sender};
use smol::future;
use smol::lock::Semaphore;

use super::args::IdleArgs;
use super::report::{Report, round1};
use super::runtime::{Spawner, sleep};
use super::socket::{Target, WsConn};
use super::stats::Clock;

const READ_BUFFER: usize = 4 * 1024;

/// Runs the scenario.
pub async fn run(spawner: Spawner, target: Target, args: IdleArgs) -> io::Result<Report> {
    let clock = Clock::start();
    let before = rss_kib(args.server_pid)?;
    let (ready_tx, ready_rx) = channel::unbounded::<Result<(), String>>();
    let (stop_tx, stop_rx) = channel::bounded::<()>(1);
    let setup = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let tasks: Vec<_> = (0..args.connections)
        .map(|i| {
            spawner.spawn(hold(
                i,
                target.clone(),
                setup.clone(),
                ready_tx.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    drop(ready_tx);
    let mut failures = 0;
    let mut first_error = None;
    while let Ok(opened) = ready_rx.recv().await {
        if let Err(error) = opened {
            failures += 1;
            first_error = first_error.or(Some(error));
        }
    }
    let setup_s = clock.now_ns() as f64 / 1e9;
    sleep(Duration::from_secs(args.settle)).await;
    let after = rss_kib(args.server_pid)?;
    drop(stop_tx);
    for task in tasks {
        task.await;
    }

    let held = args.connections - failures;
    let per_connection = if held > 0 {
        after.saturating_sub(before) as f64 * 1024.0 / held as f64
    } else {
        0.0
    };
    let mut report = Report::new("idle");
    report
        .set("connections", held)
        .set("failures", failures)
        .set("rss_before_kib", before)
        .set("rss_after_kib", after)
        .set("rss_per_connection_bytes", round1(per_connection))
        .set("setup_seconds", setup_s);
    if let Some(error) = &first_error {
        report.set("error", error.as_str());
    }
    report.summary = format!(
        "idle {held} connections ({failures} failed): server RSS {before} KiB -> {after} KiB, {per_connection:.0} bytes per connection; setup took {setup_s:.2} s{}",
        first_error.map_or_else(String::new, |e| format!(" (first error: {e})")),
    );
    Ok(report)
}

/// Opens connection `index`, authenticates, subscribes, reports, then
/// answers the server's heartbeat until told to stop.
async fn hold(
    index: usize,
    target: Target,
    setup: Arc<Semaphore>,
    ready: Sender<Result<(), String>>,
    stop: Receiver<()>,
) {
    let permit = setup.acquire().await;
    let opened = open(index, &target).await;
    drop(permit);
    let mut conn = match opened {
        Ok(conn) => conn,
        Err(error) => {
            let _ = ready.send(Err(error.to_string())).await;
            return;
        }
    };
    let _ = ready.send(Ok(())).await;
    drop(ready);
    let listen = async { while conn.recv().await.is_ok() {} };
    future::or(listen, async {
        let _ = stop.recv().await;
    })
    .await;
}

async fn open(index: usize, target: &Target) -> io::Result<WsConn> {
    let user = format!("idle-{index}");
    let mut conn = WsConn::open(target, index as u64, READ_BUFFER).await?;
    conn.authenticate(&user).await?;
    conn.subscribe(&format!("user:{user}")).await?;
    Ok(conn)
}

/// The `VmRSS` of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_rss_kib(&status)
        .ok_or_else(|| io::Error::other(format!("no VmRSS in the status of process {pid}")))
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_the_status_file() {
        let status = "Name:\ttether\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\nThreads:\t2\n";
        assert_eq!(parse_rss_kib(status), Some(4321));
        assert_eq!(parse_rss_kib("Name:\tx\n"), None);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
