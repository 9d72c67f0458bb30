//! JWT verification with the wall clock as an input.
//!
//! The algorithm is the configured one ([`JwtAlgorithm`]), never the
//! token's: a header naming another algorithm is refused before any key is
//! touched, and each algorithm only ever gets a key of its own family, so
//! neither `alg: none` nor an HS256 token "signed" with a public key can
//! pass. With a JSON Web Key Set the header's `kid` picks the key; a token
//! without a `kid`, or with one the set does not hold, is refused.
//!
//! jsonwebtoken checks the shape, the algorithm and the signature; its own
//! time checks are off, because they read the system clock. Here `exp` and
//! `nbf` are compared with the `now_unix_ms` (Unix milliseconds) the driver
//! passes in, with no leeway, so a test decides exactly which millisecond a
//! token expires in:
//!
//! - `exp` is required (a token that never expires is refused) and the
//!   token is valid while `now_unix_ms < exp * 1000`; from then on it has
//!   expired (RFC 7519 section 4.1.4: "on or after").
//! - `nbf` is optional; the token is valid from `nbf * 1000` on
//!   (section 4.1.5).
//! - Both are whole seconds; a fractional NumericDate is refused.
//! - Clock skew between the issuer and the server is the issuer's to
//!   absorb, by issuing tokens that expire later; the server adds none.
//!
//! An accepted token gives an [`Identity`]: `sub` is the user, the optional
//! `channels` claim the grants (a claim that is not a valid grant map
//! refuses the token rather than grant less or more than meant), and `exp`
//! the expiry, as Unix milliseconds and as what is left of it at
//! `now_unix_ms`, from which the node times the close `4004`.
//!
//! `iss` and `aud` are checked only when `jwt_issuer` and `jwt_audience`
//! are set. The HS256 secret is used as raw bytes (not base64-decoded).

use std::collections::HashMap;
use std::fmt;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use tether_core::{Expiry, Grants, Identity};

use super::AuthError;
use crate::secret::Redacted;
use crate::settings::JwtAlgorithm;

/// Verifies JWTs signed with one configured algorithm and its key or keys.
pub struct JwtVerifier {
    algorithm: JwtAlgorithm,
    keys: RwLock<Keys>,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
}

/// The keys a verifier checks signatures with.
enum Keys {
    /// One key for every token (an HS256 secret or a PEM public key).
    One(Redacted<DecodingKey>),
    /// A key set: the token's `kid` picks the key.
    Set(HashMap<String, DecodingKey>),
}

/// The claims this server reads; all others are ignored.
#[derive(Deserialize)]
struct Claims {
    sub: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iss: Option<Value>,
    aud: Option<Value>,
    /// `Some` whenever the claim is there, `null` included: a `null` is a
    /// malformed claim, not an absent one.
    #[serde(default, deserialize_with = "present")]
    channels: Option<Value>,
}

