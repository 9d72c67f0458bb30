//! The kinds of value a config key can hold: how each is read from TOML
//! (with a message that says what was expected) and how it is shown back.

use std::marker::PhantomData;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use toml::Value;

use super::{JwtAlgorithm, Runtime};
use crate::secret::{Redacted, mask_url_password};
use crate::units::{format_duration, format_size, parse_duration, parse_size};

/// How a setting's current value is shown in the effective settings.
pub(crate) enum Shown {
    /// A value, written as TOML.
    Value(Value),
    /// A secret: only whether it is set is shown.
    Secret {
        /// Whether a value is present.
        set: bool,
    },
    /// An optional setting that is not set.
    Unset,
    /// An array of tables, each its fields in order, written as `[[key]]`
    /// blocks after every plain key.
    Tables(Vec<Vec<(&'static str, Value)>>),
}

/// A kind of config value.
pub(crate) trait Kind {
    /// The Rust type the value is stored as.
    type Target;

    /// Reads a TOML value; the error says what was expected and what came.
    fn read(value: &Value) -> Result<Self::Target, String>;

    /// Shows a stored value.
    fn show(target: &Self::Target) -> Shown;
}

/// A duration string such as `"30s"` (see [`crate::units`]).
pub(crate) struct DurationKind;

impl Kind for DurationKind {
    type Target = Duration;

    fn read(value: &Value) -> Result<Duration, String> {
        value
            .as_str()
            .and_then(parse_duration)
            .ok_or_else(|| expected("a duration like \"30s\" (units ms, s, m, h)", value))
    }

    fn show(target: &Duration) -> Shown {
        Shown::Value(Value::String(format_duration(*target)))
    }
}

/// A byte size: an integer of bytes or a string such as `"64KiB"`.
pub(crate) struct SizeKind;

impl Kind for SizeKind {
    type Target = usize;

    fn read(value: &Value) -> Result<usize, String> {
        let bytes = match value {
            Value::Integer(n) => usize::try_from(*n).ok(),
            Value::String(text) => parse_size(text),
            _ => None,
        };
        bytes.ok_or_else(|| {
            expected(
                "a size in bytes like 65536 or a string like \"64KiB\" (units B, KiB, MiB, GiB)",
                value,
            )
        })
    }

    fn show(target: &usize) -> Shown {
        Shown::Value(Value::String(format_size(*target)))
    }
}

/// A whole number of things (connections, messages per second, ...).
pub(crate) struct CountKind<T>(PhantomData<T>);

impl<T> Kind for CountKind<T>
where
    T: TryFrom<i64> + Copy,
    i64: TryFrom<T>,
{
    type Target = T;

    fn read(value: &Value) -> Result<T, String> {
        value
            .as_integer()
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| expected("a whole number, not negative", value))
    }

    /// Shows the number; one beyond TOML's largest integer (only possible
    /// for a config built in code) is shown as that largest integer.
    fn show(target: &T) -> Shown {
        Shown::Value(Value::Integer(i64::try_from(*target).unwrap_or(i64::MAX)))
    }
}

/// An optional whole number of threads; unset, the node picks its own.
pub(crate) struct ThreadsKind;

impl Kind for ThreadsKind {
    type Target = Option<usize>;

    fn read(value: &Value) -> Result<Option<usize>, String> {
        CountKind::<usize>::read(value).map(Some)
    }

    fn show(target: &Option<usize>) -> Shown {
        match target {
            Some(threads) => CountKind::<usize>::show(threads),
            None => Shown::Unset,
        }
    }
}

/// `true` or `false`.
pub(crate) struct FlagKind;

impl Kind for FlagKind {
    type Target = bool;

    fn read(value: &Value) -> Result<bool, String> {
        value
            .as_bool()
            .ok_or_else(|| expected("true or false", value))
    }

    fn show(target: &bool) -> Shown {
        Shown::Value(Value::Boolean(*target))
    }
}

/// An IP address and port such as `"127.0.0.1:8080"`.
pub(crate) struct AddrKind;

impl Kind for AddrKind {
    type Target = SocketAddr;

    fn read(value: &Value) -> Result<SocketAddr, String> {
        value
            .as_str()
            .and_then(|text| resolve_listen(text).ok())
            .ok_or_else(|| expected(LISTEN_FORM, value))
    }

