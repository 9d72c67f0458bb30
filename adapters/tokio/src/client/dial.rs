//! Opening the TCP connection a [`Transmit::Dial`] asks for.
//!
//! [`Transmit::Dial`]: tether_core::Transmit::Dial

use std::io;
use std::net::SocketAddr;

use tether_core::dial_address;
use tokio::net::{TcpStream, lookup_host};

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

/// The addresses of `host`, at the port the core's [`dial_address`] gives.
async fn resolve(host: &str) -> io::Result<Vec<SocketAddr>> {
    Ok(lookup_host(dial_address(host)?).await?.collect())
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
