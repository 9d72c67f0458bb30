//! The core's client-side handshake and framing against the Autobahn
//! TestSuite's `fuzzingserver` mode (RFC 6455 conformance).
//!
//! ```sh
//! cargo run --release -p tether-blocking --example autobahn_client -- 9001
//! ```
//!
//! Asks the suite on `127.0.0.1:PORT` (9001 by default) how many cases it
//! has, runs each one as agent `tether` by echoing what the suite sends, then
//! asks it to write its reports. The handshake goes through the core's
//! `upgrade_request` and `ResponseParser`, the frames through a client-role
//! `FrameDecoder` and the masked encoders, with masks drawn from a seeded
//! generator. Every connection offers permessage-deflate (the suite's 12.x
//! and 13.x cases accept it): the decoder then inflates, keeping the window
//! when the suite keeps its context, and echoes go back compressed by the
//! core's codec unless the suite limited the client's window.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use tether_core::wire::Deflater;
use tether_core::wire::FrameDecoder;
use tether_core::wire::Message;
use tether_core::wire::Opcode;
use tether_core::wire::ResponseParser;
use tether_core::wire::Role;
use tether_core::wire::client_key;
use tether_core::wire::compressed_frame;
use tether_core::wire::encode_frame;
use tether_core::wire::masked_close_frame;
use tether_core::wire::masked_pong_frame;
use tether_core::wire::upgrade_request;

/// The agent name the reports are filed under.
const AGENT: &str = "tether";

/// Largest message accepted: Autobahn's 9.x cases go up to 16 MiB.
const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// Longest the suite may stay silent before a case is given up.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes read from the socket at a time.
const READ_SIZE: usize = 64 * 1024;

/// Seed of the generator of keys and masks, so that runs repeat.
const SEED: u64 = 6455;

fn main() -> io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "PORT must be a number"))?,
        None => 9001,
    };
    let mut client = Client {
        host: format!("127.0.0.1:{port}"),
        rng: fastrand::Rng::with_seed(SEED),
    };
    let received = client.run("/getCaseCount", Echo::No)?;
    let count: usize = received
        .first()
        .and_then(|text| std::str::from_utf8(text).ok())
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no case count"))?;
    eprintln!("running {count} cases");
    for case in 1..=count {
        client.run(&format!("/runCase?case={case}&agent={AGENT}"), Echo::Yes)?;
    }
    client.run(&format!("/updateReports?agent={AGENT}"), Echo::No)?;
    eprintln!("reports updated");
    Ok(())
}

/// Whether a connection sends back the data messages it receives: a test
/// case does, while the suite's control connections (case count, reports)
/// would take an echo for a command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Echo {
    Yes,
    No,
}

/// Opens connections to the suite with keys and masks from one generator.
struct Client {
    host: String,
    rng: fastrand::Rng,
}

impl Client {
    /// Opens a WebSocket on `path` and answers it until the connection ends,
    /// echoing data messages when `echo` says so; returns the text messages
    /// it did not echo.
    fn run(&mut self, path: &str, echo: Echo) -> io::Result<Vec<Bytes>> {
        let mut stream = TcpStream::connect(&self.host)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let key = client_key(self.rng.u128(..).to_le_bytes());
        stream.write_all(&upgrade_request(&self.host, path, &key, None, true))?;
        let mut buf = vec![0; READ_SIZE];
        let mut parser = ResponseParser::new(&key, 8 * 1024, true);
        let handshake = loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            parser.feed(&buf[..n]);
            match parser.poll() {
                Ok(None) => {}
                Ok(Some(handshake)) => break handshake,
                Err(error) => {
                    return Err(io::Error::other(format!("handshake refused: {error:?}")));
                }
            }
        };
        let (mut decoder, mut deflater) = match handshake.deflate {
            Some(deflate) => (
                FrameDecoder::with_deflate(Role::Client, MAX_PAYLOAD, deflate.server_keeps_context),
                deflate.client_may_compress.then(Deflater::new),
            ),
            None => (FrameDecoder::new(Role::Client, MAX_PAYLOAD), None),
        };
        decoder.feed(&parser.into_remaining());
        let mut texts = Vec::new();
        loop {
            while let Some(reply) =
                self.next_reply(&mut decoder, deflater.as_mut(), echo, &mut texts)
            {
                match reply {
                    Reply::Frame(frame) => stream.write_all(&frame)?,
                    Reply::Close(frame) => {
                        finish(stream, &frame, &mut buf)?;
                        return Ok(texts);
                    }
                }
            }
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok(texts);
            }
            decoder.feed(&buf[..n]);
        }
    }

    /// The answer to the next complete message, skipping Pongs (and data
    /// messages unless `echo` says so) and keeping each text message it does
    /// not echo; `None` when the decoder needs more bytes. Echoes go back
    /// compressed when `deflater` is given.
    fn next_reply(
        &mut self,
        decoder: &mut FrameDecoder,
        mut deflater: Option<&mut Deflater>,
        echo: Echo,
        texts: &mut Vec<Bytes>,
    ) -> Option<Reply> {
        let mut echoed = |opcode: Opcode, payload: &[u8], mask: [u8; 4]| match deflater.as_mut() {
            Some(deflater) => compressed_frame(opcode, &deflater.deflate(payload), Some(mask)),
            None => encode_frame(opcode, payload, Some(mask)),
        };
        loop {
            let mask = self.rng.u32(..).to_le_bytes();
            let reply = match decoder.poll_message() {
                Ok(None) => return None,
                Ok(Some(Message::Text(payload))) if echo == Echo::No => {
                    texts.push(payload);
                    continue;
                }
                Ok(Some(Message::Binary(_))) if echo == Echo::No => continue,
                Ok(Some(Message::Text(payload))) => {
                    Reply::Frame(echoed(Opcode::Text, &payload, mask))
                }
                Ok(Some(Message::Binary(payload))) => {
                    Reply::Frame(echoed(Opcode::Binary, &payload, mask))
                }
                Ok(Some(Message::Ping(payload))) => Reply::Frame(masked_pong_frame(&payload, mask)),
                Ok(Some(Message::Pong(_))) => continue,
                Ok(Some(Message::Close(Some((code, reason))))) => {
                    Reply::Close(masked_close_frame(code, &reason, mask))
                }
                Ok(Some(Message::Close(None))) => {
                    Reply::Close(encode_frame(Opcode::Close, &[], Some(mask)))
                }
                Err(error) => Reply::Close(masked_close_frame(
                    error.close_code(),
                    &error.to_string(),
                    mask,
                )),
            };
            return Some(reply);
        }
    }
}

/// What the client sends for one decoded message.
enum Reply {
    /// A frame to send before reading on.
    Frame(Bytes),
    /// The Close frame that ends the connection.
    Close(Bytes),
}

/// Sends the client's Close `frame`, then waits for the server to close the
/// TCP connection first (RFC 6455 section 7.1.1) and closes its own end by
/// dropping the stream. A server that already closed (a reset or a broken
/// pipe) has ended the connection as well.
fn finish(mut stream: TcpStream, frame: &[u8], buf: &mut [u8]) -> io::Result<()> {
    let ended = |error: &io::Error| {
        matches!(
            error.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        )
    };
    let result = stream.write_all(frame).and_then(|()| {
        while stream.read(buf)? > 0 {}
        Ok(())
    });
    match result {
        Err(error) if !ended(&error) => Err(error),
        _ => Ok(()),
    }
}