/// A claim that is present, whatever its value, as `Some`.
fn present<'de, D: Deserializer<'de>>(claim: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(claim).map(Some)
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let mut shown = f.debug_struct("JwtVerifier");
        shown.field("algorithm", &self.algorithm.name());
        match &*keys {
            Keys::One(key) => shown.field("key", key),
            Keys::Set(set) => shown.field("kids", &set.keys().collect::<Vec<_>>()),
        };
        shown
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier for HS256 tokens signed with `secret`.
    pub fn new(secret: &Redacted<String>) -> Self {
        Self::with_keys(
            JwtAlgorithm::HS256,
            Keys::One(Redacted::new(DecodingKey::from_secret(
                secret.expose().as_bytes(),
            ))),
        )
    }

    /// A verifier for `algorithm` (not HS256) with the public key in `pem`;
    /// the error says why the key does not fit.
    pub fn from_pem(algorithm: JwtAlgorithm, pem: &[u8]) -> Result<Self, String> {
        let key = match algorithm {
            JwtAlgorithm::HS256 => return Err("HS256 takes jwt_secret, not a PEM key".into()),
            JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(pem),
            JwtAlgorithm::ES256 => DecodingKey::from_ec_pem(pem),
            JwtAlgorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        }
        .map_err(|error| {
            format!(
                "does not hold a PEM public key for {} ({error})",
                algorithm.name()
            )
        })?;
        Ok(Self::with_keys(algorithm, Keys::One(Redacted::new(key))))
    }

    /// A verifier for `algorithm` (not HS256) with the keys of the JSON Web
    /// Key Set `jwks`.
    pub fn from_jwks(algorithm: JwtAlgorithm, jwks: &str) -> Result<Self, String> {
        let keys = key_set(algorithm, jwks)?;
        Ok(Self::with_keys(algorithm, Keys::Set(keys)))
    }

    /// The same verifier, also requiring `iss == issuer` and an `aud` that
    /// is or holds `audience`, each when given.
    pub fn with_claims(mut self, issuer: Option<String>, audience: Option<String>) -> Self {
        self.issuer = issuer;
        self.audience = audience;
        self
    }

    /// Replaces the key set with the keys of `jwks`, for a re-read JWKS
    /// file; on an error the old keys stay. Gives the number of keys.
    pub fn replace_key_set(&self, jwks: &str) -> Result<usize, String> {
        let keys = key_set(self.algorithm, jwks)?;
        let count = keys.len();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Keys::Set(keys);
        Ok(count)
    }

    fn with_keys(algorithm: JwtAlgorithm, keys: Keys) -> Self {
        let mut validation = Validation::new(to_jsonwebtoken(algorithm));
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        JwtVerifier {
            algorithm,
            keys: RwLock::new(keys),
            validation,
            issuer: None,
            audience: None,
        }
    }

    /// Checks `token` at `now_unix_ms` (Unix milliseconds) and gives who it
    /// proves; the core still applies the user id rule.
    pub fn verify(&self, token: &str, now_unix_ms: u64) -> Result<Identity, AuthError> {
        let header = decode_header(token).map_err(|error| classify(error.kind()))?;
        if header.alg != to_jsonwebtoken(self.algorithm) {
            return Err(AuthError::WrongAlgorithm);
        }
        let claims = {
            let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
            let key = match &*keys {
                Keys::One(key) => key.expose(),
                Keys::Set(set) => header
                    .kid
                    .as_ref()
                    .and_then(|kid| set.get(kid))
                    .ok_or(AuthError::UnknownKey)?,
            };
            decode::<Claims>(token, key, &self.validation)
                .map_err(|error| classify(error.kind()))?
                .claims
        };
        let exp = seconds(claims.exp, "exp")?.ok_or(AuthError::MissingExpiry)?;
        let exp_ms = exp
            .checked_mul(1000)
            .ok_or(AuthError::BadTimeClaim("exp"))?;
        if now_unix_ms >= exp_ms {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = seconds(claims.nbf, "nbf")?
            && now_unix_ms < nbf.saturating_mul(1000)
        {
            return Err(AuthError::NotYetValid);
        }
        if let Some(issuer) = &self.issuer
            && claims.iss.as_ref().and_then(Value::as_str) != Some(issuer.as_str())
        {
            return Err(AuthError::WrongIssuer);
        }
        if let Some(audience) = &self.audience
            && !holds_audience(claims.aud.as_ref(), audience)
        {
            return Err(AuthError::WrongAudience);
        }
        let user = match claims.sub {
            None => return Err(AuthError::MissingSubject),
            Some(Value::String(sub)) => sub,
            Some(_) => return Err(AuthError::SubjectNotAString),
        };
        let grants = match claims.channels {
            None => Grants::default(),
            Some(claim) => Grants::from_claim(&claim).map_err(|_| AuthError::BadChannelsClaim)?,
        };
        let expiry = Expiry {
            unix_ms: exp_ms,
            remaining: Duration::from_millis(exp_ms - now_unix_ms),
        };
        Ok(Identity {
            user,
            grants,
            expiry: Some(expiry),
            info: None,
        })
    }
}

/// Whether an `aud` claim (a string or an array of strings) names `audience`.
fn holds_audience(aud: Option<&Value>, audience: &str) -> bool {
    match aud {
        Some(Value::String(one)) => one == audience,
        Some(Value::Array(many)) => many.iter().any(|one| one.as_str() == Some(audience)),
        _ => false,
    }
}

/// The signing keys of `jwks` usable with `algorithm`: keys without a
/// `kid`, for encryption, for another algorithm or of another type are
/// left out, and a set with none left is refused.
fn key_set(algorithm: JwtAlgorithm, jwks: &str) -> Result<HashMap<String, DecodingKey>, String> {
    let set: JwkSet = serde_json::from_str(jwks)
        .map_err(|error| format!("is not a JSON Web Key Set ({error})"))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = &jwk.common.key_id else {
            continue;
        };
        let fits_type = match (&jwk.algorithm, algorithm) {
            (AlgorithmParameters::RSA(_), JwtAlgorithm::RS256) => true,
            (AlgorithmParameters::EllipticCurve(ec), JwtAlgorithm::ES256) => {
                ec.curve == EllipticCurve::P256
            }
            (AlgorithmParameters::OctetKeyPair(okp), JwtAlgorithm::EdDSA) => {
                okp.curve == EllipticCurve::Ed25519
            }
            _ => false,
        };
        let fits_algorithm = jwk
            .common
            .key_algorithm
            .is_none_or(|alg| alg.to_string() == algorithm.name());
        let for_signing = !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption));
        if fits_type && fits_algorithm && for_signing {
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|error| format!("key {kid:?} is not usable ({error})"))?;
            keys.insert(kid.clone(), key);
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "holds no signing key with a kid for {}",
            algorithm.name()
        ));
    }
    Ok(keys)
}

