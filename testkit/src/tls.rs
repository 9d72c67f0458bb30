//! Certificates for the TLS tests, made when a test asks: a certificate
//! authority of its own, and server certificates it signs for `localhost`
//! and `127.0.0.1`, written as PEM files into a directory of the test's;
//! and the tests' TLS client, rustls under tungstenite. No key, however
//! test-only, lives in the repository.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use tether_tls::Connector;

use crate::ws::{Ws, tcp};

/// A TLS connection to a node, over a blocking socket whose reads time out.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A WebSocket over TLS.
pub type Wss = Ws<TlsStream>;

/// A test's certificate authority and the directory its files go to.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    ca_file: PathBuf,
}

/// A server certificate's two files, as a node's `tls_cert` and `tls_key`
/// name them.
#[derive(Clone, Debug)]
pub struct ServerFiles {
    /// The certificate, in PEM.
    pub cert: PathBuf,
    /// Its private key, in PEM (PKCS#8).
    pub key: PathBuf,
}

impl TestCa {
    /// A new authority named `name`, its files in a fresh directory named
    /// after it, the process and a count (so parallel tests never share
    /// one).
    pub fn new(name: &str) -> TestCa {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let count = MADE.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("tether-tls-{name}-{}-{count}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cannot create the certificates' directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Tether test CA {name}"));
        let key = KeyPair::generate().expect("cannot generate the CA's key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("cannot sign the CA");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, issuer.pem()).expect("cannot write the CA file");
        TestCa {
            issuer,
            dir,
            ca_file,
        }
    }

    /// The authority's certificate in PEM: what a client trusts.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The authority's certificate in PEM, as text.
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `localhost` and `127.0.0.1`, valid now, signed by
    /// this authority; its files are named after `name`.
    pub fn server(&self, name: &str) -> ServerFiles {
        self.sign(name, |_| {})
    }

    /// Like [`TestCa::server`], but valid only in 2000: expired.
    pub fn expired_server(&self, name: &str) -> ServerFiles {
        self.sign(name, |params| {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2000, 12, 31);
        })
    }

    fn sign(&self, name: &str, adjust: impl FnOnce(&mut CertificateParams)) -> ServerFiles {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server certificate parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Tether test server {name}"));
        adjust(&mut params);
        let key = KeyPair::generate().expect("cannot generate the server's key");
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("cannot sign the server certificate");
        let files = ServerFiles {
            cert: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, certificate.pem()).expect("cannot write the certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("cannot write the key");
        files
    }
}

/// A client configuration trusting the CA in the file `ca`, made afresh
/// (no session of an earlier connection is resumed).
pub fn trusting(ca: &Path) -> Arc<ClientConfig> {
    Connector::with_ca_file(ca)
        .expect("a usable CA file")
        .config()
}

/// A TLS connection to `addr` for `localhost` with `config`; the handshake
/// happens at its first read or write.
pub fn tls(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsStream {
    let name = ServerName::try_from("localhost").expect("a server name");
    let connection = ClientConnection::new(config, name).expect("a client connection");
    StreamOwned::new(connection, tcp(addr))
}

/// A WebSocket to `/ws` of the node at `addr` over TLS, trusting the CA in
/// the file `ca`; a refused handshake (TLS or HTTP) is the error.
pub fn wss(addr: SocketAddr, ca: &Path) -> Result<Wss, tungstenite::Error> {
    let url = format!("wss://localhost:{}/ws", addr.port());
    Ws::upgrade(&url, tls(addr, trusting(ca)), &[]).map(|(ws, _)| ws)
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
