//! Everything `tether serve` is configured with, and where it comes from.
//!
//! Sources, from weakest to strongest: the defaults (PROTOCOL.md's), the
//! TOML file named by `--config`, the environment (`TETHER_JWT_SECRET`,
//! `TETHER_API_KEY`), the command-line flags. The merged result is checked
//! once ([`Settings::validate`]) and the server refuses to start, naming the
//! key at fault, when a rule is broken.
//!
//! The file is one flat table of every key of `tether.example.toml` and
//! nothing else, plus the `[proxy]` table (its keys are named
//! `proxy.<key>` wherever a message names them) and the `[[namespaces]]`
//! tables (module `namespaces`).
//! Unknown keys are refused (a typo would otherwise silently leave the
//! default in force). The keys are read through a table of their
//! own (module `keys`) rather than a serde struct, so that every message
//! names its key and the same table shows the effective settings back.

mod error;
mod keys;
mod kinds;
mod namespaces;
mod render;
mod validate;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum;
use tether_core::ServerConfig;

use crate::secret::{Redacted, mask_url_password};

pub use error::SettingsError;
pub(crate) use kinds::resolve_listen;
pub use validate::{MIN_API_KEY_CHARS, MIN_JWT_SECRET_BYTES};

/// The environment variable read for the JWT secret.
pub const JWT_SECRET_ENV: &str = "TETHER_JWT_SECRET";

/// The environment variable read for the HTTP publish API key.
pub const API_KEY_ENV: &str = "TETHER_API_KEY";

/// The address `serve` listens on by default: loopback only, so a server
/// started to try things out is not reachable from the network.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// Which adapter drives the core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Runtime {
    /// The async adapter on smol: one task per connection.
    #[default]
    Smol,
    /// The adapter on blocking threads.
    Blocking,
    /// The async adapter on tokio's multi-threaded runtime: one task per
    /// connection.
    Tokio,
    /// The same adapter on tokio's current-thread runtime, the whole node
    /// on one thread: for the benchmarks that compare the two
    /// (BENCHMARKS.md), so hidden from the help.
    #[value(hide = true)]
    TokioCurrentThread,
}

impl Runtime {
    /// The name used in the file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Smol => "smol",
            Runtime::Blocking => "blocking",
            Runtime::Tokio => "tokio",
            Runtime::TokioCurrentThread => "tokio-current-thread",
        }
    }
}

/// The algorithm client JWTs are signed with. It comes from the config,
/// never from a token's header, so a token cannot pick how it is checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and the shared `jwt_secret`.
    #[default]
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256 and a public key.
    RS256,
    /// ECDSA on P-256 with SHA-256 and a public key.
    ES256,
    /// Ed25519 and a public key.
    EdDSA,
}

impl JwtAlgorithm {
    /// Every algorithm, in the order the config's message lists them.
    pub const ALL: [JwtAlgorithm; 4] = [
        JwtAlgorithm::HS256,
        JwtAlgorithm::RS256,
        JwtAlgorithm::ES256,
        JwtAlgorithm::EdDSA,
    ];

    /// The name used in the file and in a JWT's `alg` header.
    pub fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::EdDSA => "EdDSA",
        }
    }
}

/// How client JWTs are checked: the algorithm, where its key comes from,
/// and the optional `iss` and `aud` a token must carry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JwtSettings {
    /// The one algorithm tokens must be signed with.
    pub algorithm: JwtAlgorithm,
    /// A PEM public key for RS256, ES256 or EdDSA.
    pub public_key_file: Option<PathBuf>,
    /// A JSON Web Key Set for RS256, ES256 or EdDSA; a token's `kid`
    /// picks the key. Re-read on SIGHUP.
    pub jwks_file: Option<PathBuf>,
    /// When set, a token's `iss` must equal it.
    pub issuer: Option<String>,
    /// When set, a token's `aud` must equal it or, as an array, hold it.
    pub audience: Option<String>,
}

