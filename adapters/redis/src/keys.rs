//! Where a node's state lives in Redis. Every name starts with a prefix
//! ([`crate::KEY_PREFIX`]) so that Tether can share a Redis with others; a
//! channel's keys carry its name in braces, which keeps them in one hash
//! slot. The Lua scripts build the same names for the keys they find at run
//! time (`users_key`, `topic`, the node entries and the node figures
//! `info:NODE` in the scripts), and name three of their own: `channels`,
//! the sorted set of the channels whose state Redis keeps, by last use,
//! `channels:uses`, its counter, and `active`, the set of the channels
//! with a user present.

use tether_core::{Channel, IdempotencyKey};

/// The key names of one deployment.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Names under `prefix`.
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix, for the scripts that build names themselves.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A hash of the channel's `epoch` and last offset `seq`.
    pub(crate) fn meta(&self, channel: &Channel) -> String {
        format!("{}{{{channel}}}:meta", self.prefix)
    }

    /// The list of the channel's recent publications.
    pub(crate) fn history(&self, channel: &Channel) -> String {
        format!("{}{{{channel}}}:history", self.prefix)
    }

    /// The idempotency record of a publication's `key` on the channel, in
    /// its publisher's scope: the user `sender`, or the HTTP API for none.
    /// User ids hold no newline, so the first one ends the scope.
    pub(crate) fn idempotency(
        &self,
        channel: &Channel,
        sender: Option<&str>,
        key: &IdempotencyKey,
    ) -> String {
        let scope = sender.map_or_else(|| "api".to_owned(), |user| format!("user:{user}"));
        format!("{}{{{channel}}}:idempotency:{scope}\n{key}", self.prefix)
    }

    /// A hash of the users present in the channel and their connection
    /// counts over all nodes.
    pub(crate) fn users(&self, channel: &Channel) -> String {
        format!("{}{{{channel}}}:users", self.prefix)
    }

    /// A hash of one node's presence entries (`CHANNEL\nUSER` and count).
    pub(crate) fn node(&self, node: &str) -> String {
        format!("{}node:{node}", self.prefix)
    }

    /// The counter of presence versions, shared by every channel.
    pub(crate) fn presence_version(&self) -> String {
        format!("{}presence:version", self.prefix)
    }

    /// The sorted set of node leases, scored by expiry.
    pub(crate) fn leases(&self) -> String {
        format!("{}leases", self.prefix)
    }

    /// The set of the channels with a user present on some node.
    pub(crate) fn active(&self) -> String {
        format!("{}active", self.prefix)
    }

    /// The pub/sub topic of the HTTP API's orders, which every node
    /// follows from the moment it connects. Its braces are in no channel
    /// name, so no channel's topic is the same.
    pub(crate) fn control(&self) -> String {
        format!("{}{{control}}", self.prefix)
    }

    /// The pub/sub topic of the channel's publications and presence changes.
    pub(crate) fn topic(&self, channel: &Channel) -> String {
        format!("{}{channel}", self.prefix)
    }

    /// The channel of a topic this node follows.
    pub(crate) fn channel_of(&self, topic: &str) -> Option<Channel> {
        Channel::new(topic.strip_prefix(&self.prefix)?).ok()
    }
}

/// A node's presence entry for `user` in `channel`.
pub(crate) fn member(channel: &Channel, user: &str) -> String {
    format!("{channel}\n{user}")
}
