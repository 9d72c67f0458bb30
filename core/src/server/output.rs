//! What a [`Server`](super::Server) hands out, and the types of its
//! answers: the one output queue's items, the decisions it asks for, the
//! outcome of a publication, the accept back-off.

use std::time::Duration;

use crate::access::Operation;
use crate::auth::Identity;
use crate::close::CloseReason;
use crate::connection::ClosedBy;
use crate::hooks::{
    ChannelRequest, ConnectRequest, DecisionId, Notification, Rejection, RpcRequest,
};
use crate::hub::StoreRequest;
use crate::ids::ConnId;
use crate::time::Instant;

use super::api::UNAVAILABLE;

/// What the adapter must act on: the one way out of a [`Server`](super::Server). After
/// every input, call [`Server::poll_output`](super::Server::poll_output) until it returns
/// [`Output::Timeout`].
#[derive(Clone, Debug)]
pub enum Output {
    /// The connection has frames to write or wants its socket closed: take
    /// frames with [`Server::poll_transmit`](super::Server::poll_transmit) and report each written batch
    /// with [`Server::handle_written`](super::Server::handle_written); act on [`Server::transport`](super::Server::transport). Sent
    /// once per batch of new frames (until the next `poll_transmit`), and
    /// always once when an input makes the socket close now, so a writer
    /// blocked on a peer that does not read can be told to give up. A
    /// flush the adapter reports with [`Server::handle_written`](super::Server::handle_written) changes
    /// the transport without a `Wake`: ask [`Server::transport`](super::Server::transport) after it.
    /// A wake that comes while the writer is busy must not be lost: keep
    /// one pending per connection.
    Wake(ConnId),
    /// Something the application decides; answer with the input the
    /// [`Decision`] names. A decision may take as long as it needs: the
    /// connection waits, in order, and no other connection does.
    Decide(Decision),
    /// A request for the backplane, in order; only for a node made with
    /// [`Server::with_backplane`](super::Server::with_backplane). Its answers come back through
    /// [`Server::handle_store_event`](super::Server::handle_store_event).
    Store(StoreRequest),
    /// Something the application may observe: pass it on
    /// ([`Handler::notify`](crate::Handler::notify)) or drop it.
    Notify(Notification),
    /// A publication of [`Server::publish`](super::Server::publish) is done.
    Published {
        /// The caller's token for it.
        token: u64,
        /// Its offset, or why it was not published.
        result: Result<u64, PublishError>,
    },
    /// A WebSocket session ended (for logs; the core has cleaned up). Log
    /// it at `info` with its close code and reason: operators, and the
    /// binary's tests, read that line. The socket may still be open.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Its close code and reason.
        reason: CloseReason,
        /// Who ended it.
        by: ClosedBy,
    },
    /// The graceful shutdown is over: every connection is closed, or
    /// `shutdown_timeout` passed. The adapter may stop once the drain that
    /// gave it is over (it is the last output of its drain): every session
    /// ended before it, so the store requests of its users' departures
    /// came out before it too, and sockets still open may be closed
    /// without telling the core.
    Drained,
    /// Nothing more to do until this instant (then [`Server::handle_timeout`](super::Server::handle_timeout))
    /// or the next input; `None`: no deadline.
    Timeout(Option<Instant>),
}

/// A decision that belongs to the application (PROTOCOL.md section 13).
/// Answer each with a [`Verdict`] through
/// [`Server::handle_verdict`](super::Server::handle_verdict), at any later
/// time: [`Decision::decide`] asks a [`Handler`](crate::Handler), [`Decision::ask`] an
/// [`Authorizer`](crate::Authorizer). Past `decision_timeout` the core answers by itself
/// (`UNAVAILABLE`, or close 1013 for an `auth`) and ignores a later verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Who does the token of `auth` or `refresh` prove?
    Authenticate {
        /// Names this decision in its verdict.
        id: DecisionId,
        /// The token and the upgrade's forwarded header fields.
        request: ConnectRequest,
    },
    /// May the user do `operation` on the channel? The namespace governing
    /// it leaves that to the application (rule `backend`). The
    /// connection's later requests wait, in order, until then.
    Channel {
        /// Names this decision in its verdict.
        id: DecisionId,
        /// `Subscribe` or `Publish`.
        operation: Operation,
        /// Who asks, for which channel, with which payload.
        request: ChannelRequest,
    },
    /// A client's `rpc`: the connection's later requests wait, in order,
    /// for its result.
    Rpc {
        /// Names this decision in its verdict.
        id: DecisionId,
        /// Who calls which method with which data.
        request: RpcRequest,
    },
    /// Check the API key of a request to the server API (`POST /api/...`);
    /// answer with
    /// [`Server::handle_api_verdict`](super::Server::handle_api_verdict).
    AuthorizeApi {
        /// The HTTP connection.
        conn: ConnId,
        /// The `Authorization` header, if any (never log it).
        authorization: Option<String>,
    },
}

