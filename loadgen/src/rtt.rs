//! `rtt`: C connections, each sending `{"type":"ping"}` and waiting for the
//! `pong` before the next, for a fixed time.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use smol::channel::{self, Receiver, Sender};
use smol::lock::Semaphore;

use super::args::RttArgs;
use super::report::{Report, round1};
use super::runtime::Spawner;
use super::socket::{Target, WsConn};
use super::stats::{Clock, Samples, rate};

const SETUP_CONCURRENCY: usize = 100;
const READ_BUFFER: usize = 4 * 1024;
const PING: &[u8] = br#"{"type":"ping"}"#;

/// Runs the scenario.
pub async fn run(spawner: Spawner, target: Target, args: RttArgs) -> io::Result<Report> {
    let clock = Clock::start();
    let (ready_tx, ready_rx) = channel::unbounded::<Result<(), String>>();
    let (go_tx, go_rx) = channel::bounded::<u64>(1);
    let setup = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let measure = Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.connections)
        .map(|i| {
            let pinger = Pinger {
                index: i,
                target: target.clone(),
                clock,
                measure,
            };
            spawner.spawn(pinger.run(setup.clone(), ready_tx.clone(), go_rx.clone()))
        })
        .collect();
    drop(ready_tx);
    for done in 0..args.connections {
        match ready_rx.recv().await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return Err(io::Error::other(format!("a connection failed: {error}")));
            }
            Err(_) => {
                return Err(io::Error::other(format!(
                    "only {done} of {} connections opened",
                    args.connections
                )));
            }
        }
    }
    let cpu_before = args.server_pid.map(cpu_ticks).transpose()?;
    let start_ns = clock.now_ns();
    for _ in 0..args.connections {
        let _ = go_tx.send(start_ns).await;
    }
    let mut samples = Samples::with_capacity(1 << 16);
    let mut error = None;
    for task in tasks {
        let (mine, failed) = task.await;
        samples.merge(mine);
        error = error.or(failed);
    }
    let elapsed = Duration::from_nanos(clock.now_ns() - start_ns);
    let cpu_after = args.server_pid.map(cpu_ticks).transpose()?;
    let count = samples.len() as u64;
    let per_sec = rate(count, elapsed);
    let latency = samples.percentiles_us();
    let mut report = Report::new("rtt");
    report
        .set("connections", args.connections)
        .set("round_trips", count)
        .set("round_trips_per_sec", round1(per_sec))
        .set("seconds", elapsed.as_secs_f64())
        .set("p50_us", round1(latency.p50_us))
        .set("p99_us", round1(latency.p99_us))
        .set("max_us", round1(latency.max_us));
    if let (Some(before), Some(after)) = (cpu_before, cpu_after)
        && count > 0
    {
        let cpu_us = after.saturating_sub(before) as f64 * 1e6 / TICKS_PER_SECOND;
        report.set("server_cpu_ms", round1(cpu_us / 1e3)).set(
            "server_cpu_us_per_round_trip",
            round1(cpu_us / count as f64),
        );
    }
    if let Some(error) = &error {
        report.set("error", error.as_str());
    }
    report.summary = format!(
        "rtt {} connections: {:.0} round trips/s over {:.2} s, p50 {:.0} us p99 {:.0} us{}",
        args.connections,
        per_sec,
        elapsed.as_secs_f64(),
        latency.p50_us,
        latency.p99_us,
        error.map_or_else(String::new, |e| format!(" (first error: {e})")),
    );
    Ok(report)
}

struct Pinger {
    index: usize,
    target: Target,
    clock: Clock,
    measure: Duration,
}

impl Pinger {
    async fn run(
        self,
        setup: Arc<Semaphore>,
        ready: Sender<Result<(), String>>,
        go: Receiver<u64>,
    ) -> (Samples, Option<String>) {
        let permit = setup.acquire().await;
        let opened = self.open().await;
        drop(permit);
        let mut conn = match opened {
            Ok(conn) => conn,
            Err(error) => {
                let _ = ready.send(Err(error.to_string())).await;
                return (Samples::default(), Some(error.to_string()));
            }
        };
        let _ = ready.send(Ok(())).await;
        drop(ready);
        let Ok(start_ns) = go.recv().await else {
            return (Samples::default(), None);
        };
        let end_ns = start_ns + self.measure.as_nanos() as u64;
        let mut samples = Samples::with_capacity(1 << 12);
        loop {
            let sent = self.clock.now_ns();
            if sent >= end_ns {
                return (samples, None);
            }
            let answered = match conn.send(PING).await {
                Ok(()) => conn.expect("pong").await.map(drop),
                Err(error) => Err(error),
            };
            if let Err(error) = answered {
                return (samples, Some(error.to_string()));
            }
            samples.push(self.clock.now_ns() - sent);
        }
    }

    async fn open(&self) -> io::Result<WsConn> {
        let mut conn = WsConn::open(&self.target, self.index as u64, READ_BUFFER).await?;
        conn.authenticate(&format!("rtt-{}", self.index)).await?;
        Ok(conn)
    }
}

/// The clock ticks of `/proc/<pid>/stat` per second (`USER_HZ`, 100 on
/// Linux whatever the kernel's own tick).
const TICKS_PER_SECOND: f64 = 100.0;

/// The CPU time process `pid` used so far, user and system, all threads,
/// in clock ticks.
fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat)
        .ok_or_else(|| io::Error::other(format!("no CPU times in the stat of process {pid}")))
}

/// `utime` + `stime`: the 14th and 15th fields, counted after the
/// command's closing parenthesis (the command may hold spaces).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_command) = stat.rsplit_once(')')?;
    let mut fields = after_command.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod cpu_tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_user_and_system_time_after_the_command() {
        let stat = "4242 (tether serve) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    1234 567 0 0 20 0 3 0 100 1000 200";
        assert_eq!(parse_cpu_ticks(stat), Some(1234 + 567));
    }
}