    fn show(target: &SocketAddr) -> Shown {
        Shown::Value(Value::String(target.to_string()))
    }
}

/// What a listening address looks like, for error messages.
const LISTEN_FORM: &str =
    "a host or IP address and a port like \"127.0.0.1:8080\", \"localhost:8080\" or \"[::1]:8080\"";

/// Reads a listening address: an IP address and port, or a host name and
/// port resolved now. A name with several addresses listens on its first
/// IPv4 address (what `localhost` means to most users), else on its first.
pub(crate) fn resolve_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let found: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|error| format!("expected {LISTEN_FORM}, got {text:?} ({error})"))?
        .collect();
    found
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(found.first())
        .copied()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// The runtime name: `"smol"`, `"blocking"` or `"tokio"`.
pub(crate) struct RuntimeKind;

impl Kind for RuntimeKind {
    type Target = Runtime;

    fn read(value: &Value) -> Result<Runtime, String> {
        value
            .as_str()
            .and_then(|text| Runtime::from_str(text, false).ok())
            .ok_or_else(|| expected("\"smol\", \"blocking\" or \"tokio\"", value))
    }

    fn show(target: &Runtime) -> Shown {
        Shown::Value(Value::String(target.name().to_owned()))
    }
}

/// A list of strings.
pub(crate) struct StringsKind;

impl Kind for StringsKind {
    type Target = Vec<String>;

    fn read(value: &Value) -> Result<Vec<String>, String> {
        let strings = value.as_array().and_then(|items| {
            items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
        });
        strings.ok_or_else(|| expected("a list of strings like [\"a\", \"b\"]", value))
    }

    fn show(target: &Vec<String>) -> Shown {
        Shown::Value(Value::Array(
            target.iter().cloned().map(Value::String).collect(),
        ))
    }
}

/// A secret string; shown only as set or not set.
pub(crate) struct SecretKind;

impl Kind for SecretKind {
    type Target = Option<Redacted<String>>;

    fn read(value: &Value) -> Result<Option<Redacted<String>>, String> {
        match value {
            Value::String(text) => Ok(Some(Redacted::new(text.clone()))),
            other => Err(format!("expected a string, got a {}", other.type_str())),
        }
    }

    fn show(target: &Option<Redacted<String>>) -> Shown {
        Shown::Secret {
            set: target.is_some(),
        }
    }
}

/// An optional URL, shown with any password in it redacted.
pub(crate) struct UrlKind;

impl Kind for UrlKind {
    type Target = Option<String>;

    fn read(value: &Value) -> Result<Option<String>, String> {
        value
            .as_str()
            .map(|text| Some(text.to_owned()))
            .ok_or_else(|| expected("a URL string", value))
    }

    fn show(target: &Option<String>) -> Shown {
        match target {
            Some(url) => Shown::Value(Value::String(mask_url_password(url))),
            None => Shown::Unset,
        }
    }
}

/// Header fields and their secret values, a table of strings such as
/// `{ "x-backend-key" = "..." }`, in the order of their names; shown only
/// as set or not set.
pub(crate) struct HeadersKind;

impl Kind for HeadersKind {
    type Target = Vec<(String, Redacted<String>)>;

    fn read(value: &Value) -> Result<Self::Target, String> {
        let Value::Table(fields) = value else {
            return Err(format!(
                "expected a table of header names to values like {{ \"x-backend-key\" = \"...\" }}, got a {}",
                value.type_str()
            ));
        };
        let mut headers: Self::Target = fields
            .iter()
            .map(|(name, value)| match value {
                Value::String(text) => Ok((name.clone(), Redacted::new(text.clone()))),
                other => Err(format!(
                    "the value of {name:?} must be a string, got a {}",
                    other.type_str()
                )),
            })
            .collect::<Result<_, _>>()?;
        headers.sort_by(|(a, _), (b, _)| a.cmp(b));
        Ok(headers)
    }

    fn show(target: &Self::Target) -> Shown {
        Shown::Secret {
            set: !target.is_empty(),
        }
    }
}

/// A JWT algorithm: "HS256", "RS256", "ES256" or "EdDSA".
pub(crate) struct AlgorithmKind;

impl Kind for AlgorithmKind {
    type Target = JwtAlgorithm;

