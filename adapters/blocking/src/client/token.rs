//! Where a [`Client`](super::Client) gets its tokens when the application
//! keeps them fresh: a function a thread of the client calls whenever the
//! session hands out [`Output::TokenWanted`].
//!
//! [`Output::TokenWanted`]: tether_core::ClientOutput::TokenWanted

use std::fmt;

/// A function that gives a fresh token, called before every connection
/// and for every refresh of the token (PROTOCOL.md section 11), on a
/// thread of the client's own, so it may block (an HTTP call to an auth
/// service). A call that fails, or takes longer than the session's
/// `connect_timeout` (`request_timeout` for a refresh), counts as a failed
/// attempt and is retried with backoff.
pub struct TokenProvider(Box<dyn FnMut() -> Result<String, String> + Send>);

impl TokenProvider {
    /// A provider that calls `fetch` for each token; its error is never
    /// shown to the server.
    pub fn new<F, E>(mut fetch: F) -> TokenProvider
    where
        F: FnMut() -> Result<String, E> + Send + 'static,
        E: fmt::Display,
    {
        TokenProvider(Box::new(move || fetch().map_err(|error| error.to_string())))
    }

    /// One call.
    pub(super) fn fetch(&mut self) -> Result<String, String> {
        (self.0)()
    }
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenProvider")
    }
}
