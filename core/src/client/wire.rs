//! One connection's bytes: the upgrade handshake first, then RFC 6455 frames,
//! and the masked frames the client writes.
//!
//! A [`Link`] lives exactly as long as one socket. It knows nothing of
//! Tether's messages or of the session's state: it turns bytes into
//! [`Incoming`] items and errors, and the session decides what they mean.

use bytes::Bytes;

use super::shim::{HandshakeError, ResponseParser, upgrade_request};
use crate::close::CloseCode;
use crate::frame::{
    DecodeError, FrameDecoder, Message, Role, masked_close_frame, masked_pong_frame,
    masked_text_frame,
};

use super::config::ClientConfig;

/// What one connection has received so far, decoded.
#[derive(Debug)]
pub(crate) struct Link {
    stage: Stage,
    max_payload: usize,
}

/// Whether the server's `101` has arrived yet.
#[derive(Debug)]
enum Stage {
    Upgrading(ResponseParser),
    Framing(FrameDecoder),
}

/// One item decoded from the server's bytes.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// The server accepted the upgrade; frames follow.
    Upgraded,
    /// A complete WebSocket message or control frame.
    Message(Message),
}

/// Why the bytes of a connection cannot be used.
#[derive(Debug)]
pub(crate) enum LinkError {
    /// The server refused or botched the upgrade.
    Rejected(HandshakeError),
    /// The server broke RFC 6455 after the upgrade.
    Frame(DecodeError),
}

impl Link {
    /// A link for a freshly opened socket, and the upgrade request to write
    /// on it. The handshake key is drawn from `rng`.
    pub(crate) fn open(config: &ClientConfig, rng: &mut fastrand::Rng) -> (Link, Vec<u8>) {
        let key = handshake_key(rng);
        let request = upgrade_request(&config.host, &config.path, &key, config.origin.as_deref());
        let link = Link {
            stage: Stage::Upgrading(ResponseParser::new(&key)),
            max_payload: config.max_payload,
        };
        (link, request)
    }

    /// Hands received bytes to the link; [`Link::poll`] decodes them.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        match &mut self.stage {
            Stage::Upgrading(parser) => parser.feed(bytes),
            Stage::Framing(decoder) => decoder.feed(bytes),
        }
    }

    /// The next complete item, `Ok(None)` when more bytes are needed.
    pub(crate) fn poll(&mut self) -> Result<Option<Incoming>, LinkError> {
        match &mut self.stage {
            Stage::Upgrading(parser) => {
                let Some(upgraded) = parser.poll().map_err(LinkError::Rejected)? else {
                    return Ok(None);
                };
                let mut decoder = FrameDecoder::new(Role::Client, self.max_payload);
                decoder.feed(&upgraded.leftover);
                self.stage = Stage::Framing(decoder);
                Ok(Some(Incoming::Upgraded))
            }
            Stage::Framing(decoder) => decoder
                .poll_message()
                .map(|message| message.map(Incoming::Message))
                .map_err(LinkError::Frame),
        }
    }
}

/// A masked text frame carrying `text`.
pub(crate) fn text(rng: &mut fastrand::Rng, text: &str) -> Bytes {
    masked_text_frame(text.as_bytes(), mask(rng))
}

/// A masked Pong echoing a Ping's application data.
pub(crate) fn pong(rng: &mut fastrand::Rng, data: &[u8]) -> Bytes {
    masked_pong_frame(data, mask(rng))
}

/// A masked close frame.
pub(crate) fn close(rng: &mut fastrand::Rng, code: CloseCode, reason: &str) -> Bytes {
    masked_close_frame(code, reason, mask(rng))
}

/// A fresh masking key (RFC 6455 section 5.3: unpredictable per frame; here
/// from the seeded generator, so sessions are reproducible).
fn mask(rng: &mut fastrand::Rng) -> [u8; 4] {
    rng.u32(..).to_be_bytes()
}

/// A `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 section 4.1).
fn handshake_key(rng: &mut fastrand::Rng) -> String {
    let mut nonce = [0u8; 16];
    rng.fill(&mut nonce);
    base64(&nonce)
}

/// Standard padded base64 (RFC 4648 section 4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let word = chunk.iter().enumerate().fold(0u32, |word, (i, byte)| {
            word | u32::from(*byte) << (16 - 8 * i)
        });
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(word >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
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
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn handshake_keys_are_24_characters_and_follow_the_seed() {
        let a = handshake_key(&mut fastrand::Rng::with_seed(5));
        let b = handshake_key(&mut fastrand::Rng::with_seed(5));
        let c = handshake_key(&mut fastrand::Rng::with_seed(6));
        assert_eq!(a.len(), 24);
        assert!(a.ends_with("=="));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
