//! Deciding what a complete request head asks for: a WebSocket upgrade
//! (checked against RFC 6455 section 4.2.1), one of the plain routes, or a
//! refusal.

use httparse::Header;

use super::base64;
use super::extensions::accept_deflate;
use super::headers::{check_origin, has_token, single, tokens, values};
use super::request::{ApiMethod, HttpRequest, Route, Upgrade};
use super::response::HttpError;
use super::{PROTOCOL, RequestLimits};

/// What a request head turned out to be.
#[derive(Debug)]
pub(super) enum Head {
    /// A valid WebSocket handshake; no body follows.
    Upgrade(Upgrade),
    /// A plain request; `body_len` bytes of body follow the head.
    Route {
        request: HttpRequest,
        body_len: usize,
    },
}

/// The parts of a parsed head that classification reads.
pub(super) struct Parsed<'h> {
    pub method: &'h str,
    pub target: &'h str,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
    pub headers: &'h [Header<'h>],
}

/// Classifies a complete head, or says why it is refused.
pub(super) fn classify(
    head: &Parsed<'_>,
    limits: &RequestLimits,
    allowed_origins: &[String],
    forwarded: &[String],
) -> Result<Head, HttpError> {
    // RFC 9112 section 3.2: an HTTP/1.1 request without exactly one Host is
    // answered 400.
    match single(head.headers, "Host") {
        Ok(Some(_)) => {}
        Ok(None) if head.minor_version == 0 => {}
        Ok(None) => return Err(HttpError::new(400, "missing host")),
        Err(_) => return Err(HttpError::new(400, "invalid host")),
    }
    // The query string never takes part in routing (tokens are never read
    // from it).
    let path = head.target.split('?').next().unwrap_or_default();
    let (allow, route) = match path {
        "/ws" => return upgrade(head, allowed_origins, forwarded).map(Head::Upgrade),
        "/healthz" => (Some("GET"), Route::Health),
        "/metrics" => (Some("GET"), Route::Metrics),
        "/tether.js" => (Some("GET"), Route::ClientScript),
        "/tether.d.ts" => (Some("GET"), Route::ClientTypes),
        "/" => (Some("GET"), Route::DemoPage),
        _ => match ApiMethod::from_path(path) {
            Some(method) => (Some("POST"), Route::Api(method)),
            None if path.starts_with("/api/") => (None, Route::ApiNotFound),
            None => (None, Route::NotFound),
        },
    };
    if let Some(allow) = allow.filter(|&allow| allow != head.method) {
        return Err(HttpError::method_not_allowed(allow));
    }
    let body_len = body_len(head.headers, limits.max_body)?;
    let authorization = match single(head.headers, "Authorization") {
        Ok(value) => value.map(str::to_owned),
        Err(_) => return Err(HttpError::new(400, "invalid authorization")),
    };
    Ok(Head::Route {
        request: HttpRequest {
            method: head.method.to_owned(),
            path: path.to_owned(),
            route,
            authorization,
            body: Vec::new(),
        },
        body_len,
    })
}

