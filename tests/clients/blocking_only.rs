//! What only the blocking client offers: asking whether it is connected.

use tether_blocking::Client;
use tether_core::{ClientMessage, CloseCode, Event};

use crate::harness::{TEST_LIMIT, event, together};
use crate::script::Server;

#[test]
fn is_connected_follows_auth_ack_and_the_loss_of_the_connection() {
    tether_testkit::bounded(TEST_LIMIT, || {
        let server = Server::bind();
        let mut config = server.config();
        config.backoff.max_attempts = Some(0);
        let client = Client::connect(config).expect("the client starts");
        // The script has not started: no `auth_ack` can have come.
        assert!(!client.is_connected());
        let serve = || {
            let mut peer = server.accept();
            peer.authenticate("alice");
            assert_eq!(peer.recv_json()["type"], "ping");
            peer.send_close(CloseCode::GOING_AWAY);
            peer.expect_close(CloseCode::GOING_AWAY);
        };
        let play = || {
            assert!(matches!(event(&client), Event::Connected { .. }));
            assert!(client.is_connected());
            client.send(ClientMessage::Ping { id: None }).unwrap();
            match event(&client) {
                Event::Disconnected {
                    reason,
                    will_reconnect,
                } => assert_eq!(
                    (reason.code, will_reconnect),
                    (CloseCode::GOING_AWAY, false)
                ),
                other => panic!("expected Disconnected, got {other:?}"),
            }
            assert!(!client.is_connected());
        };
        together(serve, play);
    });
}
