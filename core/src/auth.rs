//! The seam for auth decisions made outside the core.
//!
//! The core never verifies a token itself: it emits the token and takes a
//! verdict. Adapters ask an [`Authorizer`] for that verdict; the `tether`
//! binary implements it with JWT (wall clock read there, not here) or, in
//! development, by taking any token as the user id.

/// Decides tokens and API keys for a server node.
pub trait Authorizer {
    /// The user id a WebSocket `auth` token proves, or `None` to reject it.
    fn authenticate(&self, token: &str) -> Option<String>;

    /// Whether the `Authorization` header of an HTTP API request carries a
    /// valid API key.
    fn authorize_api(&self, authorization: Option<&str>) -> bool;
}
