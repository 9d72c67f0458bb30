//! Target `server_bytes`: any bytes from a client after a completed
//! handshake and auth.
//!
//! The contract (PROTOCOL.md sections 1, 3, 7, 8 and 11): the node answers
//! with valid frames only; it closes with the code the first offending
//! frame calls for (1002, 1003, 1007, 1009), echoes a client's close, or
//! gives up on a slow consumer (4008) or a silent one (heartbeat); it never
//! writes after its close frame; Pongs echo the client's Pings, in order;
//! the outbound queue stays within `hard_limit`; and once the socket is
//! gone the node holds nothing for the connection.
//!
//! The first input byte picks the read size (1 to 64 bytes) and how often
//! the client reads what the node wrote (after every read, every 4th, every
//! 16th, or only at the end); the rest is the byte stream. Each read is
//! followed by an API publication on the channel the connection is
//! subscribed to, and time moves 7 ms per read.

use std::time::Duration;

use bytes::Bytes;

use super::peer::{self, Received, ServerReader, kind};
use crate::auth::Identity;
use crate::close::CloseCode;
use crate::config::ServerConfig;
use crate::connection::ClosedBy;
use crate::envelope::{Channel, ClientMessage};
use crate::frame::{FrameDecoder, Message, Role};
use crate::ids::ConnId;
use crate::server::{Decision, Output, Server};
use crate::time::Instant;

/// The channel the connection is subscribed to before the fuzzed bytes.
const CHANNEL: &str = "fz";

/// Time between reads.
const TICK: Duration = Duration::from_millis(7);

/// Limits small enough for the fuzzer to reach; under permessage-deflate
/// (`deflate`) every publication goes compressed.
pub(crate) fn config(deflate: bool) -> ServerConfig {
    ServerConfig {
        compression_min_size: if deflate { 0 } else { 128 },
        max_payload: 512,
        high_water: 2048,
        hard_limit: 8192,
        heartbeat_interval: Duration::from_secs(1),
        slow_timeout: Duration::from_millis(500),
        rate_limit: 20,
        rate_burst: 10,
        history_size: 8,
        ..ServerConfig::dev()
    }
}

/// Runs the contract on `data`.
pub fn check(data: &[u8]) {
    run(data, false);
}

/// Runs the contract on `data`, after a handshake that agreed on
/// permessage-deflate when `deflate` is set.
pub(crate) fn run(data: &[u8], deflate: bool) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let read_size = usize::from(control & 0x3f) + 1;
    let read_every = [1, 4, 16, usize::MAX][usize::from(control >> 6)];
    let mut run = Run::start(deflate);
    for (index, read) in stream.chunks(read_size).enumerate() {
        run.now += TICK;
        run.server.handle_read(run.now, run.conn, read);
        run.server.handle_timeout(run.now);
        let payload = format!(r#"{{"n":{index}}}"#);
        run.server.publish(run.now, index as u64, CHANNEL, &payload);
        run.events();
        if index % read_every == read_every - 1 {
            run.read_all();
        }
    }
    run.read_all();
    run.finish(&expected_close(stream, deflate));
}

/// How the client's bytes must end the connection, if they do: the close
/// code the first terminal item of the stream calls for.
fn expected_close(stream: &[u8], deflate: bool) -> Expected {
    let max_payload = config(deflate).max_payload;
    let mut decoder = if deflate {
        FrameDecoder::with_deflate(Role::Server, max_payload, false)
    } else {
        FrameDecoder::new(Role::Server, max_payload)
    };
    decoder.feed(stream);
    let mut pings = Vec::new();
    let close = loop {
        match decoder.poll_message() {
            Ok(None) => break None,
            Ok(Some(Message::Ping(data))) => pings.push(data),
            Ok(Some(Message::Text(_) | Message::Pong(_))) => {}
            Ok(Some(Message::Binary(_))) => break Some(CloseCode::UNSUPPORTED_DATA),
            Ok(Some(Message::Close(close))) => {
                let code = close.map_or(CloseCode::NORMAL, |(code, _)| code);
                break Some(code);
            }
            Err(error) => break Some(error.close_code()),
        }
    };
    Expected { close, pings }
}

/// What the client's stream calls for.
struct Expected {
    /// The close code of the first terminal item, if any.
    close: Option<CloseCode>,
    /// The Ping payloads before it, in order.
    pings: Vec<Bytes>,
}

/// One node with one authenticated, subscribed connection.
struct Run {
    server: Server,
    conn: ConnId,
    now: Instant,
    reader: ServerReader,
    config: ServerConfig,
    /// The `Closed` events, with the instant each was seen.
    closed: Vec<(Output, Instant)>,
    /// Every frame read, in order.
    received: Vec<Received>,
    /// Heartbeat intervals elapsed at the last read.
    heartbeats: u64,
}

