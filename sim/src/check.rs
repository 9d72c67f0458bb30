//! The invariants a run is checked against, continuously, from what every
//! client session reports to its application.
//!
//! The checker mirrors, per client and channel, the position the session
//! resumes from (the same rule as the session: a `subscribed` in a new epoch
//! replaces it, one in the same epoch keeps the higher offset, each message
//! advances it), so it knows the `since` of every re-subscription without
//! reading the wire. From that it checks:
//!
//! - offsets strictly increase per channel and epoch on every client;
//! - one `(channel, epoch, offset)` carries the same payload and sender on
//!   every client;
//! - a `subscribed` with `recovered: true` is in the epoch of its `since`,
//!   and every offset after `since` up to the answer's offset was delivered
//!   on that connection before it (no gap is ever called recovered);
//! - a gap in live delivery is reported to the caller, which holds it
//!   against the node's count of dropped messages;
//! - presence views move by deltas that make sense (no `join` of a user
//!   already present, no `leave` of an absent one);
//! - every request is settled exactly once.
//!
//! Convergence (presence equal to the truth, no state left for connections
//! that are gone) is checked by the world at the end of a run, with
//! [`Checker::presence_view`] and [`Checker::unsettled`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use tether_core::Instant;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// When it was seen.
    pub at: Instant,
    /// What was wrong.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.what)
    }
}

/// Per-client mirrors of what each session has seen.
#[derive(Debug, Default)]
pub struct Checker {
    clients: Vec<ClientView>,
    /// `(channel, epoch, offset)` to the payload and sender first seen there.
    content: BTreeMap<(String, String, u64), (String, Option<String>)>,
    violations: Vec<Violation>,
}

#[derive(Debug, Default)]
struct ClientView {
    channels: BTreeMap<String, ChannelView>,
    /// Requests handed out and not settled yet.
    requests: BTreeSet<String>,
    /// Every request ever handed out, to recognise a second settlement.
    settled: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct ChannelView {
    /// The session's resume position, mirrored.
    position: Option<(String, u64)>,
    /// The position at the last `auth_ack`: the `since` of the
    /// re-subscription on this connection.
    since: Option<(String, u64)>,
    /// Offsets delivered on this connection (in the epoch of `since`).
    delivered: BTreeSet<u64>,
    /// Whether the subscription is confirmed on this connection.
    live: bool,
    presence: BTreeSet<String>,
}

impl Checker {
    /// A checker for `clients` clients.
    pub fn new(clients: usize) -> Self {
        Checker {
            clients: (0..clients).map(|_| ClientView::default()).collect(),
            ..Checker::default()
        }
    }

    /// Every violation so far, in the order seen.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Records a violation found outside the checker.
    pub fn report(&mut self, at: Instant, what: String) {
        self.violations.push(Violation { at, what });
    }

    /// The client's session was accepted (`auth_ack`): its re-subscriptions
    /// resume from the positions it has now.
    pub fn connected(&mut self, client: usize) {
        for view in self.clients[client].channels.values_mut() {
            view.since = view.position.clone();
            view.delivered.clear();
            view.live = false;
        }
    }

    /// The client's connection ended: nothing is live any more.
    pub fn disconnected(&mut self, client: usize) {
        for view in self.clients[client].channels.values_mut() {
            view.live = false;
        }
    }

    /// A publication delivered to the application. Returns the number of
    /// offsets skipped since the previous live delivery (a gap), which only
    /// a counted drop may explain.
    pub fn message(
        &mut self,
        at: Instant,
        client: usize,
        channel: &str,
        offset: u64,
        payload: &str,
        sender: Option<&str>,
    ) -> u64 {
        let view = self.clients[client]
            .channels
            .entry(channel.to_owned())
            .or_default();
        let Some((epoch, last)) = view.position.clone() else {
            self.report(
                at,
                format!("client {client}: message {channel}@{offset} before any subscribed"),
            );
            return 0;
        };
        if offset <= last {
            self.report(
                at,
                format!("client {client}: {channel} offset {offset} after {last} (epoch {epoch})"),
            );
            return 0;
        }
        let gap = if view.live { offset - last - 1 } else { 0 };
        view.position = Some((epoch.clone(), offset));
        view.delivered.insert(offset);
        let key = (channel.to_owned(), epoch, offset);
        let content = (payload.to_owned(), sender.map(str::to_owned));
        match self.content.get(&key) {
            Some(seen) if *seen != content => {
                let what = format!(
                    "client {client}: {channel}@{offset} in epoch {} is {content:?}, another client saw {seen:?}",
                    key.1
                );
                self.report(at, what);
            }
            Some(_) => {}
            None => {
                self.content.insert(key, content);
            }
        }
        gap
    }

    /// A subscription was confirmed.
    pub fn subscribed(
        &mut self,
        at: Instant,
        client: usize,
        channel: &str,
        epoch: &str,
        offset: u64,
        recovered: Option<bool>,
    ) {
        let view = self.clients[client]
            .channels
            .entry(channel.to_owned())
            .or_default();
        let mut problem = None;
        if recovered == Some(true) {
            match &view.since {
                Some((since_epoch, _)) if since_epoch != epoch => {
                    problem = Some(format!(
                        "recovered:true in epoch {epoch}, but since was in epoch {since_epoch}"
                    ));
                }
                Some((_, since)) => {
                    let missing: Vec<u64> = (since + 1..=offset)
                        .filter(|o| !view.delivered.contains(o))
                        .collect();
                    if !missing.is_empty() {
                        problem = Some(format!(
                            "recovered:true since {since} up to {offset}, but missing {missing:?}"
                        ));
                    }
                }
                None => problem = Some("recovered:true without a since".to_owned()),
            }
        }
        match &mut view.position {
            Some((known, last)) if known == epoch => *last = (*last).max(offset),
            position => *position = Some((epoch.to_owned(), offset)),
        }
        view.live = true;
        if let Some(problem) = problem {
            self.report(at, format!("client {client}: {channel}: {problem}"));
        }
    }

