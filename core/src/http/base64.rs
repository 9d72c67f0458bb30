//! The little base64 (RFC 4648, standard alphabet, padded) the handshake
//! needs: encoding a client's 16-byte nonce and recognising one.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` in padded standard base64.
pub(super) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 0x3f]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Whether `key` is the canonical base64 encoding of exactly 16 bytes, as
/// RFC 6455 section 4.1 requires of `Sec-WebSocket-Key`: 22 alphabet
/// characters, the last of which carries only 2 data bits, then `==`.
pub(super) fn is_16_byte_value(key: &str) -> bool {
    let bytes = key.as_bytes();
    if bytes.len() != 24 || !bytes.ends_with(b"==") {
        return false;
    }
    let value = |c: &u8| ALPHABET.iter().position(|a| a == c);
    bytes[..21].iter().all(|c| value(c).is_some())
        && value(&bytes[21]).is_some_and(|v| v & 0x0f == 0)
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
