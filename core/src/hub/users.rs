//! The node's users, one entry each, keyed by the user id that all of the
//! user's connections share: the hub holds one copy of an id however many
//! connections its user has, and each connection a reference to it.
//!
//! An entry counts the user's connections on the node. It goes with the
//! user's last connection.

use std::collections::BTreeMap;
use std::sync::Arc;

/// The users with a connection on the node.
#[derive(Debug, Default)]
pub(super) struct Users {
    entries: BTreeMap<Arc<str>, User>,
}

/// What the node keeps of one user.
#[derive(Debug)]
struct User {
    /// The user's authenticated connections on the node.
    connections: u32,
}

impl Users {
    /// How many connections `user` has on the node.
    pub(super) fn connections(&self, user: &str) -> usize {
        self.entries
            .get(user)
            .map_or(0, |entry| entry.connections as usize)
    }

    /// A connection of `user` arrived; returns the id its connections share.
    pub(super) fn arrive(&mut self, user: &str) -> Arc<str> {
        if let Some(entry) = self.entries.get_mut(user) {
            entry.connections += 1;
        }
        if let Some((id, _)) = self.entries.get_key_value(user) {
            return id.clone();
        }
        let id: Arc<str> = Arc::from(user);
        self.entries.insert(id.clone(), User { connections: 1 });
        id
    }

    /// A connection of `user` ended; the user's last takes its entry along.
    pub(super) fn depart(&mut self, user: &str) {
        let Some(entry) = self.entries.get_mut(user) else {
            return;
        };
        entry.connections -= 1;
        if entry.connections == 0 {
            self.entries.remove(user);
        }
    }

    #[cfg(test)]
    /// Users the node keeps an entry for.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}
