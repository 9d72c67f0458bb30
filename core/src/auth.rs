//! The seam for auth decisions made outside the core, and the user id rule
//! every runtime applies to them.
//!
//! The core never verifies a token itself: it emits the token and takes a
//! verdict. Adapters ask an [`Authorizer`] for that verdict; the `tether`
//! binary implements it with JWT (wall clock read there, not here) or, in
//! development, by taking any token as the user id.
//!
//! Whatever the authorizer says, a user id must pass [`is_valid_user_id`]:
//! a connection whose token proves another id is closed `4003` (reason
//! `invalid user id`), so every runtime and every authorizer agree on who
//! may connect.

use std::time::Duration;

use crate::access::Grants;
use crate::envelope::{Channel, PRIVATE_CHANNEL_PREFIX};

/// The longest user id, in characters: what fits after `user:` in a
/// channel name.
pub const MAX_USER_ID_CHARS: usize = 123;

/// Whether `user` may be a user id: 1 to [`MAX_USER_ID_CHARS`] characters
/// of the channel-name alphabet (`A-Z a-z 0-9 _ - : . @ /`).
///
/// Every user can then name its private channel `user:<id>`, and no user id
/// holds whitespace, control, invisible or bidirectional-control characters,
/// which would make look-alikes of other users in presence lists, `sender`
/// fields and logs.
pub fn is_valid_user_id(user: &str) -> bool {
    !user.is_empty() && Channel::new(&format!("{PRIVATE_CHANNEL_PREFIX}{user}")).is_ok()
}

/// What an accepted token proves: who the connection is, what its token
/// grants on channels, and until when it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The user id.
    pub user: String,
    /// The token's `channels` claim, for namespaces whose rule is `token`.
    pub grants: Grants,
    /// When the token expires; `None` when it does not.
    pub expiry: Option<Expiry>,
    /// What the application attaches to the connection, as JSON text: it
    /// comes back with every later decision of the connection and its
    /// `Connected` notification, and is never sent to the client. Ignored
    /// for a `refresh`.
    pub info: Option<String>,
}

impl Identity {
    /// `user`, with no grants and no expiry.
    pub fn user(user: impl Into<String>) -> Identity {
        Identity {
            user: user.into(),
            ..Identity::default()
        }
    }
}

/// When a token expires, as the check that accepted it saw it: the core
/// keeps no wall clock, so the authorizer says both the instant to report
/// (`expires_at` in `auth_ack` and `refreshed`) and how long the token
/// had left when it was checked, from which the core times the close
/// `4004`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// The token's `exp`, in Unix milliseconds.
    pub unix_ms: u64,
    /// What was left of the token's life at the check.
    pub remaining: Duration,
}

/// Decides tokens and API keys for a server node.
pub trait Authorizer {
    /// Who a WebSocket `auth` or `refresh` token proves, or `None` to
    /// reject it.
    fn authenticate(&self, token: &str) -> Option<Identity>;

    /// Whether the `Authorization` header of an HTTP API request carries a
    /// valid API key.
    fn authorize_api(&self, authorization: Option<&str>) -> bool;

    /// Whether a check may wait (a database, a network service): an adapter
    /// then runs it away from the thread that serves the other connections.
    /// `false` declares every check quick CPU work (a signature, a lookup in
    /// memory), which an adapter may run in line, saving a thread hand-off
    /// per connection. The default is the safe `true`.
    fn may_block(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_id_fits_its_private_channel() {
        let longest = "u".repeat(MAX_USER_ID_CHARS);
        assert!(is_valid_user_id(&longest));
        assert!(Channel::new(&format!("user:{longest}")).is_ok());
        assert!(!is_valid_user_id(&format!("{longest}u")));
        for user in ["alice", "A-z_0:9.@/"] {
            assert!(is_valid_user_id(user), "{user:?}");
        }
        for user in [
            "",
            " alice",
            "a+b",
            "é",
            "\u{200b}",
            "\u{2067}a",
            "a\u{feff}",
        ] {
            assert!(!is_valid_user_id(user), "{user:?}");
        }
    }
}
