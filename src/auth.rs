//! Turning a client's token into a user id, for the core's auth gate.
//!
//! The core asks for a verdict on the token of an `auth` message; the driver
//! calls [`Authenticator::authenticate`] with the wall clock as an input
//! (`now_unix`, seconds since the Unix epoch), logs the [`AuthError`] of a
//! refusal (which never contains the token), and hands the core
//! [`Identity::accept`] or [`AuthVerdict::Reject`].
//!
//! A user id, from a JWT's `sub` or a dev token, is 1 to
//! [`MAX_USER_ID_CHARS`] characters with no control character and no
//! whitespace at either end: user ids appear in presence lists, in
//! `sender` fields and in log lines, where such characters would mislead.
//! Only ids that are also channel-name characters have a usable private
//! channel `user:<id>`; that is the token issuer's choice.

mod jwt;

use std::fmt;

use tether_core::connection::AuthVerdict;

use crate::settings::{JWT_SECRET_ENV, Settings};

pub use jwt::JwtVerifier;

/// The longest user id, in characters.
pub const MAX_USER_ID_CHARS: usize = 128;

/// How tokens are checked.
#[derive(Debug)]
pub enum Authenticator {
    /// JWTs signed with HS256 and the configured secret (boxed: the
    /// verifier is large and there is one per server).
    Jwt(Box<JwtVerifier>),
    /// Dev mode: the token itself is the user id. For trying things out
    /// only; anyone can be anyone.
    Dev,
}

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user id (a JWT's `sub`, or the dev token).
    pub user: String,
}

impl Identity {
    /// The verdict that admits this user on a connection whose session id
    /// is `session`.
    pub fn accept(self, session: String) -> AuthVerdict {
        AuthVerdict::Accept {
            user: self.user,
            session,
        }
    }
}

/// Why a token was refused. The messages are fit for logs: they never
/// contain the token or any part of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Not a JWT at all (wrong shape, bad base64 or JSON).
    Malformed,
    /// The header names a signing algorithm other than HS256. A header
    /// with `alg: none` is not a JWT this server knows: [`Self::Malformed`].
    WrongAlgorithm,
    /// The signature does not match the secret.
    BadSignature,
    /// No `exp` claim: a token that never expires is not accepted.
    MissingExpiry,
    /// `exp` or `nbf` is not a whole number of seconds.
    BadTimeClaim(&'static str),
    /// `now_unix` is at or past `exp`.
    Expired,
    /// `now_unix` is before `nbf`.
    NotYetValid,
    /// No `sub` claim.
    MissingSubject,
    /// The user id (`sub` or dev token) breaks the user id rule.
    InvalidUserId,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Malformed => f.write_str("token is not a JWT"),
            AuthError::WrongAlgorithm => f.write_str("token is not signed with HS256"),
            AuthError::BadSignature => f.write_str("token signature does not match"),
            AuthError::MissingExpiry => f.write_str("token has no exp claim"),
            AuthError::BadTimeClaim(claim) => {
                write!(f, "token claim {claim} is not a whole number of seconds")
            }
            AuthError::Expired => f.write_str("token has expired"),
            AuthError::NotYetValid => f.write_str("token is not valid yet (nbf)"),
            AuthError::MissingSubject => f.write_str("token has no sub claim"),
            AuthError::InvalidUserId => write!(
                f,
                "user id must be 1 to {MAX_USER_ID_CHARS} characters, without control characters or surrounding whitespace"
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
    /// (a configured secret is then ignored), otherwise JWT with the secret.
    pub fn from_settings(settings: &Settings) -> Result<Authenticator, MissingSecret> {
        if settings.dev {
            return Ok(Authenticator::Dev);
        }
        let secret = settings.jwt_secret.as_ref().ok_or(MissingSecret)?;
        Ok(Authenticator::Jwt(Box::new(JwtVerifier::new(secret))))
    }

    /// Whether any token is accepted as the user id.
    pub fn is_dev(&self) -> bool {
        matches!(self, Authenticator::Dev)
    }

    /// Checks `token` at wall-clock time `now_unix` (seconds since the Unix
    /// epoch), giving the user it stands for.
    pub fn authenticate(&self, token: &str, now_unix: u64) -> Result<Identity, AuthError> {
        let user = match self {
            Authenticator::Jwt(verifier) => verifier.verify(token, now_unix)?,
            Authenticator::Dev => token.to_owned(),
        };
        check_user_id(&user)?;
        Ok(Identity { user })
    }
}

/// Checks the user id rule of this module's documentation.
pub fn check_user_id(user: &str) -> Result<(), AuthError> {
    let length = user.chars().count();
    let valid = (1..=MAX_USER_ID_CHARS).contains(&length)
        && !user.chars().any(char::is_control)
        && user.trim() == user;
    if valid {
        Ok(())
    } else {
        Err(AuthError::InvalidUserId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Redacted;

    #[test]
    fn dev_mode_takes_the_token_as_the_user_id() {
        let identity = Authenticator::Dev.authenticate("alice", 0).unwrap();
        assert_eq!(identity.user, "alice");
        let verdict = identity.accept("s1".into());
        assert_eq!(
            verdict,
            AuthVerdict::Accept {
                user: "alice".into(),
                session: "s1".into()
            }
        );
    }

    #[test]
    fn dev_mode_still_applies_the_user_id_rule() {
        let dev = Authenticator::Dev;
        assert_eq!(dev.authenticate("", 0), Err(AuthError::InvalidUserId));
        assert_eq!(dev.authenticate(" bob", 0), Err(AuthError::InvalidUserId));
        assert_eq!(dev.authenticate("bob\n", 0), Err(AuthError::InvalidUserId));
        assert_eq!(
            dev.authenticate("a\u{7}b", 0),
            Err(AuthError::InvalidUserId)
        );
        let longest = "é".repeat(MAX_USER_ID_CHARS);
        assert!(dev.authenticate(&longest, 0).is_ok());
        let too_long = "x".repeat(MAX_USER_ID_CHARS + 1);
        assert_eq!(
            dev.authenticate(&too_long, 0),
            Err(AuthError::InvalidUserId)
        );
        assert!(dev.authenticate("jane doe@example.com", 0).is_ok());
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
        let dev = Authenticator::Dev;
        let token = format!("secret-token-{}", "x".repeat(200));
        let error = dev.authenticate(&token, 0).unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
    }
}
