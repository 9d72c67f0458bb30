//! What a channel's local subscribers know of its presence, kept in step
//! with the store although the store's changes and snapshots may reach the
//! node by different paths (Redis pub/sub and a command connection, say).
//!
//! # Theory of operation
//!
//! The store gives every presence change a version greater than every
//! change before it, and tells the version each snapshot reflects. The view
//! is one set of users at one version, shared by all the channel's local
//! subscribers:
//!
//! - A change newer than the view is applied and told; one at or below it
//!   is already in the view and is dropped. So a change that a snapshot
//!   already holds is never told twice, and one after it is never lost.
//! - The first snapshot starts the view. Changes heard before it wait in
//!   `early`, and those newer than the snapshot are applied to it before
//!   the first subscriber is told anything.
//! - A later subscriber is told the view, not its own snapshot: the view is
//!   what every other subscriber knows, and from then on it hears the same
//!   changes they do. A snapshot newer than the view only means that the
//!   changes in between are still on their way.
//! - When the link to the store fails, changes may have been lost: the
//!   view is stale until a refresh snapshot replaces it, and everyone is
//!   told that snapshot. Changes heard meanwhile wait in `early`.
//! - At most [`EARLY_LIMIT`] changes wait. Beyond that the newest version
//!   dropped is remembered, and if the next snapshot is older than it the
//!   hub is asked for another one.
//!
//! A change is always newer than the changes a node heard before it on the
//! same path, and a node follows a channel before it asks for its snapshot,
//! so no change newer than a snapshot can be missed while the link holds.

use std::collections::{BTreeMap, BTreeSet};

/// How many changes wait for a snapshot at most.
pub(super) const EARLY_LIMIT: usize = 1024;

/// The presence a channel's local subscribers were told.
#[derive(Debug, Default)]
pub(super) struct PresenceView {
    users: BTreeSet<String>,
    knowledge: Knowledge,
    /// Changes waiting for a snapshot: version to user and whether joined.
    early: BTreeMap<u64, (String, bool)>,
    /// The newest change dropped from `early` for lack of room.
    dropped: Option<u64>,
    /// A snapshot older than a dropped change was applied: ask for another.
    refresh_wanted: bool,
}

/// How far the view can be trusted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Knowledge {
    /// No snapshot yet.
    #[default]
    None,
    /// Every change up to this version is in the view.
    Current(u64),
    /// The link failed since the last snapshot.
    Stale,
}

impl PresenceView {
    /// A change at `version`: `user` arrived (`joined`) or left. Returns
    /// whether subscribers must be told.
    pub(super) fn change(&mut self, version: u64, user: &str, joined: bool) -> bool {
        match self.knowledge {
            Knowledge::Current(known) if version > known => {
                self.knowledge = Knowledge::Current(version);
                self.apply(user, joined)
            }
            Knowledge::Current(_) => false,
            Knowledge::None | Knowledge::Stale => {
                self.wait(version, user, joined);
                false
            }
        }
    }

    /// A subscriber's own snapshot arrived: the users it must be told.
    pub(super) fn subscriber_snapshot(&mut self, version: u64, users: Vec<String>) -> Vec<String> {
        if self.knowledge == Knowledge::None {
            self.start(version, users);
        }
        self.users()
    }

    /// A refresh snapshot arrived: the users every subscriber must be told,
    /// when it replaces the view.
    pub(super) fn refresh(&mut self, version: u64, users: Vec<String>) -> Option<Vec<String>> {
        if let Knowledge::Current(known) = self.knowledge
            && version <= known
        {
            return None;
        }
        self.start(version, users);
        Some(self.users())
    }

    /// The link to the store failed: changes may be lost until a refresh.
    pub(super) fn link_lost(&mut self) {
        if self.knowledge != Knowledge::None {
            self.knowledge = Knowledge::Stale;
        }
    }

    /// The users present, when the view holds every change the node heard.
    pub(super) fn current(&self) -> Option<Vec<String>> {
        matches!(self.knowledge, Knowledge::Current(_)).then(|| self.users())
    }

    /// Whether the view needs another refresh snapshot; asking clears it.
    pub(super) fn take_refresh_wanted(&mut self) -> bool {
        std::mem::take(&mut self.refresh_wanted)
    }

    fn users(&self) -> Vec<String> {
        self.users.iter().cloned().collect()
    }

