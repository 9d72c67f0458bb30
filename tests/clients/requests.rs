//! Requests: each settles with its own reply, the server's error, or the
//! loss of the connection that carried it; a publication instead goes out
//! again after a reconnect, with its idempotency key.

use std::thread;
use std::time::Duration;

use serde_json::json;
use tether_core::{
    Channel, ClientError, ClientMessage, CloseCode, ErrorCode, Event, RequestError, ServerMessage,
};

use crate::harness::{TestClient, event, together};
use crate::script::Server;

fn requests_resolve_with_their_reply_or_error<C: TestClient>() {
    let server = Server::bind();
    let client = C::connect(server.config());
    let serve = || {
        let mut peer = server.accept();
        peer.authenticate("alice");
        let presence = peer.recv_json();
        assert_eq!(presence["type"], "presence");
        peer.send_json(json!({"type": "presence", "id": presence["id"], "channel": "room", "users": ["alice", "bob"]}));
        let forbidden = peer.recv_json();
        assert_eq!(forbidden["channel"], "user:bob");
        peer.send_json(json!({"type": "error", "id": forbidden["id"], "code": "FORBIDDEN", "message": "not yours"}));
        peer.finish_close(CloseCode::NORMAL);
    };
    let play = || {
        assert!(matches!(event(&client), Event::Connected { .. }));
        let presence = ClientMessage::Presence {
            id: None,
            channel: Channel::new("room").unwrap(),
        };
        let reply = client.request(presence, Duration::from_secs(30));
        assert!(
            matches!(&reply, Ok(ServerMessage::Presence { users, .. }) if users == &["alice", "bob"]),
            "{reply:?}"
        );
        let forbidden = ClientMessage::Presence {
            id: None,
            channel: Channel::new("user:bob").unwrap(),
        };
        let reply = client.request(forbidden, Duration::from_secs(30));
        assert_eq!(
            reply,
            Err(ClientError::Request(RequestError::Server {
                code: ErrorCode::Forbidden,
                message: "not yours".into()
            }))
        );
        client.close();
    };
    together(serve, play);
}