impl Decision {
    /// The verdict for when the application failed to decide (an error or
    /// a panic in its handler): `INTERNAL` for this request only, and for
    /// an API key a refusal.
    pub fn failed(&self) -> Verdict {
        let failed = Err(Rejection::internal());
        match self {
            Decision::Authenticate { id, request } => Verdict::Authenticate {
                id: *id,
                conn: request.conn,
                identity: failed,
            },
            Decision::Channel { id, request, .. } => Verdict::Channel {
                id: *id,
                conn: request.conn,
                answer: Err(Rejection::internal()),
            },
            Decision::Rpc { id, request } => Verdict::Rpc {
                id: *id,
                conn: request.conn,
                result: Err(Rejection::internal()),
            },
            Decision::AuthorizeApi { conn, .. } => Verdict::AuthorizeApi {
                conn: *conn,
                authorized: false,
            },
        }
    }
}

/// The application's answer to a [`Decision`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Who the token proves, or why it is refused.
    Authenticate {
        /// The decision answered.
        id: DecisionId,
        /// The connection that sent `auth` or `refresh`.
        conn: ConnId,
        /// The token's identity, or the rejection (see
        /// [`Server::handle_verdict`](super::Server::handle_verdict)).
        identity: Result<Identity, Rejection>,
    },
    /// Whether the channel request may go ahead.
    Channel {
        /// The decision answered.
        id: DecisionId,
        /// The connection asking.
        conn: ConnId,
        /// `Ok(None)`: allowed as asked. `Ok(Some(json))`: allowed, and
        /// for a subscribe `json` is the `data` of its `subscribed`, for a
        /// publish the payload published instead of the client's.
        /// `Err`: refused with that error.
        answer: Result<Option<String>, Rejection>,
    },
    /// The result of an `rpc`.
    Rpc {
        /// The decision answered.
        id: DecisionId,
        /// The connection calling.
        conn: ConnId,
        /// The `data` of its `rpc_result` as JSON text, or the error.
        result: Result<String, Rejection>,
    },
    /// Whether the API key is valid.
    AuthorizeApi {
        /// The HTTP connection.
        conn: ConnId,
        /// Valid, or refused 401.
        authorized: bool,
    },
}

/// Why a publication of [`Server::publish`](super::Server::publish) was not made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// The channel name is not one (PROTOCOL.md section 6).
    InvalidChannel(String),
    /// The payload is not JSON.
    InvalidPayload(String),
    /// The backplane could not take it; retry later.
    Unavailable,
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::InvalidChannel(why) => write!(f, "invalid channel: {why}"),
            PublishError::InvalidPayload(why) => write!(f, "payload is not JSON: {why}"),
            PublishError::Unavailable => f.write_str(UNAVAILABLE),
        }
    }
}

impl std::error::Error for PublishError {}

/// How long an adapter waits to accept again after the operating system
/// failed an accept (no file descriptor left, most often): long enough that
/// a node out of descriptors does not spin, short enough that it accepts
/// soon after one is free.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What an adapter does after [`Server::handle_accept_failed`](super::Server::handle_accept_failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptRetry {
    /// When to accept again.
    pub at: Instant,
    /// Whether the failure starts a spell of them (a spell lasts until a
    /// connection is accepted again): log it then, and not on every retry.
    pub starts_spell: bool,
}
