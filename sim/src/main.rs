//! `tether-sim`: runs simulation scenarios and reports, for each run, the
//! hash of its trace and its figures; a failing run is printed with the
//! command that replays it.
//!
//! ```text
//! tether-sim [--seed S] [--seeds N] [--scenario NAME] [--long] [--trace]
//! ```
//!
//! `--seed S` runs seed S (default 0); `--seeds N` runs N seeds from S on.
//! Without `--scenario` every scenario runs. `--long` uses the large sizes
//! (10,000 clients in the restart storms). `--trace` prints each run's
//! whole event log (times in microseconds).

use std::process::ExitCode;

use tether_sim::{Report, Scenario, Size, run, run_keeping};

/// The parsed command line.
struct Args {
    seed: u64,
    seeds: u64,
    scenarios: Vec<Scenario>,
    size: Size,
    trace: bool,
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("tether-sim: {message}");
            eprintln!(
                "usage: tether-sim [--seed S] [--seeds N] [--scenario NAME] [--long] [--trace]"
            );
            let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
            eprintln!("scenarios: {}", names.join(", "));
            return ExitCode::from(2);
        }
    };
    let mut failed = 0;
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        for &scenario in &args.scenarios {
            let report = if args.trace {
                let report = run_keeping(scenario, args.size, seed, usize::MAX);
                report
                    .outcome
                    .tail
                    .iter()
                    .for_each(|line| println!("{line}"));
                report
            } else {
                run(scenario, args.size, seed)
            };
            print_report(&report);
            if !report.passed() {
                failed += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} runs failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        seed: 0,
        seeds: 1,
        scenarios: Scenario::ALL.to_vec(),
        size: Size::Short,
        trace: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--seed" => parsed.seed = number(&value()?)?,
            "--seeds" => parsed.seeds = number(&value()?)?,
            "--scenario" => {
                let name = value()?;
                let scenario = Scenario::from_name(&name)
                    .ok_or_else(|| format!("no scenario called {name}"))?;
                parsed.scenarios = vec![scenario];
            }
            "--long" => parsed.size = Size::Long,
            "--trace" => parsed.trace = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(parsed)
}

fn number(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{text} is not a whole number"))
}

fn print_report(report: &Report) {
    let outcome = &report.outcome;
    let figures = &outcome.figures;
    let resubscribed = figures
        .all_resubscribed
        .map_or_else(|| "never".to_owned(), |d| format!("{d:?}"));
    println!(
        "{} seed {} hash {:016x} lines {} delivered {} dropped {} slow-closes {} heartbeat-timeouts {} \
         peak-dials/100ms {} peak-connects/100ms {} all-resubscribed {} {}",
        report.scenario,
        report.seed,
        outcome.hash,
        outcome.lines,
        figures.delivered,
        outcome.dropped,
        outcome.slow_consumer_closes,
        outcome.heartbeat_timeouts,
        figures.peak_dials,
        figures.peak_connects,
        resubscribed,
        if report.passed() { "ok" } else { "FAILED" },
    );
    if report.passed() {
        return;
    }
    for failure in &report.failures {
        println!("  {failure}");
    }
    println!("  last lines of the trace (microseconds):");
    for line in &outcome.tail {
        println!("    {line}");
    }
    println!("  replay: {}", report.replay_command());
}
