//! The hub's users: one entry per user with its connections' shared id,
//! and `max_new_channels_per_user` in virtual time: how many channels new
//! to the node one user may bring into existence per window, by subscribe
//! or publish, whatever connection it uses.

use super::*;

const LIMIT: usize = 3;
const WINDOW: Duration = Duration::from_secs(60);

fn limited(config: ServerConfig) -> Harness {
    Harness::new(ServerConfig {
        max_new_channels_per_user: LIMIT,
        ..config
    })
}

/// The one reply `conn` gets to `text`: `subscribed`, `ack`, or the
/// error's code and id.
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
    let text = format!(r#"{{"type":"subscribe","id":"{name}","channel":"{name}"}}"#);
    answer(h, conn, &text)
}

fn publish(h: &mut Harness, conn: ConnId, name: &str) -> String {
    let text = format!(r#"{{"type":"publish","id":"{name}","channel":"{name}","payload":1}}"#);
    answer(h, conn, &text)
}

fn memory(h: &Harness) -> &MemoryStore {
    match &h.hub.store {
        Store::Memory(memory) => memory,
        Store::External { .. } | Store::Shard { .. } => panic!("memory mode"),
    }
}

#[test]
fn a_user_has_one_entry_and_one_id_for_all_its_connections() {
    let mut h = Harness::new(ServerConfig::dev());
    let first = h.connect(1, "alice");
    let second = h.connect(2, "alice");
    h.connect(3, "bob");
    assert_eq!(h.hub.users.len(), 2);
    assert!(Arc::ptr_eq(
        &h.hub.conns[&first].user,
        &h.hub.conns[&second].user
    ));
    h.disconnect(first);
    assert_eq!(h.hub.users.len(), 2);
    h.disconnect(second);
    assert_eq!(h.hub.users.len(), 1, "alice left with her last connection");
}

#[test]
fn new_channels_beyond_the_bound_are_refused_until_the_window_ends() {
    let mut h = limited(ServerConfig::dev());
    let alice = h.connect(1, "alice");
    assert_eq!(subscribe(&mut h, alice, "a"), "subscribed");
    h.now = T0 + Duration::from_secs(10);
    assert_eq!(subscribe(&mut h, alice, "b"), "subscribed");
    assert_eq!(publish(&mut h, alice, "c"), "ack");
    assert_eq!(subscribe(&mut h, alice, "d"), "LIMIT_EXCEEDED d");
    assert_eq!(publish(&mut h, alice, "e"), "LIMIT_EXCEEDED e");
    assert_eq!(h.hub.channel_count(), 2, "no subscriber of d");
    assert_eq!(memory(&h).channel_count(), 3, "a, b and c; not d, not e");

    // Channels the node holds are not new: subscribers (a), history (c).
    assert_eq!(publish(&mut h, alice, "a"), "ack");
    assert_eq!(subscribe(&mut h, alice, "c"), "subscribed");
    // Another connection of the user shares its bound; another user has
    // one of its own, and what it brings into existence is no longer new.
    let again = h.connect(2, "alice");
    assert_eq!(subscribe(&mut h, again, "d"), "LIMIT_EXCEEDED d");
    let bob = h.connect(3, "bob");
    assert_eq!(subscribe(&mut h, bob, "d"), "subscribed");
    assert_eq!(subscribe(&mut h, again, "d"), "subscribed");

    // The window opened with the first new channel, at T0.
    h.now = T0 + WINDOW - Duration::from_nanos(1);
    assert_eq!(subscribe(&mut h, alice, "f"), "LIMIT_EXCEEDED f");
    h.now = T0 + WINDOW;
    assert_eq!(subscribe(&mut h, alice, "f"), "subscribed");
    assert_eq!(publish(&mut h, alice, "g"), "ack");
    assert_eq!(subscribe(&mut h, alice, "h"), "subscribed");
    assert_eq!(subscribe(&mut h, alice, "i"), "LIMIT_EXCEEDED i");
}

#[test]
fn leaving_does_not_reset_a_users_window_and_its_entry_goes_when_the_window_is_over() {
    let mut h = limited(ServerConfig::dev());
    let alice = h.connect(1, "alice");
    for name in ["a", "b", "c"] {
        assert_eq!(subscribe(&mut h, alice, name), "subscribed");
    }
    h.disconnect(alice);
    assert_eq!(h.hub.users.len(), 1, "kept while its window is open");
    let back = h.connect(2, "alice");
    assert_eq!(subscribe(&mut h, back, "d"), "LIMIT_EXCEEDED d");
    h.disconnect(back);

    // A departure forgets the users whose window is over.
    h.now = T0 + WINDOW - Duration::from_nanos(1);
    let bob = h.connect(3, "bob");
    h.disconnect(bob);
    assert_eq!(h.hub.users.len(), 1, "alice's window is still open");
    h.now = T0 + WINDOW;
    let bob = h.connect(4, "bob");
    h.disconnect(bob);
    assert_eq!(h.hub.users.len(), 0);
}

#[test]
fn a_publish_that_leaves_nothing_on_the_node_brings_no_channel_into_existence() {
    let mut h = Harness::new(ServerConfig {
        max_new_channels_per_user: 1,
        history_size: 0,
        ..ServerConfig::dev()
    });
    let alice = h.connect(1, "alice");
    for _ in 0..3 {
        assert_eq!(publish(&mut h, alice, "a"), "ack");
        assert_eq!(publish(&mut h, alice, "b"), "ack");
    }
    assert_eq!(memory(&h).channel_count(), 0);
    assert_eq!(subscribe(&mut h, alice, "c"), "subscribed");
    // An idempotency record is state: a keyed publish is a new channel.
    let keyed = r#"{"type":"publish","id":"k","channel":"k","payload":1,"idempotency_key":"x"}"#;
    assert_eq!(answer(&mut h, alice, keyed), "LIMIT_EXCEEDED k");
    assert_eq!(subscribe(&mut h, alice, "d"), "LIMIT_EXCEEDED d");
}

#[test]
fn a_users_own_private_channel_is_never_refused_as_new() {
    let mut h = limited(ServerConfig::dev());
    let alice = h.connect(1, "alice");
    for name in ["a", "b", "c"] {
        assert_eq!(subscribe(&mut h, alice, name), "subscribed");
    }
    assert_eq!(subscribe(&mut h, alice, "d"), "LIMIT_EXCEEDED d");
    assert_eq!(subscribe(&mut h, alice, "user:alice"), "subscribed");
}