    /// A presence snapshot replaced the client's view of `channel`.
    pub fn presence(&mut self, client: usize, channel: &str, users: &[String]) {
        let view = self.clients[client]
            .channels
            .entry(channel.to_owned())
            .or_default();
        view.presence = users.iter().cloned().collect();
    }

    /// A presence delta: `joined` true for `join`, false for `leave`.
    pub fn presence_delta(
        &mut self,
        at: Instant,
        client: usize,
        channel: &str,
        user: &str,
        joined: bool,
    ) {
        let view = self.clients[client]
            .channels
            .entry(channel.to_owned())
            .or_default();
        let changed = if joined {
            view.presence.insert(user.to_owned())
        } else {
            view.presence.remove(user)
        };
        if !changed {
            let verb = if joined { "join of" } else { "leave of" };
            let state = if joined { "present" } else { "absent" };
            self.report(
                at,
                format!("client {client}: {channel}: {verb} {user}, who was {state} already"),
            );
        }
    }

    /// The client's view of who is in `channel`, and whether its
    /// subscription there is live.
    pub fn presence_view(&self, client: usize, channel: &str) -> (bool, Vec<String>) {
        self.clients[client]
            .channels
            .get(channel)
            .map_or((false, Vec::new()), |view| {
                (view.live, view.presence.iter().cloned().collect())
            })
    }

    /// The client handed out request `id`.
    pub fn request_issued(&mut self, at: Instant, client: usize, id: &str) {
        let view = &mut self.clients[client];
        if view.settled.contains(id) || !view.requests.insert(id.to_owned()) {
            self.report(at, format!("client {client}: request id {id} issued twice"));
        }
    }

    /// The client's request `id` was settled.
    pub fn request_done(&mut self, at: Instant, client: usize, id: &str) {
        let view = &mut self.clients[client];
        if view.requests.remove(id) {
            view.settled.insert(id.to_owned());
        } else if view.settled.contains(id) {
            self.report(at, format!("client {client}: request {id} settled twice"));
        } else {
            self.report(
                at,
                format!("client {client}: request {id} settled, never issued"),
            );
        }
    }

    /// Requests issued and not settled, over all clients.
    pub fn unsettled(&self) -> usize {
        self.clients.iter().map(|view| view.requests.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Instant = Instant::from_millis(1);

    #[test]
    fn a_recovery_with_a_hole_is_a_violation() {
        let mut checker = Checker::new(1);
        checker.subscribed(T, 0, "c", "e1", 2, None);
        assert_eq!(checker.message(T, 0, "c", 3, "3", None), 0);
        checker.disconnected(0);
        checker.connected(0);
        checker.message(T, 0, "c", 4, "4", None);
        checker.message(T, 0, "c", 6, "6", None);
        assert!(checker.violations().is_empty());
        checker.subscribed(T, 0, "c", "e1", 6, Some(true));
        let violations = checker.violations();
        assert_eq!(violations.len(), 1);
        assert!(
            violations[0].what.contains("missing [5]"),
            "{}",
            violations[0]
        );
    }

    #[test]
    fn a_recovery_across_epochs_and_a_repeated_offset_are_violations() {
        let mut checker = Checker::new(2);
        checker.subscribed(T, 0, "c", "e1", 0, None);
        checker.message(T, 0, "c", 1, "1", Some("ann"));
        checker.message(T, 0, "c", 1, "1", Some("ann"));
        checker.connected(0);
        checker.subscribed(T, 0, "c", "e2", 0, Some(true));
        checker.subscribed(T, 1, "c", "e1", 0, None);
        checker.message(T, 1, "c", 1, "other", Some("ann"));
        let whats: Vec<&str> = checker
            .violations()
            .iter()
            .map(|v| v.what.as_str())
            .collect();
        assert_eq!(whats.len(), 3, "{whats:?}");
        assert!(whats[0].contains("offset 1 after 1"));
        assert!(whats[1].contains("recovered:true in epoch e2"));
        assert!(whats[2].contains("another client saw"));
    }

    #[test]
    fn live_gaps_are_counted_and_replays_are_not() {
        let mut checker = Checker::new(1);
        checker.subscribed(T, 0, "c", "e1", 0, None);
        assert_eq!(checker.message(T, 0, "c", 1, "1", None), 0);
        assert_eq!(checker.message(T, 0, "c", 4, "4", None), 2);
        checker.connected(0);
        assert_eq!(checker.message(T, 0, "c", 9, "9", None), 0, "a replay");
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn presence_and_requests_are_held_to_their_rules() {
        let mut checker = Checker::new(1);
        checker.presence(0, "c", &["ann".to_owned()]);
        checker.presence_delta(T, 0, "c", "bob", true);
        checker.presence_delta(T, 0, "c", "bob", true);
        checker.presence_delta(T, 0, "c", "cat", false);
        assert_eq!(
            checker.presence_view(0, "c"),
            (false, vec!["ann".to_owned(), "bob".to_owned()])
        );
        checker.request_issued(T, 0, "r1");
        checker.request_issued(T, 0, "r2");
        checker.request_done(T, 0, "r1");
        checker.request_done(T, 0, "r1");
        checker.request_done(T, 0, "r9");
        assert_eq!(checker.unsettled(), 1);
        assert_eq!(checker.violations().len(), 4);
    }
}
