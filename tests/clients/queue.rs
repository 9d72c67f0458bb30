//! What a client sends while it is not connected: tracked channels and the
//! offline queue, and what goes out after `auth_ack`.

use serde_json::json;
use tether_core::{Channel, ClientError, ClientMessage, CloseCode, Event, SendError};

use crate::harness::{PATIENCE, TestClient, event, together};
use crate::script::Server;

/// A `presence` request for `channel` without an id.
fn presence(channel: &str) -> ClientMessage {
    ClientMessage::Presence {
        id: None,
        channel: Channel::new(channel).unwrap(),
    }
}

fn subscriptions_then_the_offline_queue_go_out_after_auth_ack<C: TestClient>() {
    let server = Server::bind();
    let client = C::connect(server.config());
    // The server has not accepted yet, so no `auth_ack` can have arrived:
    // all of this waits for the connection.
    client.subscribe("b").unwrap();
    client.subscribe("a").unwrap();
    client.subscribe("c").unwrap();
    client.unsubscribe("c").unwrap();
    client.send(presence("q1")).unwrap();
    client.send(ClientMessage::Ping { id: None }).unwrap();
    let serve = || {
        let mut peer = server.accept();
        peer.authenticate("alice");
        // Subscriptions in channel name order, then the queue, oldest first.
        for channel in ["a", "b"] {
            let subscribe = peer.recv_json();
            assert_eq!(
                (&subscribe["type"], &subscribe["channel"]),
                (&json!("subscribe"), &json!(channel)),
                "{subscribe}"
            );
            peer.send_json(json!({"type": "subscribed", "id": subscribe["id"], "channel": channel, "epoch": "e1", "offset": 0}));
        }
        assert_eq!(
            peer.recv_json(),
            json!({"type": "presence", "channel": "q1"})
        );
        assert_eq!(peer.recv_json(), json!({"type": "ping"}));
        peer.finish_close(CloseCode::NORMAL);
    };
    let play = || {
        assert!(matches!(event(&client), Event::Connected { .. }));
        for expected in ["a", "b"] {
            assert!(
                matches!(event(&client), Event::Subscribed { channel, .. } if channel.as_str() == expected)
            );
        }
        client.close();
    };
    together(serve, play);
}

fn past_the_offline_bound_sends_and_requests_are_refused<C: TestClient>() {
    let server = Server::bind();
    let mut config = server.config();
    config.offline_queue = 2;
    let client = C::connect(config);
    // Not yet accepted: every message waits in the queue, which holds two.
    client.send(presence("q1")).unwrap();
    client.send(presence("q2")).unwrap();
    let full = ClientError::Refused(SendError::QueueFull);
    assert_eq!(client.send(presence("q3")), Err(full.clone()));
    assert_eq!(client.request(presence("q4"), PATIENCE), Err(full));
    let serve = || {
        let mut peer = server.accept();
        peer.authenticate("alice");
        for channel in ["q1", "q2"] {
            assert_eq!(
                peer.recv_json(),
                json!({"type": "presence", "channel": channel})
            );
        }
        peer.finish_close(CloseCode::NORMAL);
    };
    let play = || {
        assert!(matches!(event(&client), Event::Connected { .. }));
        client.close();
    };
    together(serve, play);
}

fn an_unsubscribed_channel_is_not_resubscribed_after_a_reconnect<C: TestClient>() {
    let server = Server::bind();
    let client = C::connect(server.config());
    let serve = || {
        let mut first = server.accept();
        first.authenticate("alice");
        let subscribe = first.recv_json();
        first.send_json(json!({"type": "subscribed", "id": subscribe["id"], "channel": "room", "epoch": "e1", "offset": 0}));
        assert_eq!(
            first.recv_json(),
            json!({"type": "unsubscribe", "channel": "room"})
        );
        drop(first);
        let mut second = server.accept();
        second.authenticate("alice");
        // No `subscribe` comes first: the ping sent after `Connected` does.
        assert_eq!(second.recv_json(), json!({"type": "ping"}));
        second.finish_close(CloseCode::NORMAL);
    };
    let play = || {
        client.subscribe("room").unwrap();
        assert!(matches!(event(&client), Event::Connected { .. }));
        assert!(matches!(event(&client), Event::Subscribed { .. }));
        client.unsubscribe("room").unwrap();
        assert!(matches!(
            event(&client),
            Event::Disconnected {
                will_reconnect: true,
                ..
            }
        ));
        assert!(matches!(event(&client), Event::Reconnecting { .. }));
        assert!(matches!(event(&client), Event::Connected { .. }));
        client.send(ClientMessage::Ping { id: None }).unwrap();
        client.close();
    };
    together(serve, play);
}

client_tests! {
    subscriptions_then_the_offline_queue_go_out_after_auth_ack => smol, blocking, tokio;
    past_the_offline_bound_sends_and_requests_are_refused => smol, blocking, tokio;
    an_unsubscribed_channel_is_not_resubscribed_after_a_reconnect => smol, blocking, tokio;
}
