//! `ws://host:port/path` URLs, for command lines and configuration files.

use std::fmt;

use tether_core::ClientConfig;

/// Why a URL cannot be used to reach a Tether server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// `wss://`: this client does not speak TLS yet. A TLS-terminating
    /// proxy in front of the server can be reached with `ws://` meanwhile.
    TlsNotSupported,
    /// A scheme other than `ws`, or none.
    UnsupportedScheme(String),
    /// No host between `ws://` and the path.
    MissingHost,
    /// A port that is not a number from 1 to 65535.
    InvalidPort(String),
    /// User information (`user@host`), which WebSocket URLs do not carry:
    /// credentials go in the token.
    UserInfo,
    /// A fragment (`#...`), which RFC 6455 section 3 forbids in WebSocket
    /// URLs.
    Fragment,
    /// Whitespace or a control character somewhere in the URL.
    InvalidCharacter,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::TlsNotSupported => {
                f.write_str("wss:// (TLS) is not supported yet; use ws://")
            }
            UrlError::UnsupportedScheme(scheme) => {
                write!(
                    f,
                    "unsupported scheme {scheme:?}; expected ws://host:port/path"
                )
            }
            UrlError::MissingHost => f.write_str("the URL names no host"),
            UrlError::InvalidPort(port) => write!(f, "invalid port {port:?}"),
            UrlError::UserInfo => f.write_str("user information in a URL is not supported"),
            UrlError::Fragment => f.write_str("a WebSocket URL cannot have a fragment (#)"),
            UrlError::InvalidCharacter => {
                f.write_str("the URL contains whitespace or a control character")
            }
        }
    }
}

impl std::error::Error for UrlError {}

/// A [`ClientConfig`] with the protocol's defaults for the server at `url`
/// (`ws://host[:port][/path][?query]`), authenticating with `token`.
///
/// The host (with its port, if given) becomes [`ClientConfig::host`]; the
/// path and query become [`ClientConfig::path`], `/` when absent, as in any
/// URL: Tether servers serve WebSockets on `/ws`, so `ws://host:port/ws` is
/// the usual form.
pub fn config_from_url(url: &str, token: impl Into<String>) -> Result<ClientConfig, UrlError> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::InvalidCharacter);
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(UrlError::UnsupportedScheme(String::new()));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "ws" => {}
        "wss" => return Err(UrlError::TlsNotSupported),
        _ => return Err(UrlError::UnsupportedScheme(scheme.to_owned())),
    }
    if rest.contains('#') {
        return Err(UrlError::Fragment);
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(split);
    check_authority(authority)?;
    let path = match target.chars().next() {
        None => "/".to_owned(),
        Some('?') => format!("/{target}"),
        Some(_) => target.to_owned(),
    };
    let mut config = ClientConfig::new(authority, token);
    config.path = path;
    Ok(config)
}

/// Checks `host[:port]` (the host possibly a bracketed IPv6 address).
fn check_authority(authority: &str) -> Result<(), UrlError> {
    if authority.contains('@') {
        return Err(UrlError::UserInfo);
    }
    // A colon after the last `]` separates the port.
    let host_end = authority.rfind(']').map_or(0, |end| end + 1);
    let (host, port) = match authority[host_end..].rfind(':') {
        Some(colon) => authority.split_at(host_end + colon),
        None => (authority, ""),
    };
    if host.is_empty() || host == "[]" {
        return Err(UrlError::MissingHost);
    }
    if let Some(port) = port.strip_prefix(':') {
        match port.parse::<u16>() {
            Ok(number) if number > 0 => {}
            _ => return Err(UrlError::InvalidPort(port.to_owned())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> (String, String) {
        let config = config_from_url(url, "token").unwrap();
        (config.host, config.path)
    }

    #[test]
    fn splits_host_and_path() {
        let cases = [
            ("ws://127.0.0.1:8080/ws", "127.0.0.1:8080", "/ws"),
            ("ws://example.com", "example.com", "/"),
            ("WS://example.com/a/b?x=1", "example.com", "/a/b?x=1"),
            ("ws://example.com?x=1", "example.com", "/?x=1"),
            ("ws://[::1]:9000/ws", "[::1]:9000", "/ws"),
            ("ws://[::1]/ws", "[::1]", "/ws"),
        ];
        for (url, host, path) in cases {
            assert_eq!(target(url), (host.to_owned(), path.to_owned()), "{url}");
        }
    }

    #[test]
    fn keeps_the_token_and_the_defaults() {
        let config = config_from_url("ws://localhost:1/ws", "secret").unwrap();
        let mut expected = ClientConfig::new("localhost:1", "secret");
        expected.path = "/ws".into();
        assert_eq!(config, expected);
    }

    #[test]
    fn refuses_what_it_cannot_reach() {
        let cases = [
            ("wss://example.com/ws", UrlError::TlsNotSupported),
            (
                "http://example.com/ws",
                UrlError::UnsupportedScheme("http".into()),
            ),
            (
                "example.com:8080/ws",
                UrlError::UnsupportedScheme(String::new()),
            ),
            ("ws:///ws", UrlError::MissingHost),
            ("ws://:8080/ws", UrlError::MissingHost),
            (
                "ws://example.com:http/ws",
                UrlError::InvalidPort("http".into()),
            ),
            ("ws://example.com:0/ws", UrlError::InvalidPort("0".into())),
            (
                "ws://example.com:70000",
                UrlError::InvalidPort("70000".into()),
            ),
            ("ws://user:pw@example.com/ws", UrlError::UserInfo),
            ("ws://example.com/ws#top", UrlError::Fragment),
            ("ws://example.com/a b", UrlError::InvalidCharacter),
        ];
        for (url, error) in cases {
            assert_eq!(config_from_url(url, "token"), Err(error), "{url}");
        }
    }

    #[test]
    fn says_tls_is_not_supported_yet() {
        let message = config_from_url("wss://example.com", "t")
            .unwrap_err()
            .to_string();
        assert!(message.contains("not supported yet"), "{message}");
    }
}
