//! One channel's subscribers on this node, and the order in which the node
//! hands them the channel's publications.
//!
//! # Theory of operation
//!
//! The store numbers each channel's publications within an epoch; every
//! subscriber must receive them once each, in offset order, without a gap
//! the history could fill. With the store inside the node that is simply
//! the order of arrival. With a shared store it is not: publications and
//! the answers to this node's requests travel by different paths (Redis
//! pub/sub and a command connection, say), and a failing link loses
//! publications. So the order is rebuilt here from the offsets alone, and
//! the adapter needs no ordering logic of its own.
//!
//! - `position` is the epoch and offset through which the node has handed
//!   out the channel. A publication at the next offset is delivered, then
//!   any kept in `ahead` that follow it; one further on is kept in `ahead`
//!   and the node asks the store for the gap ([`StoreRequest::CatchUp`],
//!   one at a time); one at or below `position` was delivered already; one
//!   of another epoch means the history was lost, and the catch-up tells
//!   the new epoch.
//! - A subscriber is told an offset N by its `subscribed` answer and must
//!   receive exactly the publications after N. When the node has delivered
//!   less than N, the subscriber waits in `starting` until the node reaches
//!   N (and the node asks for the gap, in case it went missing). When the
//!   node has delivered more, a subscriber without a replay is told the
//!   node's offset instead, and one whose replay ends at N asks the store
//!   again: a later answer covers what the node delivered meanwhile.
//! - A catch-up in the same epoch delivers what the node missed. One that
//!   the history cannot cover tells every subscriber, with an unsolicited
//!   `subscribed` carrying `"recovered":false` and the new offset, that
//!   publications were lost (section 11 of PROTOCOL.md); a new epoch is
//!   announced the same way at offset 0 and then caught up from its start,
//!   so whatever the new epoch's history holds is still delivered.
//!
//! [`StoreRequest::CatchUp`]: super::StoreRequest::CatchUp

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::presence::PresenceView;
use super::{Outbox, frame_of};
use crate::envelope::{Channel, Position, ServerMessage};
use crate::ids::ConnId;
use crate::queue::CoalesceKey;

/// The local subscribers of a channel and the channel's delivery order.
#[derive(Debug)]
pub(super) struct LocalChannel {
    key: CoalesceKey,
    latest_only: bool,
    /// Subscribers that receive publications.
    active: BTreeSet<ConnId>,
    /// Subscribers waiting for their `subscribed` answer.
    pending: BTreeSet<ConnId>,
    /// Answered subscribers waiting for the node to reach their offset.
    starting: BTreeMap<ConnId, u64>,
    /// What the node has delivered; `None` before the first answer.
    position: Option<Position>,
    /// Publications of epoch `ahead_epoch` not yet deliverable, by offset:
    /// beyond a gap, or of an epoch the node has not caught up with yet.
    ahead: BTreeMap<u64, Bytes>,
    ahead_epoch: String,
    /// A catch-up is out.
    catching_up: bool,
    /// The store is known to be ahead of `position`: ask it.
    behind: bool,
    /// The presence this node's subscribers of the channel were told.
    presence: PresenceView,
}

/// What to do with a subscriber's `subscribed` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SubscriberAdmission {
    /// Send the answer, telling this offset.
    Announce(u64),
    /// Ask the store again: the answer cannot be reconciled with what the
    /// node delivered.
    AskAgain,
}

impl LocalChannel {
    /// A channel with no subscriber yet.
    pub(super) fn new(key: CoalesceKey, latest_only: bool) -> LocalChannel {
        LocalChannel {
            key,
            latest_only,
            active: BTreeSet::new(),
            pending: BTreeSet::new(),
            starting: BTreeMap::new(),
            position: None,
            ahead: BTreeMap::new(),
            ahead_epoch: String::new(),
            catching_up: false,
            behind: false,
            presence: PresenceView::default(),
        }
    }

    /// A subscriber now waits for its `subscribed` answer.
    pub(super) fn add_pending(&mut self, conn: ConnId) {
        self.pending.insert(conn);
    }

