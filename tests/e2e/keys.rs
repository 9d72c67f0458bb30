//! PROTOCOL.md section 3's keys: the `tether` binary with an EdDSA JSON Web
//! Key Set, re-read on SIGHUP while connections stay open.

use std::fs;
use std::net::SocketAddr;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tether_testkit::keys::{KeyKind, KeyPair};
use tether_testkit::ws::Ws;

use crate::harness::{Runtime, TestDir, unix_now};

/// The Ed25519 key pairs of the test, by kid, made for it.
struct Keys(Vec<(&'static str, KeyPair)>);

impl Keys {
    fn generate(kids: &[&'static str]) -> Keys {
        Keys(
            kids.iter()
                .map(|kid| (*kid, KeyPair::generate(KeyKind::Ed25519)))
                .collect(),
        )
    }

    fn private_key(&self, kid: &str) -> EncodingKey {
        let (_, pair) = self.0.iter().find(|(name, _)| *name == kid).expect("a kid");
        EncodingKey::from_ed_pem(pair.private_pem.as_bytes()).expect("an Ed25519 key")
    }

    /// An EdDSA token for `sub` signed with the key `kid`, with the issuer
    /// and audience of the test's config, valid for a minute.
    fn token(&self, kid: &str, sub: &str) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let claims = json!({
            "sub": sub,
            "exp": unix_now() + 60,
            "iss": "https://auth.example",
            "aud": "tether",
        });
        jsonwebtoken::encode(&header, &claims, &self.private_key(kid)).expect("a token")
    }

    /// The key set holding the public half of the key `kid`.
    fn jwks(&self, kid: &str) -> String {
        let mut jwk =
            Jwk::from_encoding_key(&self.private_key(kid), Algorithm::EdDSA).expect("a JWK");
        jwk.common.key_id = Some(kid.to_owned());
        json!({ "keys": [jwk] }).to_string()
    }
}

fn refused(addr: SocketAddr, token: &str) -> (u16, String) {
    let mut ws = Ws::open(addr);
    ws.send_json(json!({"type": "auth", "token": token}));
    ws.expect_close()
}

fn sighup_rereads_the_key_set_and_keeps_connections(runtime: Runtime) {
    let keys = Keys::generate(&["a", "b"]);
    let dir = TestDir::new(&format!("keys-{}", runtime.name()));
    let jwks_path = dir.path().join("jwks.json");
    fs::write(&jwks_path, keys.jwks("a")).expect("the key set is written");
    let config_path = dir.path().join("tether.toml");
    let config = format!(
        "jwt_algorithm = \"EdDSA\"\njwt_jwks_file = {:?}\njwt_issuer = \"https://auth.example\"\njwt_audience = \"tether\"\n",
        jwks_path.display().to_string()
    );
    fs::write(&config_path, config).expect("the config is written");
    let process = runtime.binary_with_config(&config_path, false);
    let addr = process.listening_on();

    let (mut old, ack) = Ws::auth_with(addr, &keys.token("a", "alice"));
    assert_eq!(ack["user"], "alice");
    assert_eq!(
        refused(addr, &keys.token("b", "bob")),
        (4003, "forbidden".into())
    );

    fs::write(&jwks_path, keys.jwks("b")).expect("the key set is rewritten");
    process.signal("HUP");
    let line = process.wait_for_line("SIGHUP");
    assert!(line.contains("re-read"), "{line}");

    let (_new, ack) = Ws::auth_with(addr, &keys.token("b", "bob"));
    assert_eq!(ack["user"], "bob");
    assert_eq!(
        refused(addr, &keys.token("a", "carol")),
        (4003, "forbidden".into())
    );
    old.send_json(json!({"type": "ping", "id": "still-open"}));
    assert_eq!(old.recv_type("pong")["id"], "still-open");

    fs::write(&jwks_path, "not a key set").expect("the key set is spoiled");
    process.signal("HUP");
    let line = process.wait_for_line("SIGHUP");
    assert!(line.contains("keeping the keys in force"), "{line}");
    let (_after, ack) = Ws::auth_with(addr, &keys.token("b", "dave"));
    assert_eq!(ack["user"], "dave");
}

runtime_tests! {
    sighup_rereads_the_key_set_and_keeps_connections => smol, blocking, tokio;
}
