//! Rules that a complete set of settings must obey, checked once all
//! sources (file, environment, flags) are merged, so that a server never
//! starts with values that would misbehave later. The rules of the node's
//! own settings are the core's ([`tether_core::ServerConfig::validate`]);
//! the binary adds those of its secrets and its backplane.

use tether_core::{Operation, Rule};
use ureq::http::{HeaderName, HeaderValue, Uri};

use super::{JwtAlgorithm, Settings, SettingsError};
use crate::secret::mask_url_password;

/// The shortest JWT secret: RFC 7518 section 3.2 asks for an HS256 key of
/// at least the hash size, 256 bits.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The shortest API key, so that it cannot be guessed.
pub const MIN_API_KEY_CHARS: usize = 16;

/// The most backend requests `proxy.max_concurrency` allows out at once:
/// each holds a thread of the runtime's blocking pool while it waits, and
/// the smallest pool (smol's) has 500, so a request over the bound is
/// answered at once instead of queueing for a thread.
pub const MAX_PROXY_CONCURRENCY: usize = 500;

/// Header fields the proxy writes itself on every backend request.
const PROXY_OWN_HEADERS: [&str; 5] = [
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
];

/// Checks every rule; the first broken one is reported, naming its key.
pub(crate) fn validate(settings: &Settings) -> Result<(), SettingsError> {
    settings
        .server
        .validate()
        .map_err(|error| invalid(error.field, error.message))?;
    secrets(settings)?;
    jwt_keys(settings)?;
    redis(settings)?;
    threads(settings)?;
    tls(settings)?;
    proxy(settings)?;
    backend_rules(settings)
}

fn invalid(key: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        message: message.into(),
    }
}

