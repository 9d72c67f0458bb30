//! The server's request parser: bytes in, one classified request out.

use super::classify::{Head, Parsed, classify};
use super::response::HttpError;
use crate::config::ServerConfig;

/// Headers a request may carry; more is answered 431 like an oversized head.
const MAX_HEADERS: usize = 64;

/// Size limits of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest request head (request line and headers) in bytes; more is
    /// answered 431.
    pub max_head: usize,
    /// Largest body in bytes; a larger `Content-Length` is answered 413.
    pub max_body: usize,
}

impl RequestLimits {
    /// The limits a server applies: `max_http_head` for the head and
    /// `max_payload` for a body (a published payload travels in it).
    pub fn from_config(config: &ServerConfig) -> Self {
        RequestLimits {
            max_head: config.max_http_head,
            max_body: config.max_payload,
        }
    }
}

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A valid WebSocket handshake on `/ws`: answer it with
    /// [`accept_response`](super::accept_response).
    Upgrade(Upgrade),
    /// A plain HTTP request, to be answered and closed.
    Route(HttpRequest),
}

/// A WebSocket handshake that passed every check of RFC 6455 section 4.2.1,
/// the subprotocol rule and the origin allow-list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade {
    /// The client's `Sec-WebSocket-Key`, from which the accept key derives.
    pub key: String,
    /// `Some("tether.v1")` when the client offered it, `None` when it offered
    /// no subprotocol.
    pub protocol: Option<&'static str>,
    /// The `Sec-WebSocket-Extensions` answer to the client's first
    /// acceptable permessage-deflate offer, or `None` when it made none; a
    /// server with compression switched off leaves it out of its `101`.
    pub deflate: Option<&'static str>,
    /// The `Origin` the handshake came from, if the client sent one.
    pub origin: Option<String>,
    /// The header fields the server forwards to the application's connect
    /// decision (`forward_headers`), lower-cased name and value, in the
    /// order received; a value that is not UTF-8 is left out.
    pub forwarded: Vec<(String, String)>,
}

/// A plain HTTP request with its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// The request method, as sent (methods are case-sensitive).
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// Which endpoint the method and path select.
    pub route: Route,
    /// The `Authorization` field, if present.
    pub authorization: Option<String>,
    /// The body, exactly `Content-Length` bytes.
    pub body: Vec<u8>,
}

/// The plain endpoints of PROTOCOL.md section 2. A method other than the
/// endpoint's own is refused with 405 before a route is produced, so each
/// variant implies its method. New endpoints become new variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /healthz`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// `POST /api/<method>`: the server API, each method behind the API
    /// key.
    Api(ApiMethod),
    /// Any other path under `/api/`, with any method: the caller answers
    /// 404 with a JSON error, as the API answers its errors.
    ApiNotFound,
    /// `GET /tether.js`: the browser client, an ES module.
    ClientScript,
    /// `GET /tether.d.ts`: the browser client's TypeScript declarations.
    ClientTypes,
    /// `GET /`: the demo page, served only when the config enables it.
    DemoPage,
    /// Any other path, with any method: the caller answers 404.
    NotFound,
}

/// A method of the server API, named by its path `/api/<name>`
/// (PROTOCOL.md section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiMethod {
    /// Publishes to one channel.
    Publish,
    /// Publishes one payload to many channels.
    Broadcast,
    /// The users present in a channel.
    Presence,
    /// How many users and connections are in a channel.
    PresenceStats,
    /// What a channel's history holds.
    History,
    /// The channels with a subscriber.
    Channels,
    /// Closes every connection of a user.
    Disconnect,
    /// Ends a user's subscription to a channel.
    Unsubscribe,
    /// The nodes and their figures.
    Info,
}

impl ApiMethod {
    /// Every method, in the order PROTOCOL.md lists them.
    pub const ALL: [ApiMethod; 9] = [
        ApiMethod::Publish,
        ApiMethod::Broadcast,
        ApiMethod::Presence,
        ApiMethod::PresenceStats,
        ApiMethod::History,
        ApiMethod::Channels,
        ApiMethod::Disconnect,
        ApiMethod::Unsubscribe,
        ApiMethod::Info,
    ];

    /// The method's path.
    pub fn path(self) -> &'static str {
        match self {
            ApiMethod::Publish => "/api/publish",
            ApiMethod::Broadcast => "/api/broadcast",
            ApiMethod::Presence => "/api/presence",
            ApiMethod::PresenceStats => "/api/presence_stats",
            ApiMethod::History => "/api/history",
            ApiMethod::Channels => "/api/channels",
            ApiMethod::Disconnect => "/api/disconnect",
            ApiMethod::Unsubscribe => "/api/unsubscribe",
            ApiMethod::Info => "/api/info",
        }
    }

    /// The method a path names, if any.
    pub fn from_path(path: &str) -> Option<ApiMethod> {
        ApiMethod::ALL
            .into_iter()
            .find(|method| method.path() == path)
    }
}

