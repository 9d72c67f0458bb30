//! A client session and a server session talking through memory, with
//! certificates made by the test.

use std::io;

use tether_testkit::tls::TestCa;

use super::*;

/// Which side failed, and why.
type Failure = (&'static str, io::Error);

/// Moves bytes between `client` and `server` until neither has any left;
/// the plaintext the server received, or the first error.
fn pump(client: &mut Session, server: &mut Session) -> Result<Vec<u8>, Failure> {
    let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
    let mut ciphertext = Vec::new();
    while client.wants_write() || server.wants_write() {
        ciphertext.clear();
        client.take_ciphertext(&mut ciphertext);
        server
            .receive(&ciphertext, &mut to_server)
            .map_err(|error| ("server", error))?;
        ciphertext.clear();
        server.take_ciphertext(&mut ciphertext);
        client
            .receive(&ciphertext, &mut to_client)
            .map_err(|error| ("client", error))?;
    }
    Ok(to_server)
}

#[test]
fn a_client_trusting_the_ca_exchanges_plaintext_with_the_node() {
    let ca = TestCa::new("tls-exchange");
    let files = ca.server("node");
    let server_tls = ServerTls::load(&files.cert, &files.key).unwrap();
    let connector = Connector::with_ca_file(ca.ca_file()).unwrap();
    let mut client = connector.connect("localhost:8443").unwrap();
    let mut server = server_tls.accept();
    client.send(b"GET /ws HTTP/1.1\r\n\r\n").unwrap();
    let to_server = pump(&mut client, &mut server).unwrap();
    assert_eq!(to_server, b"GET /ws HTTP/1.1\r\n\r\n");
    server.send(b"HTTP/1.1 101").unwrap();
    server.close_notify();
    let mut ciphertext = Vec::new();
    server.take_ciphertext(&mut ciphertext);
    let mut to_client = Vec::new();
    let received = client.receive(&ciphertext, &mut to_client).unwrap();
    assert_eq!(to_client, b"HTTP/1.1 101");
    assert_eq!(received, Received::Closed);
}

#[test]
fn an_ip_address_host_is_checked_against_the_certificate() {
    let ca = TestCa::new("tls-ip");
    let files = ca.server("node");
    let server_tls = ServerTls::load(&files.cert, &files.key).unwrap();
    let connector = Connector::with_ca_file(ca.ca_file()).unwrap();
    let mut client = connector.connect("127.0.0.1:8443").unwrap();
    let mut server = server_tls.accept();
    pump(&mut client, &mut server).unwrap();
    assert!(!client.is_handshaking());

    let mut wrong_name = connector.connect("example.com").unwrap();
    let mut server = server_tls.accept();
    let (side, error) = pump(&mut wrong_name, &mut server).unwrap_err();
    assert_eq!(side, "client");
    assert!(error.to_string().contains("not valid for name"), "{error}");
}

#[test]
fn a_certificate_of_another_ca_is_refused_by_the_client() {
    let ours = TestCa::new("tls-ours");
    let theirs = TestCa::new("tls-theirs");
    let files = theirs.server("node");
    let server_tls = ServerTls::load(&files.cert, &files.key).unwrap();
    let mut client = Connector::with_ca_file(ours.ca_file())
        .unwrap()
        .connect("localhost")
        .unwrap();
    let (side, error) = pump(&mut client, &mut server_tls.accept()).unwrap_err();
    assert_eq!(side, "client");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}

#[test]
fn an_expired_certificate_is_refused_by_the_client() {
    let ca = TestCa::new("tls-expired");
    let files = ca.expired_server("node");
    let server_tls = ServerTls::load(&files.cert, &files.key).unwrap();
    let mut client = Connector::with_ca_file(ca.ca_file())
        .unwrap()
        .connect("localhost")
        .unwrap();
    let (side, error) = pump(&mut client, &mut server_tls.accept()).unwrap_err();
    assert_eq!(side, "client");
    assert!(error.to_string().contains("expired"), "{error}");
}

#[test]
fn the_public_roots_do_not_trust_a_private_ca() {
    let ca = TestCa::new("tls-public");
    let files = ca.server("node");
    let server_tls = ServerTls::load(&files.cert, &files.key).unwrap();
    let mut client = Connector::public_roots().connect("localhost").unwrap();
    let (side, error) = pump(&mut client, &mut server_tls.accept()).unwrap_err();
    assert_eq!(side, "client");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}

#[test]
fn garbage_instead_of_a_client_hello_fails_the_session() {
    let ca = TestCa::new("tls-garbage");
    let files = ca.server("node");
    let mut server = ServerTls::load(&files.cert, &files.key).unwrap().accept();
    let error = server
        .receive(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", &mut Vec::new())
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn files_that_cannot_be_used_are_named() {
    let ca = TestCa::new("tls-files");
    let files = ca.server("node");
    let other = ca.server("other");
    let missing = ca.ca_file().with_file_name("missing.pem");

    let error = ServerTls::load(&missing, &files.key).unwrap_err();
    assert_eq!((error.file, &error.path), (TlsFile::Cert, &missing));
    assert!(error.message.contains("cannot read"), "{error}");

    let error = ServerTls::load(&files.key, &files.key).unwrap_err();
    assert_eq!(error.file, TlsFile::Cert);
    assert!(error.message.contains("no certificate"), "{error}");

    let error = ServerTls::load(&files.cert, &files.cert).unwrap_err();
    assert_eq!(error.file, TlsFile::Key);
    assert!(error.message.contains("no private key"), "{error}");

    let error = ServerTls::load(&files.cert, &other.key).unwrap_err();
    assert_eq!((error.file, &error.path), (TlsFile::Key, &other.key));
    assert!(
        error.message.contains("not the key of the certificate"),
        "{error}"
    );

    let error = Connector::with_ca_file(&files.key).unwrap_err();
    assert_eq!(error.file, TlsFile::Ca);
    let error = read_ca_file(&files.key).unwrap_err();
    assert_eq!((error.file, &error.path), (TlsFile::Ca, &files.key));
    assert!(error.message.contains("no certificate"), "{error}");
    assert_eq!(read_ca_file(ca.ca_file()).unwrap(), ca.ca_pem().as_bytes());
}

/// The certificate a full handshake with `server_tls` presents, in DER: a
/// connector of its own, so that no session is resumed.
fn presented(server_tls: &ServerTls, ca: &TestCa) -> Vec<u8> {
    let connector = Connector::with_ca_file(ca.ca_file()).unwrap();
    let mut client = connector.connect("localhost").unwrap();
    let mut server = server_tls.accept();
    pump(&mut client, &mut server).unwrap();
    client.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn a_reload_swaps_the_certificate_and_a_failed_one_keeps_it() {
    let ca = TestCa::new("tls-reload");
    let first = ca.server("node");
    let server_tls = ServerTls::load(&first.cert, &first.key).unwrap();
    let before = presented(&server_tls, &ca);

    let second = ca.server("second");
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    server_tls.reload().unwrap();
    let after = presented(&server_tls, &ca);
    assert_ne!(before, after, "new handshakes get the new certificate");

    std::fs::write(&first.key, "not a key").unwrap();
    let error = server_tls.reload().unwrap_err();
    assert_eq!(error.file, TlsFile::Key);
    assert_eq!(presented(&server_tls, &ca), after, "the old one stays");
}

#[test]
fn frames_sent_together_share_a_record() {
    let ca = TestCa::new("tls-records");
    let files = ca.server("node");
    let server_tls = ServerTls::load(&files.cert, &files.key).unwrap();
    let mut client = Connector::with_ca_file(ca.ca_file())
        .unwrap()
        .connect("localhost")
        .unwrap();
    let mut server = server_tls.accept();
    pump(&mut client, &mut server).unwrap();
    let frames: Vec<bytes::Bytes> = (0..10).map(|n| vec![n; 100].into()).collect();
    let mut together = Vec::new();
    server.send_frames(&frames).unwrap();
    server.take_ciphertext(&mut together);
    let mut apart = Vec::new();
    for frame in &frames {
        server.send(frame).unwrap();
    }
    server.take_ciphertext(&mut apart);
    // One record header and tag (5 + 16 + 1 bytes in TLS 1.3) instead of ten.
    assert_eq!(apart.len() - together.len(), 9 * 22);
    let mut plaintext = Vec::new();
    client.receive(&together, &mut plaintext).unwrap();
    client.receive(&apart, &mut plaintext).unwrap();
    assert_eq!(plaintext, [frames.concat(), frames.concat()].concat());
}
