//! The hub's users: one entry per user with its connections' shared id.

use super::*;

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
