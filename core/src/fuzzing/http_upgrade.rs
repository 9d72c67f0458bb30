//! Target `http_upgrade`: any bytes as the first bytes of a connection.
//!
//! The contract (PROTOCOL.md sections 1, 2 and 11, and "Compression"): the
//! bytes become a WebSocket handshake whose `101` a client accepts (its
//! permessage-deflate answer included), a plain request for one
//! of the routes, or a clear HTTP error that says `Connection: close`. The
//! outcome does not depend on how the bytes were split into reads, and the
//! parser never waits for more than one head and one body can hold, so its
//! memory is bounded. A [`Connection`] fed the same bytes acts on the same
//! outcome.
//!
//! The first input byte picks the split (a read size of 1 to 64 bytes) and
//! whether an origin allow-list is configured; the rest is the stream.

use bytes::Bytes;

use crate::config::ServerConfig;
use crate::connection::{Connection, Event, Transport};
use crate::http::{
    ApiMethod, HttpError, Request, RequestLimits, RequestParser, ResponseParser, Route,
};
use crate::time::Instant;

/// The origin on the allow-list, when one is configured.
pub const ALLOWED_ORIGIN: &str = "https://app.example";

/// Small limits, so that the fuzzer reaches them.
const LIMITS: RequestLimits = RequestLimits {
    max_head: 1024,
    max_body: 256,
};

/// Runs the contract on `data`.
pub fn check(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let read_size = usize::from(control & 0x3f) + 1;
    let origins = if control & 0x40 != 0 {
        vec![ALLOWED_ORIGIN.to_owned()]
    } else {
        Vec::new()
    };
    let whole = parse(stream, stream.len().max(1), &origins);
    let split = parse(stream, read_size, &origins);
    assert_eq!(whole, split, "the outcome depends on the read size");
    match &whole.outcome {
        Some(Ok(Request::Upgrade(upgrade))) => {
            let response =
                crate::http::accept_response(&upgrade.key, upgrade.protocol, upgrade.deflate);
            // The server's permessage-deflate answer is one the client's
            // offer allows, with no window kept by either side.
            let mut client = ResponseParser::new(&upgrade.key, 16 * 1024, true);
            client.feed(&response);
            let handshake = client.poll().expect("a client accepts the 101").unwrap();
            assert_eq!(handshake.protocol, upgrade.protocol);
            assert_eq!(handshake.deflate.is_some(), upgrade.deflate.is_some());
            if let Some(deflate) = handshake.deflate {
                assert!(!deflate.server_keeps_context && deflate.client_may_compress);
            }
            assert!(matches!(
                upgrade.protocol,
                None | Some(crate::http::PROTOCOL)
            ));
            // Without an Origin header (not a browser) the allow-list does
            // not apply (PROTOCOL.md section 1).
            if !origins.is_empty() {
                assert!(matches!(
                    upgrade.origin.as_deref(),
                    None | Some(ALLOWED_ORIGIN)
                ));
            }
        }
        Some(Ok(Request::Route(request))) => {
            assert!(request.body.len() <= LIMITS.max_body);
            let expected = match request.path.as_str() {
                "/healthz" => Route::Health,
                "/metrics" => Route::Metrics,
                "/tether.js" => Route::ClientScript,
                "/tether.d.ts" => Route::ClientTypes,
                "/" => Route::DemoPage,
                "/ws" => panic!("a plain request on /ws must be refused"),
                path => match ApiMethod::ALL.into_iter().find(|m| m.path() == path) {
                    Some(method) => Route::Api(method),
                    None if path.starts_with("/api/") => Route::ApiNotFound,
                    None => Route::NotFound,
                },
            };
            assert_eq!(request.route, expected);
            let method = match expected {
                Route::Health
                | Route::Metrics
                | Route::ClientScript
                | Route::ClientTypes
                | Route::DemoPage => Some("GET"),
                Route::Api(_) => Some("POST"),
                Route::NotFound | Route::ApiNotFound => None,
            };
            assert!(method.is_none_or(|method| method == request.method));
        }
        Some(Err(error)) => check_error_response(error),
        None => assert!(
            stream.len() <= LIMITS.max_head + LIMITS.max_body,
            "the parser waits for more after {} bytes",
            stream.len()
        ),
    }
    check_connection(stream, read_size, &origins, &whole);
}

