//! An echo endpoint on the core's own handshake and framing path, for the
//! Autobahn TestSuite's `fuzzingclient` mode (RFC 6455 conformance).
//!
//! ```sh
//! cargo run --release -p tether-blocking --example autobahn_echo -- 9002
//! ```
//!
//! Listens on `127.0.0.1:PORT` (9002 by default), answers a WebSocket
//! handshake on `/ws` with the core's `RequestParser` and `accept_response`,
//! then hands every byte to a server-role `FrameDecoder`: text and binary
//! messages come back with the same opcode, Pings are answered with Pongs, a
//! Close is echoed with its code, and a decoding error closes with the code
//! the core gives it. When the client offers permessage-deflate (the
//! suite's 12.x and 13.x cases), the core's answer goes in the `101`, the
//! decoder inflates, and every echo goes back compressed by the core's
//! codec. Nothing here belongs to Tether's own server, which never echoes.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use tether_core::wire::Deflater;
use tether_core::wire::FrameDecoder;
use tether_core::wire::Message;
use tether_core::wire::Opcode;
use tether_core::wire::Request;
use tether_core::wire::RequestLimits;
use tether_core::wire::RequestParser;
use tether_core::wire::Role;
use tether_core::wire::accept_response;
use tether_core::wire::close_frame;
use tether_core::wire::compressed_frame;
use tether_core::wire::encode_frame;
use tether_core::wire::pong_frame;
use tether_core::wire::response;

/// Largest message echoed: Autobahn's 9.x cases go up to 16 MiB.
const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// Longest a connection may stay silent before it is dropped, so that no
/// thread outlives a stuck peer for long.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the closing side waits for the peer to close its end after the
/// Close frames were exchanged.
const LINGER: Duration = Duration::from_secs(2);

/// Bytes read from the socket at a time.
const READ_SIZE: usize = 64 * 1024;

fn main() -> io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "PORT must be a number"))?,
        None => 9002,
    };
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    eprintln!("echoing on ws://127.0.0.1:{port}/ws");
    for stream in listener.incoming() {
        let stream = stream?;
        thread::spawn(move || {
            if let Err(error) = serve(stream) {
                eprintln!("connection ended: {error}");
            }
        });
    }
    Ok(())
}

/// Runs one connection: the handshake, then the echo until a Close or an
/// error.
fn serve(mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut buf = vec![0; READ_SIZE];
    let mut parser = RequestParser::new(RequestLimits {
        max_head: 8 * 1024,
        max_body: 0,
    });
    let upgrade = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        parser.feed(&buf[..n]);
        match parser.poll(&[], &[]) {
            Ok(None) => {}
            Ok(Some(Request::Upgrade(upgrade))) => break upgrade,
            Ok(Some(Request::Route(_))) => {
                return stream.write_all(&response(404, "text/plain", b"not found"));
            }
            Err(error) => return stream.write_all(&error.response()),
        }
    };
    stream.write_all(&accept_response(&upgrade.key, None, upgrade.deflate))?;
    // The answer asks the client for no context takeover, and the echo
    // compresses each message on its own.
    let (mut decoder, mut deflater) = match upgrade.deflate {
        Some(_) => (
            FrameDecoder::with_deflate(Role::Server, MAX_PAYLOAD, false),
            Some(Deflater::new()),
        ),
        None => (FrameDecoder::new(Role::Server, MAX_PAYLOAD), None),
    };
    decoder.feed(&parser.into_remaining());
    loop {
        while let Some(reply) = next_reply(&mut decoder, deflater.as_mut()) {
            match reply {
                Reply::Frame(frame) => stream.write_all(&frame)?,
                Reply::Close(frame) => {
                    stream.write_all(&frame)?;
                    return linger(stream, &mut buf);
                }
            }
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        decoder.feed(&buf[..n]);
    }
}

/// What the echo sends for one decoded message.
enum Reply {
    /// A frame to send before reading on.
    Frame(bytes::Bytes),
    /// The Close frame that ends the connection.
    Close(bytes::Bytes),
}

/// The answer to the next complete message, skipping Pongs; `None` when the
/// decoder needs more bytes. Data messages go back compressed when
/// `deflater` is given.
fn next_reply(decoder: &mut FrameDecoder, deflater: Option<&mut Deflater>) -> Option<Reply> {
    let echo = |opcode: Opcode, payload: &[u8], deflater: Option<&mut Deflater>| match deflater {
        Some(deflater) => compressed_frame(opcode, &deflater.deflate(payload), None),
        None => encode_frame(opcode, payload, None),
    };
    loop {
        let reply = match decoder.poll_message() {
            Ok(None) => return None,
            Ok(Some(Message::Text(payload))) => {
                Reply::Frame(echo(Opcode::Text, &payload, deflater))
            }
            Ok(Some(Message::Binary(payload))) => {
                Reply::Frame(echo(Opcode::Binary, &payload, deflater))
            }
            Ok(Some(Message::Ping(payload))) => Reply::Frame(pong_frame(&payload)),
            Ok(Some(Message::Pong(_))) => continue,
            Ok(Some(Message::Close(Some((code, reason))))) => {
                Reply::Close(close_frame(code, &reason))
            }
            Ok(Some(Message::Close(None))) => Reply::Close(encode_frame(Opcode::Close, &[], None)),
            Err(error) => Reply::Close(close_frame(error.close_code(), &error.to_string())),
        };
        return Some(reply);
    }
}

/// Closes the sending half, then waits a little for the peer to close its
/// own, so that the connection ends cleanly rather than with a reset.
fn linger(mut stream: TcpStream, buf: &mut [u8]) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)?;
    stream.set_read_timeout(Some(LINGER))?;
    while stream.read(buf)? > 0 {}
    Ok(())
}
