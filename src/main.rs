//! The `tether` command: a Tether server (`serve`) and client (`connect`).
//! Everything but the wiring lives in the library; see `tether --help`.

use std::env;
use std::process::ExitCode;

use clap::Parser;
use tether::{app, cli::Cli, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = logging::init(env::var(logging::FILTER_ENV).ok().as_deref())
        .map_err(app::AppError::from)
        .and_then(|()| app::run(cli, &|name| env::var(name).ok()));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tether: {error}");
            error.exit_code()
        }
    }
}
