//! Turning a client's token into a user id, for the core's auth gate.
//!
//! The core asks for a verdict on the token of an `auth` or `refresh`
//! message; the runtime asks a [`NodeAuthorizer`], which reads the wall
//! clock once (the core never does), calls [`Authenticator::authenticate`]
//! with it as `now_unix_ms` (milliseconds since the Unix epoch) and logs the
//! [`AuthError`] of a refusal, which never contains the token. What an
//! accepted token proves is an [`Identity`]: its user, the grants of its
//! `channels` claim and its expiry, reported as `expires_at` and timed from
//! that one reading of the clock.
//!
//! The user id a token proves (a JWT's `sub`, or a dev token) is checked by
//! the core, for every runtime and authorizer alike
//! ([`tether_core::is_valid_user_id`]): a connection whose id breaks
//! the rule is closed `4003` with reason `invalid user id`, which the
//! runtime logs.

mod jwt;

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use tether_core::{Authorizer, Identity};

use crate::api_key::check_api_key;
use crate::app::AppError;
use crate::secret::Redacted;
use crate::settings::{JWT_SECRET_ENV, Settings, SettingsError};

pub use jwt::JwtVerifier;

/// How tokens are checked.
#[derive(Debug)]
pub enum Authenticator {
    /// JWTs signed with the configured algorithm and key (boxed: the
    /// verifier is large and there is one per server).
    Jwt(Box<JwtVerifier>),
    /// Dev mode: the token itself is the user id. For trying things out
    /// only; anyone can be anyone.
    Dev,
}

/// Decides tokens and API keys for a running node: the binary's
/// implementation of the core's auth seam.
#[derive(Debug)]
pub struct NodeAuthorizer {
    /// `None` when the tokens are the proxy backend's to decide.
    authenticator: Option<Authenticator>,
    api_key: Option<Redacted<String>>,
}

impl NodeAuthorizer {
    /// Checks tokens with `authenticator` and API requests against
    /// `api_key` (none: every API request is refused).
    pub fn new(authenticator: Authenticator, api_key: Option<Redacted<String>>) -> Self {
        NodeAuthorizer {
            authenticator: Some(authenticator),
            api_key,
        }
    }

    /// Checks API requests against `api_key` only, for a node whose
    /// tokens the proxy backend decides (`proxy.connect_url`): a token
    /// asked of this authorizer is refused.
    pub fn api_only(api_key: Option<Redacted<String>>) -> Self {
        NodeAuthorizer {
            authenticator: None,
            api_key,
        }
    }

    /// How this node checks tokens; `None` when the proxy backend does.
    pub fn authenticator(&self) -> Option<&Authenticator> {
        self.authenticator.as_ref()
    }
}

/// The wall clock in milliseconds since the Unix epoch, read once per
/// token check (0 before the epoch, saturating far after it).
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

impl Authorizer for NodeAuthorizer {
    fn authenticate(&self, token: &str) -> Option<Identity> {
        let Some(authenticator) = &self.authenticator else {
            tracing::info!("token refused: the proxy backend decides tokens");
            return None;
        };
        match authenticator.authenticate(token, unix_now_ms()) {
            Ok(identity) => Some(identity),
            Err(error) => {
                tracing::info!(%error, "token refused");
                None
            }
        }
    }

    /// JWT verification, dev tokens and the API key comparison are CPU work
    /// of microseconds.
    fn may_block(&self) -> bool {
        false
    }

    fn authorize_api(&self, authorization: Option<&str>) -> bool {
        self.api_key
            .as_ref()
            .is_some_and(|key| check_api_key(authorization, key))
    }
}