/// The body length a plain request declares.
///
/// Only `Content-Length` framing is accepted: any `Transfer-Encoding`
/// (chunked included) is refused with 411, which asks the client to send a
/// length instead; this also rules out the request-smuggling ambiguity of
/// both fields at once (RFC 9112 section 6.1).
fn body_len(headers: &[Header<'_>], max_body: usize) -> Result<usize, HttpError> {
    if values(headers, "Transfer-Encoding").next().is_some() {
        return Err(HttpError::new(
            411,
            "send a content-length, not a transfer-encoding",
        ));
    }
    let mut declared = None;
    for value in values(headers, "Content-Length") {
        let len = parse_length(value).ok_or(HttpError::new(400, "invalid content-length"))?;
        // RFC 9112 section 6.3: differing lengths make the framing unknown.
        if declared.is_some_and(|earlier| earlier != len) {
            return Err(HttpError::new(400, "conflicting content-length"));
        }
        declared = Some(len);
    }
    match declared {
        Some(len) if len > max_body => Err(HttpError::new(413, "body too large")),
        Some(len) => Ok(len),
        None => Ok(0),
    }
}

/// A decimal length; `None` for anything else, including a value too large
/// for `usize` (which any limit refuses anyway, but as 400, not 413).
fn parse_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// RFC 6455 section 4.2.1, in order; the first failed rule decides the
/// answer. The node's own parser and [`super::check_upgrade`] both run it.
pub(super) fn upgrade(
    head: &Parsed<'_>,
    allowed_origins: &[String],
    forwarded: &[String],
) -> Result<Upgrade, HttpError> {
    // 4.2.1 item 1: "An HTTP/1.1 or higher GET request".
    if head.method != "GET" {
        return Err(HttpError::method_not_allowed("GET"));
    }
    // 4.2.1 item 3: "An |Upgrade| header field containing the value
    // "websocket"". Without it this is a plain GET of a WebSocket endpoint.
    if !has_token(head.headers, "Upgrade", "websocket") {
        return Err(HttpError::new(426, "upgrade required"));
    }
    if head.minor_version != 1 {
        return Err(HttpError::new(400, "websocket needs HTTP/1.1"));
    }
    // 4.2.1 item 4: "A |Connection| header field that includes the token
    // "Upgrade"".
    if !has_token(head.headers, "Connection", "upgrade") {
        return Err(HttpError::new(400, "connection must include upgrade"));
    }
    // 4.2.1 item 6 and 4.4: any version but 13 gets 426 naming 13.
    if single(head.headers, "Sec-WebSocket-Version") != Ok(Some("13")) {
        return Err(HttpError::new(426, "websocket version must be 13"));
    }
    // 4.2.1 item 5: the key decodes to 16 bytes.
    let key = match single(head.headers, "Sec-WebSocket-Key") {
        Ok(Some(key)) if base64::is_16_byte_value(key) => key.to_owned(),
        _ => return Err(HttpError::new(400, "invalid websocket key")),
    };
    // Whatever follows the head is WebSocket frames, so a body cannot be
    // framed.
    let has_body = values(head.headers, "Transfer-Encoding").next().is_some()
        || values(head.headers, "Content-Length").any(|v| v != b"0");
    if has_body {
        return Err(HttpError::new(400, "upgrade request with a body"));
    }
    let origin = match single(head.headers, "Origin") {
        Ok(origin) => origin,
        Err(_) => return Err(HttpError::new(400, "invalid origin")),
    };
    if !check_origin(origin, allowed_origins) {
        return Err(HttpError::new(403, "origin not allowed"));
    }
    Ok(Upgrade {
        key,
        protocol: select_protocol(head.headers)?,
        deflate: accept_deflate(head.headers),
        origin: origin.map(str::to_owned),
        forwarded: forwarded_fields(head.headers, forwarded),
    })
}

/// The fields named in `forwarded` (lower case), as lower-cased name and
/// UTF-8 value, in the order received.
fn forwarded_fields(headers: &[Header<'_>], forwarded: &[String]) -> Vec<(String, String)> {
    if forwarded.is_empty() {
        return Vec::new();
    }
    headers
        .iter()
        .filter(|header| {
            forwarded
                .iter()
                .any(|name| header.name.eq_ignore_ascii_case(name))
        })
        .filter_map(|header| {
            let value = std::str::from_utf8(header.value).ok()?;
            Some((header.name.to_ascii_lowercase(), value.to_owned()))
        })
        .collect()
}

/// PROTOCOL.md section 1: `tether.v1` when offered, no protocol when none is
/// offered, and a refusal when only others are. Subprotocol names are
/// compared exactly (RFC 6455 section 4.1 treats them as opaque tokens).
fn select_protocol(headers: &[Header<'_>]) -> Result<Option<&'static str>, HttpError> {
    let mut offered = tokens(headers, "Sec-WebSocket-Protocol").peekable();
    if offered.peek().is_none() {
        return Ok(None);
    }
    if offered.any(|p| p == PROTOCOL.as_bytes()) {
        Ok(Some(PROTOCOL))
    } else {
        Err(HttpError::new(400, "unsupported subprotocol"))
    }
}
