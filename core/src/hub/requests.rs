//! The hub's answer to each request of a client: `subscribe`,
//! `unsubscribe`, `publish` and `presence`.

use serde_json::value::RawValue;

use super::waiting::Waiter;
use super::{Conn, Hub, Outbox, StoreRequest, UNAVAILABLE, error_frame, frame_of};
use crate::envelope::{Channel, ErrorCode, IdempotencyKey, Position, RequestId, ServerMessage};
use crate::ids::ConnId;
use crate::time::Instant;

/// What a client's `publish` asks to publish, apart from its request id.
pub(super) struct Publication {
    pub(super) channel: Channel,
    pub(super) payload: Box<RawValue>,
    pub(super) idempotency_key: Option<IdempotencyKey>,
}

impl Hub {
    pub(super) fn handle_subscribe(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: Option<RequestId>,
        channel: Channel,
        since: Option<Position>,
        outbox: &mut impl Outbox,
    ) {
        let up = self.is_store_up();
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        if state.refused_private(conn, &id, &channel, outbox) {
            return;
        }
        let is_new = !state.channels.contains(&channel);
        if is_new && state.channels.len() >= self.config.max_subscriptions {
            let error = error_frame(id, ErrorCode::LimitExceeded, "too many subscriptions");
            return state.replies.send(conn, error, outbox);
        }
        if !up {
            let error = error_frame(id, ErrorCode::Unavailable, UNAVAILABLE);
            return state.replies.send(conn, error, outbox);
        }
        let user = state.user.clone();
        let waiter = Waiter::Subscribe {
            conn,
            id,
            channel: channel.clone(),
            since: since.clone(),
        };
        let ticket = self.waiting.issue(waiter);
        state.replies.wait(ticket);
        if is_new {
            state.channels.insert(channel.clone());
            let first = !self.channels.contains_key(&channel);
            self.local_channel(&channel).add_pending(conn);
            let join = StoreRequest::Join {
                channel: channel.clone(),
                user,
            };
            self.request(now, join, outbox);
            if first && self.is_external() {
                let follow = StoreRequest::Follow {
                    channel: channel.clone(),
                };
                self.request(now, follow, outbox);
            }
        }
        let subscribe = StoreRequest::Subscribe {
            ticket,
            channel,
            since,
        };
        self.request(now, subscribe, outbox);
    }

    pub(super) fn handle_unsubscribe(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: Option<RequestId>,
        channel: Channel,
        outbox: &mut impl Outbox,
    ) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        let reply = frame_of(&ServerMessage::Unsubscribed {
            id,
            channel: channel.clone(),
        });
        if state.channels.remove(&channel) {
            let user = state.user.clone();
            self.leave(now, channel, conn, &user, outbox);
        }
        self.send_reply(conn, reply, outbox);
    }

    pub(super) fn handle_publish(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: Option<RequestId>,
        publication: Publication,
        outbox: &mut impl Outbox,
    ) {
        let up = self.is_store_up();
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        if publication.channel.private_user().is_some() {
            let error = error_frame(
                id,
                ErrorCode::Forbidden,
                "clients may not publish to user: channels",
            );
            return state.replies.send(conn, error, outbox);
        }
        if !up {
            let error = error_frame(id, ErrorCode::Unavailable, UNAVAILABLE);
            return state.replies.send(conn, error, outbox);
        }
        let sender = Some(state.user.clone());
        let ticket = id.map(|id| {
            let ticket = self.waiting.issue(Waiter::Conn { conn, id: Some(id) });
            state.replies.wait(ticket);
            ticket
        });
        let request = StoreRequest::Publish {
            ticket,
            channel: publication.channel,
            payload: publication.payload,
            sender,
            idempotency_key: publication.idempotency_key,
        };
        self.request(now, request, outbox);
    }

    pub(super) fn handle_presence(
        &mut self,
        now: Instant,
        conn: ConnId,
        id: Option<RequestId>,
        channel: Channel,
        outbox: &mut impl Outbox,
    ) {
        let up = self.is_store_up();
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        if state.refused_private(conn, &id, &channel, outbox) {
            return;
        }
        let known = self
            .channels
            .get(&channel)
            .and_then(|local| local.known_presence());
        if let Some(users) = known {
            let presence = frame_of(&ServerMessage::Presence { id, channel, users });
            return state.replies.send(conn, presence, outbox);
        }
        if !up {
            let error = error_frame(id, ErrorCode::Unavailable, UNAVAILABLE);
            return state.replies.send(conn, error, outbox);
        }
        let ticket = self.waiting.issue(Waiter::Conn { conn, id });
        state.replies.wait(ticket);
        self.request(now, StoreRequest::Presence { ticket, channel }, outbox);
    }
}

impl Conn {
    /// Answers `FORBIDDEN` to a request of this connection (`conn`) about
    /// another user's private `user:` channel; `true` when it did.
    fn refused_private(
        &mut self,
        conn: ConnId,
        id: &Option<RequestId>,
        channel: &Channel,
        outbox: &mut impl Outbox,
    ) -> bool {
        if channel
            .private_user()
            .is_none_or(|owner| owner == self.user)
        {
            return false;
        }
        let error = error_frame(
            id.clone(),
            ErrorCode::Forbidden,
            "private channel of another user",
        );
        self.replies.send(conn, error, outbox);
        true
    }
}
