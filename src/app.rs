//! What the `tether` command does with its parsed command line: check
//! everything a command needs before it starts, and say what went wrong
//! with an exit code that tells a usage error from a failure.
//!
//! Exit codes: 0 success; 1 the command failed while running; 2 the
//! command line, the configuration or the environment is wrong (clap uses
//! 2 for usage errors too).

use std::fmt;
use std::process::ExitCode;

use tether_tls::{ServerTls, TlsFile};
use tracing::{info, warn};

use crate::auth::{Authenticator, MissingSecret};
use crate::cli::{Cli, Command, ConnectArgs, ServeArgs};
use crate::logging::BadFilter;
use crate::secret::mask_url_password;
use crate::settings::{Settings, SettingsError};

/// Why the command stopped.
#[derive(Debug)]
pub enum AppError {
    /// `RUST_LOG` does not parse.
    Logging(BadFilter),
    /// The configuration is refused.
    Settings(SettingsError),
    /// `serve` has no way to authenticate anyone.
    MissingSecret(MissingSecret),
    /// The network failed (e.g. the listen address is taken).
    Io(std::io::Error),
    /// `connect` could not start or the server closed it for good.
    Connect(String),
    /// The command line asks for something that cannot be done, or names
    /// a file that cannot be used (`connect --ca`); the message names the
    /// option.
    Usage(String),
}