/// Parses one request from a client, h11-style.
///
/// Feed received bytes with [`feed`](Self::feed) and call
/// [`poll`](Self::poll) after each feed. Tether serves exactly one request
/// per connection: once a request is returned, later polls return
/// `Ok(None)`, and the bytes that followed it (for an upgrade, the first
/// WebSocket frames a client may pipeline) are kept for
/// [`into_remaining`](Self::into_remaining). Once an error is returned, every
/// later poll returns it again and fed bytes are dropped.
///
/// Until a request is complete the parser holds at most `max_head` bytes of
/// head or `max_body` bytes of body, plus the last read.
#[derive(Debug)]
pub struct RequestParser {
    limits: RequestLimits,
    buf: Vec<u8>,
    state: State,
}

#[derive(Debug)]
enum State {
    Head,
    Body {
        request: HttpRequest,
        body_len: usize,
    },
    Done,
    Failed(HttpError),
}

impl RequestParser {
    /// A parser for one request within `limits`.
    pub fn new(limits: RequestLimits) -> Self {
        RequestParser {
            limits,
            buf: Vec::new(),
            state: State::Head,
        }
    }

    /// Appends bytes received from the client; dropped after an error.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !matches!(self.state, State::Failed(_)) {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The request once it is complete, `Ok(None)` while more bytes are
    /// needed (and after the request was returned), or the refusal to send.
    ///
    /// `allowed_origins` is the server's allow-list (empty allows any
    /// origin) and `forwarded` the header names an upgrade keeps for the
    /// application (lower case); they are passed here rather than stored
    /// so that connections share the server's configuration instead of
    /// copying it.
    pub fn poll(
        &mut self,
        allowed_origins: &[String],
        forwarded: &[String],
    ) -> Result<Option<Request>, HttpError> {
        let result = self.step(allowed_origins, forwarded);
        if let Err(error) = &result {
            self.buf = Vec::new();
            self.state = State::Failed(error.clone());
        }
        result
    }

    /// The bytes received after the request: for an upgrade, the start of
    /// the WebSocket stream. Empty unless a request was returned.
    pub fn into_remaining(self) -> Vec<u8> {
        match self.state {
            State::Done => self.buf,
            _ => Vec::new(),
        }
    }

    fn step(
        &mut self,
        allowed_origins: &[String],
        forwarded: &[String],
    ) -> Result<Option<Request>, HttpError> {
        match &self.state {
            State::Failed(error) => return Err(error.clone()),
            State::Done => return Ok(None),
            State::Body { .. } => {}
            State::Head => {
                let Some((head_len, head)) = self.parse_head(allowed_origins, forwarded)? else {
                    return Ok(None);
                };
                self.buf.drain(..head_len);
                match head {
                    Head::Upgrade(upgrade) => {
                        self.state = State::Done;
                        return Ok(Some(Request::Upgrade(upgrade)));
                    }
                    Head::Route { request, body_len } => {
                        self.state = State::Body { request, body_len };
                    }
                }
            }
        }
        Ok(self.take_body())
    }

    /// The plain request, once its whole body has arrived.
    fn take_body(&mut self) -> Option<Request> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Body {
                mut request,
                body_len,
            } if self.buf.len() >= body_len => {
                request.body = self.buf.drain(..body_len).collect();
                Some(Request::Route(request))
            }
            waiting => {
                self.state = waiting;
                None
            }
        }
    }

    /// Parses the head if it is complete within `max_head` bytes.
    ///
    /// Only the first `max_head` bytes are ever looked at, so the outcome is
    /// the same however the input was split: an error inside the limit is
    /// found either way, and a head that does not end inside it is 431.
    fn parse_head(
        &self,
        allowed_origins: &[String],
        forwarded: &[String],
    ) -> Result<Option<(usize, Head)>, HttpError> {
        let window = &self.buf[..self.buf.len().min(self.limits.max_head)];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let head_len = match request.parse(window) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if self.buf.len() > self.limits.max_head => {
                return Err(HttpError::new(431, "request head too large"));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HttpError::new(431, "too many header fields"));
            }
            Err(_) => return Err(HttpError::new(400, "malformed request")),
        };
        let parsed = Parsed {
            method: request.method.unwrap_or_default(),
            target: request.path.unwrap_or_default(),
            minor_version: request.version.unwrap_or_default(),
            headers: request.headers,
        };
        let head = classify(&parsed, &self.limits, allowed_origins, forwarded)?;
        Ok(Some((head_len, head)))
    }
}

#[cfg(test)]
mod tests;
