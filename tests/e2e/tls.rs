//! PROTOCOL.md, "TLS": a node with a certificate speaks HTTPS and `wss://`
//! only, on every runtime. The certificates are made by the tests
//! (`tether_testkit::tls`); the clients are tungstenite over rustls.

use std::fs;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::json;
use tether_core::{ClientConfig, Event, ServerConfig};
use tether_testkit::process::Process;
use tether_testkit::tls::{ServerFiles, TestCa, Wss, tls, trusting, wss};
use tether_testkit::ws::{READ_TIMEOUT, read_to_end, tcp};
use tether_tls::{Connector, ServerTls};
use tungstenite::Message;

use crate::harness::{Runtime, TETHER, TestDir, TestServer, config, dev_auth};

/// A node on `runtime` serving `files` with `config`.
fn start(runtime: Runtime, config: ServerConfig, files: &ServerFiles) -> TestServer {
    let tls = ServerTls::load(&files.cert, &files.key).expect("usable test files");
    runtime.start_tls(config, dev_auth(), tls)
}

/// The authority of a test on `runtime`, named after both.
fn ca(test: &str, runtime: Runtime) -> TestCa {
    TestCa::new(&format!("{test}-{}", runtime.name()))
}

/// The certificate a connection was served, in DER.
fn served(ws: &Wss) -> Vec<u8> {
    let certificates = ws.stream().conn.peer_certificates().expect("a handshake");
    certificates[0].to_vec()
}

/// The certificate in the PEM file of `files`, in DER.
fn certificate(files: &ServerFiles) -> Vec<u8> {
    CertificateDer::from_pem_file(&files.cert)
        .expect("a certificate file")
        .to_vec()
}

fn wss_carries_auth_subscriptions_and_publications(runtime: Runtime) {
    let ca = ca("wss-smoke", runtime);
    let server = start(runtime, config(), &ca.server("node"));
    let connect = |user| {
        wss(server.addr, ca.ca_file())
            .expect("the TLS upgrade")
            .authenticate_dev(user)
    };
    let (mut alice, mut bob) = (connect("alice"), connect("bob"));
    alice.subscribe("chat");
    bob.subscribe("chat");
    assert_eq!(alice.recv_type("join")["user"], "bob");
    for n in 1..=3 {
        server.publish("chat", &n.to_string());
    }
    for ws in [&mut alice, &mut bob] {
        for n in 1..=3 {
            assert_eq!(
                ws.recv_type("message"),
                json!({"type": "message", "channel": "chat", "payload": n, "offset": n})
            );
        }
    }
    bob.send_json(json!({"type": "publish", "channel": "chat", "payload": "hi", "id": "p"}));
    let mut answers = [bob.recv(), bob.recv()].map(|answer| answer["type"].clone());
    answers.sort_by_key(|kind| kind.to_string());
    assert_eq!(answers, [json!("ack"), json!("message")]);
    assert_eq!(alice.recv_type("message")["payload"], "hi");
    server.shutdown();
    for ws in [&mut alice, &mut bob] {
        // A presence `leave` of the other may come first.
        let code = loop {
            match ws.read().expect("a frame") {
                Message::Close(Some(frame)) => break u16::from(frame.code),
                Message::Text(text) => assert!(text.contains("\"leave\""), "{text}"),
                other => panic!("expected a close, got {other:?}"),
            }
        };
        assert_eq!(code, 1001);
        ws.finish_close();
    }
    server.join().expect("run returns Ok");
}

fn https_answers_healthz(runtime: Runtime) {
    let ca = ca("https-healthz", runtime);
    let server = start(runtime, config(), &ca.server("node"));
    let mut stream = tls(server.addr, trusting(ca.ca_file()));
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("the request is sent");
    let mut answer = Vec::new();
    // The node closes after its answer; a peer that does not send its
    // close_notify first ends the read with an error, after the answer.
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
}

fn plaintext_on_a_tls_port_is_closed_and_nothing_else_is(runtime: Runtime) {
    let ca = ca("tls-garbage", runtime);
    let server = start(runtime, config(), &ca.server("node"));
    let mut alice = wss(server.addr, ca.ca_file())
        .expect("the TLS upgrade")
        .authenticate_dev("alice");
    alice.subscribe("chat");

    let mut plain = tcp(server.addr);
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("the request is sent");
    let (answer, _) = read_to_end(&mut plain);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1"),
        "a plain HTTP answer on a TLS port: {answer:?}"
    );

    server.publish("chat", "1");
    assert_eq!(alice.recv_type("message")["payload"], 1);
    wss(server.addr, ca.ca_file())
        .expect("a new TLS upgrade")
        .authenticate_dev("bob");
}

