//! Where a [`Client`](super::Client) gets its tokens when the application
//! keeps them fresh: an async function the driver task calls whenever the
//! session hands out [`Output::TokenWanted`].
//!
//! [`Output::TokenWanted`]: tether_core::ClientOutput::TokenWanted

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// One call of the provider: a token, or why there is none.
pub(super) type TokenFetch = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// An async function that gives a fresh token, called before every
/// connection and for every refresh of the token (PROTOCOL.md section 11).
/// A call that fails, or takes longer than the session's `connect_timeout`
/// (`request_timeout` for a refresh), counts as a failed attempt and is
/// retried with backoff.
pub struct TokenProvider(Box<dyn FnMut() -> TokenFetch + Send>);

impl TokenProvider {
    /// A provider that calls `fetch` for each token; its error is logged
    /// (at debug level) and never shown to the server.
    pub fn new<F, Fut, E>(mut fetch: F) -> TokenProvider
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: fmt::Display,
    {
        TokenProvider(Box::new(move || {
            let call = fetch();
            Box::pin(async move { call.await.map_err(|error| error.to_string()) })
        }))
    }

    /// Starts one call.
    pub(super) fn fetch(&mut self) -> TokenFetch {
        (self.0)()
    }
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenProvider")
    }
}
