//! The command line: `tether serve` and `tether connect`.
//!
//! Flags only say what differs from the config file and the environment;
//! the merge itself is [`Settings::load`](crate::settings::Settings::load).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tether_core::Channel;

use crate::secret::Redacted;
use crate::settings::{Overrides, Runtime, resolve_listen};

/// Real-time WebSocket messaging: a server and a client.
#[derive(Debug, Parser)]
#[command(name = "tether", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a server: WebSocket on /ws, plus /healthz, /metrics and
    /// POST /api/publish, on one port.
    Serve(ServeArgs),
    /// Connect to a server: stdin lines are sent, incoming messages are
    /// printed as JSON lines.
    Connect(ConnectArgs),
}

/// Flags of `tether serve`; each beats the config file and the environment.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address (or host name) and port to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR", value_parser = resolve_listen)]
    pub listen: Option<SocketAddr>,
    /// TOML config file (see tether.example.toml for every key).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HS256 secret for client JWTs, at least 32 bytes. Or set
    /// TETHER_JWT_SECRET, which other local users cannot read in the
    /// process list.
    #[arg(long, value_name = "SECRET")]
    pub jwt_secret: Option<Redacted<String>>,
    /// Key for POST /api/publish, at least 16 characters. Or set
    /// TETHER_API_KEY.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<Redacted<String>>,
    /// Adapter that drives the server [default: smol].
    #[arg(long, value_enum)]
    pub runtime: Option<Runtime>,
    /// Accept any token as the user id. For trying things out only.
    #[arg(long)]
    pub dev: bool,
    /// Redis backplane URL, to share channels with other nodes.
    #[arg(long = "redis", value_name = "URL")]
    pub redis_url: Option<String>,
    /// Check the configuration, print the effective settings and exit
    /// without listening (0 when everything is valid).
    #[arg(long)]
    pub check: bool,
}

impl ServeArgs {
    /// The flags as overrides of the other settings sources.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            jwt_secret: self.jwt_secret.clone(),
            api_key: self.api_key.clone(),
            runtime: self.runtime,
            dev: self.dev,
            redis_url: self.redis_url.clone(),
        }
    }
}

/// Arguments of `tether connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Server WebSocket URL, e.g. ws://127.0.0.1:8080/ws or
    /// wss://example.com/ws.
    #[arg(value_name = "URL", value_parser = parse_ws_url)]
    pub url: String,
    /// With wss://: trust only the CA certificates in this PEM file
    /// instead of the public roots (Mozilla's, built in). Refused with a
    /// ws:// URL.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Token sent in the auth message (a JWT, or any user id in dev mode).
    #[arg(long, value_name = "TOKEN")]
    pub token: Redacted<String>,
    /// Channel to subscribe to once connected; repeat for several.
    #[arg(long = "subscribe", value_name = "CHANNEL", value_parser = parse_channel)]
    pub subscribe: Vec<Channel>,
}

/// Accepts `ws://host[:port][/path]` and `wss://host[:port][/path]`.
fn parse_ws_url(text: &str) -> Result<String, String> {
    match text
        .strip_prefix("ws://")
        .or_else(|| text.strip_prefix("wss://"))
    {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(text.to_owned()),
        _ => Err("expected a URL like ws://127.0.0.1:8080/ws or wss://example.com/ws".to_owned()),
    }
}