fn a_malformed_record_after_the_handshake_closes_that_connection_alone(runtime: Runtime) {
    let ca = ca("tls-bad-record", runtime);
    let server = start(runtime, config(), &ca.server("node"));
    let mut alice = wss(server.addr, ca.ca_file())
        .expect("the TLS upgrade")
        .authenticate_dev("alice");
    alice.subscribe("chat");
    let mut mallory = wss(server.addr, ca.ca_file())
        .expect("the TLS upgrade")
        .authenticate_dev("mallory");
    // An application-data record whose ciphertext is garbage: it fails to
    // decrypt.
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    record.extend([0xa5; 0x40]);
    (&mallory.stream().sock)
        .write_all(&record)
        .expect("the record is sent");
    match mallory.read() {
        Err(tungstenite::Error::Io(error))
            if matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            panic!("the node kept a connection with a bad record: {error}")
        }
        Err(_) => {}
        Ok(message) => panic!("expected the connection to end, got {message:?}"),
    }

    server.publish("chat", "1");
    assert_eq!(alice.recv_type("message")["payload"], 1);
}

fn a_certificate_of_another_authority_is_refused(runtime: Runtime) {
    let ca = ca("tls-other-ca", runtime);
    let other = TestCa::new("tls-other-ca-client");
    let server = start(runtime, config(), &ca.server("node"));
    let error = wss(server.addr, other.ca_file()).err().expect("a refusal");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}

fn an_expired_certificate_is_refused(runtime: Runtime) {
    let ca = ca("tls-expired", runtime);
    let server = start(runtime, config(), &ca.expired_server("node"));
    let error = wss(server.addr, ca.ca_file()).err().expect("a refusal");
    assert!(error.to_string().contains("expired"), "{error}");
}

/// The handshake timeout of the tests below: long enough for a loaded
/// machine to finish a real handshake in, far shorter than the trickle
/// and than [`READ_TIMEOUT`].
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(500);

/// The status and body of the HTTP answer that refused a `wss://`
/// upgrade; panics on any other outcome (a TLS failure, a timeout, an
/// upgrade).
fn refusal(upgrade: Result<Wss, tungstenite::Error>) -> (u16, String) {
    match upgrade {
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
        Err(other) => panic!("expected an HTTP refusal after the TLS handshake, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, got an upgrade"),
    }
}

fn a_connection_refused_at_capacity_gets_its_503_after_the_tls_handshake(runtime: Runtime) {
    let ca = ca("tls-capacity", runtime);
    let config = ServerConfig {
        max_connections: 1,
        ..config()
    };
    let server = start(runtime, config, &ca.server("node"));
    let mut alice = wss(server.addr, ca.ca_file())
        .expect("the TLS upgrade")
        .authenticate_dev("alice");
    assert_eq!(
        refusal(wss(server.addr, ca.ca_file())),
        (503, "too many connections".to_owned())
    );
    alice.send_json(json!({"type": "ping", "id": "still"}));
    assert_eq!(alice.recv_type("pong")["id"], "still");
}

fn a_silent_client_refused_at_capacity_is_cut_at_close_timeout(runtime: Runtime) {
    let ca = ca("tls-capacity-silent", runtime);
    let config = ServerConfig {
        max_connections: 1,
        close_timeout: HANDSHAKE_TIMEOUT,
        ..config()
    };
    let server = start(runtime, config, &ca.server("node"));
    let _alice = wss(server.addr, ca.ca_file())
        .expect("the TLS upgrade")
        .authenticate_dev("alice");
    // No hello: the refusal waits for a handshake that never comes, as
    // long as the refusal's linger and no longer.
    let mut silent = tcp(server.addr);
    let (received, _) = read_to_end(&mut silent);
    assert!(received.is_empty(), "{received:?}");
}

fn while_draining_a_tls_connection_gets_its_503_after_the_handshake(runtime: Runtime) {
    let ca = ca("tls-draining", runtime);
    let config = ServerConfig {
        close_timeout: Duration::from_secs(5),
        ..config()
    };
    let server = start(runtime, config, &ca.server("node"));
    let mut alice = wss(server.addr, ca.ca_file())
        .expect("the TLS upgrade")
        .authenticate_dev("alice");
    server.shutdown();
    match alice.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    // Alice has not answered the close yet, so the node is still draining.
    assert_eq!(
        refusal(wss(server.addr, ca.ca_file())),
        (503, "draining".to_owned())
    );
    alice.finish_close();
    server.join().expect("run returns Ok");
}

