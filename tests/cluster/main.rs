//! Three `tether serve --redis` processes sharing one `redis-server`
//! (PROTOCOL.md section 6 and the backplane decisions of section 11), run
//! as a user runs them: the real binary, real sockets on 127.0.0.1, Redis
//! without persistence on a free port, and tungstenite clients.
//!
//! Every test starts its own Redis and nodes ([`support::Cluster`]). Every
//! wait is bounded: reads time out, log lines and exits are awaited for at
//! most [`tether_testkit::process::PROCESS_LIMIT`], so no test can hang. Nodes run with a
//! short `presence_ttl`, so that a dead node's users leave within seconds.

mod support;

mod api;
mod bench;
mod outages;
mod presence;
mod pubsub;
mod shards;
mod tls;
