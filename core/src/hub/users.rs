//! The node's users, one entry each, keyed by the user id that all of the
//! user's connections share: the hub holds one copy of an id however many
//! connections its user has, and each connection a reference to it.
//!
//! An entry counts the user's connections on the node
//! (`max_connections_per_user`) and the channels new to the node it
//! brought into existence in its current window
//! (`max_new_channels_per_user`). A window is a fixed minute, opened by
//! the first new channel after the previous window ended; it is a count
//! and an instant, not the channels' names, so an entry is the same few
//! bytes whatever the user does.
//!
//! An entry goes with the user's last connection, unless its window is
//! still open: leaving and coming back must not reset the bound. Such a
//! departure waits in `departed` until a minute after it, when the window
//! it left open is over for sure; every departure first forgets the users
//! whose time came and who did not come back, so what departed users keep
//! is bounded by the departures of one minute.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::time::Instant;

/// How long a window of new channels lasts.
const NEW_CHANNEL_WINDOW: Duration = Duration::from_secs(60);

/// The users with a connection on the node, or a window still open.
#[derive(Debug, Default)]
pub(super) struct Users {
    entries: BTreeMap<Arc<str>, User>,
    /// Users whose last connection went while their window was open, with
    /// the instant it went, oldest first.
    departed: VecDeque<(Instant, Arc<str>)>,
}

/// What the node keeps of one user.
#[derive(Debug)]
struct User {
    /// The user's authenticated connections on the node.
    connections: u32,
    /// Channels new to the node the user brought into existence in the
    /// window that opened at `window`; 0 when no window is open.
    created: u32,
    window: Instant,
}

impl User {
    fn window_open(&self, now: Instant) -> bool {
        self.created > 0 && now < self.window + NEW_CHANNEL_WINDOW
    }
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
        let entry = User {
            connections: 1,
            created: 0,
            window: Instant::ZERO,
        };
        self.entries.insert(id.clone(), entry);
        id
    }

    /// A connection of `user` ended at `now`. The user's last takes its
    /// entry along, or leaves it until its window is over.
    pub(super) fn depart(&mut self, now: Instant, user: &Arc<str>) {
        self.forget_departed(now);
        let Some(entry) = self.entries.get_mut(&**user) else {
            return;
        };
        entry.connections -= 1;
        if entry.connections > 0 {
            return;
        }
        if entry.window_open(now) {
            self.departed.push_back((now, user.clone()));
        } else {
            self.entries.remove(&**user);
        }
    }

    /// Counts one channel new to the node that `user` brings into
    /// existence at `now` and returns `true`; or returns `false`, counting
    /// nothing, when the user brought `limit` already in its current
    /// window.
    pub(super) fn create_channel(&mut self, now: Instant, user: &str, limit: usize) -> bool {
        let Some(entry) = self.entries.get_mut(user) else {
            return true;
        };
        if !entry.window_open(now) {
            entry.window = now;
            entry.created = 0;
        }
        if entry.created as usize >= limit {
            return false;
        }
        entry.created = entry.created.saturating_add(1);
        true
    }

    /// Forgets the users who departed a window ago and have no connection
    /// and no open window now.
    fn forget_departed(&mut self, now: Instant) {
        while let Some((at, _)) = self.departed.front()
            && *at + NEW_CHANNEL_WINDOW <= now
        {
            let Some((_, user)) = self.departed.pop_front() else {
                return;
            };
            let idle = self
                .entries
                .get(&*user)
                .is_some_and(|entry| entry.connections == 0 && !entry.window_open(now));
            if idle {
                self.entries.remove(&*user);
            }
        }
    }

    #[cfg(test)]
    /// Users the node keeps an entry for.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}
