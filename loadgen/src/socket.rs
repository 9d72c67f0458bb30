//! One simulated client's socket: a TCP connection upgraded to WebSocket
//! with the core's handshake helpers, framed with the core's codec.
//!
//! The connection does the least a well-behaved client must: it masks what
//! it sends, answers WebSocket Pings (so a server's heartbeat never drops
//! it), and hands out text messages as bytes, leaving them unparsed.

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};

use bytes::Bytes;
use smol::Async;
use std::sync::Arc;

use futures_rustls::TlsConnector;
use futures_rustls::rustls::ClientConfig;
use futures_rustls::rustls::pki_types::ServerName;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tether_core::wire::FrameDecoder;
use tether_core::wire::Message;
use tether_core::wire::ResponseParser;
use tether_core::wire::Role;
use tether_core::wire::client_key;
use tether_core::wire::masked_pong_frame;
use tether_core::wire::masked_text_frame;
use tether_core::wire::upgrade_request;

use super::scan;

/// Largest message accepted from a server.
const MAX_MESSAGE: usize = 1 << 20;
/// Largest handshake response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Where the server under test listens.
#[derive(Clone, Debug)]
pub struct Target {
    /// The resolved address, always a loopback one.
    pub addr: SocketAddr,
    /// The `Host` header: the URL's authority.
    pub host: String,
    /// The WebSocket endpoint's path.
    pub path: String,
    /// For `wss://`: what the clients trust, and the server name.
    pub tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// Offer permessage-deflate in the handshake (and inflate what the
    /// server compresses, with the core's codec).
    pub deflate: bool,
}

impl Target {
    /// Parses `ws://host:port/path` or `wss://host:port/path` (with `tls`,
    /// from `--ca` or `--insecure`), refusing any address that is not on
    /// this machine's loopback interface.
    /// The target offers no compression; set [`Target::deflate`] for that.
    pub fn parse(url: &str, tls: Option<&Arc<ClientConfig>>) -> io::Result<Target> {
        let invalid = |message: String| io::Error::new(ErrorKind::InvalidInput, message);
        let (rest, tls) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
            (Some(rest), _) => (rest, None),
            (None, Some(rest)) => match tls {
                Some(tls) => (rest, Some(tls.clone())),
                None => {
                    return Err(invalid(format!(
                        "{url}: wss:// needs --ca FILE or --insecure"
                    )));
                }
            },
            (None, None) => {
                return Err(invalid(format!(
                    "{url}: expected ws:// or wss://host:port/path"
                )));
            }
        };
        let (host, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/ws"),
        };
        let addr = host
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| invalid(format!("{host}: no address")))?;
        if !addr.ip().is_loopback() {
            return Err(invalid(format!(
                "{addr} is not a loopback address: the load generator only targets this machine"
            )));
        }
        let tls = match tls {
            Some(config) => Some((config, tether_tls::server_name(host)?)),
            None => None,
        };
        Ok(Target {
            addr,
            host: host.to_owned(),
            path: path.to_owned(),
            tls,
            deflate: false,
        })
    }
}

/// A connection's byte stream: a TCP socket, or TLS over one.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An open, upgraded WebSocket connection.
pub struct WsConn {
    stream: Box<dyn Stream>,
    decoder: FrameDecoder,
    buffer: Vec<u8>,
    mask_state: u64,
    /// Bytes read from the socket after the handshake: what the server's
    /// frames took on the wire.
    wire_bytes: u64,
}

