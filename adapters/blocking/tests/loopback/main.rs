//! The blocking adapter on real sockets: a server on 127.0.0.1 driven by
//! the adapter's own client and by an independent WebSocket client
//! (tungstenite), plus raw HTTP. Every wait is bounded.

mod common;
mod server;