fn parse_channel(text: &str) -> Result<Channel, String> {
    Channel::new(text).map_err(|error| error.message)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tether").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_without_flags_overrides_nothing() {
        let Command::Serve(args) = parse(&["serve"]).unwrap().command else {
            panic!("not serve");
        };
        assert_eq!(args.overrides(), Overrides::default());
        assert_eq!(args.config, None);
        assert!(!args.check);
    }

    #[test]
    fn serve_flags_become_overrides() {
        let cli = parse(&[
            "serve",
            "--listen",
            "0.0.0.0:9000",
            "--config",
            "t.toml",
            "--jwt-secret",
            "s3cret",
            "--api-key",
            "k3y",
            "--runtime",
            "blocking",
            "--dev",
            "--redis",
            "redis://127.0.0.1:6379",
            "--check",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        let overrides = args.overrides();
        assert_eq!(overrides.listen, Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(overrides.jwt_secret.unwrap().expose(), "s3cret");
        assert_eq!(overrides.api_key.unwrap().expose(), "k3y");
        assert_eq!(overrides.runtime, Some(Runtime::Blocking));
        assert!(overrides.dev);
        assert_eq!(
            overrides.redis_url.as_deref(),
            Some("redis://127.0.0.1:6379")
        );
        assert_eq!(args.config, Some(PathBuf::from("t.toml")));
        assert!(args.check);
    }

    #[test]
    fn the_current_thread_tokio_runtime_is_chosen_by_a_name_the_help_hides() {
        let cli = parse(&["serve", "--runtime", "tokio-current-thread"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.runtime, Some(Runtime::TokioCurrentThread));
        let help = parse(&["serve", "--help"]).unwrap_err().to_string();
        assert!(help.contains("tokio"), "{help}");
        assert!(!help.contains("current-thread"), "{help}");
    }

    #[test]
    fn parsed_serve_flags_never_debug_their_secrets() {
        let cli = parse(&[
            "serve",
            "--jwt-secret",
            "s3cret-value",
            "--api-key",
            "k3y-value",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        assert!(
            !shown.contains("s3cret-value") && !shown.contains("k3y-value"),
            "{shown}"
        );
    }

    #[test]
    fn bad_serve_flags_are_usage_errors() {
        for args in [
            &["serve", "--listen", "localhost"][..],
            &["serve", "--runtime", "glommio"],
            &["serve", "--bench"],
        ] {
            let error = parse(args).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn listen_takes_a_host_name() {
        let Command::Serve(serve) = parse(&["serve", "--listen", "localhost:9000"])
            .unwrap()
            .command
        else {
            panic!("not serve");
        };
        assert_eq!(serve.listen, Some("127.0.0.1:9000".parse().unwrap()));
    }

    #[test]
    fn connect_takes_a_url_a_token_and_channels() {
        let cli = parse(&[
            "connect",
            "ws://127.0.0.1:8080/ws",
            "--token",
            "alice-token",
            "--subscribe",
            "chat",
            "--subscribe",
            "user:alice",
        ])
        .unwrap();
        let Command::Connect(args) = cli.command else {
            panic!("not connect");
        };
        assert_eq!(args.url, "ws://127.0.0.1:8080/ws");
        assert_eq!(args.token.expose(), "alice-token");
        let channels: Vec<&str> = args.subscribe.iter().map(Channel::as_str).collect();
        assert_eq!(channels, ["chat", "user:alice"]);
        assert!(!format!("{args:?}").contains("alice-token"), "{args:?}");
    }

    #[test]
    fn connect_takes_wss_and_a_ca_file() {
        let cli = parse(&[
            "connect",
            "wss://example.com/ws",
            "--token",
            "t",
            "--ca",
            "ca.pem",
        ])
        .unwrap();
        let Command::Connect(args) = cli.command else {
            panic!("not connect");
        };
        assert_eq!(args.url, "wss://example.com/ws");
        assert_eq!(args.ca, Some(PathBuf::from("ca.pem")));
    }

    #[test]
    fn connect_refuses_bad_urls_channels_and_a_missing_token() {
        for args in [
            &["connect", "http://127.0.0.1:8080/ws", "--token", "t"][..],
            &["connect", "wss://", "--token", "t"],
            &["connect", "ws://", "--token", "t"],
            &["connect", "ws://127.0.0.1:8080/ws"],
            &[
                "connect",
                "ws://127.0.0.1:8080/ws",
                "--token",
                "t",
                "--subscribe",
                "bad channel",
            ],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }
}
