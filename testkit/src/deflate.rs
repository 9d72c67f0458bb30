//! A WebSocket client that offers permessage-deflate (RFC 7692), made of
//! the core's own client handshake and frame decoder, so that a test sees
//! what arrived compressed: for the compression tests of every runtime and
//! of the axum mount.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;
use tether_core::wire::{
    Deflate, FrameDecoder, Message, ResponseParser, Role, client_key, masked_text_frame,
    upgrade_request,
};

use crate::ws::{server_frame_len, tcp};

/// A raw connection made with the core's client handshake and decoder,
/// offering permessage-deflate, that feeds the decoder one frame at a
/// time so that it knows which message began with RSV1 set.
pub struct DeflateClient {
    stream: TcpStream,
    decoder: FrameDecoder,
    /// Bytes read and not yet fed to the decoder: less than a frame.
    unread: Vec<u8>,
    /// Whether the data message being received began with RSV1 set.
    compressed: bool,
    mask: u8,
}

impl DeflateClient {
    /// Upgrades `/ws` at `addr` offering permessage-deflate and checks
    /// that the server agreed to it, without context takeover.
    pub fn open(addr: SocketAddr) -> DeflateClient {
        let mut stream = tcp(addr);
        let key = client_key([7; 16]);
        let request = upgrade_request(&addr.to_string(), "/ws", &key, None, true);
        stream.write_all(&request).unwrap();
        let mut parser = ResponseParser::new(&key, 16 * 1024, true);
        let handshake = loop {
            let mut buf = [0; 4096];
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the node closed during the handshake");
            parser.feed(&buf[..n]);
            if let Some(handshake) = parser.poll().expect("a 101") {
                break handshake;
            }
        };
        assert_eq!(
            handshake.deflate,
            Some(Deflate {
                server_keeps_context: false,
                client_may_compress: true,
            })
        );
        DeflateClient {
            stream,
            decoder: FrameDecoder::with_deflate(Role::Client, 1 << 20, false),
            unread: parser.into_remaining(),
            compressed: false,
            mask: 0,
        }
    }

    /// Sends `message` as one masked text frame, uncompressed.
    pub fn send(&mut self, message: &Value) {
        self.mask = self.mask.wrapping_add(1);
        let frame = masked_text_frame(message.to_string().as_bytes(), [self.mask; 4]);
        self.stream.write_all(&frame).unwrap();
    }

    /// The next text message, inflated when it came compressed, and
    /// whether it did (RSV1 on its first frame).
    pub fn recv(&mut self) -> (Value, bool) {
        loop {
            if let Some(message) = self.decoder.poll_message().expect("valid frames") {
                if let Message::Text(text) = message {
                    return (serde_json::from_slice(&text).unwrap(), self.compressed);
                }
                continue;
            }
            match server_frame_len(&self.unread) {
                Some(length) => {
                    let frame: Vec<u8> = self.unread.drain(..length).collect();
                    // A text or binary frame starts a message.
                    if matches!(frame[0] & 0x0f, 1 | 2) {
                        self.compressed = frame[0] & 0x40 != 0;
                    }
                    self.decoder.feed(&frame);
                }
                None => {
                    let mut buf = [0; 4096];
                    let n = self.stream.read(&mut buf).unwrap();
                    assert!(n > 0, "the node closed the connection");
                    self.unread.extend_from_slice(&buf[..n]);
                }
            }
        }
    }

    /// The next message of type `kind`, skipping others.
    pub fn recv_type(&mut self, kind: &str) -> (Value, bool) {
        loop {
            let (message, compressed) = self.recv();
            if message["type"] == kind {
                return (message, compressed);
            }
        }
    }
}
