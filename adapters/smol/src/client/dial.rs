//! Opening the TCP connection a [`Transmit::Dial`] asks for.
//!
//! [`Transmit::Dial`]: tether_core::Transmit::Dial

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};

use async_io::Async;
use tether_core::dial_address;

/// Resolves `host` (`host` or `host:port`) and connects to the first of its
/// addresses that accepts, as `std::net::TcpStream::connect` does. Name
/// resolution blocks, so it runs on smol's blocking pool.
pub(super) async fn dial(host: String) -> io::Result<Async<TcpStream>> {
    let addresses = smol::unblock(move || resolve(&host)).await?;
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "host has no address");
    for address in addresses {
        match Async::<TcpStream>::connect(address).await {
            Ok(stream) => {
                // Tether's messages are small and latency matters more than
                // packet count.
                stream.get_ref().set_nodelay(true)?;
                return Ok(stream);
            }
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// The addresses of `host`, at the port the core's [`dial_address`] gives.
fn resolve(host: &str) -> io::Result<Vec<SocketAddr>> {
    Ok(dial_address(host)?.to_socket_addrs()?.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_with_and_without_a_port() {
        let with_port = resolve("127.0.0.1:9000").unwrap();
        assert_eq!(with_port, vec![SocketAddr::from(([127, 0, 0, 1], 9000))]);
        let without = resolve("127.0.0.1").unwrap();
        assert_eq!(without, vec![SocketAddr::from(([127, 0, 0, 1], 80))]);
        let v6 = resolve("[::1]").unwrap();
        assert_eq!(v6, vec!["[::1]:80".parse::<SocketAddr>().unwrap()]);
    }
}