/// Why a token was refused. The messages are fit for logs: they never
/// contain the token or any part of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Not a JWT at all (wrong shape, bad base64 or JSON).
    Malformed,
    /// The header names a signing algorithm other than the configured
    /// one. A header with `alg: none` is not a JWT this server knows:
    /// [`Self::Malformed`].
    WrongAlgorithm,
    /// With a key set: the header has no `kid`, or one the set does not hold.
    UnknownKey,
    /// The signature does not match the secret.
    BadSignature,
    /// No `exp` claim: a token that never expires is not accepted.
    MissingExpiry,
    /// `exp` or `nbf` is not a whole number of seconds, or `exp` is beyond
    /// what Unix milliseconds can hold.
    BadTimeClaim(&'static str),
    /// The clock is at or past `exp`.
    Expired,
    /// The clock is before `nbf`.
    NotYetValid,
    /// `jwt_issuer` is set and `iss` is missing or another.
    WrongIssuer,
    /// `jwt_audience` is set and `aud` neither is it nor holds it.
    WrongAudience,
    /// No `sub` claim.
    MissingSubject,
    /// A `sub` claim that is not a string.
    SubjectNotAString,
    /// A `channels` claim that is not an object of channel patterns to
    /// lists of operations ([`tether_core::Grants::from_claim`]).
    BadChannelsClaim,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Malformed => f.write_str("token is not a JWT"),
            AuthError::WrongAlgorithm => {
                f.write_str("token is not signed with the configured algorithm")
            }
            AuthError::UnknownKey => f.write_str("token kid names no key of the key set"),
            AuthError::WrongIssuer => f.write_str("token iss is not the configured issuer"),
            AuthError::WrongAudience => {
                f.write_str("token aud does not hold the configured audience")
            }
            AuthError::BadSignature => f.write_str("token signature does not match"),
            AuthError::MissingExpiry => f.write_str("token has no exp claim"),
            AuthError::BadTimeClaim(claim) => write!(
                f,
                "token claim {claim} is not a whole number of seconds within range"
            ),
            AuthError::Expired => f.write_str("token has expired"),
            AuthError::NotYetValid => f.write_str("token is not valid yet (nbf)"),
            AuthError::MissingSubject => f.write_str("token has no sub claim"),
            AuthError::SubjectNotAString => f.write_str("token sub claim is not a string"),
            AuthError::BadChannelsClaim => f.write_str(
                "token claim channels is not an object of channel patterns to lists of operations",
            ),
        }
    }
}

impl std::error::Error for AuthError {}

/// `serve` without a JWT secret and without `--dev`: there would be no way
/// to authenticate anyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingSecret;

impl fmt::Display for MissingSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no JWT secret: pass --jwt-secret SECRET or set {JWT_SECRET_ENV} (or jwt_secret in the config file); \
             to try things out without tokens, pass --dev (any token is then accepted as the user id)"
        )
    }
}

impl std::error::Error for MissingSecret {}

impl Authenticator {
    /// The authenticator the settings ask for: dev mode when `dev` is set
    /// (a configured secret or key is then ignored), otherwise JWT with the
    /// secret, the PEM key file or the JWKS file, read here; an unreadable
    /// or unfitting file is refused naming its key.
    pub fn from_settings(settings: &Settings) -> Result<Authenticator, AppError> {
        if settings.dev {
            return Ok(Authenticator::Dev);
        }
        let jwt = &settings.jwt;
        let verifier = if let Some(path) = &jwt.public_key_file {
            let pem = read_key_file("jwt_public_key_file", path)?;
            JwtVerifier::from_pem(jwt.algorithm, pem.as_bytes())
                .map_err(|message| key_file_error("jwt_public_key_file", path, &message))?
        } else if let Some(path) = &jwt.jwks_file {
            let jwks = read_key_file("jwt_jwks_file", path)?;
            JwtVerifier::from_jwks(jwt.algorithm, &jwks)
                .map_err(|message| key_file_error("jwt_jwks_file", path, &message))?
        } else {
            JwtVerifier::new(settings.jwt_secret.as_ref().ok_or(MissingSecret)?)
        };
        let verifier = verifier.with_claims(jwt.issuer.clone(), jwt.audience.clone());
        Ok(Authenticator::Jwt(Box::new(verifier)))
    }

