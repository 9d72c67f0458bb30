//! The smol client against a scripted server on 127.0.0.1: real sockets,
//! real time, every decision still the core's. Each test runs the server's
//! script and the client's side concurrently, bounded as a whole by
//! [`TEST_LIMIT`].

mod script;

use std::future::Future;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use async_io::Timer;
use futures_lite::{FutureExt, future};
use serde_json::json;
use tether_core::client::{Event, RequestError, SendError};
use tether_core::close::CloseCode;
use tether_core::envelope::{Channel, ClientMessage, ErrorCode, ServerMessage};
use tether_smol::client::{Client, ClientError};

use script::Server;

/// The most any test may take; they normally take milliseconds.
const TEST_LIMIT: Duration = Duration::from_secs(10);

/// Runs `test` to completion, failing it if it takes longer than
/// [`TEST_LIMIT`].
fn bounded<T>(test: impl Future<Output = T>) -> T {
    smol::block_on(test.or(async {
        Timer::after(TEST_LIMIT).await;
        panic!("test did not finish within {TEST_LIMIT:?}")
    }))
}

/// The client's next event; the stream must not have ended.
async fn event(client: &Client) -> Event {
    client.next_event().await.expect("an event")
}

fn room() -> Channel {
    Channel::new("room").unwrap()
}

