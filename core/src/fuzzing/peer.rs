//! The client's view of one server connection, for the server targets: the
//! frames a client writes, and a strict reader of what the server sends.

use bytes::Bytes;

use crate::close::CloseCode;
use crate::envelope::{ClientMessage, ServerMessage, encode_client_message, parse_server_message};
use crate::frame::{FrameDecoder, Message, Role, masked_text_frame};
use crate::http::ResponseParser;
use crate::server::{Output, Server};
use crate::time::Instant;

/// The handshake key every fuzzed client sends.
/// The drain every harness runs after an input, as the crate docs ask of an
/// adapter: each output but the last goes to `on`, with the server to feed
/// answers back; the deadline of the closing [`Output::Timeout`] is
/// returned.
pub(crate) fn drain(
    server: &mut Server,
    mut on: impl FnMut(&mut Server, Output),
) -> Option<Instant> {
    loop {
        match server.poll_output() {
            Output::Timeout(deadline) => return deadline,
            output => on(server, output),
        }
    }
}

pub(crate) const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The mask of every fuzzed client frame.
pub(crate) const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A valid upgrade request for `/ws` offering `tether.v1`, and
/// permessage-deflate when `deflate` is set.
pub(crate) fn upgrade_request(deflate: bool) -> Vec<u8> {
    crate::http::upgrade_request("tether.test", "/ws", KEY, None, deflate)
}

/// `message` as a masked text frame.
pub(crate) fn text(message: &ClientMessage) -> Bytes {
    masked_text_frame(encode_client_message(message).as_bytes(), MASK)
}

/// One thing the server sent after its `101`.
#[derive(Debug)]
pub(crate) enum Received {
    /// A Tether message.
    Message(ServerMessage),
    /// A WebSocket Ping.
    Ping,
    /// A WebSocket Pong, with its application data.
    Pong(Bytes),
    /// A Close frame with its code.
    Close(CloseCode),
}

/// Reads what a server writes to one connection, one transmitted chunk at a
/// time, and panics on anything a server must not send: a bad `101`, a
/// chunk that is not exactly one frame, a masked, binary or non-final frame,
/// text that is not a server message, a close frame without a sendable
/// code, or anything at all after a close frame.
#[derive(Debug)]
pub(crate) struct ServerReader {
    handshake: Option<ResponseParser>,
    decoder: FrameDecoder,
    /// The client offered permessage-deflate, which the server must accept.
    deflate: bool,
    closed: bool,
}

impl ServerReader {
    /// A reader expecting the `101` first, to a request that offered
    /// permessage-deflate when `deflate` is set.
    pub(crate) fn new(deflate: bool) -> Self {
        const MAX: usize = 16 * 1024 * 1024;
        ServerReader {
            handshake: Some(ResponseParser::new(KEY, 16 * 1024, deflate)),
            decoder: if deflate {
                FrameDecoder::with_deflate(Role::Client, MAX, false)
            } else {
                FrameDecoder::new(Role::Client, MAX)
            },
            deflate,
            closed: false,
        }
    }

    /// Whether the server's close frame has been read.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Reads one chunk of [`poll_transmit`](crate::server::Server::poll_transmit)
    /// output: the `101` (which yields nothing) or exactly one frame.
    pub(crate) fn read(&mut self, chunk: &[u8]) -> Option<Received> {
        assert!(!self.closed, "the server wrote after its close frame");
        if let Some(mut parser) = self.handshake.take() {
            parser.feed(chunk);
            let handshake = parser.poll().expect("a valid 101");
            let handshake = handshake.expect("the 101 came in pieces");
            assert_eq!(
                handshake.deflate.is_some(),
                self.deflate,
                "permessage-deflate offered and agreed differ"
            );
            if let Some(deflate) = handshake.deflate {
                assert!(!deflate.server_keeps_context, "the server keeps a window");
            }
            assert!(
                parser.into_remaining().is_empty(),
                "frames glued to the 101"
            );
            return None;
        }
        self.decoder.feed(chunk);
        let message = self
            .decoder
            .poll_message()
            .expect("the server sends valid frames")
            .expect("every transmitted chunk is one whole frame");
        let received = match message {
            Message::Text(text) => {
                let text = std::str::from_utf8(&text).expect("checked by the decoder");
                let message = parse_server_message(text)
                    .unwrap_or_else(|error| panic!("the server sent {text:?}: {error}"));
                Received::Message(message)
            }
            Message::Binary(_) => panic!("the server sent a binary message"),
            Message::Ping(data) => {
                assert!(data.is_empty(), "server pings carry no data");
                Received::Ping
            }
            Message::Pong(data) => Received::Pong(data),
            Message::Close(close) => {
                self.closed = true;
                let (code, _) = close.expect("the server's close frames carry a code");
                assert!(code.is_sendable(), "the server sent close code {code}");
                Received::Close(code)
            }
        };
        if !self.closed {
            assert!(
                matches!(self.decoder.poll_message(), Ok(None)),
                "a chunk held more than one frame"
            );
        }
        Some(received)
    }
}

/// The `type` of a server message, as it goes on the wire.
pub(crate) fn kind(message: &ServerMessage) -> String {
    let json = crate::envelope::encode_server_message(message);
    let value: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
    value["type"].as_str().unwrap_or_default().to_owned()
}
