//! TLS for `wss://` targets: what the simulated clients trust.
//!
//! `--ca FILE` trusts that CA, as any Tether client does. `--insecure`
//! accepts whatever certificate the server presents (signatures are still
//! checked, names and issuers are not): for benchmarks of a server with a
//! self-signed certificate on loopback only, and nowhere else in the
//! project.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tether_tls::Connector;

/// The client configuration for `--ca` or `--insecure`; `None` without
/// either (plain `ws://` only).
pub fn client_config(ca: Option<&Path>, insecure: bool) -> io::Result<Option<Arc<ClientConfig>>> {
    match (ca, insecure) {
        (Some(_), true) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--ca and --insecure exclude each other",
        )),
        (Some(ca), false) => Connector::with_ca_file(ca)
            .map(|connector| Some(connector.config()))
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, format!("--ca {error}"))),
        (None, true) => Ok(Some(insecure_config())),
        (None, false) => Ok(None),
    }
}

/// A configuration that takes any certificate.
fn insecure_config() -> Arc<ClientConfig> {
    let provider = tether_tls::provider();
    let verifier = AnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Arc::new(config)
}

/// Accepts every certificate; checks the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
