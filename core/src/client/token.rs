//! Where a client gets its tokens when the application keeps them fresh:
//! an async function the adapter calls whenever the session hands out
//! [`Output::TokenWanted`](super::Output::TokenWanted), and whose answer
//! it feeds back with `handle_token` or `handle_token_failed`.
//!
//! The provider names no runtime, so one type serves every client: an async
//! client polls each call on the task that drives its session; the
//! blocking client polls it to completion on a thread of its own.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// One call of a [`TokenProvider`]: a token, or why there is none.
pub type TokenFetch = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// An async function that gives a fresh token, called before every
/// connection and for every refresh of the token (PROTOCOL.md section 11).
/// A call that fails, or takes longer than the session's `connect_timeout`
/// (`request_timeout` for a refresh), counts as a failed attempt and is
/// retried with backoff.
///
/// The blocking client polls each call on a thread of its own, so there a
/// call may block (an HTTP request to an auth service, made inside the
/// future or before it, as in `std::future::ready(fetch_token())`) but may
/// not need a runtime's reactor; an async client polls it on its task, so
/// there it must not block.
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

    /// Starts one call, for the session's latest
    /// [`Output::TokenWanted`](super::Output::TokenWanted).
    pub fn fetch(&mut self) -> TokenFetch {
        (self.0)()
    }
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenProvider")
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll, Waker};

    use super::*;

    /// The answer of a call that is ready at its first poll.
    fn answer(mut call: TokenFetch) -> Result<String, String> {
        match call.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(answer) => answer,
            Poll::Pending => panic!("the call is ready at once"),
        }
    }

    #[test]
    fn each_call_asks_the_function_again_and_its_error_becomes_text() {
        let mut calls = 0;
        let mut provider = TokenProvider::new(move || {
            calls += 1;
            std::future::ready(match calls {
                1 => Ok("alice#1".to_owned()),
                _ => Err(std::io::Error::other("auth service down")),
            })
        });
        assert_eq!(answer(provider.fetch()), Ok("alice#1".to_owned()));
        assert_eq!(
            answer(provider.fetch()),
            Err("auth service down".to_owned())
        );
        assert_eq!(format!("{provider:?}"), "TokenProvider");
    }
}
