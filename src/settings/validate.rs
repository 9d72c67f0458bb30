//! Rules that a complete set of settings must obey, checked once all
//! sources (file, environment, flags) are merged, so that a server never
//! starts with values that would misbehave later. The rules of the node's
//! own settings are the core's ([`tether_core::ServerConfig::validate`]);
//! the binary adds those of its secrets and its backplane.

use tether_core::{Operation, Rule};

use super::{JwtAlgorithm, Settings, SettingsError};

/// The shortest JWT secret: RFC 7518 section 3.2 asks for an HS256 key of
/// at least the hash size, 256 bits.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The shortest API key, so that it cannot be guessed.
pub const MIN_API_KEY_CHARS: usize = 16;

/// Checks every rule; the first broken one is reported, naming its key.
pub(crate) fn validate(settings: &Settings) -> Result<(), SettingsError> {
    settings
        .server
        .validate()
        .map_err(|error| invalid(error.field, error.message))?;
    backend_rules(settings)?;
    secrets(settings)?;
    jwt_keys(settings)?;
    redis(settings)
}

fn invalid(key: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        message: message.into(),
    }
}

/// The core hands `backend` decisions to its embedder; the standalone
/// server has no application to hand them to yet, so it refuses them
/// rather than refuse every such request at run time.
fn backend_rules(settings: &Settings) -> Result<(), SettingsError> {
    for (index, namespace) in settings.server.namespaces.iter().enumerate() {
        if let Some(op) = Operation::ALL
            .into_iter()
            .find(|op| namespace.rule(*op) == Rule::Backend)
        {
            return Err(invalid(
                "namespaces",
                format!(
                    "entry {index} ({}), {}: \"backend\" needs the application's decision, \
                     which the standalone server cannot ask for yet; use \"token\" or \
                     \"authenticated\", or embed the core and answer Decision::Channel",
                    namespace.pattern,
                    op.name()
                ),
            ));
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

/// A backplane the node cannot use is refused here rather than ignored:
/// an operator asking for one must not get an isolated node instead.
fn redis(settings: &Settings) -> Result<(), SettingsError> {
    let Some(url) = &settings.redis_url else {
        return Ok(());
    };
    if url.starts_with("rediss://") {
        return Err(invalid(
            "redis_url",
            "rediss:// (TLS) is not supported; use redis:// on a trusted network",
        ));
    }
    if !url.starts_with("redis://") {
        return Err(invalid("redis_url", "must start with redis://"));
    }
    Ok(())
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
    fn redis_urls_need_a_redis_scheme() {
        let http = with(|s| s.redis_url = Some("http://localhost".into()));
        assert_eq!(key_of(&http), Some("redis_url"));
        let ok = with(|s| s.redis_url = Some("redis://127.0.0.1:6379".into()));
        assert_eq!(key_of(&ok), None);
    }

    #[test]
    fn a_backplane_the_node_cannot_use_is_refused_not_ignored() {
        let tls = with(|s| s.redis_url = Some("rediss://127.0.0.1:6379".into()));
        assert_eq!(key_of(&tls), Some("redis_url"));
    }
}