impl WsConn {
    /// Connects and completes the WebSocket handshake. `seed` varies the
    /// handshake key and the frame masks between connections; `buffer` is
    /// the size of the connection's read buffer.
    pub async fn open(target: &Target, seed: u64, buffer: usize) -> io::Result<WsConn> {
        let stream = Async::<TcpStream>::connect(target.addr).await?;
        stream.get_ref().set_nodelay(true)?;
        let stream: Box<dyn Stream> = match &target.tls {
            Some((config, name)) => {
                let connector = TlsConnector::from(config.clone());
                Box::new(connector.connect(name.clone(), stream).await?)
            }
            None => Box::new(stream),
        };
        let mut conn = WsConn {
            stream,
            decoder: FrameDecoder::new(Role::Client, MAX_MESSAGE),
            buffer: vec![0; buffer],
            mask_state: seed ^ 0x9e37_79b9_7f4a_7c15,
            wire_bytes: 0,
        };
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&conn.next_random().to_le_bytes());
        nonce[8..].copy_from_slice(&conn.next_random().to_le_bytes());
        let key = client_key(nonce);
        let request = upgrade_request(&target.host, &target.path, &key, None, target.deflate);
        conn.stream.write_all(&request).await?;
        let mut parser = ResponseParser::new(&key, MAX_HEAD, target.deflate);
        loop {
            let n = conn.read_some().await?;
            parser.feed(&conn.buffer[..n]);
            match parser.poll() {
                Ok(Some(handshake)) => {
                    if let Some(deflate) = handshake.deflate {
                        conn.decoder = FrameDecoder::with_deflate(
                            Role::Client,
                            MAX_MESSAGE,
                            deflate.server_keeps_context,
                        );
                    }
                    break;
                }
                Ok(None) => {}
                Err(error) => {
                    return Err(io::Error::other(format!("handshake refused: {error}")));
                }
            }
        }
        let remaining = parser.into_remaining();
        conn.wire_bytes = remaining.len() as u64;
        conn.decoder.feed(&remaining);
        Ok(conn)
    }

    /// Bytes the server's frames took on the wire so far.
    pub fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }

    /// Sends one text message.
    pub async fn send(&mut self, text: &[u8]) -> io::Result<()> {
        let frame = masked_text_frame(text, self.next_mask());
        self.stream.write_all(&frame).await
    }

    /// The next text message; Pings are answered on the way. A Close, a
    /// protocol error or the end of the stream is an error.
    pub async fn recv(&mut self) -> io::Result<Bytes> {
        loop {
            match self.decoder.poll_message() {
                Ok(Some(Message::Text(text))) => return Ok(text),
                Ok(Some(Message::Ping(data))) => {
                    let pong = masked_pong_frame(&data, self.next_mask());
                    self.stream.write_all(&pong).await?;
                }
                Ok(Some(Message::Close(close))) => {
                    let reason =
                        close.map_or_else(String::new, |(code, text)| format!("{} {text}", code.0));
                    return Err(io::Error::new(
                        ErrorKind::ConnectionAborted,
                        format!("closed by the server: {reason}"),
                    ));
                }
                Ok(Some(Message::Binary(_) | Message::Pong(_))) => {}
                Ok(None) => {
                    let n = self.read_some().await?;
                    self.wire_bytes += n as u64;
                    self.decoder.feed(&self.buffer[..n]);
                }
                Err(error) => {
                    return Err(io::Error::new(ErrorKind::InvalidData, error.to_string()));
                }
            }
        }
    }

    /// Receives until a message of type `kind` arrives and returns it;
    /// an `error` message is returned as an error.
    pub async fn expect(&mut self, kind: &str) -> io::Result<Bytes> {
        loop {
            let text = self.recv().await?;
            match scan::kind(&text) {
                Some(found) if found == kind.as_bytes() => return Ok(text),
                Some(b"error") => {
                    return Err(io::Error::other(format!(
                        "expected {kind}, got {}",
                        String::from_utf8_lossy(&text)
                    )));
                }
                _ => {}
            }
        }
    }

    /// Sends `auth` with `token` and waits for `auth_ack`.
    pub async fn authenticate(&mut self, token: &str) -> io::Result<()> {
        let auth = serde_json::json!({"type": "auth", "token": token}).to_string();
        self.send(auth.as_bytes()).await?;
        self.expect("auth_ack").await.map(drop)
    }

    /// Subscribes to `channel` and returns the channel's offset from the
    /// `subscribed` reply.
    pub async fn subscribe(&mut self, channel: &str) -> io::Result<u64> {
        let subscribe = serde_json::json!({"type": "subscribe", "channel": channel}).to_string();
        self.send(subscribe.as_bytes()).await?;
        let reply = self.expect("subscribed").await?;
        scan::u64_field(&reply, b"offset")
            .ok_or_else(|| io::Error::other("subscribed without an offset"))
    }

    /// A ping round trip: everything the server queued before the `pong`
    /// has arrived when this returns.
    pub async fn sync(&mut self) -> io::Result<()> {
        self.send(br#"{"type":"ping"}"#).await?;
        self.expect("pong").await.map(drop)
    }

    async fn read_some(&mut self) -> io::Result<usize> {
        match self.stream.read(&mut self.buffer).await? {
            0 => Err(ErrorKind::UnexpectedEof.into()),
            n => Ok(n),
        }
    }

    fn next_mask(&mut self) -> [u8; 4] {
        (self.next_random() as u32).to_le_bytes()
    }

    /// splitmix64: masks must vary, but need not be secret here.
    fn next_random(&mut self) -> u64 {
        self.mask_state = self.mask_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.mask_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49eb_133a_d0f4);
        z ^ (z >> 31)
    }
}