#[test]
fn subscribes_receives_publishes_and_closes() {
    let server = Server::bind();
    let client = Client::connect(server.config());
    let serve = async {
        let mut peer = server.accept().await;
        peer.authenticate("alice").await;
        let subscribe = peer.recv_json().await;
        assert_eq!(subscribe["type"], "subscribe");
        assert_eq!(subscribe["channel"], "room");
        assert!(subscribe.get("since").is_none(), "{subscribe}");
        let id = &subscribe["id"];
        peer.send_json(
            json!({"type": "subscribed", "id": id, "channel": "room", "epoch": "e1", "offset": 0}),
        )
        .await;
        peer.send_json(json!({"type": "presence", "channel": "room", "users": ["alice"]}))
            .await;
        peer.send_json(json!({"type": "message", "channel": "room", "payload": {"n": 1}, "sender": "bob", "offset": 1}))
            .await;
        let publish = peer.recv_json().await;
        assert_eq!(publish["type"], "publish");
        assert_eq!(publish["payload"], json!({"n": 2}));
        peer.send_json(json!({"type": "ack", "id": publish["id"], "offset": 2}))
            .await;
        peer.finish_close(1000).await;
    };
    let play = async {
        client.subscribe("room").await.unwrap();
        assert!(matches!(event(&client).await, Event::Connected { user, .. } if user == "alice"));
        match event(&client).await {
            Event::Subscribed {
                channel,
                epoch,
                offset,
                recovered,
            } => assert_eq!(
                (channel, epoch, offset, recovered),
                (room(), "e1".into(), 0, None)
            ),
            other => panic!("expected Subscribed, got {other:?}"),
        }
        assert!(
            matches!(event(&client).await, Event::Presence { users, .. } if users == ["alice"])
        );
        match event(&client).await {
            Event::Message {
                channel,
                payload,
                sender,
                offset,
            } => {
                assert_eq!((channel, sender, offset), (room(), Some("bob".into()), 1));
                assert_eq!(payload.get(), r#"{"n":1}"#);
            }
            other => panic!("expected Message, got {other:?}"),
        }
        let id = client.publish("room", r#"{"n": 2}"#).await.unwrap();
        match event(&client).await {
            Event::RequestDone { id: done, result } => {
                assert_eq!(done, id);
                assert!(
                    matches!(result, Ok(ServerMessage::Ack { offset: 2, .. })),
                    "{result:?}"
                );
            }
            other => panic!("expected RequestDone, got {other:?}"),
        }
        client.close().await;
        match event(&client).await {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => assert_eq!((reason.code, will_reconnect), (CloseCode::NORMAL, false)),
            other => panic!("expected Disconnected, got {other:?}"),
        }
        assert!(client.next_event().await.is_none());
        assert_eq!(
            client.subscribe("room").await,
            Err(ClientError::Refused(SendError::Closed))
        );
    };
    bounded(future::zip(serve, play));
}

#[test]
fn reconnects_after_a_dropped_socket_and_resubscribes_from_the_last_offset() {
    let server = Server::bind();
    let client = Client::connect(server.config());
    let serve = async {
        let mut first = server.accept().await;
        first.authenticate("alice").await;
        let subscribe = first.recv_json().await;
        first
            .send_json(json!({"type": "subscribed", "id": subscribe["id"], "channel": "room", "epoch": "e1", "offset": 0}))
            .await;
        for offset in [1, 2] {
            first
                .send_json(json!({"type": "message", "channel": "room", "payload": offset, "offset": offset}))
                .await;
        }
        drop(first);
        let mut second = server.accept().await;
        second.authenticate("alice").await;
        let resubscribe = second.recv_json().await;
        assert_eq!(resubscribe["type"], "subscribe");
        assert_eq!(resubscribe["since"], json!({"epoch": "e1", "offset": 2}));
        second
            .send_json(json!({"type": "subscribed", "id": resubscribe["id"], "channel": "room", "epoch": "e1", "offset": 2, "recovered": true}))
            .await;
        second.finish_close(1000).await;
    };
    let play = async {
        client.subscribe("room").await.unwrap();
        assert!(matches!(event(&client).await, Event::Connected { .. }));
        assert!(matches!(event(&client).await, Event::Subscribed { .. }));
        for expected in [1, 2] {
            assert!(
                matches!(event(&client).await, Event::Message { offset, .. } if offset == expected)
            );
        }
        match event(&client).await {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => assert_eq!((reason.code, will_reconnect), (CloseCode::ABNORMAL, true)),
            other => panic!("expected Disconnected, got {other:?}"),
        }
        match event(&client).await {
            Event::Reconnecting { attempt, delay } => {
                assert_eq!((attempt, delay), (1, Duration::from_millis(10)));
            }
            other => panic!("expected Reconnecting, got {other:?}"),
        }
        assert!(matches!(event(&client).await, Event::Connected { .. }));
        assert!(matches!(
            event(&client).await,
            Event::Subscribed {
                offset: 2,
                recovered: Some(true),
                ..
            }
        ));
        client.close().await;
    };
    bounded(future::zip(serve, play));
}

#[test]
fn a_final_close_code_ends_the_session_without_a_redial() {
    let server = Server::bind();
    let client = Client::connect(server.config());
    let serve = async {
        let mut peer = server.accept().await;
        assert_eq!(peer.recv_json().await["type"], "auth");
        peer.send_close(4003).await;
        match peer.recv().await {
            Some(tether_core::frame::Message::Close(Some((code, _)))) => {
                assert_eq!(code, CloseCode::FORBIDDEN);
            }
            other => panic!("expected the echoed close frame, got {other:?}"),
        }
        peer.expect_end().await;
    };
    let play = async {
        match event(&client).await {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => assert_eq!((reason.code, will_reconnect), (CloseCode::FORBIDDEN, false)),
            other => panic!("expected Disconnected, got {other:?}"),
        }
        // The stream ends when the driver task stops: nothing is left that
        // could dial again.
        assert!(client.next_event().await.is_none());
        assert_eq!(
            client.publish("room", "1").await,
            Err(ClientError::Refused(SendError::Closed))
        );
    };
    bounded(future::zip(serve, play));
    assert!(!server.has_pending_connection(), "the client dialed again");
}

#[test]
fn requests_resolve_with_their_reply_or_error() {
    let server = Server::bind();
    let client = Client::connect(server.config());
    let serve = async {
        let mut peer = server.accept().await;
        peer.authenticate("alice").await;
        let presence = peer.recv_json().await;
        assert_eq!(presence["type"], "presence");
        peer.send_json(json!({"type": "presence", "id": presence["id"], "channel": "room", "users": ["alice", "bob"]}))
            .await;
        let forbidden = peer.recv_json().await;
        assert_eq!(forbidden["channel"], "user:bob");
        peer.send_json(json!({"type": "error", "id": forbidden["id"], "code": "FORBIDDEN", "message": "not yours"}))
            .await;
        peer.finish_close(1000).await;
    };
    let play = async {
        assert!(matches!(event(&client).await, Event::Connected { .. }));
        let presence = ClientMessage::Presence {
            id: None,
            channel: room(),
        };
        let reply = client.request(presence, Duration::from_secs(30)).await;
        assert!(
            matches!(&reply, Ok(ServerMessage::Presence { users, .. }) if users == &["alice", "bob"]),
            "{reply:?}"
        );
        let forbidden = ClientMessage::Presence {
            id: None,
            channel: Channel::new("user:bob").unwrap(),
        };
        let reply = client.request(forbidden, Duration::from_secs(30)).await;
        assert_eq!(
            reply,
            Err(ClientError::Request(RequestError::Server {
                code: ErrorCode::Forbidden,
                message: "not yours".into()
            }))
        );
        client.close().await;
    };
    bounded(future::zip(serve, play));
}

#[test]
fn a_request_fails_at_once_when_its_connection_drops() {
    let server = Server::bind();
    let mut config = server.config();
    config.backoff.max_attempts = Some(0);
    let client = Client::connect(config);
    let serve = async {
        let mut peer = server.accept().await;
        peer.authenticate("alice").await;
        assert_eq!(peer.recv_json().await["type"], "ping");
        drop(peer);
    };
    let play = async {
        assert!(matches!(event(&client).await, Event::Connected { .. }));
        // A deadline far beyond the test's limit: only the drop can end it.
        let reply = client
            .request(ClientMessage::Ping { id: None }, Duration::from_secs(3600))
            .await;
        assert_eq!(reply, Err(ClientError::Request(RequestError::Disconnected)));
        assert!(matches!(
            event(&client).await,
            Event::Disconnected {
                will_reconnect: false,
                ..
            }
        ));
    };
    bounded(future::zip(serve, play));
}

#[test]
fn a_failed_dial_is_retried_until_the_attempts_run_out() {
    let server = Server::bind();
    let mut config = server.config();
    config.backoff.max_attempts = Some(1);
    // Nothing listens on the port any more: every dial is refused.
    drop(server);
    let client = Client::connect(config);
    bounded(async {
        let mut seen = Vec::new();
        while let Some(event) = client.next_event().await {
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
    });
}

#[test]
fn dropping_the_client_on_its_own_executor_closes_normally() {
    let server = Server::bind();
    let executor = smol::Executor::new();
    let client = Client::connect_on(&executor, server.config());
    let serve = async {
        let mut peer = server.accept().await;
        peer.authenticate("alice").await;
        peer.finish_close(1000).await;
    };
    let play = async move {
        assert!(matches!(event(&client).await, Event::Connected { .. }));
        drop(client);
    };
    // The executor keeps running the driver task until the server's script
    // has seen the whole close.
    bounded(executor.run(future::zip(serve, play)));
}

#[test]
fn the_sessions_heartbeat_deadlines_fire_on_real_time() {
    let server = Server::bind();
    let mut config = server.config();
    config.ping_idle = Duration::from_millis(20);
    config.pong_timeout = Duration::from_millis(20);
    config.backoff.max_attempts = Some(0);
    let client = Client::connect(config);
    let serve = async {
        let mut peer = server.accept().await;
        peer.authenticate("alice").await;
        assert_eq!(peer.recv_json().await, json!({"type": "ping"}));
        // No pong: the client must give the connection up by itself.
        peer.expect_end().await;
    };
    let play = async {
        assert!(matches!(event(&client).await, Event::Connected { .. }));
        match event(&client).await {
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
    bounded(future::zip(serve, play));
}

#[test]
fn requests_from_several_threads_each_get_their_own_reply() {
    const CALLERS: usize = 4;
    let server = Server::bind();
    let client = Arc::new(Client::connect(server.config()));
    // The callers start before the server accepts: their requests wait in
    // the session's offline queue until `auth_ack`.
    let callers: Vec<_> = (0..CALLERS)
        .map(|n| {
            let client = Arc::clone(&client);
            thread::spawn(move || {
                let presence = ClientMessage::Presence {
                    id: None,
                    channel: Channel::new(&format!("room-{n}")).unwrap(),
                };
                let reply = bounded(client.request(presence, Duration::from_secs(30)));
                match reply {
                    Ok(ServerMessage::Presence { channel, users, .. }) => {
                        assert_eq!(users, [channel.as_str()]);
                        assert_eq!(channel.as_str(), format!("room-{n}"));
                    }
                    other => panic!("expected a presence reply, got {other:?}"),
                }
            })
        })
        .collect();
    bounded(async {
        let mut peer = server.accept().await;
        peer.authenticate("alice").await;
        for _ in 0..CALLERS {
            let request = peer.recv_json().await;
            // Each reply names the channel asked about as its only user, so
            // a reply routed to the wrong caller is noticed.
            let channel = &request["channel"];
            peer.send_json(json!({"type": "presence", "id": request["id"], "channel": channel, "users": [channel]}))
                .await;
        }
        for caller in callers {
            caller.join().expect("caller");
        }
        future::zip(client.close(), peer.finish_close(1000)).await;
    });
}
