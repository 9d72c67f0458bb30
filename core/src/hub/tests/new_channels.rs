//! `max_new_channels_per_user` in virtual time: how many channels new to
//! the node one user may bring into existence per minute, by subscribe or
//! publish, whatever connection it uses.

use super::*;

const LIMIT: usize = 3;

fn limited() -> Harness {
    Harness::new(ServerConfig {
        max_new_channels_per_user: LIMIT,
        ..ServerConfig::default()
    })
}

/// The reply `conn` gets to `text`, among what it receives: `subscribed`,
/// `ack`, or the error's code and id.
fn answer(h: &mut Harness, conn: ConnId, text: &str) -> String {
    h.send(conn, text);
    let replies: Vec<String> = h
        .take_for(conn)
        .into_iter()
        .filter_map(|message| match message {
            ServerMessage::Subscribed { .. } => Some("subscribed".to_owned()),
            ServerMessage::Ack { .. } => Some("ack".to_owned()),
            ServerMessage::Error { id, code, .. } => Some(format!(
                "{} {}",
                code.as_str(),
                id.as_ref().map_or("", |id| id.as_str())
            )),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 1, "{replies:?}");
    replies[0].clone()
}

fn subscribe(h: &mut Harness, conn: ConnId, name: &str) -> String {
    answer(
        h,
        conn,
        &format!(r#"{{"type":"subscribe","id":"{name}","channel":"{name}"}}"#),
    )
}

fn publish(h: &mut Harness, conn: ConnId, name: &str) -> String {
    answer(
        h,
        conn,
        &format!(r#"{{"type":"publish","id":"{name}","channel":"{name}","payload":1}}"#),
    )
}

#[test]
fn new_channels_beyond_the_bound_are_refused_until_the_minute_is_over() {
    let mut h = limited();
    let alice = h.connect(1, "alice");
    assert_eq!(subscribe(&mut h, alice, "a"), "subscribed");
    assert_eq!(subscribe(&mut h, alice, "b"), "subscribed");
    assert_eq!(publish(&mut h, alice, "c"), "ack");
    assert_eq!(subscribe(&mut h, alice, "d"), "RATE_LIMITED d");
    assert_eq!(publish(&mut h, alice, "e"), "RATE_LIMITED e");
    assert_eq!(h.hub.channel_count(), 2, "no subscribers of d");
    let Store::Memory(memory) = &h.hub.store else {
        panic!("memory mode");
    };
    assert_eq!(memory.channel_count(), 3, "a, b and c; not d, not e");

    // Channels the node holds state for are not new: subscribers (a),
    // history (c).
    assert_eq!(publish(&mut h, alice, "a"), "ack");
    assert_eq!(subscribe(&mut h, alice, "c"), "subscribed");
    // Another connection of the same user shares the bound; another user
    // has one of its own.
    let again = h.connect(2, "alice");
    assert_eq!(subscribe(&mut h, again, "d"), "RATE_LIMITED d");
    let bob = h.connect(3, "bob");
    assert_eq!(subscribe(&mut h, bob, "d"), "subscribed");
    assert_eq!(
        subscribe(&mut h, alice, "d"),
        "subscribed",
        "d is not new now"
    );

    h.now = T0 + Duration::from_secs(60) - Duration::from_nanos(1);
    assert_eq!(subscribe(&mut h, alice, "f"), "RATE_LIMITED f");
    h.now = T0 + Duration::from_secs(60);
    assert_eq!(subscribe(&mut h, alice, "f"), "subscribed");
}

#[test]
fn leaving_does_not_reset_a_users_bound() {
    let mut h = limited();
    let alice = h.connect(1, "alice");
    for name in ["a", "b", "c"] {
        assert_eq!(subscribe(&mut h, alice, name), "subscribed");
    }
    h.disconnect(alice);
    let back = h.connect(2, "alice");
    assert_eq!(subscribe(&mut h, back, "d"), "RATE_LIMITED d");
}

#[test]
fn a_channel_counted_once_in_a_window_counts_nothing_again() {
    let mut h = Harness::new(ServerConfig {
        max_new_channels_per_user: 1,
        history_size: 0,
        ..ServerConfig::default()
    });
    let alice = h.connect(1, "alice");
    assert_eq!(publish(&mut h, alice, "a"), "ack");
    assert_eq!(
        publish(&mut h, alice, "a"),
        "ack",
        "a holds nothing, yet counted"
    );
    assert_eq!(publish(&mut h, alice, "b"), "RATE_LIMITED b");
}
