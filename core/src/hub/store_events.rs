//! The hub's answer to each event from the store, one function per event;
//! the link's events (up, down, a refusal, a lease) are in module
//! `recovery`.

use bytes::Bytes;

use super::local::SubscriberAdmission;
use super::waiting::Waiter;
use super::{ApiAnswer, Hub, Outbox, StoreRequest, Ticket, frame_of};
use crate::envelope::{Channel, Position, ServerMessage};
use crate::hooks::Notification;
use crate::time::Instant;

/// The store's answer to a `subscribe`, apart from its ticket
/// ([`StoreEvent::Subscribed`](super::StoreEvent::Subscribed)).
#[derive(Debug)]
pub(super) struct SubscribedAnswer {
    pub(super) channel: Channel,
    pub(super) latest: Position,
    pub(super) recovered: Option<bool>,
    pub(super) replay: Vec<Bytes>,
    pub(super) users: Vec<String>,
    pub(super) presence_version: u64,
}

/// The store's answer to a catch-up of a channel
/// ([`StoreEvent::CaughtUp`](super::StoreEvent::CaughtUp)).
pub(super) struct CaughtUpAnswer {
    pub(super) since: Position,
    pub(super) latest: Position,
    pub(super) recovered: bool,
    pub(super) replay: Vec<Bytes>,
}

impl Hub {
    /// A sequenced publication: delivered in order to the channel's local
    /// subscribers, asking for a gap when one shows.
    pub(super) fn on_publication(
        &mut self,
        now: Instant,
        channel: Channel,
        epoch: String,
        offset: u64,
        frame: Bytes,
        outbox: &mut impl Outbox,
    ) {
        if let Some(local) = self.channels.get_mut(&channel) {
            let gap = local.publication(epoch, offset, frame, outbox);
            self.catch_up(now, channel, gap, outbox);
        }
    }

    /// The offset of a publication with a ticket: an `ack`, or the answer
    /// of an API publication.
    pub(super) fn on_published(
        &mut self,
        now: Instant,
        ticket: Ticket,
        offset: u64,
        outbox: &mut impl Outbox,
    ) {
        match self.waiting.remove(ticket) {
            Some(Waiter::Api) => self
                .api_answers
                .push_back((ticket, ApiAnswer::Published(offset))),
            Some(Waiter::Conn { conn, id: Some(id) }) => {
                let ack = frame_of(&ServerMessage::Ack { id, offset });
                self.fulfil(now, conn, ticket, vec![ack], outbox);
            }
            Some(waiter) => self.waiting.restore(ticket, waiter),
            None => {}
        }
    }

    /// The answer to a `subscribe`: the subscriber gets its replay, its
    /// `subscribed` and a presence snapshot, unless the answer cannot be
    /// reconciled with what the node delivered, when the store is asked
    /// again. While the reply to an earlier request of the connection
    /// still waits, the answer is held until its turn: admitted now, the
    /// subscriber would get the channel's next publications before its
    /// own `subscribed`.
    pub(super) fn on_subscribed(
        &mut self,
        now: Instant,
        ticket: Ticket,
        answer: SubscribedAnswer,
        outbox: &mut impl Outbox,
    ) {
        if let Some(Waiter::Subscribe { conn, .. }) = self.waiting.get(ticket)
            && let Some(state) = self.conns.get_mut(conn)
            && state.replies.waits_before(ticket)
        {
            state.held.push((ticket, answer));
            return;
        }
        let SubscribedAnswer {
            channel,
            latest: Position { epoch, offset },
            recovered,
            replay,
            users,
            presence_version,
        } = answer;
        let Some(Waiter::Subscribe {
            conn,
            id,
            channel: asked,
            since,
            history_refused,
            data,
        }) = self.waiting.remove(ticket)
        else {
            return;
        };
        let admission = match self.channels.get_mut(&channel) {
            Some(local) => local.admit(conn, &epoch, offset, recovered == Some(true)),
            None => SubscriberAdmission::Announce(offset),
        };
        let offset = match admission {
            SubscriberAdmission::Announce(offset) => offset,
            SubscriberAdmission::AskAgain => {
                let gap = self
                    .channels
                    .get_mut(&channel)
                    .and_then(|l| l.settle(outbox));
                self.catch_up(now, channel.clone(), gap, outbox);
                let waiter = Waiter::Subscribe {
                    conn,
                    id,
                    channel: asked,
                    since: since.clone(),
                    history_refused,
                    data,
                };
                self.waiting.restore(ticket, waiter);
                let again = StoreRequest::Subscribe {
                    ticket,
                    channel,
                    since,
                };
                return self.request(now, again, outbox);
            }
        };
        let recovered = if history_refused {
            Some(false)
        } else {
            recovered
        };
        let mut frames = replay;
        frames.push(frame_of(&ServerMessage::Subscribed {
            id,
            channel: channel.clone(),
            epoch,
            offset,
            recovered,
            data,
        }));
        if let Some(state) = self.conns.get(&conn) {
            outbox.notify(Notification::Subscribed {
                conn,
                user: state.user.to_string(),
                channel: channel.clone(),
            });
        }
        let users = match self.channels.get_mut(&channel) {
            Some(local) => local.subscriber_presence(presence_version, users),
            None => users,
        };
        frames.push(frame_of(&ServerMessage::Presence {
            id: None,
            channel: channel.clone(),
            users,
        }));
        self.fulfil(now, conn, ticket, frames, outbox);
        let gap = self
            .channels
            .get_mut(&channel)
            .and_then(|l| l.settle(outbox));
        self.catch_up(now, channel.clone(), gap, outbox);
        self.refresh_presence_if_wanted(now, channel, outbox);
    }

