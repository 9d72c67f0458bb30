//! How many authenticated WebSocket sessions each user holds on the node,
//! for `max_connections_per_user`.

use std::collections::BTreeMap;

/// Open sessions per user; a user with none has no entry.
#[derive(Debug, Default)]
pub(super) struct UserSessions {
    open: BTreeMap<String, usize>,
}

impl UserSessions {
    /// Whether `user` holds fewer than `limit` sessions, so that one more
    /// may be admitted.
    pub(super) fn has_room(&self, user: &str, limit: usize) -> bool {
        self.open.get(user).copied().unwrap_or(0) < limit
    }

    /// `user` was admitted one more session.
    pub(super) fn admit(&mut self, user: &str) {
        *self.open.entry(user.to_owned()).or_default() += 1;
    }

    /// One of `user`'s sessions ended.
    pub(super) fn leave(&mut self, user: &str) {
        if let Some(open) = self.open.get_mut(user) {
            *open -= 1;
            if *open == 0 {
                self.open.remove(user);
            }
        }
    }
}