    /// Replaces the view with a snapshot at `version`, then applies the
    /// waiting changes newer than it.
    fn start(&mut self, version: u64, users: Vec<String>) {
        self.users = users.into_iter().collect();
        let mut known = version;
        for (at, (user, joined)) in std::mem::take(&mut self.early) {
            if at > known {
                known = at;
                self.apply(&user, joined);
            }
        }
        self.knowledge = Knowledge::Current(known);
        if self.dropped.take().is_some_and(|dropped| dropped > known) {
            self.refresh_wanted = true;
        }
    }

    fn wait(&mut self, version: u64, user: &str, joined: bool) {
        if self.early.len() < EARLY_LIMIT {
            self.early.insert(version, (user.to_owned(), joined));
        } else {
            self.dropped = self.dropped.max(Some(version));
        }
    }

    fn apply(&mut self, user: &str, joined: bool) -> bool {
        if joined {
            self.users.insert(user.to_owned())
        } else {
            self.users.remove(user)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(users: &[&str]) -> Vec<String> {
        users.iter().map(|&user| user.to_owned()).collect()
    }

    #[test]
    fn a_change_the_snapshot_holds_is_not_told_again() {
        let mut view = PresenceView::default();
        assert_eq!(
            view.subscriber_snapshot(7, names(&["ann"])),
            names(&["ann"])
        );
        assert!(!view.change(7, "ann", true));
        assert!(!view.change(5, "bob", false));
        assert!(view.change(8, "bob", true));
        assert_eq!(view.current(), Some(names(&["ann", "bob"])));
    }

    #[test]
    fn changes_heard_before_the_first_snapshot_apply_only_when_newer() {
        let mut view = PresenceView::default();
        assert!(!view.change(3, "ann", true));
        assert!(!view.change(9, "bob", true));
        assert_eq!(view.current(), None);
        assert_eq!(
            view.subscriber_snapshot(5, names(&["ann"])),
            names(&["ann", "bob"])
        );
        assert_eq!(view.current(), Some(names(&["ann", "bob"])));
        assert!(!view.change(9, "bob", true));
        assert!(view.change(10, "ann", false));
    }

    #[test]
    fn a_later_subscriber_is_told_the_view_not_its_own_snapshot() {
        let mut view = PresenceView::default();
        view.subscriber_snapshot(4, names(&["ann"]));
        assert_eq!(
            view.subscriber_snapshot(6, names(&["ann", "bob"])),
            names(&["ann"])
        );
        assert!(view.change(5, "cat", true));
        assert!(view.change(6, "bob", true));
        assert_eq!(view.current(), Some(names(&["ann", "bob", "cat"])));
    }

    #[test]
    fn a_stale_view_waits_for_a_refresh_and_applies_what_followed_it() {
        let mut view = PresenceView::default();
        view.subscriber_snapshot(4, names(&["ann", "bob"]));
        view.link_lost();
        assert_eq!(view.current(), None);
        assert!(!view.change(20, "cat", true));
        assert_eq!(
            view.subscriber_snapshot(19, names(&["ann"])),
            names(&["ann", "bob"])
        );
        assert_eq!(
            view.refresh(19, names(&["ann"])),
            Some(names(&["ann", "cat"]))
        );
        assert_eq!(view.refresh(20, names(&["ann", "cat"])), None);
        assert!(!view.take_refresh_wanted());
    }

    #[test]
    fn a_refresh_newer_than_a_current_view_replaces_it() {
        let mut view = PresenceView::default();
        view.subscriber_snapshot(4, names(&["ann"]));
        assert_eq!(view.refresh(9, names(&["bob"])), Some(names(&["bob"])));
        assert!(!view.change(8, "cat", true));
        assert_eq!(view.current(), Some(names(&["bob"])));
    }

    #[test]
    fn overflowing_changes_ask_for_another_snapshot() {
        let mut view = PresenceView::default();
        let limit = u64::try_from(EARLY_LIMIT).expect("small");
        for version in 1..=limit + 2 {
            view.change(version, &format!("u{version}"), true);
        }
        view.subscriber_snapshot(limit, Vec::new());
        assert!(view.take_refresh_wanted());
        assert!(!view.take_refresh_wanted());
        assert_eq!(view.refresh(limit + 2, names(&["x"])), Some(names(&["x"])));
        assert!(!view.take_refresh_wanted());
    }
}