fn an_rpc_returns_the_application_s_answer_or_its_refusal<C: TestClient>() {
    let server = Server::bind();
    let client = C::connect(server.config());
    let serve = || {
        let mut peer = server.accept();
        peer.authenticate("alice");
        let call = peer.recv_json();
        assert_eq!(
            (&call["type"], &call["method"], &call["data"]),
            (
                &json!("rpc"),
                &json!("orders.create"),
                &json!({"item": "tea"})
            )
        );
        peer.send_json(json!({"type": "rpc_result", "id": call["id"], "data": {"order": 7}}));
        let unknown = peer.recv_json();
        assert_eq!(unknown["method"], "orders.cancel");
        peer.send_json(json!({"type": "error", "id": unknown["id"], "code": "NOT_FOUND", "message": "unknown method"}));
        peer.finish_close(CloseCode::NORMAL);
    };
    let play = || {
        assert!(matches!(event(&client), Event::Connected { .. }));
        let result = client.rpc("orders.create", r#"{"item": "tea"}"#);
        assert_eq!(
            result.map(|data| data.get().to_owned()),
            Ok(r#"{"order":7}"#.to_owned())
        );
        assert_eq!(
            client
                .rpc("orders.cancel", "7")
                .map(|data| data.get().to_owned()),
            Err(ClientError::Request(RequestError::Server {
                code: ErrorCode::NotFound,
                message: "unknown method".into()
            }))
        );
        client.close();
    };
    together(serve, play);
}

fn a_request_fails_at_once_when_its_connection_drops<C: TestClient>() {
    let server = Server::bind();
    let mut config = server.config();
    config.backoff.max_attempts = Some(0);
    let client = C::connect(config);
    let serve = || {
        let mut peer = server.accept();
        peer.authenticate("alice");
        assert_eq!(peer.recv_json()["type"], "ping");
        drop(peer);
    };
    let play = || {
        assert!(matches!(event(&client), Event::Connected { .. }));
        // A deadline far beyond the test's limit: only the drop can end it.
        let reply = client.request(ClientMessage::Ping { id: None }, Duration::from_secs(3600));
        assert_eq!(reply, Err(ClientError::Request(RequestError::Disconnected)));
        assert!(matches!(
            event(&client),
            Event::Disconnected {
                will_reconnect: false,
                ..
            }
        ));
    };
    together(serve, play);
}

fn requests_from_several_threads_each_get_their_own_reply<C: TestClient>() {
    const CALLERS: usize = 4;
    let server = Server::bind();
    let client = C::connect(server.config());
    let serve = || {
        let mut peer = server.accept();
        peer.authenticate("alice");
        for _ in 0..CALLERS {
            let request = peer.recv_json();
            // Each reply names the channel asked about as its only user, so
            // a reply routed to the wrong caller is noticed.
            let channel = &request["channel"];
            peer.send_json(json!({"type": "presence", "id": request["id"], "channel": channel, "users": [channel]}));
        }
        peer.finish_close(CloseCode::NORMAL);
    };
    let play = || {
        // The callers may start before the server accepts: their requests
        // then wait in the session's offline queue until `auth_ack`.
        thread::scope(|scope| {
            for n in 0..CALLERS {
                let client = &client;
                scope.spawn(move || {
                    let presence = ClientMessage::Presence {
                        id: None,
                        channel: Channel::new(&format!("room-{n}")).unwrap(),
                    };
                    match client.request(presence, Duration::from_secs(30)) {
                        Ok(ServerMessage::Presence { channel, users, .. }) => {
                            assert_eq!(users, [channel.as_str()]);
                            assert_eq!(channel.as_str(), format!("room-{n}"));
                        }
                        other => panic!("expected a presence reply, got {other:?}"),
                    }
                });
            }
        });
        client.close();
    };
    together(serve, play);
}

fn a_publish_is_sent_again_with_its_idempotency_key_after_its_connection_drops<C: TestClient>() {
    let server = Server::bind();
    let client = C::connect(server.config());
    let serve = || {
        let mut first = server.accept();
        first.authenticate("alice");
        let publish = first.recv_json();
        assert!(publish["idempotency_key"].is_string(), "{publish}");
        drop(first);
        let mut second = server.accept();
        second.authenticate("alice");
        assert_eq!(second.recv_json(), publish, "the same key and id");
        second.send_json(json!({"type": "ack", "id": publish["id"], "offset": 7}));
        second.finish_close(CloseCode::NORMAL);
    };
    let play = || {
        assert!(matches!(event(&client), Event::Connected { .. }));
        assert_eq!(client.publish("room", "1"), Ok(7));
        client.close();
    };
    together(serve, play);
}

fn sessions_with_the_default_seed_publish_with_keys_of_their_own<C: TestClient>() {
    let server = Server::bind();
    let mut config = server.config();
    config.seed = 0;
    let tabs = [C::connect(config.clone()), C::connect(config)];
    let serve = || {
        let mut peers = [server.accept(), server.accept()];
        for peer in &mut peers {
            peer.authenticate("alice");
        }
        let mut keys = Vec::new();
        for (offset, peer) in (1..).zip(&mut peers) {
            let publish = peer.recv_json();
            keys.push(publish["idempotency_key"].clone());
            peer.send_json(json!({"type": "ack", "id": publish["id"], "offset": offset}));
        }
        assert_ne!(keys[0], keys[1], "two sessions of one user, two keys");
        for peer in &mut peers {
            peer.finish_close(CloseCode::NORMAL);
        }
    };
    let play = || {
        thread::scope(|scope| {
            for tab in &tabs {
                scope.spawn(move || {
                    assert!(matches!(event(tab), Event::Connected { .. }));
                    assert!(tab.publish("room", "1").is_ok());
                });
            }
        });
        thread::scope(|scope| {
            for tab in &tabs {
                scope.spawn(move || tab.close());
            }
        });
    };
    together(serve, play);
}

client_tests! {
    requests_resolve_with_their_reply_or_error => smol, blocking, tokio;
    an_rpc_returns_the_application_s_answer_or_its_refusal => smol, blocking, tokio;
    a_request_fails_at_once_when_its_connection_drops => smol, blocking, tokio;
    requests_from_several_threads_each_get_their_own_reply => smol, blocking, tokio;
    a_publish_is_sent_again_with_its_idempotency_key_after_its_connection_drops => smol, blocking, tokio;
    sessions_with_the_default_seed_publish_with_keys_of_their_own => smol, blocking, tokio;
}
