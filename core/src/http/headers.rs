//! Reading header fields: repeated fields, comma-separated token lists and
//! the origin allow-list.

use httparse::Header;

/// Every value of the field `name` (case-insensitive), in order, with
/// surrounding whitespace removed.
pub(super) fn values<'h>(
    headers: &'h [Header<'h>],
    name: &'h str,
) -> impl Iterator<Item = &'h [u8]> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.trim_ascii())
}

/// The elements of the comma-separated list(s) in every field `name`
/// (RFC 9110 section 5.6.1), empty elements skipped.
pub(super) fn tokens<'h>(
    headers: &'h [Header<'h>],
    name: &'h str,
) -> impl Iterator<Item = &'h [u8]> {
    values(headers, name)
        .flat_map(|value| value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

/// Whether any field `name` lists `token`, compared case-insensitively as
/// the `Upgrade` and `Connection` tokens are.
pub(super) fn has_token(headers: &[Header<'_>], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Why a field that may appear at most once could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SingleError {
    /// The field appears more than once.
    Repeated,
    /// The value is not UTF-8.
    NotUtf8,
}

/// The value of a field that may appear at most once, as text.
pub(super) fn single<'h>(
    headers: &'h [Header<'h>],
    name: &'h str,
) -> Result<Option<&'h str>, SingleError> {
    let mut found = values(headers, name);
    let Some(first) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(SingleError::Repeated);
    }
    std::str::from_utf8(first)
        .map(Some)
        .map_err(|_| SingleError::NotUtf8)
}

/// Whether a WebSocket handshake from `origin` may proceed, given the
/// configured `allowed` origins (PROTOCOL.md section 1).
///
/// An empty list allows every origin, and a request without an `Origin`
/// field (not a browser) is always allowed. Otherwise the origin must equal
/// an entry, ignoring ASCII case (scheme and host are case-insensitive; a
/// port is digits).
pub fn check_origin(origin: Option<&str>, allowed: &[String]) -> bool {
    match origin {
        _ if allowed.is_empty() => true,
        None => true,
        Some(origin) => allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(name: &'a str, value: &'a str) -> Header<'a> {
        Header {
            name,
            value: value.as_bytes(),
        }
    }

    #[test]
    fn tokens_span_repeated_fields_and_skip_blanks() {
        let headers = [
            header("Sec-WebSocket-Protocol", " chat , ,tether.v1"),
            header("X-Other", "tether.v2"),
            header("sec-websocket-protocol", "mqtt"),
        ];
        let found: Vec<&[u8]> = tokens(&headers, "Sec-WebSocket-Protocol").collect();
        assert_eq!(found, [&b"chat"[..], b"tether.v1", b"mqtt"]);
    }

    #[test]
    fn has_token_ignores_case_and_whitespace() {
        let headers = [header("connection", "keep-alive, Upgrade ")];
        assert!(has_token(&headers, "Connection", "upgrade"));
        assert!(!has_token(&headers, "Connection", "close"));
        assert!(!has_token(
            &[header("Connection", "upgraded")],
            "Connection",
            "upgrade"
        ));
    }

    #[test]
    fn single_refuses_repeats_and_non_utf8() {
        let twice = [header("Origin", "a"), header("origin", "b")];
        assert_eq!(single(&twice, "Origin"), Err(SingleError::Repeated));
        let binary = [Header {
            name: "Origin",
            value: &[0xff],
        }];
        assert_eq!(single(&binary, "Origin"), Err(SingleError::NotUtf8));
        assert_eq!(single(&twice, "Host"), Ok(None));
        assert_eq!(single(&[header("Host", " h ")], "Host"), Ok(Some("h")));
    }

    #[test]
    fn origin_allow_list() {
        let allowed = vec!["https://app.example".to_owned()];
        assert!(check_origin(Some("https://evil.example"), &[]));
        assert!(check_origin(None, &allowed));
        assert!(check_origin(Some("https://app.example"), &allowed));
        assert!(check_origin(Some("HTTPS://App.Example"), &allowed));
        assert!(!check_origin(Some("https://app.example:8443"), &allowed));
        assert!(!check_origin(Some("http://app.example"), &allowed));
        assert!(!check_origin(Some("null"), &allowed));
    }
}
