//! HS256 JWT verification with the wall clock as an input.
//!
//! jsonwebtoken checks the shape, the algorithm and the signature; its own
//! time checks are off, because they read the system clock. Here `exp` and
//! `nbf` are compared with the `now_unix` the driver passes in, with no
//! leeway, so a test decides exactly which second a token expires in:
//!
//! - `exp` is required (a token that never expires is refused) and the
//!   token is valid while `now_unix < exp`; at `now_unix == exp` it has
//!   expired (RFC 7519 section 4.1.4: "on or after").
//! - `nbf` is optional; the token is valid from `now_unix == nbf` on
//!   (section 4.1.5).
//! - Both are whole seconds; a fractional NumericDate is refused.
//! - Clock skew between the issuer and the server is the issuer's to
//!   absorb, by issuing tokens that expire later; the server adds none.
//!
//! The secret is used as raw bytes (not base64-decoded), the algorithm is
//! pinned to HS256, and `aud`/`iss` are not checked (the server has no
//! audience or issuer setting).

use std::fmt;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use serde_json::Value;

use super::AuthError;
use crate::secret::Redacted;

/// Verifies HS256 JWTs signed with one shared secret.
pub struct JwtVerifier {
    key: Redacted<DecodingKey>,
    validation: Validation,
}

/// The claims this server reads; all others are ignored.
#[derive(Deserialize)]
struct Claims {
    sub: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithm", &Algorithm::HS256)
            .field("key", &self.key)
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier for tokens signed with `secret`.
    pub fn new(secret: &Redacted<String>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        JwtVerifier {
            key: Redacted::new(DecodingKey::from_secret(secret.expose().as_bytes())),
            validation,
        }
    }

    /// Checks `token` at `now_unix` and gives its `sub`; the caller still
    /// applies the user id rule.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<String, AuthError> {
        let claims = decode::<Claims>(token, self.key.expose(), &self.validation)
            .map_err(|error| classify(error.kind()))?
            .claims;
        let exp = seconds(claims.exp, "exp")?.ok_or(AuthError::MissingExpiry)?;
        if now_unix >= exp {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = seconds(claims.nbf, "nbf")?
            && now_unix < nbf
        {
            return Err(AuthError::NotYetValid);
        }
        match claims.sub {
            None => Err(AuthError::MissingSubject),
            Some(Value::String(sub)) => Ok(sub),
            Some(_) => Err(AuthError::SubjectNotAString),
        }
    }
}

/// A NumericDate claim as whole seconds; `None` when absent.
fn seconds(claim: Option<Value>, name: &'static str) -> Result<Option<u64>, AuthError> {
    match claim {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or(AuthError::BadTimeClaim(name)),
    }
}