/// The HTTP proxy to the application's backend (PROTOCOL.md section 13,
/// "The HTTP proxy"): where each decision is asked, how long a request may
/// take, how many may be out at once, and the header fields sent with
/// each. A decision without a URL is not asked of the backend.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxySettings {
    /// Asked every `auth` and `refresh` token; unset, the node checks
    /// tokens itself (JWT, or `--dev`).
    pub connect_url: Option<String>,
    /// Asked every `subscribe` where the namespace's rule is `backend`.
    pub subscribe_url: Option<String>,
    /// Asked every `publish` where the namespace's rule is `backend`.
    pub publish_url: Option<String>,
    /// Asked every `rpc`; unset, every method is `NOT_FOUND`.
    pub rpc_url: Option<String>,
    /// The longest one backend request may take, answer read included;
    /// past it the request is `UNAVAILABLE`. At most `decision_timeout`.
    pub timeout: Duration,
    /// Backend requests one node keeps out at once; a decision beyond it
    /// is answered `UNAVAILABLE` at once rather than queued.
    pub max_concurrency: usize,
    /// Header fields sent with every backend request (name, value), e.g.
    /// a shared secret that tells the backend who calls; the values are
    /// secrets, never shown.
    pub headers: Vec<(String, Redacted<String>)>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            connect_url: None,
            subscribe_url: None,
            publish_url: None,
            rpc_url: None,
            timeout: Duration::from_secs(3),
            max_concurrency: 64,
            headers: Vec::new(),
        }
    }
}

impl ProxySettings {
    /// Whether any decision is asked of the backend.
    pub fn is_enabled(&self) -> bool {
        [
            &self.connect_url,
            &self.subscribe_url,
            &self.publish_url,
            &self.rpc_url,
        ]
        .iter()
        .any(|url| url.is_some())
    }
}

/// The node's TLS (PROTOCOL.md, "TLS"): with both files the listening
/// port speaks HTTPS and `wss://` only; with neither, plain HTTP and
/// `ws://`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsSettings {
    /// The certificate chain in PEM, the node's own certificate first.
    /// Re-read on SIGHUP.
    pub cert: Option<PathBuf>,
    /// The certificate's private key in PEM. Re-read on SIGHUP.
    pub key: Option<PathBuf>,
}

/// The complete configuration of `tether serve`.
///
/// Its `Debug` and `Display` never show a secret: the JWT secret and API key
/// are [`Redacted`], and a password inside `redis_url` is masked.
#[derive(Clone, PartialEq)]
pub struct Settings {
    /// The protocol settings handed to the core.
    pub server: ServerConfig,
    /// Address and port of the one listening socket (HTTP and WebSocket).
    pub listen: SocketAddr,
    /// HS256 secret that signs the clients' JWTs; `None` only in dev mode.
    pub jwt_secret: Option<Redacted<String>>,
    /// The JWT algorithm, its public key and the claims checked.
    pub jwt: JwtSettings,
    /// Key that `POST /api/publish` requires; `None` refuses every call.
    pub api_key: Option<Redacted<String>>,
    /// The adapter that drives the core.
    pub runtime: Runtime,
    /// Shards of the node, one per thread (`threads`); `None` for the
    /// default, [`Settings::shards`].
    pub threads: Option<usize>,
    /// Dev mode: any token is accepted as the user id. For trying things
    /// out only; announced loudly at start-up.
    pub dev: bool,
    /// The Redis backplane to share channels with other nodes; `None` keeps
    /// the hub in process.
    pub redis_url: Option<String>,
    /// With a `rediss://` `redis_url`: the CA certificates (PEM) the link
    /// trusts instead of the public roots.
    pub redis_ca_file: Option<PathBuf>,
    /// The HTTP proxy to the application's backend.
    pub proxy: ProxySettings,
    /// The node's certificate and key, for HTTPS and `wss://`.
    pub tls: TlsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: ServerConfig::default(),
            listen: DEFAULT_LISTEN,
            jwt_secret: None,
            jwt: JwtSettings::default(),
            api_key: None,
            runtime: Runtime::default(),
            threads: None,
            dev: false,
            redis_url: None,
            redis_ca_file: None,
            proxy: ProxySettings::default(),
            tls: TlsSettings::default(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Settings {
            server,
            listen,
            jwt_secret,
            jwt,
            api_key,
            runtime,
            threads,
            dev,
            redis_url,
            redis_ca_file,
            proxy,
            tls,
        } = self;
        f.debug_struct("Settings")
            .field("server", server)
            .field("listen", listen)
            .field("jwt_secret", jwt_secret)
            .field("jwt", jwt)
            .field("api_key", api_key)
            .field("runtime", runtime)
            .field("threads", threads)
            .field("dev", dev)
            .field("redis_url", &redis_url.as_deref().map(mask_url_password))
            .field("redis_ca_file", redis_ca_file)
            .field("proxy", proxy)
            .field("tls", tls)
            .finish()
    }
}

