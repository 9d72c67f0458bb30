//! Opening the TCP connection a [`Transmit::Dial`] asks for.
//!
//! [`Transmit::Dial`]: tether_core::Transmit::Dial

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpStream, lookup_host};

/// The port of a `ws://` URL that names none (RFC 6455 section 3).
const DEFAULT_PORT: u16 = 80;

/// Resolves `host` (`host` or `host:port`) and connects to the first of its
/// addresses that accepts.
pub(super) async fn dial(host: String) -> io::Result<TcpStream> {
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "host has no address");
    for address in resolve(&host).await? {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                // Tether's messages are small and latency matters more than
                // packet count.
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// The addresses of `host`, with the default port when it names none.
async fn resolve(host: &str) -> io::Result<Vec<SocketAddr>> {
    match lookup_host(host).await {
        Ok(addresses) => Ok(addresses.collect()),
        Err(_) => {
            let name = host.trim_start_matches('[').trim_end_matches(']');
            Ok(lookup_host((name, DEFAULT_PORT)).await?.collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_with_and_without_a_port() {
        let with_port = resolve("127.0.0.1:9000").await.unwrap();
        assert_eq!(with_port, vec![SocketAddr::from(([127, 0, 0, 1], 9000))]);
        let without = resolve("127.0.0.1").await.unwrap();
        assert_eq!(without, vec![SocketAddr::from(([127, 0, 0, 1], 80))]);
        let v6 = resolve("[::1]").await.unwrap();
        assert_eq!(v6, vec!["[::1]:80".parse::<SocketAddr>().unwrap()]);
    }
}
