//! The server's behaviour on the wire: pub/sub, presence, HTTP routes,
//! heartbeat, backpressure and graceful shutdown.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_blocking::Client;
use tether_core::client::Event;
use tether_core::config::ServerConfig;
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;

#[test]
fn clients_of_both_kinds_exchange_publications_in_offset_order() {
    let server = TestServer::start(config());
    let alice = Client::connect(client_config(server.addr, "alice")).unwrap();
    let user = expect_event(&alice, "connected", |event| match event {
        Event::Connected { user, .. } => Some(user),
        _ => None,
    });
    assert_eq!(user, "alice");
    alice.subscribe("chat").unwrap();
    expect_event(&alice, "subscribed", |event| {
        matches!(event, Event::Subscribed { .. }).then_some(())
    });

    let (mut bob, ack) = ws_auth(server.addr, "bob");
    assert_eq!(ack["user"], "bob");
    assert_eq!(ws_subscribe(&mut bob, "chat")["offset"], 0);
    ws_send(
        &mut bob,
        json!({"type": "publish", "channel": "chat", "payload": {"text": "hi"}, "id": "p1"}),
    );
    let (payload, sender, offset) = expect_event(&alice, "bob's message", |event| match event {
        Event::Message {
            payload,
            sender,
            offset,
            ..
        } => Some((payload.get().to_owned(), sender, offset)),
        _ => None,
    });
    assert_eq!(
        serde_json::from_str::<Value>(&payload).unwrap(),
        json!({"text": "hi"})
    );
    assert_eq!((sender.as_deref(), offset), (Some("bob"), 1));

    assert_eq!(alice.publish("chat", r#"{"text":"hello"}"#), Ok(2));
    let mut seen = Vec::new();
    let mut acked = None;
    while seen.len() < 2 || acked.is_none() {
        let message = ws_recv(&mut bob);
        match message["type"].as_str() {
            Some("ack") => acked = Some(message),
            Some("message") => seen.push((message["sender"].clone(), message["offset"].clone())),
            _ => {}
        }
    }
    assert_eq!(
        acked.unwrap(),
        json!({"type": "ack", "id": "p1", "offset": 1})
    );
    assert_eq!(seen, [(json!("bob"), json!(1)), (json!("alice"), json!(2))]);
    drop((alice, bob));
    server.stop();
}

#[test]
fn presence_joins_and_leaves_reach_the_other_subscribers() {
    let server = TestServer::start(config());
    let alice = Client::connect(client_config(server.addr, "alice")).unwrap();
    alice.subscribe("room").unwrap();
    let users = expect_event(&alice, "presence snapshot", |event| match event {
        Event::Presence { users, .. } => Some(users),
        _ => None,
    });
    assert_eq!(users, ["alice"]);

    let (mut bob, _) = ws_auth(server.addr, "bob");
    ws_subscribe(&mut bob, "room");
    let snapshot = ws_recv_type(&mut bob, "presence");
    let mut users: Vec<&str> = snapshot["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user.as_str().unwrap())
        .collect();
    users.sort_unstable();
    assert_eq!(users, ["alice", "bob"]);
    let joined = expect_event(&alice, "join", |event| match event {
        Event::Join { channel, user } => Some((channel.as_str().to_owned(), user)),
        _ => None,
    });
    assert_eq!(joined, ("room".to_owned(), "bob".to_owned()));

    bob.close(None).unwrap();
    while bob.read().is_ok() {}
    let left = expect_event(&alice, "leave", |event| match event {
        Event::Leave { channel, user } => Some((channel.as_str().to_owned(), user)),
        _ => None,
    });
    assert_eq!(left, ("room".to_owned(), "bob".to_owned()));
    drop(alice);
    server.stop();
}

#[test]
fn http_routes_answer_on_the_websocket_port() {
    let server = TestServer::start(config());
    let addr = server.addr;
    assert_eq!(get(addr, "/healthz"), (200, "ok".to_owned()));
    let (status, metrics) = get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("\ntether_connections 0\n"), "{metrics}");
    assert_eq!(get(addr, "/nope").0, 404);
    assert_eq!(get(addr, "/ws").0, 426);

    let (mut reader, _) = ws_auth(addr, "reader");
    ws_subscribe(&mut reader, "news");
    let body = r#"{"channel":"news","payload":{"n":1}}"#;
    let publish = |authorization: &str| {
        http(
            addr,
            &format!(
                "POST /api/publish HTTP/1.1\r\nHost: test\r\n{authorization}\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    assert_eq!(publish("").0, 401);
    assert_eq!(publish("Authorization: Bearer nope\r\n").0, 401);
    let (status, answer) = publish("Authorization: Bearer k\r\n");
    assert_eq!((status, answer.as_str()), (200, r#"{"offset":1}"#));
    let message = ws_recv_type(&mut reader, "message");
    assert_eq!(
        message,
        json!({"type": "message", "channel": "news", "payload": {"n": 1}, "offset": 1})
    );
    drop(reader);

    let bad = r#"{"channel":"news"}"#;
    let (status, answer) = http(
        addr,
        &format!(
            "POST /api/publish HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer k\r\n\
             Content-Length: {}\r\n\r\n{bad}",
            bad.len()
        ),
    );
    assert_eq!(status, 400);
    assert!(answer.contains("INVALID_MESSAGE"), "{answer}");
    server.stop();
}

#[test]
fn heartbeat_cuts_a_client_that_stops_answering_pings() {
    let server = TestServer::start(ServerConfig {
        heartbeat_interval: Duration::from_millis(200),
        ..config()
    });
    let (ws, _) = ws_auth(server.addr, "sleepy");
    // tungstenite answers Pings only while it is read; from here on it is
    // not, and the raw socket shows what the server sends until it cuts.
    let mut raw = ws.get_ref().try_clone().unwrap();
    let mut received = Vec::new();
    raw.read_to_end(&mut received)
        .expect("the server must end the connection");
    assert!(!received.is_empty(), "no Ping arrived");
    assert!(
        received.chunks(2).all(|frame| frame == [0x89, 0x00]),
        "only empty Pings, no close frame, may arrive: {received:?}"
    );
    assert_eq!(metric(server.addr, "tether_heartbeat_timeouts_total"), 1);
    assert_eq!(metric(server.addr, "tether_connections"), 0);
    server.stop();
}

#[test]
fn a_slow_consumer_is_cut_while_a_fast_one_gets_everything() {
    let server = TestServer::start(ServerConfig {
        high_water: 16 * 1024,
        hard_limit: 64 * 1024,
        slow_timeout: Duration::from_millis(300),
        close_timeout: PATIENCE,
        ..config()
    });
    let fast = Client::connect(client_config(server.addr, "fast")).unwrap();
    fast.subscribe("feed").unwrap();
    expect_event(&fast, "subscribed", |event| {
        matches!(event, Event::Subscribed { .. }).then_some(())
    });
    let (mut slow, _) = ws_auth(server.addr, "slow");
    ws_subscribe(&mut slow, "feed");

    // Batches well below `high_water`, each one received by the fast client
    // before the next, until the slow one (not reading) has been closed.
    let payload = json!({ "pad": "x".repeat(1000) }).to_string();
    let deadline = Instant::now() + PATIENCE;
    let mut published = 0;
    let mut received = Vec::new();
    while metric(server.addr, "tether_slow_consumer_closes_total") == 0 {
        assert!(Instant::now() < deadline, "the slow consumer stayed open");
        for _ in 0..8 {
            published = server.handle.publish("feed", &payload).unwrap();
        }
        while received.last() != Some(&published) {
            received.push(expect_event(&fast, "message", |event| match event {
                Event::Message { offset, .. } => Some(offset),
                _ => None,
            }));
        }
    }
    assert_eq!(received, (1..=published).collect::<Vec<_>>());
    assert!(metric(server.addr, "tether_messages_dropped_total") > 0);

    // The slow client reads again: what was already on its way, then the
    // reset of a connection the node aborted (PROTOCOL.md section 11).
    let mut offsets = Vec::new();
    let error = loop {
        match slow.read() {
            Ok(Message::Text(text)) => {
                let message: Value = serde_json::from_str(text.as_str()).unwrap();
                if message["type"] == "message" {
                    offsets.push(message["offset"].as_u64().unwrap());
                }
            }
            Ok(Message::Close(frame)) => panic!("a close frame {frame:?} instead of a reset"),
            Ok(_) => {}
            Err(error) => break error,
        }
    };
    assert!(
        matches!(&error, tungstenite::Error::Io(error) if error.kind() == std::io::ErrorKind::ConnectionReset),
        "{error}"
    );
    assert!(offsets.windows(2).all(|pair| pair[0] < pair[1]));
    assert!((offsets.len() as u64) < published, "nothing was dropped");
    drop((fast, slow));
    server.stop();
}

#[test]
fn shutdown_sends_1001_after_queued_messages_and_refuses_connections_while_draining() {
    let server = TestServer::start(ServerConfig {
        close_timeout: PATIENCE,
        shutdown_timeout: 2 * PATIENCE,
        ..config()
    });
    let alice = Client::connect(client_config(server.addr, "alice")).unwrap();
    expect_event(&alice, "connected", |event| {
        matches!(event, Event::Connected { .. }).then_some(())
    });
    let (mut ws, _) = ws_auth(server.addr, "bob");
    ws_subscribe(&mut ws, "news");
    server.handle.publish("news", r#""last""#).unwrap();

    server.handle.shutdown();
    let (code, will_reconnect) = expect_event(&alice, "disconnect", |event| match event {
        Event::Disconnected {
            reason,
            will_reconnect,
        } => Some((reason.code.0, will_reconnect)),
        _ => None,
    });
    assert_eq!((code, will_reconnect), (1001, true));

    // `ws` has not answered its close frame, so the node is still draining.
    assert_eq!(get(server.addr, "/healthz"), (503, "draining".to_owned()));
    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    match tungstenite::client(format!("ws://{}/ws", server.addr), stream) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("expected a 503 refusal, got {other:?}"),
    }

    assert_eq!(ws_recv_type(&mut ws, "message")["payload"], "last");
    let close = loop {
        if let Message::Close(frame) = ws.read().expect("read") {
            break frame.expect("a close code");
        }
    };
    assert_eq!(close.code, CloseCode::Away);
    // Reading on sends tungstenite's answer and ends at the server's close.
    while ws.read().is_ok() {}
    alice.close();
    server.wait_for_exit().expect("run() failed");
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "the port is still open"
    );
}

#[test]
fn a_payload_nested_30000_deep_is_handled_on_the_small_connection_stacks() {
    let server = TestServer::start(config());
    let (mut ws, _) = ws_auth(server.addr, "deep");
    let depth = 30000;
    let payload = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let text = format!(r#"{{"type":"publish","channel":"deep","id":"d","payload":{payload}}}"#);
    ws.send(Message::text(text)).unwrap();
    assert_eq!(
        ws_recv(&mut ws),
        json!({"type": "ack", "id": "d", "offset": 1})
    );
    drop(ws);
    server.stop();
}

#[test]
fn max_connections_is_lowered_to_what_the_process_s_threads_allow() {
    let options = |max_connections| tether_blocking::ServerOptions {
        config: ServerConfig {
            max_connections,
            ..config()
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        authorizer: std::sync::Arc::new(TestAuthorizer),
        epoch_prefix: None,
    };
    let modest = tether_blocking::Server::bind(options(100)).expect("bind");
    assert_eq!(modest.max_connections(), 100);
    let Ok(maps) = std::fs::read_to_string("/proc/sys/vm/max_map_count") else {
        return;
    };
    let maps: usize = maps.trim().parse().expect("a number");
    let huge = tether_blocking::Server::bind(options(usize::MAX)).expect("bind");
    assert!(
        huge.max_connections() * 8 < maps,
        "{} connections would take more than {maps} memory maps",
        huge.max_connections()
    );
}
