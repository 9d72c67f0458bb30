//! The `tether-loadgen` command; see the library for the scenarios.

use std::process::ExitCode;

use clap::Parser;
use tether_loadgen::{BenchArgs, run};

fn main() -> ExitCode {
    match run(&BenchArgs::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tether-loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}
