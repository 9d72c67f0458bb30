//! What a [`ClientSession`](super::ClientSession) hands out: socket actions
//! for the adapter, events for the application, and the errors of its
//! commands.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::close::CloseReason;

use serde_json::value::RawValue;

use crate::envelope::{Channel, ErrorCode, RequestId, ServerMessage, UnsubscribeReason};
use crate::time::Instant;

/// What [`ClientSession::poll_output`](super::ClientSession::poll_output)
/// hands out.
#[derive(Clone, Debug)]
pub enum Output {
    /// Something to do to the socket.
    Transmit(Transmit),
    /// The session needs a token from the application's provider (only
    /// with [`TokenSource::Provider`](super::TokenSource::Provider)): get
    /// one, then call `handle_token`, or `handle_token_failed` if none can
    /// be had. At most one is wanted at a time; an answer that comes when
    /// none is wanted any more is ignored.
    TokenWanted,
    /// Something the application should know about.
    Event(Event),
    /// Nothing more until this instant (then `handle_timeout`) or the next
    /// input; `None`: no deadline.
    Timeout(Option<Instant>),
}

/// Something the adapter must do to the socket, in the order handed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Open a connection to `host` (`host` or `host:port`), then call
    /// `handle_connected` or `handle_connect_failed`.
    Dial {
        /// The authority to connect to.
        host: String,
    },
    /// Write these bytes to the socket.
    Write(Bytes),
    /// Close the socket (or abandon the dial in progress) and forget it: no
    /// `handle_transport_closed` is expected for it.
    Close,
}

/// Something the application should know about.
#[derive(Clone, Debug)]
pub enum Event {
    /// The server accepted the token: the session is live.
    Connected {
        /// The authenticated user.
        user: String,
        /// The server's id for this connection.
        session: String,
        /// When the token expires, in Unix milliseconds, as `auth_ack`
        /// said; `None` for a token without expiry.
        expires_at: Option<u64>,
    },
    /// The server accepted a fresh token on the open connection.
    Refreshed {
        /// When the new token expires, in Unix milliseconds; `None` for a
        /// token without expiry.
        expires_at: Option<u64>,
    },
    /// A refresh failed; the session tries again, with backoff, until the
    /// token expires (then the server closes `4004` and the session
    /// reconnects with a new token).
    RefreshFailed {
        /// The server's error code, or `None` when the provider gave no
        /// token or the server no answer in time.
        code: Option<ErrorCode>,
        /// What went wrong.
        message: String,
    },
    /// A connection ended, or a connection attempt failed.
    Disconnected {
        /// The close code and text: the server's, the one the client sent,
        /// or 1006 with a description when no close frame was exchanged.
        reason: CloseReason,
        /// Whether a `Reconnecting` event follows; false means the session
        /// is closed for good.
        will_reconnect: bool,
    },
    /// The session will dial again after `delay`.
    Reconnecting {
        /// 1 for the first retry since the last `auth_ack`, then 2, 3, ...
        attempt: u32,
        /// The wait before the dial, jitter included.
        delay: Duration,
    },
    /// The server confirmed a subscription made with `subscribe`, on first
    /// subscription and after every reconnect.
    Subscribed {
        /// The channel.
        channel: Channel,
        /// The channel's epoch.
        epoch: String,
        /// The channel's offset at the time of subscription.
        offset: u64,
        /// `None` for a first subscription; after a reconnect, whether the
        /// server replayed everything missed. `Some(false)` means
        /// publications were lost and the application should resync.
        recovered: Option<bool>,
        /// The JSON text the application gave with its consent, when it
        /// decides the channel (PROTOCOL.md section 13).
        data: Option<String>,
    },
    /// The server refused a subscription; the channel is no longer tracked.
    SubscribeFailed {
        /// The channel.
        channel: Channel,
        /// The server's error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The server ended a subscription by itself (its grants no longer
    /// allow the channel); the channel is no longer tracked and is not
    /// subscribed again after a reconnect.
    Unsubscribed {
        /// The channel.
        channel: Channel,
        /// Why the server ended it.
        reason: UnsubscribeReason,
    },
    /// A publication, each offset delivered at most once per epoch.
    Message {
        /// The channel.
        channel: Channel,
        /// The published JSON value.
        payload: Box<RawValue>,
        /// The publishing user, absent for the HTTP API.
        sender: Option<String>,
        /// The publication's offset in the channel.
        offset: u64,
    },
    /// A presence snapshot, sent after each `subscribed`.
    Presence {
        /// The channel.
        channel: Channel,
        /// Every user present.
        users: Vec<String>,
    },
    /// A user joined a channel.
    Join {
        /// The channel.
        channel: Channel,
        /// The user.
        user: String,
    },
    /// A user left a channel.
    Leave {
        /// The channel.
        channel: Channel,
        /// The user.
        user: String,
    },
    /// An error that answers no pending request or subscription.
    Error {
        /// The id the server echoed, if any.
        id: Option<RequestId>,
        /// The error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// A request made with `request` or `publish` is settled.
    RequestDone {
        /// The id `request` returned.
        id: RequestId,
        /// The reply, or why there is none.
        result: Result<ServerMessage, RequestError>,
    },
}

/// Why a request got no successful reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The server answered with an `error`.
    Server {
        /// The error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// No reply came before the request's deadline.
    Timeout,
    /// The connection that carried the request dropped; it may or may not
    /// have been processed (a publish may be retried with the same id).
    Disconnected,
    /// The session closed for good before the request was sent.
    Closed,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Server { code, message } => write!(f, "{code}: {message}"),
            RequestError::Timeout => f.write_str("request timed out"),
            RequestError::Disconnected => f.write_str("connection dropped"),
            RequestError::Closed => f.write_str("session closed"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Why a command was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Not connected, and the offline queue is full.
    QueueFull,
    /// The session is closed for good.
    Closed,
    /// The message has no `id` field, so it cannot be a request (`auth`).
    NotARequest,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::QueueFull => "offline queue full",
            SendError::Closed => "session closed",
            SendError::NotARequest => "message cannot carry an id",
        })
    }
}

impl std::error::Error for SendError {}
