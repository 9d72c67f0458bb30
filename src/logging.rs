//! Log output: `tracing` events written to standard error, filtered by
//! `RUST_LOG` (default `info`).
//!
//! Standard error keeps standard output free for what a command prints as
//! its result (`tether connect` prints incoming messages as JSON lines).
//!
//! Tokens, the JWT secret and the API key never reach a log line: every
//! struct that holds one holds it as a [`Redacted`](crate::secret::Redacted),
//! whose `Debug` and `Display` print `<redacted>`, and the auth errors that
//! are logged ([`AuthError`](crate::auth::AuthError)) carry no part of the
//! token.

use std::fmt;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The environment variable holding the log filter.
pub const FILTER_ENV: &str = "RUST_LOG";

/// The filter used when `RUST_LOG` is unset or empty.
pub const DEFAULT_FILTER: &str = "info";

/// `RUST_LOG` could not be understood; start-up stops rather than run with
/// a filter that silently ignores part of what was asked.
#[derive(Debug)]
pub struct BadFilter {
    message: String,
}

impl fmt::Display for BadFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{FILTER_ENV}: {}", self.message)
    }
}

impl std::error::Error for BadFilter {}

/// The filter for the value of `RUST_LOG`; unset or empty means `info`.
pub fn filter(rust_log: Option<&str>) -> Result<EnvFilter, BadFilter> {
    let directives = rust_log
        .filter(|value| !value.trim().is_empty())
        .unwrap_or(DEFAULT_FILTER);
    EnvFilter::try_new(directives).map_err(|error| BadFilter {
        message: error.to_string(),
    })
}

/// Installs the process-wide subscriber. Call once, first thing in `main`.
pub fn init(rust_log: Option<&str>) -> Result<(), BadFilter> {
    let filter = filter(rust_log)?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_empty_means_info() {
        assert_eq!(filter(None).unwrap().to_string(), "info");
        assert_eq!(filter(Some("  ")).unwrap().to_string(), "info");
    }

    #[test]
    fn directives_are_taken_as_given() {
        let parsed = filter(Some("tether=debug,warn")).unwrap().to_string();
        assert!(parsed.contains("tether=debug"), "{parsed}");
        assert!(parsed.contains("warn"), "{parsed}");
    }

    #[test]
    fn a_filter_that_does_not_parse_is_an_error() {
        let error = filter(Some("tether=loud")).unwrap_err();
        assert!(error.to_string().starts_with("RUST_LOG: "), "{error}");
    }
}
