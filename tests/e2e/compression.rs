//! permessage-deflate against the `tether` binary of each runtime: a
//! client that offers it gets the server's answer, and publications
//! compressed (RSV1 set) that inflate to what was published; the binary's
//! own client (`tether connect`), which offers it by default, receives
//! them too. PROTOCOL.md section 1, "Compression".

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::{Value, json};
use tether_core::wire::{
    Deflate, FrameDecoder, Message, ResponseParser, Role, client_key, masked_text_frame,
    upgrade_request,
};
use tether_testkit::process::Process;
use tether_testkit::ws::{Ws, tcp};

use crate::harness::{Runtime, TETHER};

/// A chat message above the default `compression_min_size`.
const CHAT: &str = r#"{"user":"alice","name":"Alice Liddell","text":"Shall we meet at the station at half past five? The train to the coast leaves at six."}"#;

/// A raw connection made with the core's client handshake and decoder,
/// offering permessage-deflate, that keeps the bytes of each read.
struct DeflateClient {
    stream: TcpStream,
    decoder: FrameDecoder,
    mask: u8,
}

impl DeflateClient {
    /// Upgrades offering permessage-deflate and checks the server's answer.
    fn open(addr: SocketAddr) -> DeflateClient {
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
        let mut decoder = FrameDecoder::with_deflate(Role::Client, 1 << 20, false);
        decoder.feed(&parser.into_remaining());
        DeflateClient {
            stream,
            decoder,
            mask: 0,
        }
    }

    fn send(&mut self, message: &Value) {
        self.mask = self.mask.wrapping_add(1);
        let frame = masked_text_frame(message.to_string().as_bytes(), [self.mask; 4]);
        self.stream.write_all(&frame).unwrap();
    }

    /// The next text message, and whether the read that completed it
    /// started with a compressed text frame's first byte (FIN, RSV1, text).
    fn recv(&mut self) -> (Value, bool) {
        let mut first = None;
        loop {
            if let Some(message) = self.decoder.poll_message().expect("valid frames") {
                let Message::Text(text) = message else {
                    continue;
                };
                let value = serde_json::from_slice(&text).unwrap();
                return (value, first == Some(0xc1));
            }
            let mut buf = [0; 4096];
            let n = self.stream.read(&mut buf).unwrap();
            assert!(n > 0, "the node closed the connection");
            first.get_or_insert(buf[0]);
            self.decoder.feed(&buf[..n]);
        }
    }

    /// The next message of type `kind`, skipping others.
    fn recv_type(&mut self, kind: &str) -> (Value, bool) {
        loop {
            let (message, compressed) = self.recv();
            if message["type"] == kind {
                return (message, compressed);
            }
        }
    }
}

fn publications_reach_deflate_clients_compressed(runtime: Runtime) {
    let node = Process::start(TETHER, &runtime.dev_binary_args());
    let addr = node.listening_on();
    let url = format!("ws://{addr}/ws");
    let mut listener = Process::start(
        TETHER,
        &["connect", &url, "--token", "carol", "--subscribe", "chat"],
    );
    listener.wait_for_line(r#""event":"subscribed""#);
    let mut subscriber = DeflateClient::open(addr);
    subscriber.send(&json!({"type": "auth", "token": "alice"}));
    subscriber.recv_type("auth_ack");
    subscriber.send(&json!({"type": "subscribe", "channel": "chat", "id": "s"}));
    subscriber.recv_type("subscribed");

    let mut publisher = Ws::auth(addr, "bob");
    let payload: Value = serde_json::from_str(CHAT).unwrap();
    publisher
        .send_json(json!({"type": "publish", "channel": "chat", "payload": payload, "id": "p"}));
    publisher.recv_type("ack");

    let (message, compressed) = subscriber.recv_type("message");
    assert_eq!(message["payload"], payload);
    assert!(compressed, "the publication arrived uncompressed");
    let line = listener.wait_for_line("Shall we meet at the station");
    assert!(line.contains("Alice Liddell"), "{line}");
    listener.signal("INT");
    assert_eq!(listener.wait().code(), Some(0));
}

runtime_tests! {
    publications_reach_deflate_clients_compressed => smol, blocking, tokio;
}
