//! The key check of `POST /api/publish` (PROTOCOL.md section 2).
//!
//! The request must carry `Authorization: Bearer <key>`. The scheme name is
//! matched without regard to case (RFC 9110 section 11.1), exactly one space
//! separates it from the key, and the key is compared in constant time with
//! the `subtle` crate so that the answer's timing does not reveal how many
//! leading bytes of a guess were right. The running time depends only on the
//! configured key's length, never on the guess.

use subtle::{Choice, ConstantTimeEq};

use crate::secret::Redacted;

/// Whether the `Authorization` header value `header` carries the API key
/// `expected`. A missing header, another scheme or a wrong key is `false`.
pub fn check_api_key(header: Option<&str>, expected: &Redacted<String>) -> bool {
    let Some(given) = header.and_then(bearer_token) else {
        return false;
    };
    let given = given.as_bytes();
    let expected = expected.expose().as_bytes();
    let mut equal = Choice::from(u8::from(given.len() == expected.len()));
    for (i, byte) in expected.iter().enumerate() {
        equal &= given.get(i).copied().unwrap_or(0).ct_eq(byte);
    }
    equal.into()
}

/// The token of a `Bearer <token>` header value.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
        Some(token)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Redacted<String> {
        Redacted::new("publish-key-0123456789".to_owned())
    }

    #[test]
    fn the_right_key_passes() {
        assert!(check_api_key(Some("Bearer publish-key-0123456789"), &key()));
        assert!(check_api_key(Some("bearer publish-key-0123456789"), &key()));
        assert!(check_api_key(Some("BEARER publish-key-0123456789"), &key()));
    }

    #[test]
    fn anything_else_fails() {
        for header in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("publish-key-0123456789"),
            Some("Basic publish-key-0123456789"),
            Some("Bearer publish-key-012345678"),
            Some("Bearer publish-key-01234567890"),
            Some("Bearer publish-key-0123456788"),
            Some("Bearer  publish-key-0123456789"),
            Some("Bearer publish-key-0123456789 "),
            Some("Bearer Publish-key-0123456789"),
        ] {
            assert!(!check_api_key(header, &key()), "{header:?}");
        }
    }

    #[test]
    fn a_guess_that_is_a_prefix_or_extension_fails() {
        let expected = Redacted::new("abcdefghijklmnop".to_owned());
        assert!(!check_api_key(Some("Bearer abcdefghijklmno"), &expected));
        assert!(!check_api_key(Some("Bearer abcdefghijklmnop\0"), &expected));
        assert!(check_api_key(Some("Bearer abcdefghijklmnop"), &expected));
    }
}