/// What the command line says, which beats the file and the environment.
/// `None` (or `false`) leaves the value from the weaker sources.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--jwt-secret`.
    pub jwt_secret: Option<Redacted<String>>,
    /// `--api-key`.
    pub api_key: Option<Redacted<String>>,
    /// `--runtime`.
    pub runtime: Option<Runtime>,
    /// `--dev`; a flag can turn dev mode on, never off.
    pub dev: bool,
    /// `--redis`.
    pub redis_url: Option<String>,
}

impl Settings {
    /// Merges the defaults, the file at `config` (when given), the
    /// environment read through `env`, and `overrides`, then validates.
    ///
    /// `env` is a parameter so that tests need not touch the process
    /// environment; the binary passes `|name| std::env::var(name).ok()`.
    /// An environment variable set to the empty string counts as unset.
    pub fn load(
        config: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: Overrides,
    ) -> Result<Settings, SettingsError> {
        let mut settings = match config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        settings.apply_environment(env);
        settings.apply_overrides(overrides);
        // Dev mode is for trying things out: the demo page comes with it,
        // and a channel that no namespace governs is open to every user.
        settings.server.demo |= settings.dev;
        if settings.dev {
            let open = ServerConfig::dev().namespaces;
            settings.server.namespaces.extend(open);
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Reads a config file on top of the defaults, without validating the
    /// result (other sources may still change it).
    pub fn from_file(path: &Path) -> Result<Settings, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Settings::from_toml_str(&text).map_err(|source| SettingsError::InFile {
            path: PathBuf::from(path),
            source: Box::new(source),
        })
    }

    /// Reads config text on top of the defaults, without validating the
    /// result. Every key must be known and every value of its kind.
    pub fn from_toml_str(text: &str) -> Result<Settings, SettingsError> {
        let table: toml::Table =
            text.parse()
                .map_err(|error: toml::de::Error| SettingsError::Syntax {
                    message: error.to_string(),
                })?;
        let mut settings = Settings::default();
        for (name, value) in &table {
            if !keys::is_section(name) {
                keys::read(&mut settings, name, value)?;
                continue;
            }
            let toml::Value::Table(entries) = value else {
                return Err(SettingsError::BadValue {
                    key: name.clone(),
                    message: format!("expected a [{name}] table, got a {}", value.type_str()),
                });
            };
            for (entry, value) in entries {
                keys::read(&mut settings, &format!("{name}.{entry}"), value)?;
            }
        }
        Ok(settings)
    }

    /// How many shards the node runs (PROTOCOL.md section 10): `threads`
    /// when set, otherwise one per available core, with or without a
    /// backplane (the shards share the node's one link to it).
    pub fn shards(&self) -> usize {
        match self.threads {
            Some(threads) => threads,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    /// Checks the rules that a complete configuration must obey.
    pub fn validate(&self) -> Result<(), SettingsError> {
        validate::validate(self)
    }

    fn apply_environment(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        let read = |name| env(name).filter(|value: &String| !value.is_empty());
        if let Some(secret) = read(JWT_SECRET_ENV) {
            self.jwt_secret = Some(Redacted::new(secret));
        }
        if let Some(key) = read(API_KEY_ENV) {
            self.api_key = Some(Redacted::new(key));
        }
    }

    fn apply_overrides(&mut self, overrides: Overrides) {
        let Overrides {
            listen,
            jwt_secret,
            api_key,
            runtime,
            dev,
            redis_url,
        } = overrides;
        self.listen = listen.unwrap_or(self.listen);
        self.jwt_secret = jwt_secret.or(self.jwt_secret.take());
        self.api_key = api_key.or(self.api_key.take());
        self.runtime = runtime.unwrap_or(self.runtime);
        self.dev |= dev;
        self.redis_url = redis_url.or(self.redis_url.take());
    }
}

#[cfg(test)]
mod tests;