/// A `backend` rule sends its operation's requests to the proxy: a node
/// whose proxy has no URL for it would refuse every such request, so it
/// does not start.
fn backend_rules(settings: &Settings) -> Result<(), SettingsError> {
    let proxy = &settings.proxy;
    let urls = [
        (
            Operation::Subscribe,
            "proxy.subscribe_url",
            &proxy.subscribe_url,
        ),
        (Operation::Publish, "proxy.publish_url", &proxy.publish_url),
    ];
    for (index, namespace) in settings.server.namespaces.iter().enumerate() {
        for (op, key, url) in &urls {
            if namespace.rule(*op) == Rule::Backend && url.is_none() {
                return Err(invalid(
                    "namespaces",
                    format!(
                        "entry {index} ({}), {}: \"backend\" asks the application through the \
                         proxy, which has no URL for it: set {key}, or use another rule",
                        namespace.pattern,
                        op.name()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn secrets(settings: &Settings) -> Result<(), SettingsError> {
    if let Some(secret) = &settings.jwt_secret
        && secret.expose().len() < MIN_JWT_SECRET_BYTES
    {
        return Err(invalid(
            "jwt_secret",
            format!(
                "must be at least {MIN_JWT_SECRET_BYTES} bytes for HS256 (from the config file, --jwt-secret or TETHER_JWT_SECRET), got {}",
                secret.expose().len()
            ),
        ));
    }
    if let Some(key) = &settings.api_key {
        let key = key.expose();
        let printable = key.bytes().all(|b| b.is_ascii_graphic());
        if !printable || key.len() < MIN_API_KEY_CHARS {
            return Err(invalid(
                "api_key",
                format!(
                    "must be at least {MIN_API_KEY_CHARS} printable ASCII characters without spaces (from the config file, --api-key or TETHER_API_KEY)"
                ),
            ));
        }
    }
    Ok(())
}

/// Each algorithm takes exactly one kind of key, so that a key meant for
/// one can never be used for another. Whether a file holds a fitting key is
/// checked when it is read ([`crate::auth::Authenticator::from_settings`]).
fn jwt_keys(settings: &Settings) -> Result<(), SettingsError> {
    let jwt = &settings.jwt;
    let name = jwt.algorithm.name();
    let files = [
        ("jwt_public_key_file", jwt.public_key_file.is_some()),
        ("jwt_jwks_file", jwt.jwks_file.is_some()),
    ];
    if jwt.algorithm == JwtAlgorithm::HS256 {
        if let Some((key, _)) = files.iter().find(|(_, set)| *set) {
            return Err(invalid(
                key,
                "is for RS256, ES256 or EdDSA; set jwt_algorithm, or remove it to use jwt_secret with HS256",
            ));
        }
        return Ok(());
    }
    if settings.jwt_secret.is_some() {
        return Err(invalid(
            "jwt_secret",
            format!(
                "is for HS256 only; jwt_algorithm is {name}, whose key comes from jwt_public_key_file or jwt_jwks_file"
            ),
        ));
    }
    match files {
        [(_, true), (_, true)] => Err(invalid(
            "jwt_jwks_file",
            "cannot be set together with jwt_public_key_file; choose one",
        )),
        [(_, false), (_, false)] if !settings.dev => Err(invalid(
            "jwt_algorithm",
            format!("{name} needs a public key: set jwt_public_key_file or jwt_jwks_file"),
        )),
        _ => Ok(()),
    }
}

/// The most shards `threads` allows: beyond the cores of any machine a
/// node runs on, and each shard costs a thread and a poller.
pub const MAX_THREADS: usize = 1024;

/// `threads` must name a number of shards the node can run: at least one,
/// at most [`MAX_THREADS`], with or without a backplane.
fn threads(settings: &Settings) -> Result<(), SettingsError> {
    match settings.threads {
        Some(0) => Err(invalid("threads", "must be at least 1")),
        Some(threads) if threads > MAX_THREADS => Err(invalid(
            "threads",
            format!("must be at most {MAX_THREADS}, got {threads}"),
        )),
        _ => Ok(()),
    }
}

/// A backplane the node cannot use is refused here rather than ignored:
/// an operator asking for one must not get an isolated node instead.
fn redis(settings: &Settings) -> Result<(), SettingsError> {
    let Some(url) = &settings.redis_url else {
        return match settings.redis_ca_file {
            Some(_) => Err(invalid(
                "redis_ca_file",
                "is for a rediss:// redis_url; none is set",
            )),
            None => Ok(()),
        };
    };
    if url.starts_with("redis://") && settings.redis_ca_file.is_some() {
        return Err(invalid(
            "redis_ca_file",
            "is for a rediss:// (TLS) redis_url; this one is redis://",
        ));
    }
    if !url.starts_with("redis://") && !url.starts_with("rediss://") {
        return Err(invalid(
            "redis_url",
            "must start with redis:// or rediss://",
        ));
    }
    Ok(())
}

/// TLS needs both its files: one alone is a mistake, not a choice.
fn tls(settings: &Settings) -> Result<(), SettingsError> {
    match (&settings.tls.cert, &settings.tls.key) {
        (Some(_), None) => Err(invalid("tls_key", "tls_cert is set: set tls_key too")),
        (None, Some(_)) => Err(invalid("tls_cert", "tls_key is set: set tls_cert too")),
        _ => Ok(()),
    }
}

/// The proxy's URLs are http:// or https:// URLs of a host, without
/// credentials (a secret goes in `proxy.headers`, whose values are never
/// shown); its timeout ends before the core's `decision_timeout` would;
/// its bound is a real one; its header fields can be sent.
fn proxy(settings: &Settings) -> Result<(), SettingsError> {
    let proxy = &settings.proxy;
    let urls = [
        ("proxy.connect_url", &proxy.connect_url),
        ("proxy.subscribe_url", &proxy.subscribe_url),
        ("proxy.publish_url", &proxy.publish_url),
        ("proxy.rpc_url", &proxy.rpc_url),
    ];
    for (key, url) in urls {
        if let Some(url) = url {
            backend_url(url).map_err(|message| invalid(key, message))?;
        }
    }
    if proxy.timeout.is_zero() {
        return Err(invalid("proxy.timeout", "must be above zero"));
    }
    if proxy.timeout > settings.server.decision_timeout {
        return Err(invalid(
            "proxy.timeout",
            format!(
                "must be at most decision_timeout ({}), after which the node answers \
                 UNAVAILABLE without waiting for the backend",
                crate::units::format_duration(settings.server.decision_timeout)
            ),
        ));
    }
    if !(1..=MAX_PROXY_CONCURRENCY).contains(&proxy.max_concurrency) {
        return Err(invalid(
            "proxy.max_concurrency",
            format!("must be 1 to {MAX_PROXY_CONCURRENCY}"),
        ));
    }
    for (name, value) in &proxy.headers {
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            return Err(invalid(
                "proxy.headers",
                format!("{name:?} is not a header field name"),
            ));
        };
        if PROXY_OWN_HEADERS.contains(&header.as_str()) {
            return Err(invalid(
                "proxy.headers",
                format!("{name:?} is written by the proxy itself"),
            ));
        }
        if HeaderValue::from_str(value.expose()).is_err() {
            return Err(invalid(
                "proxy.headers",
                format!(
                    "the value of {name:?} must be visible ASCII characters and spaces (not shown)"
                ),
            ));
        }
    }
    Ok(())
}

/// Why `url` cannot be a backend's URL, if it cannot.
fn backend_url(url: &str) -> Result<(), String> {
    let shown = mask_url_password(url);
    let uri: Uri = url.parse().map_err(|_| format!("{shown:?} is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("must be an http:// or https:// URL, got {shown:?}"));
    }
    match uri.authority() {
        None => Err(format!("{shown:?} names no host")),
        Some(authority) if authority.as_str().contains('@') => Err(format!(
            "{shown:?} holds credentials: send them in proxy.headers, whose values are never shown"
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Redacted;

    fn key_of(settings: &Settings) -> Option<&'static str> {
        match validate(settings) {
            Ok(()) => None,
            Err(SettingsError::Invalid { key, .. }) => Some(key),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    fn with(change: impl FnOnce(&mut Settings)) -> Settings {
        let mut settings = Settings::default();
        change(&mut settings);
        settings
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(key_of(&Settings::default()), None);
    }

    #[test]
    fn tls_needs_both_its_files() {
        let cert = with(|s| s.tls.cert = Some("node.crt".into()));
        assert_eq!(key_of(&cert), Some("tls_key"));
        let key = with(|s| s.tls.key = Some("node.key".into()));
        assert_eq!(key_of(&key), Some("tls_cert"));
        let both = with(|s| {
            s.tls.cert = Some("node.crt".into());
            s.tls.key = Some("node.key".into());
        });
        assert_eq!(key_of(&both), None);
    }

    #[test]
    fn a_rule_of_the_server_config_names_its_key() {
        let settings = with(|s| s.server.high_water = s.server.hard_limit);
        assert_eq!(key_of(&settings), Some("high_water"));
    }

    #[test]
    fn short_secrets_are_refused_without_echoing_them() {
        let settings = with(|s| s.jwt_secret = Some(Redacted::new("short-secret".into())));
        let error = validate(&settings).unwrap_err().to_string();
        assert!(error.contains("jwt_secret"), "{error}");
        assert!(!error.contains("short-secret"), "{error}");
        let ok = with(|s| s.jwt_secret = Some(Redacted::new("x".repeat(32))));
        assert_eq!(key_of(&ok), None);
    }

    #[test]
    fn api_keys_must_be_long_and_sendable() {
        let spaced = with(|s| s.api_key = Some(Redacted::new("a key with spaces inside".into())));
        assert_eq!(key_of(&spaced), Some("api_key"));
        let short = with(|s| s.api_key = Some(Redacted::new("abc".into())));
        assert_eq!(key_of(&short), Some("api_key"));
        let ok = with(|s| s.api_key = Some(Redacted::new("k".repeat(16))));
        assert_eq!(key_of(&ok), None);
    }

    #[test]
    fn each_jwt_algorithm_takes_exactly_one_kind_of_key() {
        let secret = || Some(Redacted::new("x".repeat(32)));
        let pem = with(|s| s.jwt.public_key_file = Some("k.pem".into()));
        assert_eq!(key_of(&pem), Some("jwt_public_key_file"));
        let jwks = with(|s| s.jwt.jwks_file = Some("k.json".into()));
        assert_eq!(key_of(&jwks), Some("jwt_jwks_file"));
        let keyless = with(|s| s.jwt.algorithm = JwtAlgorithm::RS256);
        assert_eq!(key_of(&keyless), Some("jwt_algorithm"));
        let with_secret = with(|s| {
            s.jwt.algorithm = JwtAlgorithm::ES256;
            s.jwt.public_key_file = Some("k.pem".into());
            s.jwt_secret = secret();
        });
        assert_eq!(key_of(&with_secret), Some("jwt_secret"));
        let both = with(|s| {
            s.jwt.algorithm = JwtAlgorithm::EdDSA;
            s.jwt.public_key_file = Some("k.pem".into());
            s.jwt.jwks_file = Some("k.json".into());
        });
        assert_eq!(key_of(&both), Some("jwt_jwks_file"));
        let ok = with(|s| {
            s.jwt.algorithm = JwtAlgorithm::EdDSA;
            s.jwt.jwks_file = Some("k.json".into());
        });
        assert_eq!(key_of(&ok), None);
        let hs256 = with(|s| s.jwt_secret = secret());
        assert_eq!(key_of(&hs256), None);
    }

    #[test]
    fn threads_must_be_a_number_of_shards_the_node_can_run() {
        assert_eq!(key_of(&with(|s| s.threads = Some(0))), Some("threads"));
        let many = with(|s| s.threads = Some(MAX_THREADS + 1));
        assert_eq!(key_of(&many), Some("threads"));
        let redis = |threads| {
            with(|s| {
                s.threads = threads;
                s.redis_url = Some("redis://127.0.0.1:6379".into());
            })
        };
        assert_eq!(key_of(&redis(Some(2))), None, "shards share the link");
        assert_eq!(key_of(&redis(Some(1))), None);
        assert_eq!(key_of(&redis(None)), None);
        assert_eq!(redis(Some(2)).shards(), 2);
        assert_eq!(key_of(&with(|s| s.threads = Some(2))), None);
        assert_eq!(with(|s| s.threads = Some(3)).shards(), 3);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(Settings::default().shards(), cores);
        assert_eq!(redis(None).shards(), cores, "as without a backplane");
    }

    #[test]
    fn redis_urls_need_a_redis_scheme() {
        let http = with(|s| s.redis_url = Some("http://localhost".into()));
        assert_eq!(key_of(&http), Some("redis_url"));
        let ok = with(|s| s.redis_url = Some("redis://127.0.0.1:6379".into()));
        assert_eq!(key_of(&ok), None);
    }

    #[test]
    fn every_proxy_mistake_names_its_key() {
        let url = |s: &mut Settings, text: &str| s.proxy.connect_url = Some(text.into());
        for (change, key) in [
            (
                with(|s| url(s, "ftp://backend/connect")),
                "proxy.connect_url",
            ),
            (with(|s| url(s, "not a url")), "proxy.connect_url"),
            (with(|s| url(s, "/connect")), "proxy.connect_url"),
            (
                with(|s| s.proxy.subscribe_url = Some("redis://b".into())),
                "proxy.subscribe_url",
            ),
            (
                with(|s| s.proxy.publish_url = Some("backend:80/p".into())),
                "proxy.publish_url",
            ),
            (
                with(|s| s.proxy.rpc_url = Some("http://".into())),
                "proxy.rpc_url",
            ),
            (
                with(|s| s.proxy.timeout = std::time::Duration::ZERO),
                "proxy.timeout",
            ),
            (
                with(|s| s.proxy.timeout = s.server.decision_timeout * 2),
                "proxy.timeout",
            ),
            (
                with(|s| s.proxy.max_concurrency = 0),
                "proxy.max_concurrency",
            ),
            (
                with(|s| s.proxy.max_concurrency = MAX_PROXY_CONCURRENCY + 1),
                "proxy.max_concurrency",
            ),
            (
                with(|s| s.proxy.headers = vec![("x y".into(), Redacted::new("v".into()))]),
                "proxy.headers",
            ),
            (
                with(|s| s.proxy.headers = vec![("Host".into(), Redacted::new("v".into()))]),
                "proxy.headers",
            ),
        ] {
            assert_eq!(key_of(&change), Some(key), "{:?}", change.proxy);
        }
        let ok = with(|s| {
            s.proxy.connect_url = Some("https://backend.example/tether/connect".into());
            s.proxy.rpc_url = Some("http://127.0.0.1:3000/rpc".into());
            s.proxy.timeout = s.server.decision_timeout;
            s.proxy.max_concurrency = MAX_PROXY_CONCURRENCY;
            s.proxy.headers = vec![("X-Backend-Key".into(), Redacted::new("k".into()))];
        });
        assert_eq!(key_of(&ok), None);
    }

    #[test]
    fn proxy_errors_never_show_credentials_or_header_values() {
        let password = with(|s| s.proxy.connect_url = Some("http://app:hunter2@b/c".into()));
        let error = validate(&password).unwrap_err().to_string();
        assert!(error.contains("proxy.connect_url"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        let value = with(|s| {
            s.proxy.headers = vec![("x-key".into(), Redacted::new("hunter2\n".into()))];
        });
        let error = validate(&value).unwrap_err().to_string();
        assert!(error.contains("\"x-key\""), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn a_backend_rule_needs_the_proxy_url_of_its_operation() {
        let backend = |s: &mut Settings, subscribe: Rule, publish: Rule| {
            s.server.namespaces = vec![tether_core::Namespace {
                pattern: tether_core::ChannelPattern::new("room:*").unwrap(),
                subscribe,
                publish,
                presence: Rule::Nobody,
                history: Rule::Nobody,
            }];
        };
        let subscribe = with(|s| backend(s, Rule::Backend, Rule::Nobody));
        let error = validate(&subscribe).unwrap_err().to_string();
        assert!(
            error.contains("entry 0 (room:*), subscribe:") && error.contains("proxy.subscribe_url"),
            "{error}"
        );
        let publish = with(|s| {
            backend(s, Rule::Backend, Rule::Backend);
            s.proxy.subscribe_url = Some("http://127.0.0.1:3000/subscribe".into());
        });
        let error = validate(&publish).unwrap_err().to_string();
        assert!(
            error.contains("entry 0 (room:*), publish:") && error.contains("proxy.publish_url"),
            "{error}"
        );
        let both = with(|s| {
            backend(s, Rule::Backend, Rule::Backend);
            s.proxy.subscribe_url = Some("http://127.0.0.1:3000/subscribe".into());
            s.proxy.publish_url = Some("http://127.0.0.1:3000/publish".into());
        });
        assert_eq!(key_of(&both), None);
    }

    #[test]
    fn rediss_is_a_backplane_and_a_ca_file_needs_it() {
        let tls = with(|s| s.redis_url = Some("rediss://127.0.0.1:6379".into()));
        assert_eq!(key_of(&tls), None);
        let trusting = with(|s| {
            s.redis_url = Some("rediss://127.0.0.1:6379".into());
            s.redis_ca_file = Some("ca.pem".into());
        });
        assert_eq!(key_of(&trusting), None);
        let plain = with(|s| {
            s.redis_url = Some("redis://127.0.0.1:6379".into());
            s.redis_ca_file = Some("ca.pem".into());
        });
        assert_eq!(key_of(&plain), Some("redis_ca_file"));
        let alone = with(|s| s.redis_ca_file = Some("ca.pem".into()));
        assert_eq!(key_of(&alone), Some("redis_ca_file"));
    }
}
