//! The tokens of the simulated clients and what they grant: a token is the
//! user id, followed by [`GRANT_MARK`] when it grants the feed channels.
//! Every other channel of the runs is open to every user; the feed
//! channels' subscriptions and recovery take a grant, so a client whose
//! application refreshes its token can lose them or win them back.

use tether_core::{ChannelPattern, Grants, Identity, Namespace, Operation, Rule, ServerConfig};

/// The channels that take a grant.
pub const FEEDS: &str = "feed:*";

/// What ends a token that grants [`FEEDS`].
pub const GRANT_MARK: &str = "+feeds";

/// The token of `user`, granting [`FEEDS`] or not.
pub fn token(user: &str, granted: bool) -> String {
    if granted {
        format!("{user}{GRANT_MARK}")
    } else {
        user.to_owned()
    }
}

/// Whether `token` grants [`FEEDS`].
pub fn grants_feeds(token: &str) -> bool {
    token.ends_with(GRANT_MARK)
}

/// Whether `channel` is one of [`FEEDS`].
pub fn is_feed(channel: &str) -> bool {
    feeds().matches(channel)
}

/// What the simulated authenticator makes of `token`: its user, with the
/// grant of [`FEEDS`] (subscribe and history) when the token carries it.
pub fn identity(token: &str) -> Identity {
    let user = token.strip_suffix(GRANT_MARK).unwrap_or(token);
    let ops: &[Operation] = if grants_feeds(token) {
        &[Operation::Subscribe, Operation::History]
    } else {
        &[]
    };
    Identity {
        user: user.to_owned(),
        grants: Grants::new([(feeds(), ops)]),
        ..Identity::default()
    }
}

/// `server` with the feeds taking a grant and every other channel open.
pub fn with_feeds(server: ServerConfig) -> ServerConfig {
    let feeds = Namespace {
        subscribe: Rule::Token,
        history: Rule::Token,
        publish: Rule::Nobody,
        ..Namespace::open(feeds())
    };
    let mut namespaces = vec![feeds];
    namespaces.extend(server.namespaces);
    ServerConfig {
        namespaces,
        ..server
    }
}

fn feeds() -> ChannelPattern {
    ChannelPattern::new(FEEDS).expect("a pattern")
}
