//! `ws://host:port/path` and `wss://host:port/path` URLs, for command
//! lines and configuration files.

use std::fmt;

use tether_core::ClientConfig;

/// Why a URL cannot be used to reach a Tether server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// `wss://` given to [`config_from_url`], whose configuration has no
    /// place for TLS: [`endpoint_from_url`] takes it.
    TlsNeedsEndpoint,
    /// A scheme other than `ws` or `wss`, or none.
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
            UrlError::TlsNeedsEndpoint => f.write_str(
                "wss:// needs TLS: read the URL with endpoint_from_url and connect with \
                 Client::connect_tls",
            ),
            UrlError::UnsupportedScheme(scheme) => {
                write!(
                    f,
                    "unsupported scheme {scheme:?}; expected ws:// or wss://host:port/path"
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

/// What a URL says about the server to reach: the client's configuration,
/// and whether the connection speaks TLS.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// The configuration for the URL's host and path.
    pub config: ClientConfig,
    /// `wss://`: connect with [`Client::connect_tls`](super::Client::connect_tls).
    pub secure: bool,
}

/// A [`ClientConfig`] with the protocol's defaults for the server at `url`
/// (`ws://host[:port][/path][?query]`), authenticating with `token`; a
/// `wss://` URL is refused ([`endpoint_from_url`] takes both).
pub fn config_from_url(url: &str, token: impl Into<String>) -> Result<ClientConfig, UrlError> {
    match endpoint_from_url(url, token)? {
        Endpoint { secure: true, .. } => Err(UrlError::TlsNeedsEndpoint),
        Endpoint { config, .. } => Ok(config),
    }
}

/// The endpoint at `url` (`ws://` or `wss://`, then
/// `host[:port][/path][?query]`), authenticating with `token`.
///
/// The host (with its port, if given) becomes [`ClientConfig::host`]; the
/// path and query become [`ClientConfig::path`], `/` when absent, as in any
/// URL: Tether servers serve WebSockets on `/ws`, so `ws://host:port/ws` is
/// the usual form. A `wss://` URL without a port gets 443, written out in
/// the host (the core dials port 80 when none is given); the TLS server
/// name is the host without it.
pub fn endpoint_from_url(url: &str, token: impl Into<String>) -> Result<Endpoint, UrlError> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::InvalidCharacter);
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(UrlError::UnsupportedScheme(String::new()));
    };
    let secure = match scheme.to_ascii_lowercase().as_str() {
        "ws" => false,
        "wss" => true,
        _ => return Err(UrlError::UnsupportedScheme(scheme.to_owned())),
    };
    if rest.contains('#') {
        return Err(UrlError::Fragment);
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(split);
    let has_port = check_authority(authority)?;
    let path = match target.chars().next() {
        None => "/".to_owned(),
        Some('?') => format!("/{target}"),
        Some(_) => target.to_owned(),
    };
    let host = match (secure, has_port) {
        (true, false) => format!("{authority}:443"),
        _ => authority.to_owned(),
    };
    let mut config = ClientConfig::new(host, token);
    config.path = path;
    Ok(Endpoint { config, secure })
}

/// Checks `host[:port]` (the host possibly a bracketed IPv6 address);
/// whether it has a port.
fn check_authority(authority: &str) -> Result<bool, UrlError> {
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
    Ok(!port.is_empty())
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
            ("wss://example.com/ws", UrlError::TlsNeedsEndpoint),
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
    fn wss_is_an_endpoint_with_tls_and_port_443_by_default() {
        let cases = [
            ("wss://example.com/ws", "example.com:443", true),
            ("WSS://example.com:8443/ws", "example.com:8443", true),
            ("wss://[::1]/ws", "[::1]:443", true),
            ("ws://example.com/ws", "example.com", false),
        ];
        for (url, host, secure) in cases {
            let endpoint = endpoint_from_url(url, "t").unwrap();
            assert_eq!(
                (endpoint.config.host.as_str(), endpoint.config.path.as_str()),
                (host, "/ws"),
                "{url}"
            );
            assert_eq!(endpoint.secure, secure, "{url}");
        }
        let message = config_from_url("wss://example.com", "t")
            .unwrap_err()
            .to_string();
        assert!(message.contains("endpoint_from_url"), "{message}");
    }
}
