//! The server-side Lua scripts. Each runs atomically in Redis, so every
//! ordering decision of the backplane happens inside one: the offset, the
//! history entry, the idempotency record and the fan-out of a publication
//! are one step, and every node sees one order.
//!
//! The scripts are loaded (`SCRIPT LOAD`) on every connection before the
//! link reports up and then called by digest (`EVALSHA`). A Redis that
//! restarted has forgotten them, but the connection broke with the restart
//! and the next one loads them again; an `EVALSHA` answered `NOSCRIPT`
//! still fails the link, so that the next connection loads them.

/// Each script: its body, with the shared helpers in front.
macro_rules! script {
    ($file:literal) => {
        concat!(include_str!("lua/common.lua"), include_str!($file))
    };
}

/// The scripts, in the order of [`Script`].
pub(crate) const SOURCES: [&str; 10] = [
    script!("lua/publish.lua"),
    script!("lua/read.lua"),
    script!("lua/presence.lua"),
    script!("lua/member.lua"),
    script!("lua/lease.lua"),
    script!("lua/rejoin.lua"),
    script!("lua/stats.lua"),
    script!("lua/history.lua"),
    script!("lua/channels.lua"),
    script!("lua/info.lua"),
];

/// Names a script of [`SOURCES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Script {
    /// Sequences, stores and fans out one publication.
    Publish = 0,
    /// A subscription's or a catch-up's view of a channel.
    Read = 1,
    /// The users of a channel.
    Presence = 2,
    /// One connection joins or leaves.
    Member = 3,
    /// Renews a lease and removes dead nodes.
    Lease = 4,
    /// Restates a node's presence.
    Rejoin = 5,
    /// Counts a channel's users and connections.
    Stats = 6,
    /// Reads a channel's history for the HTTP API.
    History = 7,
    /// Lists the active channels.
    Channels = 8,
    /// Lists the live nodes and their figures.
    Info = 9,
}

/// The digests of the loaded scripts.
#[derive(Clone, Debug)]
pub(crate) struct Digests(pub(crate) Vec<String>);

impl Digests {
    /// The digest to call `script` by.
    pub(crate) fn of(&self, script: Script) -> &str {
        &self.0[script as usize]
    }
}
