//! The hub's answer to each request of a client: `subscribe`,
//! `unsubscribe`, `publish` and `presence`.

use serde_json::value::RawValue;

use super::waiting::Waiter;
use super::{Conn, Hub, Outbox, StoreRequest, UNAVAILABLE, error_frame, frame_of};
use crate::access::{Access, Asker, Operation, decide};
use crate::config::ServerConfig;
use crate::envelope::{Channel, ErrorCode, IdempotencyKey, Position, RequestId, ServerMessage};
use crate::hooks::Notification;
use crate::ids::ConnId;
use crate::time::Instant;

/// The refusal of a request that would bring one channel too many into
/// existence for its user within its window.
const TOO_MANY_NEW_CHANNELS: &str = "too many new channels for this user; retry later";

/// What a client's `subscribe` asks for, apart from its request id, and
/// what the application gives with its consent.
pub(super) struct Subscription {
    pub(super) channel: Channel,
    pub(super) since: Option<Position>,
    pub(super) data: Option<Box<RawValue>>,
}

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
        subscription: Subscription,
        outbox: &mut impl Outbox,
    ) {
        let Subscription {
            channel,
            since,
            data,
        } = subscription;
        let up = self.is_store_up();
        let creates = !self.holds_channel(&channel);
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        if state.refused(
            &self.config,
            conn,
            &id,
            &channel,
            Operation::Subscribe,
            outbox,
        ) {
            return;
        }
        // A user's own private channel is one per user, and where its
        // notifications arrive: never refused as new.
        let creates = creates && channel.private_user() != Some(&*state.user);
        // This subscribe makes the connection a subscriber: a history rule
        // of `subscribers` counts it as one.
        let history_refused = since.is_some()
            && state.access_as(&self.config, &channel, Operation::History, true) != Access::Allowed;
        let since = since.filter(|_| !history_refused);
        let is_new = !state.channels.contains(&channel);
        if is_new && state.channels.len() >= self.config.max_subscriptions {
            let error = error_frame(id, ErrorCode::LimitExceeded, "too many subscriptions");
            return state.replies.send(conn, error, outbox);
        }
        if !up {
            let error = error_frame(id, ErrorCode::Unavailable, UNAVAILABLE);
            return state.replies.send(conn, error, outbox);
        }
        if creates
            && !Hub::create_channel(&mut self.users, &self.store, &self.config, now, &state.user)
        {
            let error = error_frame(id, ErrorCode::LimitExceeded, TOO_MANY_NEW_CHANNELS);
            return state.replies.send(conn, error, outbox);
        }
        let user = state.user.to_string();
        let waiter = Waiter::Subscribe {
            conn,
            id,
            channel: channel.clone(),
            since: since.clone(),
            history_refused,
            data,
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
            reason: None,
        });
        if state.channels.remove(&channel) {
            let user = state.user.clone();
            self.leave(now, channel.clone(), conn, &user, outbox);
            outbox.notify(Notification::Unsubscribed {
                conn,
                user: user.to_string(),
                channel,
            });
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
        let keyed = publication.idempotency_key.is_some();
        let creates = self.publish_creates(&publication.channel, keyed);
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        let channel = &publication.channel;
        if state.refused(&self.config, conn, &id, channel, Operation::Publish, outbox) {
            return;
        }
        if !up {
            let error = error_frame(id, ErrorCode::Unavailable, UNAVAILABLE);
            return state.replies.send(conn, error, outbox);
        }
        if creates
            && !Hub::create_channel(&mut self.users, &self.store, &self.config, now, &state.user)
        {
            let error = error_frame(id, ErrorCode::LimitExceeded, TOO_MANY_NEW_CHANNELS);
            return state.replies.send(conn, error, outbox);
        }
        let sender = Some(state.user.to_string());
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
        if state.refused(
            &self.config,
            conn,
            &id,
            &channel,
            Operation::Presence,
            outbox,
        ) {
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
    /// Whether this connection may do `op` on `channel`, by the node's
    /// namespaces and its token's grants (PROTOCOL.md section 12).
    pub(super) fn access(&self, config: &ServerConfig, channel: &Channel, op: Operation) -> Access {
        self.access_as(config, channel, op, self.channels.contains(channel))
    }

    /// [`Conn::access`], with the connection counted as a subscriber of
    /// `channel` or not.
    fn access_as(
        &self,
        config: &ServerConfig,
        channel: &Channel,
        op: Operation,
        subscribed: bool,
    ) -> Access {
        let asker = Asker {
            user: &self.user,
            grants: &self.grants,
            subscribed,
            allowed_by_application: self.allowed_by_application,
        };
        decide(&config.namespaces, &asker, channel, op)
    }

    /// Answers `FORBIDDEN` to a request of this connection (`conn`) that it
    /// may not make; `true` when it did. The answer is the same whether the
    /// channel exists or not.
    fn refused(
        &mut self,
        config: &ServerConfig,
        conn: ConnId,
        id: &Option<RequestId>,
        channel: &Channel,
        op: Operation,
        outbox: &mut impl Outbox,
    ) -> bool {
        if self.access(config, channel, op) == Access::Allowed {
            return false;
        }
        let message = format!("not allowed to {} on this channel", op.name());
        let error = error_frame(id.clone(), ErrorCode::Forbidden, &message);
        self.replies.send(conn, error, outbox);
        true
    }
}
