//! Sans-IO core of Tether: deterministic state machines for a real-time
//! WebSocket messaging server and client.
//!
//! Nothing in this crate reads a clock, touches a socket, spawns, sleeps or
//! locks. Time ([`time::Instant`]) and randomness (seeds) are inputs; bytes
//! to write, decisions for the application and the next deadline are
//! outputs.
//!
//! # Driving a server node
//!
//! An adapter owns one [`Server`] (made with a seed from OS
//! randomness) and follows one rule: **feed one input, then drain
//! [`Server::poll_output`] until it returns
//! [`Output::Timeout`]; then wait for I/O or that deadline.**
//!
//! ```text
//! input   accept | handle_accept_failed | handle_read | handle_written
//!         | handle_transport_closed | handle_timeout | handle_verdict
//!         | handle_store_event | publish | shutdown      (now first)
//! drain   loop { match server.poll_output() {
//!           Wake(conn)      -> poll_transmit, write, handle_written; act on transport(conn)
//!           Decide(d)       -> d.decide(handler).await outside (as long as it
//!                              takes, in a task of its own), then handle_verdict
//!           Notify(n)       -> n.deliver(handler)
//!           Store(request)  -> hand to the backplane (a `Backplane`), in order
//!           Published{..}   -> tell the caller of publish(token)
//!           Closed{..}      -> log
//!           Drained         -> the graceful shutdown is over: stop
//!           Timeout(at)     -> break: wait for I/O or `at`, then handle_timeout
//!         } }
//! ```
//!
//! While draining, an adapter may write frames ([`Server::poll_transmit`]
//! and [`Server::handle_written`]) and read
//! [`Server::transport`]; every other input waits until the drain
//! is over, and is followed by a drain of its own. Those three queue no
//! output, so they need no drain of their own either. A decision may be
//! answered at any later time, after any other input: the connection keeps
//! its later requests in order meanwhile, and no other connection waits.
//! Verdicts need not come in the order of their decisions, even for one
//! connection, which may have two out at once (a `refresh` decided while
//! a channel request waits): each verdict names what it answers.
//! Nothing is acknowledged implicitly: bytes handed out by `poll_transmit`
//! count against the connection's backlog until `handle_written`. A writer
//! asks [`server::Server::transport`] again after each `handle_written`:
//! once a `CloseAfterFlush` is flushed, the order to close or half-close
//! comes from there, not from a `Wake`. A `Wake` is not repeated until the
//! next `poll_transmit`, so a writer busy when one comes must keep it (one
//! pending wake per connection is enough).
//!
//! # The adapter's other duties
//!
//! - **Start.** Take the seed from OS randomness (on `std` alone, a
//!   `RandomState` hash, as the example does). Lower `max_connections` to
//!   [`connections_within_open_files`] of the process's `RLIMIT_NOFILE`
//!   (its soft limit) when that is lower, and warn saying so (PROTOCOL.md
//!   section 11). Then drain once before the first input: a new node has
//!   outputs already (a backplane node's first is the [`Output::Store`]
//!   that asks to connect).
//! - **Accept.** Make a connection's writer known to the adapter in the
//!   same input as [`Server::accept`]: its drain may wake it already (a
//!   refusal's `503`). Every failed accept goes to
//!   [`Server::handle_accept_failed`].
//! - **Read.** The peer's end of stream or a read error ends the
//!   connection, writing or not (after [`Transport::HalfClose`] too):
//!   close the socket and report it with
//!   [`Server::handle_transport_closed`], the only way the core learns of
//!   it.
//! - **Stop.** [`Output::Drained`] is the last output of its drain. Every
//!   WebSocket session has ended by then (the `1001` ends it, not the
//!   socket), so each user's departure is already among the store
//!   requests: sockets still open may be closed without telling the core,
//!   and a backplane's request channel closed (see [`Backplane`]).
//! - **Logs.** The `tether` binary's end-to-end tests read three of an
//!   adapter's log lines at the default `info` level: each
//!   [`Output::Closed`] with its close code and reason, the warning that
//!   starts a spell of failed accepts (containing `accept failed`), and the
//!   start-up warning of a lowered `max_connections` (containing
//!   `(RLIMIT_NOFILE` and `limit=N`, the new value, as a field). No
//!   token or API key is ever logged.
//!
//! - **Shards.** A node on several threads runs one [`Server`] per shard
//!   ([`Server::shard`]), each with its own connections, in front of one
//!   [`Router`] the adapter shares between them (behind a lock: the core
//!   takes none). Each shard's [`Output::Store`] requests go to
//!   [`Router::handle_request`] at the end of its drain, with its shard
//!   number; the events [`Router::take_events`] gives for a shard go into
//!   that shard's [`Server::handle_store_event`]; a shard
//!   [`Router::poll_woken`] names is woken to take them. A connection is
//!   counted against the node's `max_connections` when it is accepted
//!   ([`Router::open_socket`]) and handed to its shard with
//!   [`Server::accept_counted`]. [`NodeShards`] is the shard's view of the
//!   router and of the other shards' [`Server::figures`]. One place
//!   drives [`Router::handle_timeout`]. With a backplane the router is
//!   made with [`Router::with_backplane`] and stands in front of the
//!   node's one link: the adapter runs the [`Backplane`] with
//!   [`Router::node_id`], hands it every [`Router::poll_store_request`]
//!   (taken after each call into the router, in order) and feeds its
//!   events to [`Router::handle_store_event`], waking the shards it
//!   names.
//!
//! `core/examples/serve.rs` is a complete node driven this way on `std`
//! alone (threads and one lock): the reference for a new adapter, but for
//! the file limit, the logs' exact words and a backplane. Run it with
//! `cargo run -p tether-core --example serve -- 127.0.0.1:8080`.