fn to_jsonwebtoken(algorithm: JwtAlgorithm) -> Algorithm {
    match algorithm {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
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

    use tether_core::Operation;
    use tether_testkit::keys::{KeyKind, KeyPair};

    use super::*;
    use crate::auth::Authenticator;
    use crate::settings::JwtAlgorithm;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;
    const NOW_MS: u64 = NOW * 1000;

    /// The user `verifier` finds in `token` at `now_ms`.
    fn user_of(verifier: &JwtVerifier, token: &str, now_ms: u64) -> Result<String, AuthError> {
        verifier.verify(token, now_ms).map(|identity| identity.user)
    }

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
        assert_eq!(user_of(&verifier(), &token, NOW_MS), Ok("alice".to_owned()));
    }

    #[test]
    fn expiry_is_exclusive_at_exp_to_the_millisecond() {
        let token = sign(json!({"sub": "alice", "exp": NOW}));
        let last = verifier().verify(&token, NOW_MS - 1).unwrap();
        assert_eq!(
            last.expiry,
            Some(Expiry {
                unix_ms: NOW_MS,
                remaining: Duration::from_millis(1),
            })
        );
        assert_eq!(
            user_of(&verifier(), &token, NOW_MS),
            Err(AuthError::Expired)
        );
        assert_eq!(
            user_of(&verifier(), &token, NOW_MS + 1),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn the_expiry_is_exp_in_milliseconds_and_what_is_left_of_it() {
        let token = sign(json!({"sub": "alice", "exp": NOW + 60}));
        let identity = verifier().verify(&token, NOW_MS + 250).unwrap();
        assert_eq!(
            identity.expiry,
            Some(Expiry {
                unix_ms: (NOW + 60) * 1000,
                remaining: Duration::from_millis(59_750),
            })
        );
        let beyond = sign(json!({"sub": "alice", "exp": u64::MAX / 1000 + 1}));
        assert_eq!(
            user_of(&verifier(), &beyond, NOW_MS),
            Err(AuthError::BadTimeClaim("exp"))
        );
    }

    #[test]
    fn the_channels_claim_becomes_the_grants() {
        let bare = sign(json!({"sub": "alice", "exp": NOW + 60}));
        assert_eq!(
            verifier().verify(&bare, NOW_MS).unwrap().grants,
            Grants::default()
        );
        let granted = sign(json!({
            "sub": "alice",
            "exp": NOW + 60,
            "channels": {"team:red": ["subscribe", "history"], "org:*": ["publish"]},
        }));
        let grants = verifier().verify(&granted, NOW_MS).unwrap().grants;
        assert!(grants.allows("team:red", Operation::Subscribe));
        assert!(grants.allows("team:red", Operation::History));
        assert!(!grants.allows("team:red", Operation::Publish));
        assert!(grants.allows("org:acme", Operation::Publish));
        assert!(!grants.allows("team:blue", Operation::Subscribe));
    }

    #[test]
    fn a_malformed_channels_claim_refuses_the_token_without_echoing_it() {
        for claim in [
            json!(null),
            json!("team:red"),
            json!(["team:red"]),
            json!({"team:red": "subscribe"}),
            json!({"team:red": ["subscribe", "read-secret-op"]}),
            json!({"team red secret": ["subscribe"]}),
        ] {
            let token = sign(json!({"sub": "alice", "exp": NOW + 60, "channels": claim}));
            let error = verifier().verify(&token, NOW_MS).unwrap_err();
            assert_eq!(error, AuthError::BadChannelsClaim, "{claim}");
            let shown = format!("{error} {error:?}");
            assert!(shown.contains("channels"), "{shown}");
            assert!(!shown.contains("secret"), "{shown}");
        }
    }

    #[test]
    fn the_injected_clock_decides_not_the_system_clock() {
        // Expired long ago by the system clock, valid at the injected time.
        let token = sign(json!({"sub": "alice", "exp": 1_000}));
        assert_eq!(
            user_of(&verifier(), &token, 999_000),
            Ok("alice".to_owned())
        );
    }

    #[test]
    fn not_before_is_inclusive_at_nbf() {
        let token = sign(json!({"sub": "alice", "exp": NOW + 60, "nbf": NOW}));
        assert_eq!(
            user_of(&verifier(), &token, NOW_MS - 1),
            Err(AuthError::NotYetValid)
        );
        assert_eq!(user_of(&verifier(), &token, NOW_MS), Ok("alice".to_owned()));
    }

    #[test]
    fn a_token_without_exp_is_refused() {
        let token = sign(json!({"sub": "alice"}));
        assert_eq!(
            user_of(&verifier(), &token, NOW_MS),
            Err(AuthError::MissingExpiry)
        );
    }

    #[test]
    fn fractional_or_negative_times_are_refused() {
        let token = sign(json!({"sub": "alice", "exp": 1.7e9}));
        assert_eq!(
            user_of(&verifier(), &token, NOW_MS),
            Err(AuthError::BadTimeClaim("exp"))
        );
        let token = sign(json!({"sub": "alice", "exp": NOW + 60, "nbf": -1}));
        assert_eq!(
            user_of(&verifier(), &token, NOW_MS),
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
        assert_eq!(
            user_of(&verifier(), &token, NOW_MS),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let token = sign(json!({"sub": "alice", "exp": NOW + 60}));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = base64url(br#"{"sub":"mallory","exp":9999999999}"#);
        let forged = parts.join(".");
        assert_eq!(
            user_of(&verifier(), &forged, NOW_MS),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn other_algorithms_are_refused_even_with_the_right_secret() {
        let claims = json!({"sub": "alice", "exp": NOW + 60});
        for algorithm in [Algorithm::HS384, Algorithm::HS512] {
            let token = sign_with(algorithm, SECRET, &claims);
            assert_eq!(
                user_of(&verifier(), &token, NOW_MS),
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
            assert_eq!(
                user_of(&verifier(), &token, NOW_MS),
                Err(AuthError::Malformed)
            );
        }
    }

    #[test]
    fn a_missing_or_non_string_subject_is_refused() {
        let token = sign(json!({"exp": NOW + 60}));
        assert_eq!(
            user_of(&verifier(), &token, NOW_MS),
            Err(AuthError::MissingSubject)
        );
        let token = sign(json!({"sub": 42, "exp": NOW + 60}));
        assert_eq!(
            user_of(&verifier(), &token, NOW_MS),
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
                user_of(&verifier(), token, NOW_MS),
                Err(AuthError::Malformed),
                "{token:?}"
            );
        }
    }

    #[test]
    fn the_payload_is_not_read_before_the_signature_is_checked() {
        let header = base64url(br#"{"alg":"HS256"}"#);
        let token = format!("{header}.!!!.c2ln");
        assert_eq!(
            user_of(&verifier(), &token, NOW_MS),
            Err(AuthError::BadSignature)
        );
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
        assert_eq!(
            user_of(&verifier(), &token, NOW_MS),
            Err(AuthError::Malformed)
        );
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

    fn private_key(algorithm: Algorithm, pem: &str) -> EncodingKey {
        match algorithm {
            Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            _ => EncodingKey::from_ed_pem(pem.as_bytes()),
        }
        .unwrap()
    }

    fn sign_asymmetric(
        algorithm: Algorithm,
        pem: &str,
        kid: Option<&str>,
        claims: &Value,
    ) -> String {
        let mut header = Header::new(algorithm);
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, &private_key(algorithm, pem)).unwrap()
    }

    /// A JWKS holding the public halves of `pairs`, each under its kid.
    fn jwks(algorithm: Algorithm, pairs: &[(&str, &str)]) -> String {
        let keys: Vec<_> = pairs
            .iter()
            .map(|(kid, pem)| {
                let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(
                    &private_key(algorithm, pem),
                    algorithm,
                )
                .unwrap();
                jwk.common.key_id = Some((*kid).to_owned());
                jwk
            })
            .collect();
        serde_json::to_string(&json!({ "keys": keys })).unwrap()
    }

    const ASYMMETRIC: [(JwtAlgorithm, Algorithm, KeyKind); 3] = [
        (JwtAlgorithm::RS256, Algorithm::RS256, KeyKind::Rsa),
        (JwtAlgorithm::ES256, Algorithm::ES256, KeyKind::P256),
        (JwtAlgorithm::EdDSA, Algorithm::EdDSA, KeyKind::Ed25519),
    ];

    #[test]
    fn each_algorithm_accepts_its_tokens_from_a_pem_key_or_a_key_set() {
        let claims = json!({"sub": "alice", "exp": NOW + 60});
        for (configured, algorithm, kind) in ASYMMETRIC {
            let pair = KeyPair::generate(kind);
            let (private, public) = (pair.private_pem.as_str(), pair.public_pem.as_str());
            let pem = JwtVerifier::from_pem(configured, public.as_bytes()).unwrap();
            let token = sign_asymmetric(algorithm, private, None, &claims);
            assert_eq!(
                user_of(&pem, &token, NOW_MS),
                Ok("alice".into()),
                "{algorithm:?}"
            );
            assert_eq!(
                user_of(&pem, &token, NOW_MS + 60_000),
                Err(AuthError::Expired)
            );

            let set =
                JwtVerifier::from_jwks(configured, &jwks(algorithm, &[("k1", private)])).unwrap();
            let token = sign_asymmetric(algorithm, private, Some("k1"), &claims);
            assert_eq!(
                user_of(&set, &token, NOW_MS),
                Ok("alice".into()),
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn a_pem_key_of_another_type_is_refused_at_start() {
        let rsa_public = KeyPair::generate(KeyKind::Rsa).public_pem;
        let error = JwtVerifier::from_pem(JwtAlgorithm::ES256, rsa_public.as_bytes()).unwrap_err();
        assert!(error.contains("ES256"), "{error}");
        assert!(JwtVerifier::from_pem(JwtAlgorithm::EdDSA, rsa_public.as_bytes()).is_err());
        let ec_private = KeyPair::generate(KeyKind::P256).private_pem;
        let error = JwtVerifier::from_jwks(
            JwtAlgorithm::RS256,
            &jwks(Algorithm::ES256, &[("k1", &ec_private)]),
        )
        .unwrap_err();
        assert!(error.contains("no signing key"), "{error}");
        // A symmetric key in the set is never a key for an asymmetric algorithm.
        let oct = r#"{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}"#;
        assert!(JwtVerifier::from_jwks(JwtAlgorithm::RS256, oct).is_err());
    }

    #[test]
    fn the_header_never_picks_the_algorithm() {
        let claims = json!({"sub": "alice", "exp": NOW + 60});
        let rsa = KeyPair::generate(KeyKind::Rsa);
        let (rsa_private, rsa_public) = (rsa.private_pem.as_str(), rsa.public_pem.as_str());
        let rs256 = JwtVerifier::from_pem(JwtAlgorithm::RS256, rsa_public.as_bytes()).unwrap();
        // HS256 "signed" with the public key's bytes: the classic confusion.
        let confused = sign_with(Algorithm::HS256, rsa_public, &claims);
        assert_eq!(
            user_of(&rs256, &confused, NOW_MS),
            Err(AuthError::WrongAlgorithm)
        );
        // Unsigned.
        let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = base64url(br#"{"sub":"alice","exp":9999999999}"#);
        let unsigned = format!("{header}.{payload}.");
        assert_eq!(
            user_of(&rs256, &unsigned, NOW_MS),
            Err(AuthError::Malformed)
        );
        // A valid token of another asymmetric algorithm.
        let ed = KeyPair::generate(KeyKind::Ed25519);
        let (ed_private, ed_public) = (ed.private_pem.as_str(), ed.public_pem.as_str());
        let eddsa = sign_asymmetric(Algorithm::EdDSA, ed_private, None, &claims);
        assert_eq!(
            user_of(&rs256, &eddsa, NOW_MS),
            Err(AuthError::WrongAlgorithm)
        );
        // A PS256 token made with the right RSA key is still not RS256.
        let ps256 = sign_asymmetric(Algorithm::PS256, rsa_private, None, &claims);
        assert_eq!(
            user_of(&rs256, &ps256, NOW_MS),
            Err(AuthError::WrongAlgorithm)
        );
        // And an HS256 verifier refuses an EdDSA token.
        let ed = JwtVerifier::from_pem(JwtAlgorithm::EdDSA, ed_public.as_bytes()).unwrap();
        assert_eq!(
            user_of(&verifier(), &eddsa, NOW_MS),
            Err(AuthError::WrongAlgorithm)
        );
        assert_eq!(user_of(&ed, &eddsa, NOW_MS), Ok("alice".into()));
    }

    #[test]
    fn a_key_set_needs_a_kid_it_holds_and_the_key_it_names() {
        let claims = json!({"sub": "alice", "exp": NOW + 60});
        let (a, b) = (
            KeyPair::generate(KeyKind::Ed25519).private_pem,
            KeyPair::generate(KeyKind::Ed25519).private_pem,
        );
        let (a, b) = (a.as_str(), b.as_str());
        let set = JwtVerifier::from_jwks(
            JwtAlgorithm::EdDSA,
            &jwks(Algorithm::EdDSA, &[("a", a), ("b", b)]),
        )
        .unwrap();
        let sign = |key, kid| sign_asymmetric(Algorithm::EdDSA, key, kid, &claims);
        assert_eq!(
            user_of(&set, &sign(a, Some("a")), NOW_MS),
            Ok("alice".into())
        );
        assert_eq!(
            user_of(&set, &sign(b, Some("b")), NOW_MS),
            Ok("alice".into())
        );
        assert_eq!(
            user_of(&set, &sign(a, Some("b")), NOW_MS),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            user_of(&set, &sign(a, Some("c")), NOW_MS),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(
            user_of(&set, &sign(a, None), NOW_MS),
            Err(AuthError::UnknownKey)
        );
    }

    #[test]
    fn a_replaced_key_set_takes_over_and_a_bad_one_changes_nothing() {
        let claims = json!({"sub": "alice", "exp": NOW + 60});
        let (a, b) = (
            KeyPair::generate(KeyKind::Ed25519).private_pem,
            KeyPair::generate(KeyKind::Ed25519).private_pem,
        );
        let (a, b) = (a.as_str(), b.as_str());
        let set = JwtVerifier::from_jwks(JwtAlgorithm::EdDSA, &jwks(Algorithm::EdDSA, &[("a", a)]))
            .unwrap();
        let old = sign_asymmetric(Algorithm::EdDSA, a, Some("a"), &claims);
        let new = sign_asymmetric(Algorithm::EdDSA, b, Some("b"), &claims);
        assert_eq!(user_of(&set, &new, NOW_MS), Err(AuthError::UnknownKey));
        assert!(set.replace_key_set("not json").is_err());
        assert_eq!(user_of(&set, &old, NOW_MS), Ok("alice".into()));
        assert_eq!(
            set.replace_key_set(&jwks(Algorithm::EdDSA, &[("b", b)])),
            Ok(1)
        );
        assert_eq!(user_of(&set, &new, NOW_MS), Ok("alice".into()));
        assert_eq!(user_of(&set, &old, NOW_MS), Err(AuthError::UnknownKey));
    }

    #[test]
    fn issuer_and_audience_are_checked_only_when_set() {
        let open = verifier();
        let strict =
            verifier().with_claims(Some("https://auth.example".into()), Some("tether".into()));
        let token = |claims: Value| sign(claims);
        let bare = token(json!({"sub": "alice", "exp": NOW + 60}));
        assert_eq!(user_of(&open, &bare, NOW_MS), Ok("alice".into()));
        assert_eq!(user_of(&strict, &bare, NOW_MS), Err(AuthError::WrongIssuer));
        let good = token(
            json!({"sub": "alice", "exp": NOW + 60, "iss": "https://auth.example", "aud": ["other", "tether"]}),
        );
        assert_eq!(user_of(&strict, &good, NOW_MS), Ok("alice".into()));
        assert_eq!(user_of(&open, &good, NOW_MS), Ok("alice".into()));
        let other_issuer = token(
            json!({"sub": "alice", "exp": NOW + 60, "iss": "https://evil.example", "aud": "tether"}),
        );
        assert_eq!(
            user_of(&strict, &other_issuer, NOW_MS),
            Err(AuthError::WrongIssuer)
        );
        let other_audience = token(
            json!({"sub": "alice", "exp": NOW + 60, "iss": "https://auth.example", "aud": "other"}),
        );
        assert_eq!(
            user_of(&strict, &other_audience, NOW_MS),
            Err(AuthError::WrongAudience)
        );
        let no_audience =
            token(json!({"sub": "alice", "exp": NOW + 60, "iss": "https://auth.example"}));
        assert_eq!(
            user_of(&strict, &no_audience, NOW_MS),
            Err(AuthError::WrongAudience)
        );
    }
}