fn classify(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => AuthError::WrongAlgorithm,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        _ => AuthError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;
    use crate::auth::Authenticator;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(&Redacted::new(SECRET.to_owned()))
    }

    fn sign_with(algorithm: Algorithm, secret: &str, claims: &Value) -> String {
        encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn sign(claims: Value) -> String {
        sign_with(Algorithm::HS256, SECRET, &claims)
    }

    fn base64url(bytes: &[u8]) -> String {
        data_encoding::BASE64URL_NOPAD.encode(bytes)
    }

    #[test]
    fn a_valid_token_gives_its_subject() {
        let token = sign(json!({"sub": "alice", "exp": NOW + 60}));
        assert_eq!(verifier().verify(&token, NOW), Ok("alice".to_owned()));
    }

    #[test]
    fn expiry_is_exclusive_at_exp() {
        let token = sign(json!({"sub": "alice", "exp": NOW}));
        assert_eq!(verifier().verify(&token, NOW - 1), Ok("alice".to_owned()));
        assert_eq!(verifier().verify(&token, NOW), Err(AuthError::Expired));
        assert_eq!(verifier().verify(&token, NOW + 1), Err(AuthError::Expired));
    }

    #[test]
    fn the_injected_clock_decides_not_the_system_clock() {
        // Expired long ago by the system clock, valid at the injected time.
        let token = sign(json!({"sub": "alice", "exp": 1_000}));
        assert_eq!(verifier().verify(&token, 999), Ok("alice".to_owned()));
    }

    #[test]
    fn not_before_is_inclusive_at_nbf() {
        let token = sign(json!({"sub": "alice", "exp": NOW + 60, "nbf": NOW}));
        assert_eq!(
            verifier().verify(&token, NOW - 1),
            Err(AuthError::NotYetValid)
        );
        assert_eq!(verifier().verify(&token, NOW), Ok("alice".to_owned()));
    }

    #[test]
    fn a_token_without_exp_is_refused() {
        let token = sign(json!({"sub": "alice"}));
        assert_eq!(
            verifier().verify(&token, NOW),
            Err(AuthError::MissingExpiry)
        );
    }

    #[test]
    fn fractional_or_negative_times_are_refused() {
        let token = sign(json!({"sub": "alice", "exp": 1.7e9}));
        assert_eq!(
            verifier().verify(&token, NOW),
            Err(AuthError::BadTimeClaim("exp"))
        );
        let token = sign(json!({"sub": "alice", "exp": NOW + 60, "nbf": -1}));
        assert_eq!(
            verifier().verify(&token, NOW),
            Err(AuthError::BadTimeClaim("nbf"))
        );
    }

    #[test]
    fn a_wrong_signature_is_refused() {
        let token = sign_with(
            Algorithm::HS256,
            "another-secret-of-thirty-two-byte",
            &json!({"sub": "alice", "exp": NOW + 60}),
        );
        assert_eq!(verifier().verify(&token, NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let token = sign(json!({"sub": "alice", "exp": NOW + 60}));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = base64url(br#"{"sub":"mallory","exp":9999999999}"#);
        let forged = parts.join(".");
        assert_eq!(
            verifier().verify(&forged, NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn other_algorithms_are_refused_even_with_the_right_secret() {
        let claims = json!({"sub": "alice", "exp": NOW + 60});
        for algorithm in [Algorithm::HS384, Algorithm::HS512] {
            let token = sign_with(algorithm, SECRET, &claims);
            assert_eq!(
                verifier().verify(&token, NOW),
                Err(AuthError::WrongAlgorithm),
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = base64url(br#"{"sub":"alice","exp":9999999999}"#);
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert_eq!(verifier().verify(&token, NOW), Err(AuthError::Malformed));
        }
    }

    #[test]
    fn a_missing_or_non_string_subject_is_refused() {
        let token = sign(json!({"exp": NOW + 60}));
        assert_eq!(
            verifier().verify(&token, NOW),
            Err(AuthError::MissingSubject)
        );
        let token = sign(json!({"sub": 42, "exp": NOW + 60}));
        assert_eq!(
            verifier().verify(&token, NOW),
            Err(AuthError::SubjectNotAString)
        );
        let authenticator = Authenticator::Jwt(Box::new(verifier()));
        let token = sign(json!({"sub": "bob", "exp": NOW + 60}));
        assert_eq!(authenticator.authenticate(&token, NOW).unwrap().user, "bob");
    }

    #[test]
    fn garbage_is_refused() {
        for token in ["", "garbage", "a.b.c", "a.b", "...."] {
            assert_eq!(
                verifier().verify(token, NOW),
                Err(AuthError::Malformed),
                "{token:?}"
            );
        }
    }

    #[test]
    fn the_payload_is_not_read_before_the_signature_is_checked() {
        let header = base64url(br#"{"alg":"HS256"}"#);
        let token = format!("{header}.!!!.c2ln");
        assert_eq!(verifier().verify(&token, NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn a_signed_payload_that_is_not_json_is_malformed() {
        let message = format!(
            "{}.{}",
            base64url(br#"{"alg":"HS256"}"#),
            base64url(b"not json")
        );
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
        let token = format!("{message}.{signature}");
        assert_eq!(verifier().verify(&token, NOW), Err(AuthError::Malformed));
    }

    #[test]
    fn the_verifier_never_shows_its_secret() {
        let shown = format!(
            "{:?} {:?}",
            verifier(),
            Authenticator::Jwt(Box::new(verifier()))
        );
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("48, 49, 50"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
