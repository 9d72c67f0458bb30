//! Requests: each settles with its own reply, the server's error, or the
//! loss of the connection that carried it.

use std::thread;
use std::time::Duration;

use serde_json::json;
use tether_core::client::{Event, RequestError};
use tether_core::close::CloseCode;
use tether_core::envelope::{Channel, ClientMessage, ErrorCode, ServerMessage};

use crate::harness::{Failure, TestClient, event, together};
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
            Err(Failure::Request(RequestError::Server {
                code: ErrorCode::Forbidden,
                message: "not yours".into()
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
        assert_eq!(reply, Err(Failure::Request(RequestError::Disconnected)));
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

client_tests! {
    requests_resolve_with_their_reply_or_error => smol, blocking;
    a_request_fails_at_once_when_its_connection_drops => smol, blocking;
    requests_from_several_threads_each_get_their_own_reply => smol, blocking;
}