/// What a parser made of a stream.
#[derive(Debug, PartialEq)]
struct Parse {
    /// The first request or error polled, `None` if the stream ended first.
    outcome: Option<Result<Request, HttpError>>,
    /// The bytes after an upgrade's head.
    remaining: Vec<u8>,
}

/// Feeds `stream` in reads of `read_size` bytes, polling after each, and
/// keeps the first outcome; later polls must repeat an error or say nothing.
fn parse(stream: &[u8], read_size: usize, origins: &[String]) -> Parse {
    let mut parser = RequestParser::new(LIMITS);
    let mut outcome = None;
    for read in stream.chunks(read_size) {
        parser.feed(read);
        let polled = parser.poll(origins, &[]);
        match (&outcome, polled) {
            (None, Ok(None)) => {}
            (None, polled) => outcome = Some(polled.map(|r| r.expect("matched None above"))),
            (Some(Err(first)), Err(again)) => assert_eq!(first, &again, "a changed error"),
            (Some(Err(_)), Ok(_)) => panic!("a poll after an error did not repeat it"),
            (Some(Ok(_)), Ok(None)) => {}
            (Some(Ok(_)), polled) => panic!("a second outcome after the request: {polled:?}"),
        }
    }
    Parse {
        outcome,
        remaining: parser.into_remaining(),
    }
}

/// The refusal is a complete HTTP/1.1 response with the error's status, a
/// body of the declared length and `Connection: close`.
fn check_error_response(error: &HttpError) {
    assert!(
        matches!(error.status(), 400 | 403 | 405 | 411 | 413 | 426 | 431),
        "unexpected status {}",
        error.status()
    );
    let bytes = error.response();
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = response.parse(&bytes).expect("valid HTTP") else {
        panic!("incomplete response head");
    };
    assert_eq!(response.code, Some(error.status()));
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    assert_eq!(header("Connection").as_deref(), Some("close"));
    let length: usize = header("Content-Length").unwrap().parse().unwrap();
    assert_eq!(bytes.len() - head_len, length);
}

/// A connection fed the same reads acts on the parser's outcome.
fn check_connection(stream: &[u8], read_size: usize, origins: &[String], parsed: &Parse) {
    let config = ServerConfig {
        max_http_head: LIMITS.max_head,
        max_payload: LIMITS.max_body,
        allowed_origins: origins.to_vec(),
        ..ServerConfig::dev()
    };
    let t0 = Instant::ZERO;
    let mut conn = Connection::new(&config, t0);
    for read in stream.chunks(read_size) {
        conn.handle_read(&config, t0, read);
    }
    let first_event = conn.poll_event();
    let mut out: Vec<Bytes> = Vec::new();
    conn.poll_transmit(usize::MAX, &mut out);
    match &parsed.outcome {
        Some(Ok(Request::Upgrade(upgrade))) => {
            assert_eq!(first_event, Some(Event::Upgraded));
            let response =
                crate::http::accept_response(&upgrade.key, upgrade.protocol, upgrade.deflate);
            assert_eq!(out.first().map(|b| &b[..]), Some(&response[..]));
        }
        Some(Ok(Request::Route(request))) => {
            assert_eq!(first_event, Some(Event::HttpRequest(request.clone())));
            assert!(out.is_empty(), "an answer before the route was decided");
            assert_eq!(conn.transport(), Transport::Open);
        }
        Some(Err(error)) => {
            assert_eq!(first_event, None);
            assert_eq!(out.concat(), error.response());
            assert_eq!(conn.transport(), Transport::CloseNow);
        }
        None => {
            assert_eq!(first_event, None);
            assert!(out.is_empty());
            let deadline = t0 + config.handshake_timeout;
            assert_eq!(conn.poll_timeout(), Some(deadline));
            conn.handle_timeout(&config, deadline);
            assert_eq!(conn.transport(), Transport::CloseNow);
        }
    }
}
