//! A node's certificate and key: read from PEM files, checked against each
//! other, and swapped in place when the files are read again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{Error, InconsistentKeys, ServerConfig, ServerConnection};

use crate::{HTTP_1_1, Session, TlsError, TlsFile, provider};

/// A node's TLS: the server configuration every handshake starts from, and
/// the files its certificate came from. Clones share the certificate, so
/// a [`ServerTls::reload`] on any clone reaches every runtime that holds
/// one.
#[derive(Clone, Debug)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    certificate: Arc<Reloadable>,
}

impl ServerTls {
    /// Reads the certificate chain at `cert` and the private key at `key`
    /// (PEM both: the end-entity certificate first, then its
    /// intermediates; the key in PKCS#8, PKCS#1 or SEC1) and checks that
    /// the key is the certificate's.
    pub fn load(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        let provider = provider();
        let certified = certified_key(cert, key, &provider)?;
        let certificate = Arc::new(Reloadable {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(certified)),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::new(TlsFile::Cert, cert, error.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        config.alpn_protocols = vec![HTTP_1_1.to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
            certificate,
        })
    }

    /// Reads both files again: handshakes from now on present the new
    /// certificate; connections already established keep theirs. Files
    /// that cannot be used leave the certificate in force, and the error
    /// says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let certificate = &self.certificate;
        let certified = certified_key(&certificate.cert, &certificate.key, &provider())?;
        *certificate
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(certified);
        Ok(())
    }

    /// The rustls configuration, for adapters that hand it to an acceptor
    /// of their runtime (tokio-rustls).
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// A session for a connection just accepted, waiting for the client's
    /// hello.
    pub fn accept(&self) -> Session {
        let connection = ServerConnection::new(self.config.clone())
            .expect("a server configuration with a certificate resolver starts a connection");
        Session::new(connection.into())
    }
}

/// The certificate in force and where it is read from.
#[derive(Debug)]
struct Reloadable {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(current.clone())
    }
}

/// The chain at `cert` with the key at `key`, checked to belong together.
fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(TlsFile::Cert, cert, &read(TlsFile::Cert, cert)?)?;
    let key_der = read_key(key)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|error| TlsError::new(TlsFile::Key, key, format!("unusable key: {error}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(TlsError::new(
            TlsFile::Key,
            key,
            format!(
                "this key is not the key of the certificate in {}",
                cert.display()
            ),
        )),
        Err(error) => Err(TlsError::new(
            TlsFile::Cert,
            cert,
            format!("not a valid certificate: {error}"),
        )),
    }
}

/// Every certificate in `pem`, the text of the file at `path`; at least
/// one.
pub(crate) fn certificates(
    file: TlsFile,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::new(file, path, format!("not valid PEM: {error}")))?;
    if chain.is_empty() {
        return Err(TlsError::new(
            file,
            path,
            "no certificate in the file (PEM \"BEGIN CERTIFICATE\")",
        ));
    }
    Ok(chain)
}

/// The one private key in the PEM file at `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(TlsFile::Key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|error| {
        TlsError::new(
            TlsFile::Key,
            path,
            format!("no private key in the file (PEM \"BEGIN PRIVATE KEY\"): {error}"),
        )
    })
}

/// The bytes of the file at `path`.
pub(crate) fn read(file: TlsFile, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::new(file, path, format!("cannot read: {error}")))
}
