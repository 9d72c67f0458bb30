//! The application's side of a node, in one trait: every decision of
//! PROTOCOL.md section 13 as an async method, and the notifications.
//!
//! The core calls no application code: it hands out [`Decision`]s and
//! takes [`Verdict`]s. An adapter turns one into the other with
//! [`Decision::decide`], which awaits the [`Handler`] and turns its panics
//! into `INTERNAL` for that request only, so every runtime answers a
//! failing application the same way.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;

use crate::auth::{Authorizer, Identity};
use crate::hooks::{ChannelRequest, ConnectRequest, Notification, Rejection, RpcRequest};
use crate::server::{Decision, Verdict};

/// What an application decides and observes on a node. Implement it with
/// `#[tether_core::async_trait]`; each method may take as long as it
/// needs (up to `decision_timeout`): only the connection it answers waits.
///
/// Every [`Authorizer`] is a `Handler` that keeps the defaults (channel
/// requests of `backend` namespaces refused `FORBIDDEN`, every `rpc`
/// `NOT_FOUND`, notifications dropped): the way to begin, and the
/// behaviour of a node without hooks.
#[async_trait]
pub trait Handler: Send + Sync {
    /// Who the token of an `auth` (or a `refresh`) proves, with what it
    /// grants, until when, and the connection info to attach; or the
    /// rejection (`FORBIDDEN` closes 4003, `UNAVAILABLE` 1013, `INTERNAL`
    /// 1011; after a `refresh`, an error with that code).
    async fn connect(&self, request: ConnectRequest) -> Result<Identity, Rejection>;

    /// Whether the user may subscribe, asked where the namespace's
    /// `subscribe` rule is `backend`: `Ok(None)` allows, `Ok(Some(json))`
    /// allows and sends `json` as the `data` of `subscribed`. The default
    /// refuses.
    async fn subscribe(&self, request: ChannelRequest) -> Result<Option<String>, Rejection> {
        let _ = request;
        Err(Rejection::forbidden())
    }

    /// Whether the user may publish `request.data`, asked where the
    /// namespace's `publish` rule is `backend`: `Ok(None)` publishes it as
    /// sent, `Ok(Some(json))` publishes `json` instead. The default
    /// refuses.
    async fn publish(&self, request: ChannelRequest) -> Result<Option<String>, Rejection> {
        let _ = request;
        Err(Rejection::forbidden())
    }

    /// The result of an `rpc`, as JSON text. The default knows no method
    /// (`NOT_FOUND`).
    async fn rpc(&self, request: RpcRequest) -> Result<String, Rejection> {
        let _ = request;
        Err(Rejection::unknown_method())
    }

    /// Whether the `Authorization` header of an HTTP API request carries a
    /// valid API key. Must be quick: no I/O.
    fn authorize_api(&self, authorization: Option<&str>) -> bool;

    /// Something happened that the application may observe. Called on the
    /// node's own thread, in order: must be quick (hand work elsewhere). A
    /// panic here is caught and the notification dropped.
    fn notify(&self, notification: Notification) {
        let _ = notification;
    }

    /// Whether the methods do blocking work inside their futures (a
    /// synchronous database call): an adapter then polls them on a thread
    /// that may block. The default `false` suits real async code.
    fn may_block(&self) -> bool {
        false
    }
}

#[async_trait]
impl<A: Authorizer + Send + Sync + ?Sized> Handler for A {
    async fn connect(&self, request: ConnectRequest) -> Result<Identity, Rejection> {
        self.authenticate(&request.token)
            .ok_or_else(Rejection::forbidden)
    }

    fn authorize_api(&self, authorization: Option<&str>) -> bool {
        Authorizer::authorize_api(self, authorization)
    }

    fn may_block(&self) -> bool {
        Authorizer::may_block(self)
    }
}

/// A decision the handler has not answered at once: poll it to its verdict
/// where waiting stalls no other connection (a task, or a thread that may
/// block when [`Handler::may_block`]).
pub type PendingVerdict = Pin<Box<dyn Future<Output = Verdict> + Send + 'static>>;