impl AppError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            AppError::Logging(_)
            | AppError::Settings(_)
            | AppError::MissingSecret(_)
            | AppError::Usage(_) => ExitCode::from(2),
            AppError::Io(_) | AppError::Connect(_) => ExitCode::FAILURE,
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Logging(error) => error.fmt(f),
            AppError::Settings(error) => error.fmt(f),
            AppError::MissingSecret(error) => error.fmt(f),
            AppError::Io(error) => error.fmt(f),
            AppError::Connect(message) | AppError::Usage(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for AppError {}

impl From<BadFilter> for AppError {
    fn from(error: BadFilter) -> Self {
        AppError::Logging(error)
    }
}

impl From<SettingsError> for AppError {
    fn from(error: SettingsError) -> Self {
        AppError::Settings(error)
    }
}

impl From<MissingSecret> for AppError {
    fn from(error: MissingSecret) -> Self {
        AppError::MissingSecret(error)
    }
}

/// Everything `serve` starts with, checked.
#[derive(Debug)]
pub struct ServePlan {
    /// The merged, validated settings.
    pub settings: Settings,
    /// How the node checks tokens itself; `None` when the proxy backend
    /// decides them (`proxy.connect_url`).
    pub authenticator: Option<Authenticator>,
    /// The node's certificate and key, read and checked, when it speaks
    /// TLS.
    pub tls: Option<ServerTls>,
    /// The PEM of `redis_ca_file`, read and checked, when it is set.
    pub redis_ca: Option<Vec<u8>>,
}

/// Runs the command; `env` reads environment variables.
pub fn run(cli: Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<(), AppError> {
    match cli.command {
        Command::Serve(args) => {
            let plan = prepare_serve(&args, env)?;
            if args.check {
                return Ok(());
            }
            crate::serve::serve(plan)
        }
        Command::Connect(args) => {
            announce_connect(&args);
            crate::connect::connect(args)
        }
    }
}

/// Loads and checks the settings of `serve`, picks the authenticator
/// (none when the proxy backend decides tokens) and logs what the server
/// will run with: a loud warning in dev mode, a warning when no namespace
/// opens any channel (a safe default that would otherwise surprise), then
/// the effective settings (secrets only as set or not set).
pub fn prepare_serve(
    args: &ServeArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ServePlan, AppError> {
    let settings = Settings::load(args.config.as_deref(), env, args.overrides())?;
    let authenticator = match &settings.proxy.connect_url {
        Some(url) => {
            info!(
                "tokens are decided by the proxy backend at {}",
                mask_url_password(url)
            );
            if settings.jwt_secret.is_some() || settings.jwt.public_key_file.is_some() {
                warn!("proxy.connect_url decides tokens: the configured JWT key is ignored");
            }
            None
        }
        None => Some(Authenticator::from_settings(&settings)?),
    };
    if settings.dev {
        if authenticator.as_ref().is_some_and(Authenticator::is_dev) {
            warn!(
                "DEV MODE: any token is accepted as the user id, so anyone can act as any user. Never run --dev where others can connect."
            );
            if settings.jwt_secret.is_some() {
                warn!("DEV MODE: the configured JWT secret is ignored");
            }
        }
        warn!("DEV MODE: every channel that no configured namespace governs is open to every user");
    } else if settings.server.namespaces.is_empty() {
        warn!(
            "no [[namespaces]] configured: every channel except each user's own user:<id> is refused FORBIDDEN; add namespaces to the config file (see tether.example.toml)"
        );
    }
    if settings.api_key.is_none() {
        info!("no API key is set: POST /api/publish answers 401 to every request");
    }
    let tls = server_tls(&settings)?;
    let redis_ca = redis_ca(&settings)?;
    info!("effective settings:\n{settings}");
    Ok(ServePlan {
        settings,
        authenticator,
        tls,
        redis_ca,
    })
}

/// The node's certificate and key when `tls_cert` and `tls_key` are set,
/// read and checked now so that a file that cannot be used stops the start
/// (and `serve --check`), naming its key.
fn server_tls(settings: &Settings) -> Result<Option<ServerTls>, SettingsError> {
    let (Some(cert), Some(key)) = (&settings.tls.cert, &settings.tls.key) else {
        return Ok(None);
    };
    let tls = ServerTls::load(cert, key).map_err(|error| SettingsError::Invalid {
        key: match error.file {
            TlsFile::Cert | TlsFile::Ca => "tls_cert",
            TlsFile::Key => "tls_key",
        },
        message: error.to_string(),
    })?;
    info!(
        "TLS: HTTPS and wss:// only, certificate from {}",
        cert.display()
    );
    Ok(Some(tls))
}

/// The CA certificates of `redis_ca_file` when it is set, read and checked
/// now, like the node's own certificate: a file that cannot be read or
/// holds no CA certificate stops the start (and `serve --check`), naming
/// its key, rather than leave a backplane that trusts nothing and never
/// links.
fn redis_ca(settings: &Settings) -> Result<Option<Vec<u8>>, SettingsError> {
    let Some(path) = &settings.redis_ca_file else {
        return Ok(None);
    };
    let pem = tether_tls::read_ca_file(path).map_err(|error| SettingsError::Invalid {
        key: "redis_ca_file",
        message: error.to_string(),
    })?;
    Ok(Some(pem))
}

/// Logs what `connect` will do (the token only as `<redacted>`).
fn announce_connect(args: &ConnectArgs) {
    let channels: Vec<&str> = args.subscribe.iter().map(|c| c.as_str()).collect();
    info!(url = %args.url, token = %args.token, channels = ?channels, "connect");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("tether").chain(args.iter().copied())).unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn serve_without_a_secret_is_a_usage_error() {
        let error = run(cli(&["serve"]), &no_env).unwrap_err();
        assert!(matches!(error, AppError::MissingSecret(_)), "{error}");
        assert_eq!(error.exit_code(), ExitCode::from(2));
    }

    #[test]
    fn serve_with_a_secret_from_the_environment_checks_jwts() {
        let env = |name: &str| (name == "TETHER_JWT_SECRET").then(|| "e".repeat(32));
        let Command::Serve(args) = cli(&["serve", "--runtime", "blocking"]).command else {
            panic!("not serve");
        };
        let plan = prepare_serve(&args, &env).unwrap();
        assert!(!plan.authenticator.unwrap().is_dev());
        assert_eq!(plan.settings.runtime, crate::settings::Runtime::Blocking);
    }

    #[test]
    fn serve_in_dev_mode_needs_no_secret() {
        let Command::Serve(args) = cli(&["serve", "--dev"]).command else {
            panic!("not serve");
        };
        let plan = prepare_serve(&args, &no_env).unwrap();
        assert!(plan.authenticator.unwrap().is_dev());
        assert!(plan.settings.dev);
    }

    #[test]
    fn serve_with_a_connect_url_needs_no_secret_and_checks_no_token_itself() {
        let dir = std::env::temp_dir().join(format!("tether-app-proxy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("proxy.toml");
        std::fs::write(
            &path,
            "[proxy]\nconnect_url = \"http://127.0.0.1:3000/connect\"\n",
        )
        .unwrap();
        let config = path.to_str().unwrap();
        let Command::Serve(args) = cli(&["serve", "--config", config]).command else {
            panic!("not serve");
        };
        let plan = prepare_serve(&args, &no_env);
        std::fs::remove_dir_all(&dir).unwrap();
        let plan = plan.unwrap();
        assert!(plan.authenticator.is_none());
        assert_eq!(
            plan.settings.proxy.connect_url.as_deref(),
            Some("http://127.0.0.1:3000/connect")
        );
    }

    #[test]
    fn serve_check_stops_after_the_checks() {
        assert!(run(cli(&["serve", "--dev", "--check"]), &no_env).is_ok());
        let error = run(cli(&["serve", "--check"]), &no_env).unwrap_err();
        assert!(matches!(error, AppError::MissingSecret(_)), "{error}");
    }

    #[test]
    fn a_bad_setting_is_a_usage_error() {
        let error = run(cli(&["serve", "--dev", "--redis", "http://x"]), &no_env).unwrap_err();
        assert!(matches!(error, AppError::Settings(_)), "{error}");
        assert!(error.to_string().contains("redis_url"), "{error}");
        assert_eq!(error.exit_code(), ExitCode::from(2));
    }
}