    /// Re-reads the JWKS file of `settings` into this authenticator's key
    /// set (on SIGHUP); on an error the keys in force stay. Gives the number
    /// of keys now in force, or `None` when no JWKS file is configured.
    pub fn reload_key_set(&self, settings: &Settings) -> Option<Result<usize, SettingsError>> {
        let (Authenticator::Jwt(verifier), Some(path)) = (self, &settings.jwt.jwks_file) else {
            return None;
        };
        Some(read_key_file("jwt_jwks_file", path).and_then(|jwks| {
            verifier
                .replace_key_set(&jwks)
                .map_err(|message| key_file_error("jwt_jwks_file", path, &message))
        }))
    }

    /// Whether any token is accepted as the user id.
    pub fn is_dev(&self) -> bool {
        matches!(self, Authenticator::Dev)
    }

    /// Checks `token` at wall-clock time `now_unix_ms` (milliseconds since
    /// the Unix epoch), giving who it proves. A dev token is its user, with
    /// no grants and no expiry.
    pub fn authenticate(&self, token: &str, now_unix_ms: u64) -> Result<Identity, AuthError> {
        match self {
            Authenticator::Jwt(verifier) => verifier.verify(token, now_unix_ms),
            Authenticator::Dev => Ok(Identity::user(token)),
        }
    }
}

/// The text of the key file at `path`, set by config key `key`.
fn read_key_file(key: &'static str, path: &Path) -> Result<String, SettingsError> {
    std::fs::read_to_string(path)
        .map_err(|error| key_file_error(key, path, &format!("cannot be read ({error})")))
}