impl Decision {
    /// Asks `handler`, and gives its verdict at once when it answers
    /// without waiting (a token checked in memory): the adapter feeds it
    /// in line, with no task or thread hand-off per connection. Otherwise
    /// gives the future to finish elsewhere; a handler that
    /// [may block](Handler::may_block) is not polled here at all.
    pub fn decide_now(self, handler: Arc<dyn Handler>) -> Result<Verdict, PendingVerdict> {
        let may_block = handler.may_block();
        let mut pending: PendingVerdict = Box::pin(async move { self.decide(&*handler).await });
        if may_block {
            return Err(pending);
        }
        match pending
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(verdict) => Ok(verdict),
            Poll::Pending => Err(pending),
        }
    }

    /// Asks `authorizer`, which may take as long as it needs, on the
    /// calling thread: for an embedder with no executor. Call it where
    /// waiting stalls no other connection (see [`Authorizer::may_block`])
    /// and feed the verdict with
    /// [`Server::handle_verdict`](crate::Server::handle_verdict). An
    /// authorizer is a [`Handler`] that keeps the defaults, and answers
    /// them the same way.
    pub fn ask(self, authorizer: &(impl Authorizer + Send + Sync + ?Sized)) -> Verdict {
        let failed = self.failed();
        let mut decided = std::pin::pin!(self.decide(authorizer));
        match decided
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(verdict) => verdict,
            // An authorizer's answer is synchronous: its future is ready
            // at the first poll.
            Poll::Pending => failed,
        }
    }

    /// Asks `handler` and awaits its answer, as the verdict to feed with
    /// [`Server::handle_verdict`](crate::Server::handle_verdict). A panic
    /// in the handler becomes [`Decision::failed`]: `INTERNAL` for this
    /// request only.
    pub async fn decide(self, handler: &(impl Handler + ?Sized)) -> Verdict {
        let failed = self.failed();
        let answer = Box::pin(async move {
            match self {
                Decision::Authenticate { id, request } => Verdict::Authenticate {
                    id,
                    conn: request.conn,
                    identity: handler.connect(request).await,
                },
                Decision::Channel {
                    id,
                    operation,
                    request,
                } => {
                    let conn = request.conn;
                    let answer = match operation {
                        crate::Operation::Publish => handler.publish(request).await,
                        _ => handler.subscribe(request).await,
                    };
                    Verdict::Channel { id, conn, answer }
                }
                Decision::Rpc { id, request } => Verdict::Rpc {
                    id,
                    conn: request.conn,
                    result: handler.rpc(request).await,
                },
                Decision::AuthorizeApi {
                    conn,
                    authorization,
                } => Verdict::AuthorizeApi {
                    conn,
                    authorized: handler.authorize_api(authorization.as_deref()),
                },
            }
        });
        CatchUnwind(answer).await.unwrap_or(failed)
    }
}

impl Notification {
    /// Hands the notification to `handler`, dropping it if the handler
    /// panics: an observer's failure never takes the node down.
    pub fn deliver(self, handler: &(impl Handler + ?Sized)) {
        let _ = catch_unwind(AssertUnwindSafe(|| handler.notify(self)));
    }
}

/// A future whose panic is caught and returned as `Err`.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;
    use crate::envelope::{Channel, ErrorCode};
    use crate::hooks::DecisionId;
    use crate::ids::ConnId;

    /// Polls a future that never waits, as a handler without I/O is.
    fn ready<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("the future waits"),
        }
    }

    struct AnyToken;

    impl Authorizer for AnyToken {
        fn authenticate(&self, token: &str) -> Option<Identity> {
            (token != "bad").then(|| Identity::user(token))
        }

        fn authorize_api(&self, _: Option<&str>) -> bool {
            true
        }
    }

    struct Panics;

    #[async_trait]
    impl Handler for Panics {
        async fn connect(&self, _: ConnectRequest) -> Result<Identity, Rejection> {
            panic!("the database is gone");
        }

        async fn rpc(&self, _: RpcRequest) -> Result<String, Rejection> {
            panic!("a bug in the method");
        }

        fn authorize_api(&self, _: Option<&str>) -> bool {
            true
        }

        fn notify(&self, _: Notification) {
            panic!("an observer's bug");
        }
    }

    fn connect(token: &str) -> Decision {
        Decision::Authenticate {
            id: DecisionId(1),
            request: ConnectRequest {
                conn: ConnId(1),
                token: token.into(),
                headers: Vec::new(),
                refresh: false,
            },
        }
    }

    fn rpc() -> Decision {
        Decision::Rpc {
            id: DecisionId(2),
            request: RpcRequest {
                conn: ConnId(1),
                user: "ann".into(),
                info: None,
                method: "m".into(),
                data: "null".into(),
            },
        }
    }

    #[test]
    fn an_authorizer_is_a_handler_that_keeps_the_defaults() {
        let Verdict::Authenticate { identity, .. } = ready(connect("ann").decide(&AnyToken)) else {
            panic!("an authenticate verdict");
        };
        assert_eq!(identity, Ok(Identity::user("ann")));
        let Verdict::Authenticate { identity, .. } = ready(connect("bad").decide(&AnyToken)) else {
            panic!("an authenticate verdict");
        };
        assert_eq!(identity, Err(Rejection::forbidden()));
        let Verdict::Rpc { result, .. } = ready(rpc().decide(&AnyToken)) else {
            panic!("an rpc verdict");
        };
        assert_eq!(result.unwrap_err().code, ErrorCode::NotFound);
        let subscribe = Decision::Channel {
            id: DecisionId(3),
            operation: crate::Operation::Subscribe,
            request: ChannelRequest {
                conn: ConnId(1),
                user: "ann".into(),
                info: None,
                channel: Channel::new("c").unwrap(),
                data: None,
            },
        };
        let Verdict::Channel { answer, .. } = ready(subscribe.decide(&AnyToken)) else {
            panic!("a channel verdict");
        };
        assert_eq!(answer, Err(Rejection::forbidden()));
    }

    #[test]
    fn a_panicking_handler_fails_only_its_request_with_internal() {
        let Verdict::Authenticate { identity, id, .. } = ready(connect("ann").decide(&Panics))
        else {
            panic!("an authenticate verdict");
        };
        assert_eq!((id, identity), (DecisionId(1), Err(Rejection::internal())));
        let Verdict::Rpc { result, id, .. } = ready(rpc().decide(&Panics)) else {
            panic!("an rpc verdict");
        };
        assert_eq!((id, result), (DecisionId(2), Err(Rejection::internal())));
        let notification = Notification::Connected {
            conn: ConnId(1),
            user: "ann".into(),
            info: None,
        };
        notification.deliver(&Panics);
    }
}