    fn read(value: &Value) -> Result<JwtAlgorithm, String> {
        value
            .as_str()
            .and_then(|name| {
                JwtAlgorithm::ALL
                    .into_iter()
                    .find(|algorithm| algorithm.name() == name)
            })
            .ok_or_else(|| expected("\"HS256\", \"RS256\", \"ES256\" or \"EdDSA\"", value))
    }

    fn show(target: &JwtAlgorithm) -> Shown {
        Shown::Value(Value::String(target.name().to_owned()))
    }
}

/// An optional file path.
pub(crate) struct PathKind;

impl Kind for PathKind {
    type Target = Option<PathBuf>;

    fn read(value: &Value) -> Result<Option<PathBuf>, String> {
        value
            .as_str()
            .filter(|text| !text.is_empty())
            .map(|text| Some(PathBuf::from(text)))
            .ok_or_else(|| expected("a file path string", value))
    }

    fn show(target: &Option<PathBuf>) -> Shown {
        match target {
            Some(path) => Shown::Value(Value::String(path.display().to_string())),
            None => Shown::Unset,
        }
    }
}

/// An optional non-empty string shown as it is.
pub(crate) struct TextKind;

impl Kind for TextKind {
    type Target = Option<String>;

    fn read(value: &Value) -> Result<Option<String>, String> {
        value
            .as_str()
            .filter(|text| !text.is_empty())
            .map(|text| Some(text.to_owned()))
            .ok_or_else(|| expected("a non-empty string", value))
    }

    fn show(target: &Option<String>) -> Shown {
        match target {
            Some(text) => Shown::Value(Value::String(text.clone())),
            None => Shown::Unset,
        }
    }
}

/// The message for a value of the wrong form; a secret never reaches here
/// with its value (see [`SecretKind`]).
fn expected(what: &str, got: &Value) -> String {
    format!("expected {what}, got {got}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml_value(text: &str) -> Value {
        text.parse::<toml::Table>().expect("test TOML")["v"].clone()
    }

    #[test]
    fn a_bad_value_names_what_was_expected_and_what_came() {
        let error = DurationKind::read(&toml_value("v = \"30\"")).unwrap_err();
        assert_eq!(
            error,
            "expected a duration like \"30s\" (units ms, s, m, h), got \"30\""
        );
        let error = DurationKind::read(&toml_value("v = 30")).unwrap_err();
        assert!(error.ends_with("got 30"), "{error}");
    }

    #[test]
    fn sizes_accept_integers_and_unit_strings() {
        assert_eq!(SizeKind::read(&toml_value("v = 65536")), Ok(65_536));
        assert_eq!(SizeKind::read(&toml_value("v = \"64KiB\"")), Ok(65_536));
        assert!(SizeKind::read(&toml_value("v = -1")).is_err());
        assert!(SizeKind::read(&toml_value("v = \"64KB\"")).is_err());
    }

    #[test]
    fn counts_refuse_negatives_and_overflow() {
        assert_eq!(CountKind::<u32>::read(&toml_value("v = 7")), Ok(7));
        assert!(CountKind::<u32>::read(&toml_value("v = -1")).is_err());
        assert!(CountKind::<u32>::read(&toml_value("v = 4294967296")).is_err());
        assert!(CountKind::<usize>::read(&toml_value("v = 1.5")).is_err());
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_not_echoed() {
        let error = SecretKind::read(&toml_value("v = 12345678")).unwrap_err();
        assert!(!error.contains("12345678"), "{error}");
    }

    #[test]
    fn headers_are_a_table_of_strings_whose_values_are_never_echoed() {
        let headers = HeadersKind::read(&toml_value("v = { b = \"2\", a = \"1\" }")).unwrap();
        let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(headers[0].1.expose(), "1");
        let error = HeadersKind::read(&toml_value("v = { a = 12345678 }")).unwrap_err();
        assert!(!error.contains("12345678"), "{error}");
        assert!(HeadersKind::read(&toml_value("v = \"a: b\"")).is_err());
    }

    #[test]
    fn lists_must_hold_only_strings() {
        assert_eq!(
            StringsKind::read(&toml_value("v = [\"a\", \"b\"]")),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert!(StringsKind::read(&toml_value("v = [\"a\", 1]")).is_err());
        assert!(StringsKind::read(&toml_value("v = \"a\"")).is_err());
    }
}