fn a_client_silent_after_connecting_is_cut_at_the_handshake_timeout(runtime: Runtime) {
    let ca = ca("tls-silent", runtime);
    let config = ServerConfig {
        handshake_timeout: HANDSHAKE_TIMEOUT,
        ..config()
    };
    let server = start(runtime, config, &ca.server("node"));
    let mut silent = tcp(server.addr);
    let (received, _) = read_to_end(&mut silent);
    assert!(received.is_empty(), "{received:?}");
}

fn a_trickled_client_hello_is_cut_at_the_handshake_timeout(runtime: Runtime) {
    let ca = ca("tls-trickle", runtime);
    let config = ServerConfig {
        handshake_timeout: HANDSHAKE_TIMEOUT,
        ..config()
    };
    let server = start(runtime, config, &ca.server("node"));
    let mut hello = Vec::new();
    Connector::with_ca_file(ca.ca_file())
        .expect("a usable CA file")
        .connect("localhost")
        .expect("a session")
        .take_ciphertext(&mut hello);
    let mut stream = tcp(server.addr);
    let mut trickle = stream.try_clone().expect("a second handle");
    let finished = Arc::new(AtomicBool::new(false));
    let trickler = {
        let finished = finished.clone();
        thread::spawn(move || {
            // One byte every 50 ms: the whole hello would take seconds.
            for byte in hello {
                if trickle.write_all(&[byte]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
            finished.store(true, Ordering::SeqCst);
        })
    };
    let (received, _) = read_to_end(&mut stream);
    assert!(
        !finished.load(Ordering::SeqCst),
        "the node waited for the whole trickled hello"
    );
    assert!(received.is_empty(), "{received:?}");
    let _ = stream.shutdown(std::net::Shutdown::Both);
    trickler.join().expect("the trickler ends");
}

fn a_sighup_swaps_the_certificate_and_keeps_connections(runtime: Runtime) {
    let ca = ca("tls-sighup", runtime);
    let first = ca.server("first");
    let dir = TestDir::new(&format!("tls-sighup-{}", runtime.name()));
    let live = ServerFiles {
        cert: dir.path().join("node.crt"),
        key: dir.path().join("node.key"),
    };
    fs::copy(&first.cert, &live.cert).expect("the certificate is copied");
    fs::copy(&first.key, &live.key).expect("the key is copied");
    let config_path = dir.path().join("tether.toml");
    let config = format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        live.cert.display().to_string(),
        live.key.display().to_string()
    );
    fs::write(&config_path, config).expect("the config is written");
    let process = runtime.binary_with_config(&config_path, true);
    let addr = process.listening_on();
    let mut old = wss(addr, ca.ca_file())
        .expect("the TLS upgrade")
        .authenticate_dev("alice");
    assert_eq!(served(&old), certificate(&first));
    old.subscribe("chat");

    let second = ca.server("second");
    fs::copy(&second.cert, &live.cert).expect("the certificate is replaced");
    fs::copy(&second.key, &live.key).expect("the key is replaced");
    process.signal("HUP");
    process.wait_for_line("tls_cert and tls_key re-read");

    let mut new = wss(addr, ca.ca_file())
        .expect("a TLS upgrade after the reload")
        .authenticate_dev("bob");
    assert_eq!(served(&new), certificate(&second));
    new.send_json(json!({"type": "publish", "channel": "chat", "payload": 1, "id": "p"}));
    new.recv_type("ack");
    assert_eq!(
        old.recv_type("message")["payload"],
        1,
        "the old connection stays up"
    );

    fs::write(&live.key, "not a key").expect("the key is spoiled");
    process.signal("HUP");
    let line = process.wait_for_line("keeping the TLS certificate in force");
    assert!(line.contains("tls") || line.contains("node.key"), "{line}");
    let after = wss(addr, ca.ca_file()).expect("a TLS upgrade after a failed reload");
    assert_eq!(served(&after), certificate(&second));
}

fn a_key_that_is_not_the_certificates_stops_the_start(runtime: Runtime) {
    let ca = ca("tls-mismatch", runtime);
    let (node, other) = (ca.server("node"), ca.server("other"));
    let dir = TestDir::new(&format!("tls-mismatch-{}", runtime.name()));
    let config_path = dir.path().join("tether.toml");
    let config = format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        node.cert.display().to_string(),
        other.key.display().to_string()
    );
    fs::write(&config_path, config).expect("the config is written");
    let mut process = Process::start(
        TETHER,
        &[
            "serve",
            "--dev",
            "--config",
            config_path.to_str().expect("a UTF-8 path"),
            "--runtime",
            runtime.name(),
        ],
    );
    let line = process.wait_for_line("tls_key");
    assert!(line.contains("not the key of the certificate"), "{line}");
    assert_eq!(process.wait().code(), Some(2));
}

