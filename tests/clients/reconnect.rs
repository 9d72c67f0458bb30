//! Losing the connection and getting it back: backoff, resubscription
//! from the last offset seen, failed dials, and the heartbeat that finds a
//! dead connection.

use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use tether_core::{CloseCode, Event};

use crate::harness::{PATIENCE, TestClient, event, together};
use crate::script::Server;

fn reconnects_after_a_dropped_socket_and_resubscribes_from_the_last_offset<C: TestClient>() {
    let server = Server::bind();
    let client = C::connect(server.config());
    let serve = || {
        let mut first = server.accept();
        first.authenticate("alice");
        let subscribe = first.recv_json();
        first.send_json(json!({"type": "subscribed", "id": subscribe["id"], "channel": "room", "epoch": "e1", "offset": 0}));
        for offset in [1, 2] {
            first.send_json(
                json!({"type": "message", "channel": "room", "payload": offset, "offset": offset}),
            );
        }
        drop(first);
        let mut second = server.accept();
        second.authenticate("alice");
        let resubscribe = second.recv_json();
        assert_eq!(resubscribe["type"], "subscribe");
        assert_eq!(resubscribe["since"], json!({"epoch": "e1", "offset": 2}));
        second.send_json(json!({"type": "subscribed", "id": resubscribe["id"], "channel": "room", "epoch": "e1", "offset": 2, "recovered": true}));
        second.finish_close(CloseCode::NORMAL);
    };
    let play = || {
        client.subscribe("room").unwrap();
        assert!(matches!(event(&client), Event::Connected { .. }));
        assert!(matches!(event(&client), Event::Subscribed { .. }));
        for expected in [1, 2] {
            assert!(matches!(event(&client), Event::Message { offset, .. } if offset == expected));
        }
        match event(&client) {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => assert_eq!((reason.code, will_reconnect), (CloseCode::ABNORMAL, true)),
            other => panic!("expected Disconnected, got {other:?}"),
        }
        match event(&client) {
            Event::Reconnecting { attempt, delay } => {
                assert_eq!((attempt, delay), (1, Duration::from_millis(10)));
            }
            other => panic!("expected Reconnecting, got {other:?}"),
        }
        assert!(matches!(event(&client), Event::Connected { .. }));
        assert!(matches!(
            event(&client),
            Event::Subscribed {
                offset: 2,
                recovered: Some(true),
                ..
            }
        ));
        client.close();
    };
    together(serve, play);
}

