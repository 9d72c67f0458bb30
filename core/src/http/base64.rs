//! The base64 (RFC 4648, standard alphabet, padded) the handshake needs:
//! encoding a client's 16-byte nonce and recognising one.

use data_encoding::BASE64;

/// `bytes` in padded standard base64.
pub(super) fn encode(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Whether `key` is the canonical base64 encoding of exactly 16 bytes, as
/// RFC 6455 section 4.1 requires of `Sec-WebSocket-Key`.
pub(super) fn is_16_byte_value(key: &str) -> bool {
    key.len() == 24
        && BASE64
            .decode(key.as_bytes())
            .is_ok_and(|decoded| decoded.len() == 16)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn recognises_16_byte_keys_only() {
        assert!(is_16_byte_value("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(is_16_byte_value(&encode(&[0xff; 16])));
        assert!(
            !is_16_byte_value("dGhlIHNhbXBsZSBub25jZR=="),
            "non-canonical"
        );
        assert!(!is_16_byte_value("dGhlIHNhbXBsZSBub25j"), "short");
        assert!(!is_16_byte_value(&encode(&[0; 17])));
        assert!(!is_16_byte_value("dGhlIHNhbXBsZSBub25j*Q=="));
        assert!(!is_16_byte_value("dGhlIHNhbXBsZSBub25jZQ=A"));
    }
}
