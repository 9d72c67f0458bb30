//! A wrapper that keeps secrets out of logs and error messages.
//!
//! Tokens, the JWT secret and the API key travel through structs that are
//! printed at start-up and may end up in a `tracing` field or a panic
//! message. Holding them as [`Redacted`] makes every `{:?}` and `{}` of such
//! a struct safe by construction: the only way to the value is
//! [`Redacted::expose`], which is easy to find in review.

use std::fmt;

/// What [`Redacted`] prints instead of its value.
pub const REDACTED: &str = "<redacted>";

/// A secret value whose `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Redacted(value)
    }

    /// The secret itself, for the one place that needs it (a signature check,
    /// a key comparison). Never pass the result to a formatter.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Redacted<T> {
    fn from(value: T) -> Self {
        Redacted(value)
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// `scheme://user:password@host/...` with the password replaced by
/// `<redacted>`; a URL without a password is returned as it is.
pub fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:{}{}", REDACTED, &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Holder {
        name: &'static str,
        key: Redacted<String>,
    }

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Redacted::new(String::from("hunter2-very-secret"));
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{secret:#?}"), "<redacted>");
    }

    #[test]
    fn a_struct_holding_a_secret_debugs_without_it() {
        let holder = Holder {
            name: "api",
            key: Redacted::new(String::from("hunter2-very-secret")),
        };
        let printed = format!("{holder:?} {holder:#?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("api"));
        assert_eq!((holder.name, holder.key.expose().len()), ("api", 19));
    }

    #[test]
    fn expose_gives_the_value_back() {
        let secret: Redacted<String> = String::from("k").into();
        assert_eq!(secret.expose(), "k");
    }

    #[test]
    fn url_passwords_are_masked() {
        assert_eq!(
            mask_url_password("redis://app:s3cret@db:6379/0"),
            "redis://app:<redacted>@db:6379/0"
        );
        assert_eq!(mask_url_password("redis://db:6379"), "redis://db:6379");
        assert_eq!(
            mask_url_password("redis://app@db:6379"),
            "redis://app@db:6379"
        );
        assert_eq!(mask_url_password("not a url"), "not a url");
    }
}
