//! A transcript of one Tether connection, driven in virtual time.
//!
//! A scripted client upgrades, pings, authenticates with a pipelined
//! subscribe, then falls silent; the server core answers, hands the requests
//! to the application, pings on schedule and cuts the silent peer at the
//! second heartbeat tick. Every line shows the virtual instant it happened
//! at: no clock is read, so the output is the same on every run.

use std::time::Duration;

use tether_core::internals::AuthVerdict;
use tether_core::internals::Connection;
use tether_core::internals::ConnectionEvent as Event;
use tether_core::wire::FrameDecoder;
use tether_core::wire::Message;
use tether_core::wire::Role;
use tether_core::wire::masked_text_frame;
use tether_core::{Instant, ServerConfig};

const MASK: [u8; 4] = [1, 2, 3, 4];

struct Driver {
    config: ServerConfig,
    conn: Connection,
    client: FrameDecoder,
    upgraded: bool,
}

impl Driver {
    /// The drain loop every adapter runs after an input.
    fn drain(&mut self, now: Instant) {
        while let Some(event) = self.conn.poll_event() {
            println!("{:>8}  event     {}", now.to_string(), describe(&event));
            match event {
                Event::Authenticate { .. } => {
                    let verdict = AuthVerdict::Accept {
                        user: "alice".into(),
                        session: "s-1".into(),
                        expiry: None,
                    };
                    println!("{:>8}  verdict   accept as alice", now.to_string());
                    self.conn.handle_auth_verdict(&self.config, now, verdict);
                }
                Event::Reply(frame) => self.conn.send_control(&self.config, now, frame),
                _ => {}
            }
        }
        let mut frames = Vec::new();
        loop {
            let moved = self.conn.poll_transmit(64 * 1024, &mut frames);
            if moved == 0 {
                break;
            }
            self.conn.handle_written(&self.config, moved);
        }
        let bytes = frames.concat();
        if !self.upgraded {
            if let Some(head) = String::from_utf8_lossy(&bytes).split("\r\n\r\n").next() {
                println!(
                    "{:>8}  server -> {}",
                    now.to_string(),
                    head.lines().next().unwrap_or("")
                );
                self.upgraded = true;
            }
            return;
        }
        self.client.feed(&bytes);
        while let Ok(Some(message)) = self.client.poll_message() {
            let shown = match message {
                Message::Text(text) => String::from_utf8_lossy(&text).into_owned(),
                other => format!("{other:?}"),
            };
            println!("{:>8}  server -> {shown}", now.to_string());
        }
        if self.conn.transport().closes_now() {
            println!("{:>8}  transport closed", now.to_string());
        }
    }

    /// Sends `messages` in one read, as a client pipelining them would.
    fn client_sends(&mut self, now: Instant, messages: &[&str]) {
        let mut bytes = Vec::new();
        for json in messages {
            println!("{:>8}  client -> {json}", now.to_string());
            bytes.extend_from_slice(&masked_text_frame(json.as_bytes(), MASK));
        }
        self.conn.handle_read(&self.config, now, &bytes);
        self.drain(now);
    }
}

fn describe(event: &Event) -> String {
    match event {
        Event::Authenticate { .. } => "authenticate (token withheld)".into(),
        Event::Request(request) => format!("request for the hub: {request:?}"),
        other => format!("{other:?}"),
    }
}

fn main() {
    let config = ServerConfig {
        heartbeat_interval: Duration::from_secs(30),
        ..ServerConfig::dev()
    };
    let t0 = Instant::ZERO;
    let mut driver = Driver {
        conn: Connection::new(&config, t0),
        config,
        client: FrameDecoder::new(Role::Client, 1 << 20),
        upgraded: false,
    };

    let upgrade = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether.v1\r\n\r\n";
    println!(
        "{:>8}  client -> GET /ws (upgrade, tether.v1)",
        t0.to_string()
    );
    driver
        .conn
        .handle_read(&driver.config, t0, upgrade.as_bytes());
    driver.drain(t0);

    let t = t0 + Duration::from_millis(5);
    driver.client_sends(t, &[r#"{"type":"ping","id":"hello"}"#]);
    let t = t0 + Duration::from_millis(12);
    driver.client_sends(
        t,
        &[
            r#"{"type":"auth","token":"secret"}"#,
            r#"{"type":"subscribe","channel":"chat","id":"s1"}"#,
        ],
    );
    let t = t0 + Duration::from_millis(20);
    driver.client_sends(
        t,
        &[r#"{"type":"publish","channel":"chat","payload":1,"id":""}"#],
    );

    println!("{:>8}  (the client falls silent)", "");
    while let Some(deadline) = driver.conn.poll_timeout() {
        driver.conn.handle_timeout(&driver.config, deadline);
        driver.drain(deadline);
    }
}