    /// Drops a subscriber; true when none is left.
    pub(super) fn remove(&mut self, conn: ConnId) -> bool {
        self.active.remove(&conn);
        self.pending.remove(&conn);
        self.starting.remove(&conn);
        self.active.is_empty() && self.pending.is_empty() && self.starting.is_empty()
    }

    /// A sequenced publication from the store. Returns the position to
    /// catch up from when the node must ask the store for a gap.
    pub(super) fn publication(
        &mut self,
        epoch: String,
        offset: u64,
        frame: Bytes,
        outbox: &mut impl Outbox,
    ) -> Option<Position> {
        match &self.position {
            Some(position) if position.epoch == epoch && offset <= position.offset => {}
            position => {
                if position
                    .as_ref()
                    .is_some_and(|position| position.epoch != epoch)
                {
                    self.behind = true;
                }
                if self.ahead_epoch != epoch {
                    self.ahead.clear();
                    self.ahead_epoch = epoch;
                }
                self.ahead.insert(offset, frame);
            }
        }
        self.settle(outbox)
    }

    /// Decides how to answer `conn`, whose `subscribed` says `epoch` and
    /// `offset`; `replayed` when the answer carries a recovery replay. An
    /// announced subscriber receives the publications after the announced
    /// offset; call [`LocalChannel::settle`] once the answer is sent.
    pub(super) fn admit(
        &mut self,
        conn: ConnId,
        epoch: &str,
        offset: u64,
        replayed: bool,
    ) -> SubscriberAdmission {
        if !self.pending.contains(&conn) {
            return SubscriberAdmission::Announce(offset);
        }
        if self.position.is_none() && !self.ahead.is_empty() && self.ahead_epoch != epoch {
            self.behind = true;
        }
        let position = self.position.get_or_insert_with(|| Position {
            epoch: epoch.to_owned(),
            offset,
        });
        if position.epoch != epoch {
            self.behind = true;
            return SubscriberAdmission::AskAgain;
        }
        let delivered = position.offset;
        if offset < delivered && replayed {
            return SubscriberAdmission::AskAgain;
        }
        self.pending.remove(&conn);
        if offset > delivered {
            self.starting.insert(conn, offset);
            self.behind = true;
            SubscriberAdmission::Announce(offset)
        } else {
            self.active.insert(conn);
            SubscriberAdmission::Announce(delivered)
        }
    }

    /// The answer to a catch-up from `since`: the channel is at `epoch` and
    /// `offset`, and `replay` holds what followed `since` when `recovered`.
    /// Returns the position to catch up from when the node must ask again.
    pub(super) fn caught_up(
        &mut self,
        channel: &Channel,
        since: &Position,
        latest: Position,
        recovered: bool,
        replay: Vec<Bytes>,
        outbox: &mut impl Outbox,
    ) -> Option<Position> {
        self.catching_up = false;
        if self.ahead_epoch != latest.epoch {
            self.ahead.clear();
        }
        let Some(position) = self.position.clone() else {
            return self.settle(outbox);
        };
        if position.epoch == latest.epoch {
            if recovered && since.epoch == latest.epoch {
                for (at, frame) in (since.offset + 1..).zip(replay) {
                    if at == self.delivered() + 1 {
                        self.deliver(&frame, outbox);
                    }
                }
            } else if latest.offset > position.offset {
                self.announce(channel, latest, outbox);
            }
        } else if since.epoch != latest.epoch {
            self.behind = latest.offset > 0;
            let start = Position {
                epoch: latest.epoch,
                offset: 0,
            };
            self.announce(channel, start, outbox);
        }
        self.settle(outbox)
    }

    /// Delivers what can be delivered in order, lets in the subscribers the
    /// node has caught up with, and returns the position to catch up from
    /// when the node must ask the store.
    pub(super) fn settle(&mut self, outbox: &mut impl Outbox) -> Option<Position> {
        let position = self.position.as_ref()?;
        let same_epoch = self.ahead_epoch == position.epoch;
        if same_epoch {
            let delivered = position.offset;
            self.ahead = self.ahead.split_off(&(delivered + 1));
            while let Some(frame) = self.ahead.remove(&(self.delivered() + 1)) {
                self.deliver(&frame, outbox);
            }
        }
        self.let_in_started();
        let gap = same_epoch && !self.ahead.is_empty();
        if (self.behind || gap) && !self.catching_up {
            self.behind = false;
            self.catching_up = true;
            return self.position.clone();
        }
        None
    }

