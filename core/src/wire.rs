//! The wire toolkit: RFC 6455 framing and the HTTP upgrade handshake, for
//! tools that speak WebSocket without a session (the load generator, the
//! Autobahn programs). A server or client adapter never needs it: the
//! [`Server`](crate::Server) and [`ClientSession`](crate::ClientSession)
//! frame and parse everything themselves.

pub use crate::deflate::{Between, Deflater, InflateError, Inflater};
pub use crate::frame::{
    DecodeError, FrameDecoder, Message, Opcode, Role, Violation, close_frame, compressed_frame,
    encode_frame, masked_close_frame, masked_pong_frame, masked_text_frame, pong_frame, text_frame,
};
pub use crate::http::{
    Deflate, Handshake, HandshakeError, HttpError, PROTOCOL, Request, RequestLimits, RequestParser,
    ResponseParser, accept_response, client_key, response, upgrade_request,
};
