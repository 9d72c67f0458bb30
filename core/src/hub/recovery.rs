//! How the hub keeps its channels whole across a failing link to the
//! store: catch-ups from the last publication delivered, presence restated
//! and refreshed, and requests answered `UNAVAILABLE` when their answer is
//! lost.

use std::collections::BTreeMap;

use super::local::LocalChannel;
use super::waiting::Waiter;
use super::{
    ApiAnswer, Hub, Member, Outbox, Refusal, Store, StoreRequest, UNAVAILABLE, error_frame,
};
use crate::envelope::{Channel, ErrorCode, Position};
use crate::time::Instant;

impl Hub {
    /// Asks the store for the gap of `channel` after `gap`, if any.
    pub(super) fn catch_up(
        &mut self,
        now: Instant,
        channel: Channel,
        gap: Option<Position>,
        outbox: &mut impl Outbox,
    ) {
        if let Some(since) = gap {
            self.request(now, StoreRequest::CatchUp { channel, since }, outbox);
        }
    }

    /// Every channel, user and connection count of this node.
    fn members(&self) -> Vec<Member> {
        let mut counts: BTreeMap<(&Channel, &str), u32> = BTreeMap::new();
        for state in self.conns.values() {
            for channel in &state.channels {
                *counts.entry((channel, &state.user)).or_insert(0) += 1;
            }
        }
        counts
            .into_iter()
            .map(|((channel, user), connections)| Member {
                channel: channel.clone(),
                user: user.to_owned(),
                connections,
            })
            .collect()
    }

    /// The link is up: renew the lease, restate presence, follow every
    /// local channel again and catch each one up.
    pub(super) fn on_link_up(&mut self, now: Instant, outbox: &mut impl Outbox) {
        let Some(link) = self.link_mut() else {
            return;
        };
        if !link.handle_up(now) {
            return;
        }
        let lease = link.lease();
        // Follow first, so that the departures the lease renewal announces
        // (and any presence change published from now on) reach this node.
        let channels: Vec<Channel> = self.channels.keys().cloned().collect();
        for channel in &channels {
            let follow = StoreRequest::Follow {
                channel: channel.clone(),
            };
            self.request(now, follow, outbox);
            let gap = self
                .channels
                .get_mut(channel)
                .and_then(LocalChannel::resume);
            self.catch_up(now, channel.clone(), gap, outbox);
        }
        let node = self.node_stats;
        self.request(now, StoreRequest::Lease { lease, node }, outbox);
        let members = self.members();
        self.request(now, StoreRequest::Rejoin { members }, outbox);
        // Catch-up covers publications only: presence changes missed during
        // the outage reach the subscribers as a fresh snapshot.
        for channel in channels {
            self.refresh_presence(now, channel, outbox);
        }
    }

    /// The store refused a request while its link stayed up: its asker is
    /// answered `UNAVAILABLE` (a subscription that was not answered is
    /// undone), and what the refusal may have left behind in the store
    /// (presence, a catch-up, a fresh snapshot) is restated once the store
    /// grants the next lease, which shows that it takes writes again.
    pub(super) fn on_refusal(&mut self, now: Instant, refusal: Refusal, outbox: &mut impl Outbox) {
        self.refusals += 1;
        let ticket = match refusal {
            Refusal::Ticket(ticket) => ticket,
            Refusal::CatchUp(channel) => {
                if let Some(local) = self.channels.get_mut(&channel) {
                    local.catch_up_refused();
                }
                self.restate_wanted = true;
                return;
            }
            Refusal::Unanswered => {
                self.restate_wanted = true;
                return;
            }
        };
        let (conn, id) = match self.waiting.remove(ticket) {
            Some(Waiter::Conn { conn, id }) => (conn, id),
            Some(Waiter::Subscribe {
                conn, id, channel, ..
            }) => {
                let pending = self
                    .channels
                    .get(&channel)
                    .is_some_and(|local| local.is_pending(conn));
                let user = self.conns.get_mut(&conn).and_then(|state| {
                    (pending && state.channels.remove(&channel)).then(|| state.user.clone())
                });
                if let Some(user) = user {
                    self.leave(now, channel, conn, &user, outbox);
                }
                (conn, id)
            }
            Some(Waiter::Api) => {
                return self.api_answers.push_back((ticket, ApiAnswer::Unavailable));
            }
            Some(Waiter::Refresh) => {
                self.restate_wanted = true;
                return;
            }
            None => return,
        };
        let error = error_frame(id, ErrorCode::Unavailable, UNAVAILABLE);
        self.fulfil(now, conn, ticket, vec![error], outbox);
    }

