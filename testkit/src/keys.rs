//! Key pairs for the tests of asymmetric JWTs (RS256, ES256, EdDSA), made
//! when a test asks by the `openssl` command-line tool, so that no private
//! key, however test-only, lives in the repository.

use std::io::Write;
use std::process::{Command, Stdio};

/// The kinds of key the JWT algorithms take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA of 2048 bits, for RS256 (and PS256).
    Rsa,
    /// ECDSA on P-256, for ES256.
    P256,
    /// Ed25519, for EdDSA.
    Ed25519,
}

impl KeyKind {
    /// The arguments of `openssl genpkey` for this kind.
    fn genpkey_args(self) -> &'static [&'static str] {
        match self {
            KeyKind::Rsa => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            KeyKind::P256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyKind::Ed25519 => &["-algorithm", "ED25519"],
        }
    }
}

/// A fresh key pair, both halves in PEM: the private key in PKCS#8, the
/// public key in SubjectPublicKeyInfo.
#[derive(Clone, Debug)]
pub struct KeyPair {
    /// `-----BEGIN PRIVATE KEY-----` ...
    pub private_pem: String,
    /// `-----BEGIN PUBLIC KEY-----` ...
    pub public_pem: String,
}

impl KeyPair {
    /// A new key pair of `kind`; panics, saying how to install it, when
    /// `openssl` is missing.
    pub fn generate(kind: KeyKind) -> KeyPair {
        let mut args = vec!["genpkey"];
        args.extend_from_slice(kind.genpkey_args());
        let private_pem = openssl(&args, b"");
        let public_pem = openssl(&["pkey", "-pubout"], private_pem.as_bytes());
        KeyPair {
            private_pem,
            public_pem,
        }
    }
}

/// What `openssl args` prints with `input` on its standard input.
fn openssl(args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("the tests make their keys with openssl ({error}): apt-get install openssl")
        });
    child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(input)
        .expect("openssl reads its input");
    let output = child.wait_with_output().expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("PEM is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_gives_a_new_pair_in_pem() {
        for kind in [KeyKind::Rsa, KeyKind::P256, KeyKind::Ed25519] {
            let pair = KeyPair::generate(kind);
            assert!(
                pair.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
                "{kind:?}"
            );
            assert!(
                pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"),
                "{kind:?}"
            );
        }
        let (a, b) = (
            KeyPair::generate(KeyKind::Ed25519),
            KeyPair::generate(KeyKind::Ed25519),
        );
        assert_ne!(a.private_pem, b.private_pem);
    }
}
