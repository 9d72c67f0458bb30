//! A session's life: it connects, subscribes, receives, publishes, and
//! ends for good when the application closes it or the server says so.

use serde_json::json;
use tether_core::wire::Message;
use tether_core::{Channel, ClientError, ClientMessage, CloseCode, Event, SendError};

use crate::harness::{PATIENCE, TestClient, event, together};
use crate::script::Server;

/// The channel most tests use.
fn room() -> Channel {
    Channel::new("room").unwrap()
}

fn subscribes_receives_publishes_and_closes<C: TestClient>() {
    let server = Server::bind();
    let client = C::connect(server.config());
    let serve = || {
        let mut peer = server.accept();
        peer.authenticate("alice");
        let subscribe = peer.recv_json();
        assert_eq!(subscribe["type"], "subscribe");
        assert_eq!(subscribe["channel"], "room");
        assert!(subscribe.get("since").is_none(), "{subscribe}");
        let id = &subscribe["id"];
        peer.send_json(
            json!({"type": "subscribed", "id": id, "channel": "room", "epoch": "e1", "offset": 0}),
        );
        peer.send_json(json!({"type": "presence", "channel": "room", "users": ["alice"]}));
        peer.send_json(json!({"type": "message", "channel": "room", "payload": {"n": 1}, "sender": "bob", "offset": 1}));
        let publish = peer.recv_json();
        assert_eq!(publish["type"], "publish");
        assert_eq!(publish["payload"], json!({"n": 2}));
        peer.send_json(json!({"type": "ack", "id": publish["id"], "offset": 2}));
        peer.finish_close(CloseCode::NORMAL);
    };
    let play = || {
        client.subscribe("room").unwrap();
        assert!(matches!(event(&client), Event::Connected { user, .. } if user == "alice"));
        match event(&client) {
            Event::Subscribed {
                channel,
                epoch,
                offset,
                recovered,
                data,
            } => assert_eq!(
                (channel, epoch, offset, recovered, data),
                (room(), "e1".into(), 0, None, None)
            ),
            other => panic!("expected Subscribed, got {other:?}"),
        }
        assert!(matches!(event(&client), Event::Presence { users, .. } if users == ["alice"]));
        match event(&client) {
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
        assert_eq!(client.publish("room", r#"{"n": 2}"#), Ok(2));
        client.close();
        match event(&client) {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => assert_eq!((reason.code, will_reconnect), (CloseCode::NORMAL, false)),
            other => panic!("expected Disconnected, got {other:?}"),
        }
        assert!(client.next_or_end().is_none());
        assert_eq!(
            client.subscribe("room"),
            Err(ClientError::Refused(SendError::Closed))
        );
    };
    together(serve, play);
}

fn a_subscription_the_application_allowed_with_data_hands_it_over<C: TestClient>() {
    let server = Server::bind();
    let client = C::connect(server.config());
    let serve = || {
        let mut peer = server.accept();
        peer.authenticate("alice");
        let subscribe = peer.recv_json();
        peer.send_json(json!({
            "type": "subscribed", "id": subscribe["id"], "channel": "app:room",
            "epoch": "e1", "offset": 0, "data": {"welcome": "alice"},
        }));
        peer.finish_close(CloseCode::NORMAL);
    };
    let play = || {
        client.subscribe("app:room").unwrap();
        assert!(matches!(event(&client), Event::Connected { .. }));
        match event(&client) {
            Event::Subscribed { channel, data, .. } => assert_eq!(
                (channel.as_str(), data.as_deref()),
                ("app:room", Some(r#"{"welcome":"alice"}"#))
            ),
            other => panic!("expected Subscribed, got {other:?}"),
        }
        client.close();
    };
    together(serve, play);
}

fn close_is_final_and_refuses_every_later_command<C: TestClient>() {
    let server = Server::bind();
    let client = C::connect(server.config());
    let serve = || {
        let mut peer = server.accept();
        peer.authenticate("alice");
        peer.finish_close(CloseCode::NORMAL);
    };
    let play = || {
        assert!(matches!(event(&client), Event::Connected { .. }));
        client.close();
        assert!(matches!(
            event(&client),
            Event::Disconnected {
                will_reconnect: false,
                ..
            }
        ));
        assert!(client.next_or_end().is_none());
        // A second close has nothing to wait for.
        client.close();
        let closed = ClientError::Refused(SendError::Closed);
        assert_eq!(client.subscribe("room"), Err(closed.clone()));
        assert_eq!(client.unsubscribe("room"), Err(closed.clone()));
        assert_eq!(client.publish("room", "1"), Err(closed.clone()));
        let ping = ClientMessage::Ping { id: None };
        assert_eq!(client.request(ping.clone(), PATIENCE), Err(closed.clone()));
        assert_eq!(client.send(ping), Err(closed));
    };
    together(serve, play);
    assert!(!server.has_pending_connection(), "the client dialed again");
}

fn a_final_close_code_ends_the_session_without_a_redial<C: TestClient>() {
    let server = Server::bind();
    let client = C::connect(server.config());
    let serve = || {
        let mut peer = server.accept();
        assert_eq!(peer.recv_json()["type"], "auth");
        peer.send_close(CloseCode::FORBIDDEN);
        match peer.recv() {
            Some(Message::Close(Some((code, _)))) => assert_eq!(code, CloseCode::FORBIDDEN),
            other => panic!("expected the echoed close frame, got {other:?}"),
        }
        peer.expect_end();
    };
    let play = || {
        match event(&client) {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => assert_eq!((reason.code, will_reconnect), (CloseCode::FORBIDDEN, false)),
            other => panic!("expected Disconnected, got {other:?}"),
        }
        // The stream ends when the session is closed for good: nothing is
        // left that could dial again.
        assert!(client.next_or_end().is_none());
        assert_eq!(
            client.publish("room", "1"),
            Err(ClientError::Refused(SendError::Closed))
        );
    };
    together(serve, play);
    assert!(!server.has_pending_connection(), "the client dialed again");
}

fn invalid_channels_methods_and_payloads_are_refused_before_anything_is_sent<C: TestClient>() {
    let server = Server::bind();
    let client = C::connect(server.config());
    let serve = || {
        let mut peer = server.accept();
        peer.authenticate("alice");
        // The refused calls sent nothing: the ping that followed them is
        // the first message after `auth`.
        assert_eq!(peer.recv_json(), json!({"type": "ping"}));
        peer.finish_close(CloseCode::NORMAL);
    };
    let play = || {
        assert!(matches!(event(&client), Event::Connected { .. }));
        let invalid_channel = |result| matches!(result, Err(ClientError::InvalidChannel(_)));
        assert!(invalid_channel(client.subscribe("not a channel!")));
        assert!(invalid_channel(client.unsubscribe("")));
        assert!(invalid_channel(
            client.publish("not a channel!", "1").map(drop)
        ));
        assert!(matches!(
            client.publish("room", "{not json"),
            Err(ClientError::InvalidPayload(_))
        ));
        assert_eq!(
            client.rpc("no spaces", "1").unwrap_err(),
            ClientError::InvalidMethod("no spaces".into())
        );
        assert!(matches!(
            client.rpc("m", "{not json"),
            Err(ClientError::InvalidPayload(_))
        ));
        client.send(ClientMessage::Ping { id: None }).unwrap();
        client.close();
    };
    together(serve, play);
}

client_tests! {
    subscribes_receives_publishes_and_closes => smol, blocking, tokio;
    a_subscription_the_application_allowed_with_data_hands_it_over => smol, blocking, tokio;
    close_is_final_and_refuses_every_later_command => smol, blocking, tokio;
    a_final_close_code_ends_the_session_without_a_redial => smol, blocking, tokio;
    invalid_channels_methods_and_payloads_are_refused_before_anything_is_sent => smol, blocking, tokio;
}