    /// The store granted the node's presence lease: a lapsed lease, or a
    /// refusal since the last grant, has the node restate its presence, and
    /// a refusal its channels too.
    pub(super) fn on_leased(&mut self, now: Instant, lapsed: bool, outbox: &mut impl Outbox) {
        let restate = std::mem::take(&mut self.restate_wanted);
        if (lapsed || restate) && self.is_store_up() {
            let members = self.members();
            self.request(now, StoreRequest::Rejoin { members }, outbox);
        }
        if restate && self.is_store_up() {
            self.restate_channels(now, outbox);
        }
    }

    /// Catches every local channel up from what the node delivered and
    /// refreshes its subscribers' presence.
    fn restate_channels(&mut self, now: Instant, outbox: &mut impl Outbox) {
        let channels: Vec<Channel> = self.channels.keys().cloned().collect();
        for channel in channels {
            let gap = self
                .channels
                .get_mut(&channel)
                .and_then(LocalChannel::resume);
            self.catch_up(now, channel.clone(), gap, outbox);
            self.refresh_presence(now, channel, outbox);
        }
    }

    /// Asks the store for a presence snapshot of `channel` for all its local
    /// subscribers.
    pub(super) fn refresh_presence(
        &mut self,
        now: Instant,
        channel: Channel,
        outbox: &mut impl Outbox,
    ) {
        let ticket = self.waiting.issue(Waiter::Refresh);
        self.request(now, StoreRequest::Presence { ticket, channel }, outbox);
    }

    /// Asks for another snapshot when the channel's presence view lost
    /// changes (see module `presence`).
    pub(super) fn refresh_presence_if_wanted(
        &mut self,
        now: Instant,
        channel: Channel,
        outbox: &mut impl Outbox,
    ) {
        let wanted = self
            .channels
            .get_mut(&channel)
            .is_some_and(|local| local.take_presence_refresh_wanted());
        if wanted && self.is_store_up() {
            self.refresh_presence(now, channel, outbox);
        }
    }

    /// The link failed: every request waiting for an answer is answered
    /// `UNAVAILABLE` (a subscription that was not answered is undone), and
    /// requests not yet carried out are dropped.
    pub(super) fn on_link_down(&mut self, now: Instant, outbox: &mut impl Outbox) {
        let Some(link) = self.link_mut() else {
            return;
        };
        if !link.handle_down(now) {
            return;
        }
        if let Store::External { requests, .. } | Store::Shard { requests, .. } = &mut self.store {
            requests.clear();
        }
        for local in self.channels.values_mut() {
            local.link_lost();
        }
        for (ticket, waiter) in self.waiting.take_all() {
            let (conn, id) = match waiter {
                Waiter::Api => {
                    self.api_answers.push_back((ticket, ApiAnswer::Unavailable));
                    continue;
                }
                // The next link up asks for a fresh snapshot again.
                Waiter::Refresh => continue,
                Waiter::Conn { conn, id } => (conn, id),
                Waiter::Subscribe {
                    conn, id, channel, ..
                } => {
                    let pending = self
                        .channels
                        .get(&channel)
                        .is_some_and(|local| local.is_pending(conn));
                    if pending {
                        self.remove_subscriber(&channel, conn);
                        if let Some(state) = self.conns.get_mut(&conn) {
                            state.channels.remove(&channel);
                        }
                    }
                    (conn, id)
                }
            };
            let error = error_frame(id, ErrorCode::Unavailable, UNAVAILABLE);
            self.fulfil(now, conn, ticket, vec![error], outbox);
        }
    }
}