impl Run {
    fn start(deflate: bool) -> Run {
        let config = config(deflate);
        let now = Instant::ZERO;
        let mut server = Server::new(config.clone(), 0).expect("a valid config");
        let conn = server.accept(now);
        let mut hello = peer::upgrade_request(deflate);
        hello.extend_from_slice(&peer::text(&ClientMessage::Auth {
            id: None,
            token: "t".into(),
        }));
        hello.extend_from_slice(&peer::text(&ClientMessage::Subscribe {
            id: None,
            channel: Channel::new(CHANNEL).expect("a valid name"),
            since: None,
        }));
        server.handle_read(now, conn, &hello);
        let mut run = Run {
            server,
            conn,
            now,
            reader: ServerReader::new(deflate),
            config,
            closed: Vec::new(),
            received: Vec::new(),
            heartbeats: 0,
        };
        run.events();
        run.read_all();
        assert!(
            matches!(run.received.first(), Some(Received::Message(m)) if kind(m) == "auth_ack"),
            "no auth_ack: {:?}",
            run.received
        );
        run.received.clear();
        run
    }

    /// Answers auth requests and keeps the close events; the memory hub
    /// publishes at once.
    fn events(&mut self) {
        let (now, closed) = (self.now, &mut self.closed);
        peer::drain(&mut self.server, |server, output| match output {
            Output::Decide(Decision::Authenticate { request, .. }) => {
                server.handle_auth_verdict(now, request.conn, Some(Identity::user("ann")));
            }
            Output::Published { result, .. } => assert!(result.is_ok(), "{result:?}"),
            event @ Output::Closed { .. } => closed.push((event, now)),
            Output::Store(request) => panic!("a memory node asked a store: {request:?}"),
            Output::Wake(_)
            | Output::Decide(_)
            | Output::Notify(_)
            | Output::Drained
            | Output::Timeout(_) => {}
        });
        assert!(self.closed.len() <= 1, "closed twice: {:?}", self.closed);
    }

    /// Reads everything queued, checking the queue stayed within bounds.
    fn read_all(&mut self) {
        let mut out = Vec::new();
        let moved = self.server.poll_transmit(self.conn, usize::MAX, &mut out);
        self.server.handle_written(self.conn, moved);
        let pings = self.now.since_origin().as_millis() as u64
            / self.config.heartbeat_interval.as_millis() as u64;
        let slack = 512 + 2 * (pings - self.heartbeats + 1) as usize;
        self.heartbeats = pings;
        assert!(
            moved <= self.config.hard_limit + slack,
            "{moved} bytes were queued, hard_limit is {}",
            self.config.hard_limit
        );
        for chunk in out {
            if let Some(received) = self.reader.read(&chunk) {
                self.received.push(received);
            }
        }
    }

    /// The socket goes away; checks how the connection ended and that the
    /// node forgot it.
    fn finish(mut self, expected: &Expected) {
        let pongs = self.received.iter().filter_map(|r| match r {
            Received::Pong(data) => Some(data),
            _ => None,
        });
        let mut pings = expected.pings.iter();
        for pong in pongs {
            assert!(
                pings.any(|ping| ping == pong),
                "a Pong {pong:?} that answers no Ping in order"
            );
        }
        let sent_close = self.received.iter().find_map(|r| match r {
            Received::Close(code) => Some(*code),
            _ => None,
        });
        match (&self.closed[..], sent_close) {
            ([], None) => assert_eq!(expected.close, None, "the node ignored a terminal frame"),
            ([(Output::Closed { reason, by, .. }, _)], Some(code)) => {
                let allowed = [expected.close, Some(CloseCode::SLOW_CONSUMER)];
                assert!(
                    allowed.contains(&Some(code)),
                    "closed with {code}, the stream called for {:?}",
                    expected.close
                );
                if *by == ClosedBy::Client {
                    assert!(reason.code == code || reason.code == CloseCode::NO_STATUS);
                } else {
                    assert_eq!(reason.code, code);
                }
            }
            ([(Output::Closed { reason, by, .. }, at)], None) => {
                // A close frame the client never read is dropped with the
                // socket at `close_timeout`; a slow consumer is cut with
                // none.
                let lingered = self.now >= *at + self.config.close_timeout;
                assert!(
                    *by == ClosedBy::HeartbeatTimeout
                        || reason.code == CloseCode::SLOW_CONSUMER
                        || lingered,
                    "closed ({by:?}) without a close frame"
                );
            }
            (closed, sent) => panic!("close events {closed:?} for close frame {sent:?}"),
        }
        self.server.handle_transport_closed(self.now, self.conn);
        self.events();
        assert_eq!(self.closed.len(), 1, "a connection ends exactly once");
        assert_eq!(self.server.connection_count(), 0);
        let metrics = self.server.metrics_text();
        for gauge in ["tether_connections 0", "tether_channels 0"] {
            assert!(metrics.lines().any(|line| line == gauge), "{metrics}");
        }
    }
}