    /// The link to the store failed: a catch-up that was out is lost, and
    /// presence changes may be.
    pub(super) fn link_lost(&mut self) {
        self.catching_up = false;
        self.presence.link_lost();
    }

    /// The store refused the catch-up that was out: the node asks again at
    /// the channel's next publication or answer, or when it restates its
    /// state ([`LocalChannel::resume`]).
    pub(super) fn catch_up_refused(&mut self) {
        self.catching_up = false;
        self.behind = true;
    }

    /// The link is back: the position to catch up from, for everything the
    /// node missed meanwhile.
    pub(super) fn resume(&mut self) -> Option<Position> {
        let position = self.position.clone()?;
        self.behind = false;
        self.catching_up = true;
        Some(position)
    }

    /// Who hears presence changes: every subscriber whose snapshot went out.
    pub(super) fn presence_audience(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.active.iter().chain(self.starting.keys()).copied()
    }

    /// A presence change at `version`: `user` arrived (`joined`) or left.
    /// Returns whether the subscribers must be told.
    pub(super) fn presence_change(&mut self, version: u64, user: &str, joined: bool) -> bool {
        self.presence.change(version, user, joined)
    }

    /// A subscriber's own presence snapshot, at `version`, arrived: the
    /// users it must be told.
    pub(super) fn subscriber_presence(&mut self, version: u64, users: Vec<String>) -> Vec<String> {
        self.presence.subscriber_snapshot(version, users)
    }

    /// A refresh snapshot at `version` arrived: the users every subscriber
    /// must be told, when it replaces what they were told.
    pub(super) fn refresh_presence(
        &mut self,
        version: u64,
        users: Vec<String>,
    ) -> Option<Vec<String>> {
        self.presence.refresh(version, users)
    }

    /// The users present, when the subscribers' view holds every change the
    /// node heard: a `presence` request can be answered from it.
    pub(super) fn known_presence(&self) -> Option<Vec<String>> {
        self.presence.current()
    }

    /// Whether the presence view needs another refresh snapshot; asking
    /// clears it.
    pub(super) fn take_presence_refresh_wanted(&mut self) -> bool {
        self.presence.take_refresh_wanted()
    }

    /// Waiting subscribers, for cleanup when their answers are lost.
    pub(super) fn is_pending(&self, conn: ConnId) -> bool {
        self.pending.contains(&conn)
    }

    fn delivered(&self) -> u64 {
        self.position.as_ref().map_or(0, |position| position.offset)
    }

    /// Hands the next publication to every active subscriber.
    fn deliver(&mut self, frame: &Bytes, outbox: &mut impl Outbox) {
        let key = self.latest_only.then_some(self.key);
        for &conn in &self.active {
            outbox.send_publication(conn, frame, key);
        }
        if let Some(position) = &mut self.position {
            position.offset += 1;
        }
        self.let_in_started();
    }

    /// Tells every subscriber that the channel continues at `position`
    /// without the publications before it, and lets everyone in.
    fn announce(&mut self, channel: &Channel, position: Position, outbox: &mut impl Outbox) {
        let frame = frame_of(&ServerMessage::Subscribed {
            id: None,
            channel: channel.clone(),
            epoch: position.epoch.clone(),
            offset: position.offset,
            recovered: Some(false),
            data: None,
        });
        for conn in self.presence_audience() {
            outbox.send_control(conn, frame.clone());
        }
        self.active
            .extend(std::mem::take(&mut self.starting).into_keys());
        self.position = Some(position);
    }

    fn let_in_started(&mut self) {
        let delivered = self.delivered();
        let active = &mut self.active;
        self.starting.retain(|&conn, &mut start| {
            let started = start <= delivered;
            if started {
                active.insert(conn);
            }
            !started
        });
    }
}
