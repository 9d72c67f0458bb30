//! What a client trusts, and the server name it checks.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use tether_core::dial_address;

use crate::server::{certificates, read};
use crate::{HTTP_1_1, Session, TlsError, TlsFile, provider};

/// A client's TLS configuration: the certificates it trusts. Cheap to
/// clone; every connection of a client starts from the same one.
#[derive(Clone, Debug)]
pub struct Connector {
    config: Arc<ClientConfig>,
}

impl Connector {
    /// Trusts the public certificate authorities of Mozilla's root program
    /// (the `webpki-roots` list, compiled in): the same trust on every
    /// machine, with no system store to locate.
    pub fn public_roots() -> Connector {
        let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Connector::trusting(roots)
    }

    /// Trusts the certificates in the PEM file at `path`, and only them:
    /// for a private CA, or a self-signed certificate.
    pub fn with_ca_file(path: &Path) -> Result<Connector, TlsError> {
        let pem = read(TlsFile::Ca, path)?;
        Ok(Connector::trusting(ca_roots(path, &pem)?))
    }

    fn trusting(roots: RootCertStore) -> Connector {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![HTTP_1_1.to_vec()];
        Connector {
            config: Arc::new(config),
        }
    }

    /// The rustls configuration, for adapters that hand it to a connector
    /// of their runtime (tokio-rustls).
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// A session for a connection to `host` (`host` or `host:port`, as in
    /// a URL), whose certificate must name that host; the session's first
    /// bytes to send are the client's hello.
    pub fn connect(&self, host: &str) -> io::Result<Session> {
        let name = server_name(host)?;
        let connection =
            ClientConnection::new(self.config.clone(), name).map_err(io::Error::other)?;
        Ok(Session::new(connection.into()))
    }
}

impl Default for Connector {
    /// [`Connector::public_roots`].
    fn default() -> Self {
        Connector::public_roots()
    }
}

/// The text of the CA file at `path`, checked as
/// [`Connector::with_ca_file`] checks it (readable, at least one usable CA
/// certificate in PEM): for a client of another library that takes the
/// PEM itself, such as the Redis backplane's over `rediss://`, so that a
/// file it would silently trust nothing with is refused as early.
pub fn read_ca_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(TlsFile::Ca, path)?;
    ca_roots(path, &pem)?;
    Ok(pem)
}

/// The CA certificates in `pem`, the text of the file at `path`.
fn ca_roots(path: &Path, pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(TlsFile::Ca, path, pem)? {
        roots.add(certificate).map_err(|error| {
            TlsError::new(
                TlsFile::Ca,
                path,
                format!("not a usable CA certificate: {error}"),
            )
        })?;
    }
    Ok(roots)
}

/// The name the server's certificate must carry: the URL's host without
/// its port or brackets (a DNS name or an IP address).
pub fn server_name(host: &str) -> io::Result<ServerName<'static>> {
    let (name, _) = dial_address(host)?;
    ServerName::try_from(name.to_owned()).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a server name for TLS: {error}"),
        )
    })
}
