//! The blocking client against the blocking server: requests, close,
//! final refusals and reconnecting across a server restart.

use std::sync::Arc;
use std::sync::mpsc::channel;
use std::thread;

use tether_blocking::{Client, ClientError};
use tether_core::client::{Event, RequestError};
use tether_core::envelope::{Channel, ClientMessage, ErrorCode, ServerMessage};

use crate::common::*;

/// Every event left until the session is closed for good; fails if the
/// event iterator does not end within `PATIENCE`.
fn remaining_events(client: Client) -> Vec<Event> {
    let client = Arc::new(client);
    let (sender, collected) = channel();
    let reader = Arc::clone(&client);
    thread::spawn(move || sender.send(reader.events().collect::<Vec<_>>()));
    collected
        .recv_timeout(PATIENCE)
        .expect("the events did not end")
}

fn is_connected(event: Event) -> Option<()> {
    matches!(event, Event::Connected { .. }).then_some(())
}

#[test]
fn requests_block_until_their_reply_or_error() {
    let server = TestServer::start(config());
    let (mut bob, _) = ws_auth(server.addr, "bob");
    ws_subscribe(&mut bob, "room");
    let alice = Client::connect(client_config(server.addr, "alice")).unwrap();
    expect_event(&alice, "connected", is_connected);
    assert!(alice.is_connected());

    let presence = ClientMessage::Presence {
        id: None,
        channel: Channel::new("room").unwrap(),
    };
    match alice.request(presence, PATIENCE) {
        Ok(ServerMessage::Presence { users, .. }) => assert_eq!(users, ["bob"]),
        other => panic!("expected a presence reply, got {other:?}"),
    }
    let private = ClientMessage::Subscribe {
        id: None,
        channel: Channel::new("user:bob").unwrap(),
        since: None,
    };
    match alice.request(private, PATIENCE) {
        Err(ClientError::Failed(RequestError::Server { code, .. })) => {
            assert_eq!(code, ErrorCode::Forbidden);
        }
        other => panic!("expected FORBIDDEN, got {other:?}"),
    }
    assert!(matches!(
        alice.publish("not a channel!", "1"),
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        alice.publish("room", "{not json"),
        Err(ClientError::Invalid(_))
    ));
    drop((alice, bob));
    server.stop();
}

#[test]
fn close_is_final_and_the_server_sees_the_client_leave() {
    let server = TestServer::start(config());
    let alice = Client::connect(client_config(server.addr, "alice")).unwrap();
    alice.subscribe("room").unwrap();
    expect_event(&alice, "subscribed", |event| {
        matches!(event, Event::Subscribed { .. }).then_some(())
    });
    let (mut bob, _) = ws_auth(server.addr, "bob");
    ws_subscribe(&mut bob, "room");

    alice.close();
    let leave = ws_recv_type(&mut bob, "leave");
    assert_eq!(leave["user"], "alice");
    assert!(matches!(
        alice.subscribe("room"),
        Err(ClientError::Refused(_))
    ));
    let events = remaining_events(alice);
    match events.last() {
        Some(Event::Disconnected {
            reason,
            will_reconnect: false,
        }) => assert_eq!(reason.code.0, 1000),
        other => panic!("expected a final disconnect, got {other:?}"),
    }
    drop(bob);
    server.stop();
}

#[test]
fn a_rejected_token_is_final() {
    let server = TestServer::start(config());
    let client = Client::connect(client_config(server.addr, "bad")).unwrap();
    let events = remaining_events(client);
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, Event::Reconnecting { .. } | Event::Connected { .. })),
        "{events:?}"
    );
    match events.last() {
        Some(Event::Disconnected {
            reason,
            will_reconnect: false,
        }) => assert_eq!(reason.code.0, 4003),
        other => panic!("expected 4003, got {other:?}"),
    }
    assert_eq!(metric(server.addr, "tether_auth_failures_total"), 1);
    server.stop();
}

#[test]
fn the_client_reconnects_and_resubscribes_when_the_server_comes_back() {
    let first = TestServer::start(config());
    let addr = first.addr;
    let client = Client::connect(client_config(addr, "alice")).unwrap();
    client.subscribe("news").unwrap();
    let first_epoch = expect_event(&client, "subscribed", |event| match event {
        Event::Subscribed {
            epoch, recovered, ..
        } => {
            assert_eq!(recovered, None);
            Some(epoch)
        }
        _ => None,
    });
    first.handle.publish("news", "1").unwrap();
    let offset = expect_event(&client, "message", |event| match event {
        Event::Message { offset, .. } => Some(offset),
        _ => None,
    });
    assert_eq!(offset, 1);

    first.stop();
    let code = expect_event(&client, "disconnect", |event| match event {
        Event::Disconnected {
            reason,
            will_reconnect: true,
        } => Some(reason.code.0),
        _ => None,
    });
    assert_eq!(code, 1001);

    // A new node on the same port: new epochs, an empty history.
    let second = TestServer::start_on(addr, config());
    expect_event(&client, "reconnection", is_connected);
    let (second_epoch, recovered) = expect_event(&client, "resubscription", |event| match event {
        Event::Subscribed {
            epoch, recovered, ..
        } => Some((epoch, recovered)),
        _ => None,
    });
    assert_ne!(second_epoch, first_epoch);
    assert_eq!(recovered, Some(false));
    second.handle.publish("news", "2").unwrap();
    let (payload, offset) = expect_event(&client, "message", |event| match event {
        Event::Message {
            payload, offset, ..
        } => Some((payload.get().to_owned(), offset)),
        _ => None,
    });
    assert_eq!((payload.as_str(), offset), ("2", 1));
    client.close();
    second.stop();
}