    /// The answer to a catch-up: what the node missed of the channel.
    pub(super) fn on_caught_up(
        &mut self,
        now: Instant,
        channel: Channel,
        answer: CaughtUpAnswer,
        outbox: &mut impl Outbox,
    ) {
        if let Some(local) = self.channels.get_mut(&channel) {
            let CaughtUpAnswer {
                since,
                latest,
                recovered,
                replay,
            } = answer;
            let gap = local.caught_up(&channel, &since, latest, recovered, replay, outbox);
            self.catch_up(now, channel, gap, outbox);
        }
    }

    /// A presence snapshot at `version`: the answer to a `presence`
    /// request (a client's or the HTTP API's), or a refresh for every
    /// local subscriber of the channel.
    pub(super) fn on_presence(
        &mut self,
        now: Instant,
        ticket: Ticket,
        channel: Channel,
        users: Vec<String>,
        version: u64,
        outbox: &mut impl Outbox,
    ) {
        match self.waiting.remove(ticket) {
            Some(Waiter::Conn { conn, id }) => {
                let presence = frame_of(&ServerMessage::Presence { id, channel, users });
                self.fulfil(now, conn, ticket, vec![presence], outbox);
            }
            Some(Waiter::Refresh) => {
                let Some(local) = self.channels.get_mut(&channel) else {
                    return;
                };
                if let Some(users) = local.refresh_presence(version, users) {
                    let snapshot = frame_of(&ServerMessage::Presence {
                        id: None,
                        channel: channel.clone(),
                        users,
                    });
                    self.send_presence_change(&channel, snapshot, outbox);
                }
                self.refresh_presence_if_wanted(now, channel, outbox);
            }
            Some(Waiter::Api) => self
                .api_answers
                .push_back((ticket, ApiAnswer::Presence(users))),
            _ => {}
        }
    }

    /// Passes a user's arrival (`joined`) or departure, at presence
    /// `version`, to the channel's local subscribers, unless it is not news
    /// to them.
    pub(super) fn on_presence_change(
        &mut self,
        channel: Channel,
        user: String,
        version: u64,
        joined: bool,
        outbox: &mut impl Outbox,
    ) {
        let Some(local) = self.channels.get_mut(&channel) else {
            return;
        };
        if !local.presence_change(version, &user, joined) {
            return;
        }
        let change = if joined {
            ServerMessage::Join {
                channel: channel.clone(),
                user,
            }
        } else {
            ServerMessage::Leave {
                channel: channel.clone(),
                user,
            }
        };
        self.send_presence_change(&channel, frame_of(&change), outbox);
    }

    /// Sends a `join` or `leave` to the channel's local subscribers whose
    /// snapshot went out. With the store in the node they are all other
    /// users: a user's own first connection is still waiting for its answer
    /// when its join is announced, and its last one is gone before its
    /// leave is.
    fn send_presence_change(&self, channel: &Channel, frame: Bytes, outbox: &mut impl Outbox) {
        if let Some(local) = self.channels.get(channel) {
            for conn in local.presence_audience() {
                outbox.send_control(conn, frame.clone());
            }
        }
    }
}