fn reconnects_across_a_server_restart_and_learns_the_gap_is_lost<C: TestClient>() {
    let server = Server::bind();
    let client = C::connect(server.config());
    // Tells the script that the client has seen a dial fail while the
    // server was down.
    let (down_seen, wait_down_seen) = mpsc::channel();
    let serve = move || {
        let mut first = server.accept();
        first.authenticate("alice");
        let subscribe = first.recv_json();
        first.send_json(json!({"type": "subscribed", "id": subscribe["id"], "channel": "news", "epoch": "e1", "offset": 0}));
        first.send_json(json!({"type": "message", "channel": "news", "payload": 1, "offset": 1}));
        // Going away, as a server does when it shuts down.
        first.send_close(CloseCode::GOING_AWAY);
        first.expect_close(CloseCode::GOING_AWAY);
        let addr = server.stop();
        wait_down_seen
            .recv_timeout(PATIENCE)
            .expect("the client saw the server down");
        // A new server on the same port: a new epoch, an empty history.
        let server = Server::restart(addr);
        let mut second = server.accept();
        second.authenticate("alice");
        let resubscribe = second.recv_json();
        assert_eq!(resubscribe["channel"], "news");
        assert_eq!(resubscribe["since"], json!({"epoch": "e1", "offset": 1}));
        second.send_json(json!({"type": "subscribed", "id": resubscribe["id"], "channel": "news", "epoch": "e2", "offset": 0, "recovered": false}));
        second.send_json(json!({"type": "message", "channel": "news", "payload": 2, "offset": 1}));
        second.finish_close(CloseCode::NORMAL);
    };
    let play = || {
        client.subscribe("news").unwrap();
        assert!(matches!(event(&client), Event::Connected { .. }));
        assert!(matches!(
            event(&client),
            Event::Subscribed {
                recovered: None,
                ..
            }
        ));
        assert!(matches!(event(&client), Event::Message { offset: 1, .. }));
        match event(&client) {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => assert_eq!((reason.code, will_reconnect), (CloseCode::GOING_AWAY, true)),
            other => panic!("expected Disconnected, got {other:?}"),
        }
        // Retries that find no server are reported on the way, with a
        // growing backoff.
        let mut attempts = Vec::new();
        loop {
            match event(&client) {
                Event::Reconnecting { attempt, .. } => attempts.push(attempt),
                Event::Disconnected {
                    reason,
                    will_reconnect: true,
                } if reason.code == CloseCode::ABNORMAL => {
                    // The script waits for the first failure only; it
                    // ignores the others, and is gone after the test.
                    let _ = down_seen.send(());
                }
                Event::Connected { user, .. } => {
                    assert_eq!(user, "alice");
                    break;
                }
                other => panic!("expected a reconnect, got {other:?}"),
            }
        }
        assert!(attempts.len() >= 2, "{attempts:?}");
        assert_eq!(attempts, (1..=attempts.len() as u32).collect::<Vec<_>>());
        match event(&client) {
            Event::Subscribed {
                epoch,
                offset,
                recovered,
                ..
            } => assert_eq!((epoch.as_str(), offset, recovered), ("e2", 0, Some(false))),
            other => panic!("expected Subscribed, got {other:?}"),
        }
        match event(&client) {
            Event::Message {
                payload, offset, ..
            } => assert_eq!((payload.get(), offset), ("2", 1)),
            other => panic!("expected Message, got {other:?}"),
        }
        client.close();
    };
    together(serve, play);
}

fn a_failed_dial_is_retried_until_the_attempts_run_out<C: TestClient>() {
    let server = Server::bind();
    let mut config = server.config();
    config.backoff.max_attempts = Some(1);
    // Nothing listens on the port any more: every dial is refused.
    server.stop();
    let client = C::connect(config);
    let mut seen = Vec::new();
    while let Some(event) = client.next_or_end() {
        seen.push(match event {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => format!("disconnected {} {will_reconnect}", reason.code),
            Event::Reconnecting { attempt, delay } => {
                format!("reconnecting {attempt} {delay:?}")
            }
            other => panic!("unexpected event {other:?}"),
        });
    }
    assert_eq!(
        seen,
        [
            "disconnected 1006 true",
            "reconnecting 1 10ms",
            "disconnected 1006 false"
        ]
    );
}

fn the_sessions_heartbeat_deadlines_fire_on_real_time<C: TestClient>() {
    let server = Server::bind();
    let mut config = server.config();
    config.ping_idle = Duration::from_millis(20);
    config.pong_timeout = Duration::from_millis(20);
    config.backoff.max_attempts = Some(0);
    let client = C::connect(config);
    let serve = || {
        let mut peer = server.accept();
        peer.authenticate("alice");
        assert_eq!(peer.recv_json(), json!({"type": "ping"}));
        // No pong: the client must give the connection up by itself.
        peer.expect_end();
    };
    let play = || {
        assert!(matches!(event(&client), Event::Connected { .. }));
        match event(&client) {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => {
                assert_eq!(reason.code, CloseCode::ABNORMAL);
                assert_eq!(reason.reason, "heartbeat timeout");
                assert!(!will_reconnect);
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
    };
    together(serve, play);
}

client_tests! {
    reconnects_after_a_dropped_socket_and_resubscribes_from_the_last_offset => smol, blocking, tokio;
    reconnects_across_a_server_restart_and_learns_the_gap_is_lost => smol, blocking, tokio;
    a_failed_dial_is_retried_until_the_attempts_run_out => smol, blocking, tokio;
    the_sessions_heartbeat_deadlines_fire_on_real_time => smol, blocking, tokio;
}
