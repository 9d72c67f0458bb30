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
//! `iss` and `aud` are checked only when `jwt_issuer` and `jwt_audience`
//! are set. The HS256 secret is used as raw bytes (not base64-decoded).

use std::collections::HashMap;
use std::fmt;
use std::sync::{PoisonError, RwLock};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::Value;

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

    /// Checks `token` at `now_unix` and gives its `sub`; the caller still
    /// applies the user id rule.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<String, AuthError> {
        self.verify_until(token, now_unix).map(|(sub, _)| sub)
    }

    /// Like [`JwtVerifier::verify`], with the token's `exp` (Unix seconds).
    pub fn verify_until(&self, token: &str, now_unix: u64) -> Result<(String, u64), AuthError> {
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
        if now_unix >= exp {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = seconds(claims.nbf, "nbf")?
            && now_unix < nbf
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
        match claims.sub {
            None => Err(AuthError::MissingSubject),
            Some(Value::String(sub)) => Ok((sub, exp)),
            Some(_) => Err(AuthError::SubjectNotAString),
        }
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

    use super::*;
    use crate::auth::Authenticator;
    use crate::settings::JwtAlgorithm;

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
    fn an_authenticated_token_expires_at_its_exp() {
        let token = sign(json!({"sub": "alice", "exp": NOW + 90}));
        let identity = Authenticator::Jwt(Box::new(verifier()))
            .authenticate(&token, NOW)
            .unwrap();
        assert_eq!(identity.user, "alice");
        let expiry = identity.expiry.expect("a JWT expires");
        assert_eq!(expiry.unix_ms, (NOW + 90) * 1_000);
        assert_eq!(expiry.remaining, std::time::Duration::from_secs(90));
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

    /// Test-only key pairs, private key then public key, in PEM.
    fn key_pair(name: &str) -> (&'static str, &'static str) {
        match name {
            "rsa" => (
                include_str!("../../tests/data/jwt/rsa.key"),
                include_str!("../../tests/data/jwt/rsa.pub"),
            ),
            "ec" => (
                include_str!("../../tests/data/jwt/ec.key"),
                include_str!("../../tests/data/jwt/ec.pub"),
            ),
            "ed_a" => (
                include_str!("../../tests/data/jwt/ed_a.key"),
                include_str!("../../tests/data/jwt/ed_a.pub"),
            ),
            _ => (
                include_str!("../../tests/data/jwt/ed_b.key"),
                include_str!("../../tests/data/jwt/ed_b.pub"),
            ),
        }
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

    const ASYMMETRIC: [(JwtAlgorithm, Algorithm, &str); 3] = [
        (JwtAlgorithm::RS256, Algorithm::RS256, "rsa"),
        (JwtAlgorithm::ES256, Algorithm::ES256, "ec"),
        (JwtAlgorithm::EdDSA, Algorithm::EdDSA, "ed_a"),
    ];

    #[test]
    fn each_algorithm_accepts_its_tokens_from_a_pem_key_or_a_key_set() {
        let claims = json!({"sub": "alice", "exp": NOW + 60});
        for (configured, algorithm, pair) in ASYMMETRIC {
            let (private, public) = key_pair(pair);
            let pem = JwtVerifier::from_pem(configured, public.as_bytes()).unwrap();
            let token = sign_asymmetric(algorithm, private, None, &claims);
            assert_eq!(pem.verify(&token, NOW), Ok("alice".into()), "{algorithm:?}");
            assert_eq!(pem.verify(&token, NOW + 60), Err(AuthError::Expired));

            let set =
                JwtVerifier::from_jwks(configured, &jwks(algorithm, &[("k1", private)])).unwrap();
            let token = sign_asymmetric(algorithm, private, Some("k1"), &claims);
            assert_eq!(set.verify(&token, NOW), Ok("alice".into()), "{algorithm:?}");
        }
    }

    #[test]
    fn a_pem_key_of_another_type_is_refused_at_start() {
        let (_, rsa_public) = key_pair("rsa");
        let error = JwtVerifier::from_pem(JwtAlgorithm::ES256, rsa_public.as_bytes()).unwrap_err();
        assert!(error.contains("ES256"), "{error}");
        assert!(JwtVerifier::from_pem(JwtAlgorithm::EdDSA, rsa_public.as_bytes()).is_err());
        let (ec_private, _) = key_pair("ec");
        let error = JwtVerifier::from_jwks(
            JwtAlgorithm::RS256,
            &jwks(Algorithm::ES256, &[("k1", ec_private)]),
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
        let (rsa_private, rsa_public) = key_pair("rsa");
        let rs256 = JwtVerifier::from_pem(JwtAlgorithm::RS256, rsa_public.as_bytes()).unwrap();
        // HS256 "signed" with the public key's bytes: the classic confusion.
        let confused = sign_with(Algorithm::HS256, rsa_public, &claims);
        assert_eq!(rs256.verify(&confused, NOW), Err(AuthError::WrongAlgorithm));
        // Unsigned.
        let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = base64url(br#"{"sub":"alice","exp":9999999999}"#);
        let unsigned = format!("{header}.{payload}.");
        assert_eq!(rs256.verify(&unsigned, NOW), Err(AuthError::Malformed));
        // A valid token of another asymmetric algorithm.
        let (ed_private, ed_public) = key_pair("ed_a");
        let eddsa = sign_asymmetric(Algorithm::EdDSA, ed_private, None, &claims);
        assert_eq!(rs256.verify(&eddsa, NOW), Err(AuthError::WrongAlgorithm));
        // A PS256 token made with the right RSA key is still not RS256.
        let ps256 = sign_asymmetric(Algorithm::PS256, rsa_private, None, &claims);
        assert_eq!(rs256.verify(&ps256, NOW), Err(AuthError::WrongAlgorithm));
        // And an HS256 verifier refuses an EdDSA token.
        let ed = JwtVerifier::from_pem(JwtAlgorithm::EdDSA, ed_public.as_bytes()).unwrap();
        assert_eq!(
            verifier().verify(&eddsa, NOW),
            Err(AuthError::WrongAlgorithm)
        );
        assert_eq!(ed.verify(&eddsa, NOW), Ok("alice".into()));
    }

    #[test]
    fn a_key_set_needs_a_kid_it_holds_and_the_key_it_names() {
        let claims = json!({"sub": "alice", "exp": NOW + 60});
        let (a, _) = key_pair("ed_a");
        let (b, _) = key_pair("ed_b");
        let set = JwtVerifier::from_jwks(
            JwtAlgorithm::EdDSA,
            &jwks(Algorithm::EdDSA, &[("a", a), ("b", b)]),
        )
        .unwrap();
        let sign = |key, kid| sign_asymmetric(Algorithm::EdDSA, key, kid, &claims);
        assert_eq!(set.verify(&sign(a, Some("a")), NOW), Ok("alice".into()));
        assert_eq!(set.verify(&sign(b, Some("b")), NOW), Ok("alice".into()));
        assert_eq!(
            set.verify(&sign(a, Some("b")), NOW),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            set.verify(&sign(a, Some("c")), NOW),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(set.verify(&sign(a, None), NOW), Err(AuthError::UnknownKey));
    }

    #[test]
    fn a_replaced_key_set_takes_over_and_a_bad_one_changes_nothing() {
        let claims = json!({"sub": "alice", "exp": NOW + 60});
        let (a, _) = key_pair("ed_a");
        let (b, _) = key_pair("ed_b");
        let set = JwtVerifier::from_jwks(JwtAlgorithm::EdDSA, &jwks(Algorithm::EdDSA, &[("a", a)]))
            .unwrap();
        let old = sign_asymmetric(Algorithm::EdDSA, a, Some("a"), &claims);
        let new = sign_asymmetric(Algorithm::EdDSA, b, Some("b"), &claims);
        assert_eq!(set.verify(&new, NOW), Err(AuthError::UnknownKey));
        assert!(set.replace_key_set("not json").is_err());
        assert_eq!(set.verify(&old, NOW), Ok("alice".into()));
        assert_eq!(
            set.replace_key_set(&jwks(Algorithm::EdDSA, &[("b", b)])),
            Ok(1)
        );
        assert_eq!(set.verify(&new, NOW), Ok("alice".into()));
        assert_eq!(set.verify(&old, NOW), Err(AuthError::UnknownKey));
    }

    #[test]
    fn issuer_and_audience_are_checked_only_when_set() {
        let open = verifier();
        let strict =
            verifier().with_claims(Some("https://auth.example".into()), Some("tether".into()));
        let token = |claims: Value| sign(claims);
        let bare = token(json!({"sub": "alice", "exp": NOW + 60}));
        assert_eq!(open.verify(&bare, NOW), Ok("alice".into()));
        assert_eq!(strict.verify(&bare, NOW), Err(AuthError::WrongIssuer));
        let good = token(
            json!({"sub": "alice", "exp": NOW + 60, "iss": "https://auth.example", "aud": ["other", "tether"]}),
        );
        assert_eq!(strict.verify(&good, NOW), Ok("alice".into()));
        assert_eq!(open.verify(&good, NOW), Ok("alice".into()));
        let other_issuer = token(
            json!({"sub": "alice", "exp": NOW + 60, "iss": "https://evil.example", "aud": "tether"}),
        );
        assert_eq!(
            strict.verify(&other_issuer, NOW),
            Err(AuthError::WrongIssuer)
        );
        let other_audience = token(
            json!({"sub": "alice", "exp": NOW + 60, "iss": "https://auth.example", "aud": "other"}),
        );
        assert_eq!(
            strict.verify(&other_audience, NOW),
            Err(AuthError::WrongAudience)
        );
        let no_audience =
            token(json!({"sub": "alice", "exp": NOW + 60, "iss": "https://auth.example"}));
        assert_eq!(
            strict.verify(&no_audience, NOW),
            Err(AuthError::WrongAudience)
        );
    }
}
