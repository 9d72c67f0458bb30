//! One connection's bytes: the upgrade handshake first, then RFC 6455 frames,
//! and the masked frames the client writes.
//!
//! A [`Link`] lives exactly as long as one socket. It knows nothing of
//! Tether's messages or of the session's state: it turns bytes into
//! [`Incoming`] items and errors, and the session decides what they mean.

use std::mem;

use bytes::Bytes;

use super::config::ClientConfig;
use crate::close::CloseCode;
use crate::frame::{
    DecodeError, FrameDecoder, Message, Role, masked_close_frame, masked_pong_frame,
    masked_text_frame,
};
use crate::http::{HandshakeError, ResponseParser, client_key, upgrade_request};

/// Largest handshake response head accepted, in bytes.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

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
        let request = upgrade_request(
            &config.host,
            &config.path,
            &key,
            config.origin.as_deref(),
            config.compression,
        );
        let parser = ResponseParser::new(&key, MAX_RESPONSE_HEAD, config.compression);
        let link = Link {
            stage: Stage::Upgrading(parser),
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
                let Some(handshake) = parser.poll().map_err(LinkError::Rejected)? else {
                    return Ok(None);
                };
                // Under permessage-deflate, the window is kept between
                // messages unless the server compresses each on its own.
                let decoder = match handshake.deflate {
                    Some(deflate) => FrameDecoder::with_deflate(
                        Role::Client,
                        self.max_payload,
                        deflate.server_keeps_context,
                    ),
                    None => FrameDecoder::new(Role::Client, self.max_payload),
                };
                let upgrading = mem::replace(&mut self.stage, Stage::Framing(decoder));
                // Frames the server sent right behind its 101.
                if let (Stage::Upgrading(parser), Stage::Framing(decoder)) =
                    (upgrading, &mut self.stage)
                {
                    decoder.feed(&parser.into_remaining());
                }
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

/// A `Sec-WebSocket-Key` from 16 random bytes (RFC 6455 section 4.1).
fn handshake_key(rng: &mut fastrand::Rng) -> String {
    let mut nonce = [0u8; 16];
    rng.fill(&mut nonce);
    client_key(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

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