mod access;
mod auth;
mod backoff;
mod backplane;
mod client;
mod close;
mod config;
mod connection;
mod deflate;
mod envelope;
mod frame;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod handler;
mod hooks;
mod http;
mod hub;
mod ids;
#[cfg(feature = "internals")]
pub mod internals;
mod metrics;
mod node_options;
mod queue;
mod rate;
mod server;
mod shard;
mod time;
mod timer;
pub mod wire;

// The server node: what an adapter drives.
pub use config::{
    ConfigError, MAX_FORWARD_HEADERS, MAX_HTTP_HEAD, MAX_PAYLOAD_LIMIT, MIN_HTTP_HEAD,
    RESERVED_FILE_DESCRIPTORS, ServerConfig, connections_within_open_files,
};
pub use connection::{ClosedBy, Transport};
pub use http::{AcceptedUpgrade, HttpError, UpgradeHead};
pub use ids::ConnId;
pub use node_options::NodeOptions;
pub use server::{ACCEPT_RETRY, AcceptRetry, Decision, Output, PublishError, Server, Verdict};
pub use shard::{Figures, NodeShards};
pub use time::Instant;

// Decisions the application takes, and what it may observe.
pub use access::{ChannelPattern, Grants, Namespace, Operation, Rule};
pub use async_trait::async_trait;
pub use auth::{Authorizer, Expiry, Identity, MAX_USER_ID_CHARS, is_valid_user_id};
pub use handler::{Handler, PendingVerdict};
pub use hooks::{
    ChannelRequest, ConnectRequest, DecisionId, MAX_REJECTION_MESSAGE, Notification, Rejection,
    RpcRequest,
};

// The backplane seam: what a shared store implements.
pub use backplane::{Backplane, BackplaneTask, EventSink, RequestSource};
pub use hub::{
    BACKPLANE_BACKOFF, Control, Member, NodeInfo, NodeStats, Refusal, Router, StoreEvent,
    StoreRequest, Ticket,
};

// The client session: what a client adapter drives.
pub use backoff::{Backoff, RetrySchedule};
pub use client::{
    ClientConfig, ClientSession, Event, Output as ClientOutput, RequestError, SendError,
    TokenSource, Transmit,
};

// What every client adapter shares besides the session: its calls' error,
// the token provider, the request waiters, the write queue and the
// decisions they must agree on.
pub use client::{
    ClientError, DEFAULT_PORT, InvalidHost, Routed, TokenFetch, TokenProvider, Waiters, WriteQueue,
    dial_address, publication_payload, published_offset, rpc_call, rpc_result, unix_ms,
};

// The protocol's vocabulary: messages, channels, codes, metrics.
pub use close::{CloseCode, CloseReason};
pub use envelope::{
    Channel, ClientMessage, EnvelopeError, ErrorCode, IdempotencyKey, MAX_METHOD_CHARS, Position,
    RequestId, ServerMessage, UnsubscribeReason, encode_client_message, encode_publication,
    encode_publication_prefix, encode_server_message, is_valid_method, parse_client_message,
    parse_server_message,
};
pub use metrics::Counters;

#[cfg(test)]
mod testkit;
