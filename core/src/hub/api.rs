//! What the HTTP API asks of the whole cluster besides publishing: each
//! question is one store request with a ticket, whose answer comes out of
//! [`Hub::poll_api_answer`]; each order ([`Control`]) goes to every node
//! through the store, and each node carries it out on its own connections
//! when the store delivers it ([`StoreEvent::Control`](super::StoreEvent::Control)).

use bytes::Bytes;

use super::waiting::Waiter;
use super::{Hub, Outbox, StoreRequest, Ticket, frame_of};
use crate::access::ChannelPattern;
use crate::close::{CloseCode, CloseReason};
use crate::envelope::{Channel, Position, ServerMessage, UnsubscribeReason};
use crate::hooks::Notification;
use crate::ids::ConnId;
use crate::time::Instant;

use super::store::{Control, NodeInfo, NodeStats};

/// A question or an order of the HTTP API ([`Hub::api_request`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiRequest {
    /// The users present in a channel.
    Presence(Channel),
    /// How many users and connections are in a channel.
    PresenceStats(Channel),
    /// What a channel's history holds.
    History {
        /// The channel.
        channel: Channel,
        /// Only publications after this position.
        since: Option<Position>,
        /// At most this many, lowered to `history_size`.
        limit: usize,
        /// Newest first.
        reverse: bool,
    },
    /// The channels with a subscriber somewhere, at most `api_max_channels`.
    Channels(Option<ChannelPattern>),
    /// An order for every node.
    Control(Control),
    /// Every live node's figures, with this node's `NodeStats` now.
    Info(NodeStats),
}

/// The store's answer to an API request, or to an API publication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiAnswer {
    /// The offset of a publication.
    Published(u64),
    /// The users present, sorted.
    Presence(Vec<String>),
    /// Users and connections in a channel.
    PresenceStats {
        /// Users present.
        users: u64,
        /// Their connections.
        connections: u64,
    },
    /// A channel's position and the `message` JSON of its publications.
    History {
        /// The channel's epoch.
        epoch: String,
        /// Its latest offset.
        offset: u64,
        /// Each publication's `message`, in the order asked for.
        publications: Vec<Bytes>,
    },
    /// Active channels.
    Channels {
        /// Matching channels in name order, at most the limit.
        channels: Vec<Channel>,
        /// How many matched.
        total: u64,
    },
    /// An order went out to every node.
    Sent,
    /// The live nodes.
    Info(Vec<NodeInfo>),
    /// The link to the store failed, or the store refused the request,
    /// before it answered.
    Unavailable,
}

/// Whether an API request was answered at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiOutcome {
    /// The answer (memory mode, or the link is down).
    Answered(ApiAnswer),
    /// The answer comes out of [`Hub::poll_api_answer`] with this ticket.
    Pending(Ticket),
}

impl Hub {
    /// Asks the store `request` for the HTTP API: answered at once in
    /// memory mode, [`ApiAnswer::Unavailable`] while the link is down, and
    /// otherwise when the store answers.
    pub fn api_request(
        &mut self,
        now: Instant,
        request: ApiRequest,
        outbox: &mut impl Outbox,
    ) -> ApiOutcome {
        if !self.is_store_up() {
            return ApiOutcome::Answered(ApiAnswer::Unavailable);
        }
        let ticket = self.waiting.issue(Waiter::Api);
        let request = match request {
            ApiRequest::Presence(channel) => StoreRequest::Presence { ticket, channel },
            ApiRequest::PresenceStats(channel) => StoreRequest::PresenceStats { ticket, channel },
            ApiRequest::History {
                channel,
                since,
                limit,
                reverse,
            } => StoreRequest::History {
                ticket,
                channel,
                since,
                limit: limit.min(self.config.history_size),
                reverse,
            },
            ApiRequest::Channels(pattern) => StoreRequest::Channels {
                ticket,
                pattern,
                limit: self.config.api_max_channels,
            },
            ApiRequest::Control(control) => StoreRequest::Control { ticket, control },
            ApiRequest::Info(node) => StoreRequest::Info { ticket, node },
        };
        self.request(now, request, outbox);
        match self.take_api_answer(ticket) {
            Some(answer) => ApiOutcome::Answered(answer),
            None => ApiOutcome::Pending(ticket),
        }
    }

    /// The next answer to an API request or publication that was pending.
    pub fn poll_api_answer(&mut self) -> Option<(Ticket, ApiAnswer)> {
        self.api_answers.pop_front()
    }

    /// The next connection an order told this node to close, and how.
    pub fn poll_close(&mut self) -> Option<(ConnId, CloseReason)> {
        self.closing.pop_front()
    }

    /// The node's figures that its next leases register.
    pub fn set_node_stats(&mut self, stats: NodeStats) {
        self.node_stats = stats;
    }

    /// The answer to `ticket` if it is already there (memory mode).
    pub(super) fn take_api_answer(&mut self, ticket: Ticket) -> Option<ApiAnswer> {
        let index = self.api_answers.iter().position(|(t, _)| *t == ticket)?;
        self.api_answers.remove(index).map(|(_, answer)| answer)
    }

    /// Hands `answer` to the API request waiting for `ticket`; false when
    /// none waits for it.
    pub(super) fn answer_api(&mut self, ticket: Ticket, answer: ApiAnswer) -> bool {
        match self.waiting.remove(ticket) {
            Some(Waiter::Api) => {
                self.api_answers.push_back((ticket, answer));
                true
            }
            Some(waiter) => {
                self.waiting.restore(ticket, waiter);
                false
            }
            None => false,
        }
    }

    /// An order from some node's HTTP API: carried out on this node's
    /// connections of the user.
    pub(super) fn on_control(&mut self, now: Instant, control: Control, outbox: &mut impl Outbox) {
        match control {
            Control::Disconnect { user, code, reason } => {
                let reason = CloseReason::new(CloseCode(code), reason);
                let conns = self.conns_of(&user);
                self.closing
                    .extend(conns.into_iter().map(|conn| (conn, reason.clone())));
            }
            Control::Unsubscribe { user, channel } => {
                for conn in self.conns_of(&user) {
                    let subscribed = self
                        .conns
                        .get(&conn)
                        .is_some_and(|state| state.channels.contains(&channel));
                    if subscribed {
                        let reason = UnsubscribeReason::Server;
                        self.end_subscription(now, conn, channel.clone(), reason, outbox);
                    }
                }
            }
        }
    }

    /// Ends `conn`'s subscription to `channel` without being asked: it
    /// leaves the channel and is told `unsubscribed` with `reason`, in its
    /// reply order, so that nothing more of the channel reaches it.
    pub(super) fn end_subscription(
        &mut self,
        now: Instant,
        conn: ConnId,
        channel: Channel,
        reason: UnsubscribeReason,
        outbox: &mut impl Outbox,
    ) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        state.channels.remove(&channel);
        let user = state.user.clone();
        let notice = frame_of(&ServerMessage::Unsubscribed {
            id: None,
            channel: channel.clone(),
            reason: Some(reason),
        });
        self.leave(now, channel.clone(), conn, &user, outbox);
        self.send_reply(conn, notice, outbox);
        outbox.notify(Notification::Unsubscribed {
            conn,
            user: user.to_string(),
            channel,
        });
    }

    /// The node's connections of `user`.
    fn conns_of(&self, user: &str) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, state)| &*state.user == user)
            .map(|(conn, _)| *conn)
            .collect()
    }
}