/// The blocking client's next event that is not about a retry; panics
/// after [`READ_TIMEOUT`] without one.
fn next_settled(client: &tether_blocking::Client) -> Event {
    loop {
        match client.next_event(READ_TIMEOUT).expect("an event") {
            Event::Reconnecting { .. } => {}
            event => return event,
        }
    }
}

fn the_blocking_client_speaks_wss(runtime: Runtime) {
    let ca = ca("blocking-client", runtime);
    let server = start(runtime, config(), &ca.server("node"));
    let tls = Connector::with_ca_file(ca.ca_file()).expect("a usable CA file");
    let client = tether_blocking::Client::connect_tls(
        ClientConfig::new(server.addr.to_string(), "bob"),
        tls,
    )
    .expect("a client");
    client.subscribe("chat").expect("subscribe");
    assert!(matches!(next_settled(&client), Event::Connected { user, .. } if user == "bob"));
    assert!(matches!(next_settled(&client), Event::Subscribed { .. }));
    assert!(matches!(next_settled(&client), Event::Presence { .. }));
    assert_eq!(client.publish("chat", "1").expect("publish"), 1);
    match next_settled(&client) {
        Event::Message {
            payload, offset, ..
        } => assert_eq!((payload.get(), offset), ("1", 1)),
        other => panic!("expected the message, got {other:?}"),
    }
    client.close();
}

fn the_blocking_client_refuses_a_certificate_of_another_authority(runtime: Runtime) {
    let ca = ca("blocking-client-refuses", runtime);
    let other = TestCa::new("blocking-client-other");
    let server = start(runtime, config(), &ca.server("node"));
    let tls = Connector::with_ca_file(other.ca_file()).expect("a usable CA file");
    let client = tether_blocking::Client::connect_tls(
        ClientConfig::new(server.addr.to_string(), "bob"),
        tls,
    )
    .expect("a client");
    for _ in 0..2 {
        match next_settled(&client) {
            Event::Disconnected {
                reason,
                will_reconnect: true,
            } => assert_eq!(reason.code.0, 1006),
            other => panic!("expected a failed attempt, got {other:?}"),
        }
    }
    client.close();
}

fn tether_connect_speaks_wss_with_a_ca_file(runtime: Runtime) {
    let ca = ca("connect-cli", runtime);
    let other = TestCa::new("connect-cli-other");
    let server = start(runtime, config(), &ca.server("node"));
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    let ca_file = ca.ca_file().to_str().expect("a UTF-8 path");
    let mut listener = Process::start(
        TETHER,
        &[
            "connect",
            &url,
            "--ca",
            ca_file,
            "--token",
            "bob",
            "--subscribe",
            "chat",
        ],
    );
    listener.wait_for_line(r#""event":"subscribed""#);
    server.publish("chat", r#""over tls""#);
    listener.wait_for_line(r#""payload":"over tls""#);
    listener.signal("INT");
    assert_eq!(listener.wait().code(), Some(0));

    let other_file = other.ca_file().to_str().expect("a UTF-8 path");
    let mut refused = Process::start(
        TETHER,
        &["connect", &url, "--ca", other_file, "--token", "bob"],
    );
    let line = refused.wait_for_line("TLS with localhost");
    assert!(line.contains("UnknownIssuer"), "{line}");
    refused.signal("INT");
    assert_eq!(refused.wait().code(), Some(0));
}

runtime_tests! {
    a_malformed_record_after_the_handshake_closes_that_connection_alone => smol, blocking, tokio;
    a_connection_refused_at_capacity_gets_its_503_after_the_tls_handshake => smol, blocking, tokio;
    while_draining_a_tls_connection_gets_its_503_after_the_handshake => smol, blocking, tokio;
    a_silent_client_refused_at_capacity_is_cut_at_close_timeout => smol, blocking, tokio;
    tether_connect_speaks_wss_with_a_ca_file => smol;
    the_blocking_client_speaks_wss => smol, blocking, tokio;
    the_blocking_client_refuses_a_certificate_of_another_authority => smol;
    wss_carries_auth_subscriptions_and_publications => smol, blocking, tokio;
    https_answers_healthz => smol, blocking, tokio;
    plaintext_on_a_tls_port_is_closed_and_nothing_else_is => smol, blocking, tokio;
    a_certificate_of_another_authority_is_refused => smol, blocking, tokio;
    an_expired_certificate_is_refused => smol, blocking, tokio;
    a_client_silent_after_connecting_is_cut_at_the_handshake_timeout => smol, blocking, tokio;
    a_trickled_client_hello_is_cut_at_the_handshake_timeout => smol, blocking, tokio;
    a_sighup_swaps_the_certificate_and_keeps_connections => smol, blocking, tokio;
    a_key_that_is_not_the_certificates_stops_the_start => smol;
}