fn key_file_error(key: &'static str, path: &Path, message: &str) -> SettingsError {
    SettingsError::Invalid {
        key,
        message: format!("{}: {message}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use tether_testkit::keys::{KeyKind, KeyPair};

    use super::*;
    use crate::settings::{JwtAlgorithm, JwtSettings};

    #[test]
    fn dev_mode_takes_the_token_as_the_user_id() {
        let identity = Authenticator::Dev.authenticate("alice", 0).unwrap();
        assert_eq!(identity.user, "alice");
    }

    #[test]
    fn the_node_authorizer_checks_tokens_and_the_api_key() {
        let key = Redacted::new("0123456789abcdef".to_owned());
        let authorizer = NodeAuthorizer::new(Authenticator::Dev, Some(key));
        assert_eq!(
            authorizer.authenticate("alice"),
            Some(Identity::user("alice"))
        );
        assert!(authorizer.authorize_api(Some("Bearer 0123456789abcdef")));
        assert!(!authorizer.authorize_api(Some("Bearer nope")));
        assert!(!authorizer.authorize_api(None));
        let keyless = NodeAuthorizer::new(Authenticator::Dev, None);
        assert!(!keyless.authorize_api(Some("Bearer 0123456789abcdef")));
    }

    #[test]
    fn an_api_only_authorizer_checks_the_key_and_refuses_every_token() {
        let key = Redacted::new("0123456789abcdef".to_owned());
        let authorizer = NodeAuthorizer::api_only(Some(key));
        assert!(authorizer.authorize_api(Some("Bearer 0123456789abcdef")));
        assert_eq!(authorizer.authenticate("alice"), None);
        assert!(authorizer.authenticator().is_none());
    }

    #[test]
    fn the_node_authorizer_reads_the_wall_clock_to_the_millisecond() {
        let secret = Redacted::new("s".repeat(32));
        let verifier = JwtVerifier::new(&secret);
        let authorizer = NodeAuthorizer::new(Authenticator::Jwt(Box::new(verifier)), None);
        let unix_ms = || {
            let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            u64::try_from(elapsed.as_millis()).unwrap()
        };
        let exp = unix_ms() / 1000 + 60;
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": "alice", "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(secret.expose().as_bytes()),
        )
        .unwrap();
        let before = unix_ms();
        let identity = authorizer.authenticate(&token).expect("a valid token");
        let after = unix_ms();
        let expiry = identity.expiry.expect("an expiry");
        assert_eq!(expiry.unix_ms, exp * 1000);
        let remaining = u64::try_from(expiry.remaining.as_millis()).unwrap();
        assert!(
            (exp * 1000 - after..=exp * 1000 - before).contains(&remaining),
            "{remaining} ms left, read between {before} and {after}"
        );
    }

    #[test]
    fn serve_needs_a_secret_or_dev_mode() {
        let settings = Settings::default();
        let error = Authenticator::from_settings(&settings).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("--jwt-secret"), "{message}");
        assert!(message.contains("TETHER_JWT_SECRET"), "{message}");
        assert!(message.contains("--dev"), "{message}");

        let dev = Settings {
            dev: true,
            jwt_secret: Some(Redacted::new("s".repeat(32))),
            ..Settings::default()
        };
        assert!(Authenticator::from_settings(&dev).unwrap().is_dev());

        let jwt = Settings {
            jwt_secret: Some(Redacted::new("s".repeat(32))),
            ..Settings::default()
        };
        assert!(!Authenticator::from_settings(&jwt).unwrap().is_dev());
    }

    #[test]
    fn auth_errors_never_carry_the_token() {
        let secret = Redacted::new("s".repeat(32));
        let jwt = Authenticator::Jwt(Box::new(JwtVerifier::new(&secret)));
        let token = format!("secret-token.{}.x", "x".repeat(200));
        let error = jwt.authenticate(&token, 0).unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
    }

    #[test]
    fn an_unusable_key_file_stops_start_up_naming_its_key() {
        let data = std::env::temp_dir().join(format!("tether-auth-keys-{}", std::process::id()));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            data.join("ed.pub"),
            KeyPair::generate(KeyKind::Ed25519).public_pem,
        )
        .unwrap();
        std::fs::write(
            data.join("rsa.pub"),
            KeyPair::generate(KeyKind::Rsa).public_pem,
        )
        .unwrap();
        let missing = Settings {
            jwt: JwtSettings {
                algorithm: JwtAlgorithm::EdDSA,
                jwks_file: Some(data.join("absent.json")),
                ..JwtSettings::default()
            },
            ..Settings::default()
        };
        let message = Authenticator::from_settings(&missing)
            .unwrap_err()
            .to_string();
        assert!(message.contains("\"jwt_jwks_file\""), "{message}");
        assert!(message.contains("absent.json"), "{message}");

        let not_a_set = Settings {
            jwt: JwtSettings {
                jwks_file: Some(data.join("ed.pub")),
                ..missing.jwt.clone()
            },
            ..Settings::default()
        };
        let message = Authenticator::from_settings(&not_a_set)
            .unwrap_err()
            .to_string();
        assert!(message.contains("not a JSON Web Key Set"), "{message}");

        let wrong_type = Settings {
            jwt: JwtSettings {
                algorithm: JwtAlgorithm::ES256,
                public_key_file: Some(data.join("rsa.pub")),
                ..JwtSettings::default()
            },
            ..Settings::default()
        };
        let message = Authenticator::from_settings(&wrong_type)
            .unwrap_err()
            .to_string();
        assert!(message.contains("\"jwt_public_key_file\""), "{message}");
        assert!(message.contains("ES256"), "{message}");

        let fitting = Settings {
            jwt: JwtSettings {
                algorithm: JwtAlgorithm::RS256,
                ..wrong_type.jwt.clone()
            },
            ..Settings::default()
        };
        assert!(!Authenticator::from_settings(&fitting).unwrap().is_dev());
        let dev = Settings {
            dev: true,
            ..missing
        };
        assert!(Authenticator::from_settings(&dev).unwrap().is_dev());
        std::fs::remove_dir_all(&data).unwrap();
    }
}
