//! The authority a [`Transmit::Dial`](super::Transmit::Dial) names, split
//! into what an adapter resolves and connects to, so that every client
//! dials the same place for the same [`ClientConfig::host`](super::ClientConfig::host).

use std::fmt;
use std::io;

/// The port of a `ws://` URL that names none (RFC 6455 section 3).
pub const DEFAULT_PORT: u16 = 80;

/// The name to resolve and the port to connect to for `host`: `name`,
/// `name:port`, `[v6]`, `[v6]:port`, or an IPv6 address without brackets
/// (which cannot carry a port). The name loses an IPv6 address's brackets,
/// and the port is [`DEFAULT_PORT`] when none is named. An error when no
/// name is left or the port is not a number from 1 to 65535: nothing can
/// be dialed, and the adapter reports a failed dial.
pub fn dial_address(host: &str) -> Result<(&str, u16), InvalidHost> {
    split(host).ok_or_else(|| InvalidHost(host.to_owned()))
}

/// [`dial_address`], with `None` for an invalid host.
fn split(host: &str) -> Option<(&str, u16)> {
    let (name, port) = match host.strip_prefix('[') {
        Some(bracketed) => {
            let (name, rest) = bracketed.split_once(']')?;
            match rest {
                "" => (name, None),
                _ => (name, Some(rest.strip_prefix(':')?)),
            }
        }
        None => match host.split_once(':') {
            // Two colons or more: an IPv6 address.
            Some((_, rest)) if rest.contains(':') => (host, None),
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port.parse().ok().filter(|&port| port > 0)?,
    };
    (!name.is_empty()).then_some((name, port))
}

/// A [`ClientConfig::host`](super::ClientConfig::host) that names nothing
/// a client can dial: the host, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidHost(pub String);

impl fmt::Display for InvalidHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a host with an optional port from 1 to 65535",
            self.0
        )
    }
}

impl std::error::Error for InvalidHost {}

/// A failed dial, as an adapter's dial reports it.
impl From<InvalidHost> for io::Error {
    fn from(error: InvalidHost) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_name_from_the_port_which_is_80_when_absent() {
        let cases = [
            ("127.0.0.1:9000", Some(("127.0.0.1", 9000))),
            ("127.0.0.1", Some(("127.0.0.1", 80))),
            ("example.com:8080", Some(("example.com", 8080))),
            ("example.com", Some(("example.com", 80))),
            ("[::1]:9000", Some(("::1", 9000))),
            ("[::1]", Some(("::1", 80))),
            ("::1", Some(("::1", 80))),
            ("example.com:http", None),
            ("example.com:0", None),
            ("example.com:70000", None),
            ("example.com:", None),
            (":8080", None),
            ("", None),
            ("[::1", None),
            ("[::1]8080", None),
            ("[]:8080", None),
        ];
        for (host, address) in cases {
            let expected = address.ok_or_else(|| InvalidHost(host.to_owned()));
            assert_eq!(dial_address(host), expected, "{host:?}");
        }
        let error = io::Error::from(dial_address("example.com:http").unwrap_err());
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(
            error.to_string().contains("\"example.com:http\""),
            "{error}"
        );
    }
}
