use proptest::prelude::*;

use super::*;

const LIMITS: RequestLimits = RequestLimits {
    max_head: 1024,
    max_body: 100,
};
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

type Outcome = Vec<Result<Request, HttpError>>;

/// Feeds `chunks` in order, polling after each; stops at the first error.
/// Returns what was polled and the remaining bytes.
fn run_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    allowed: &[String],
) -> (Outcome, Vec<u8>) {
    let mut parser = RequestParser::new(LIMITS);
    let mut outcome = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        match parser.poll(allowed, &[]) {
            Ok(Some(request)) => outcome.push(Ok(request)),
            Ok(None) => {}
            Err(error) => {
                outcome.push(Err(error));
                break;
            }
        }
    }
    (outcome, parser.into_remaining())
}

/// Parses `bytes` whole and one byte at a time, asserts both agree, and
/// returns the single result with the remaining bytes.
fn parse_with(bytes: &[u8], allowed: &[String]) -> (Option<Result<Request, HttpError>>, Vec<u8>) {
    let whole = run_chunks([bytes], allowed);
    let bytewise = run_chunks(bytes.chunks(1), allowed);
    assert_eq!(whole, bytewise, "whole and byte-by-byte differ");
    let (mut outcome, remaining) = whole;
    assert!(outcome.len() <= 1);
    (outcome.pop(), remaining)
}

fn parse(text: &str) -> Result<Request, HttpError> {
    match parse_with(text.as_bytes(), &[]) {
        (Some(result), _) => result,
        (None, _) => panic!("incomplete request: {text:?}"),
    }
}

fn status(text: &str) -> u16 {
    match parse(text) {
        Err(error) => error.status(),
        Ok(request) => panic!("expected a refusal, got {request:?}"),
    }
}

/// A valid upgrade request with `extra` header lines spliced in.
fn upgrade_with(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

fn upgrade(protocol: Option<&'static str>, origin: Option<&str>) -> Request {
    Request::Upgrade(Upgrade {
        key: KEY.to_owned(),
        protocol,
        deflate: None,
        origin: origin.map(str::to_owned),
        forwarded: Vec::new(),
    })
}

fn route(
    method: &str,
    path: &str,
    route: Route,
    authorization: Option<&str>,
    body: &[u8],
) -> Request {
    Request::Route(HttpRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        route,
        authorization: authorization.map(str::to_owned),
        body: body.to_vec(),
    })
}

#[test]
fn upgrade_offering_tether_selects_it() {
    let text = upgrade_with("Sec-WebSocket-Protocol: chat, tether.v1\r\n");
    assert_eq!(parse(&text), Ok(upgrade(Some("tether.v1"), None)));
}

#[test]
fn upgrade_finds_tether_in_a_repeated_protocol_field() {
    let text =
        upgrade_with("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: tether.v1\r\n");
    assert_eq!(parse(&text), Ok(upgrade(Some("tether.v1"), None)));
}

#[test]
fn upgrade_without_an_offer_has_no_protocol() {
    assert_eq!(parse(&upgrade_with("")), Ok(upgrade(None, None)));
}

#[test]
fn upgrade_offering_only_other_protocols_is_400() {
    let text = upgrade_with("Sec-WebSocket-Protocol: chat, Tether.v1\r\n");
    assert_eq!(status(&text), 400);
}

#[test]
fn header_names_and_tokens_ignore_case() {
    let text = format!(
        "GET /ws?room=1 HTTP/1.1\r\nhost: h\r\nupgrade: WebSocket\r\n\
         connection: keep-alive, UPGRADE\r\nsec-websocket-key: {KEY}\r\n\
         sec-websocket-version: 13\r\n\r\n"
    );
    assert_eq!(parse(&text), Ok(upgrade(None, None)));
}

#[test]
fn frames_pipelined_after_the_upgrade_are_kept() {
    let frame = crate::frame::masked_text_frame(b"{\"type\":\"auth\"}", [1, 2, 3, 4]);
    let mut bytes = upgrade_with("").into_bytes();
    bytes.extend_from_slice(&frame);
    let (result, remaining) = parse_with(&bytes, &[]);
    assert_eq!(result, Some(Ok(upgrade(None, None))));
    assert_eq!(remaining, frame.to_vec());
}

#[test]
fn bytes_fed_after_the_request_are_kept_too() {
    let mut parser = RequestParser::new(LIMITS);
    parser.feed(upgrade_with("").as_bytes());
    assert!(matches!(
        parser.poll(&[], &[]),
        Ok(Some(Request::Upgrade(_)))
    ));
    parser.feed(b"\x81");
    assert_eq!(parser.poll(&[], &[]), Ok(None));
    assert_eq!(parser.into_remaining(), b"\x81");
}

#[test]
fn plain_get_of_the_websocket_endpoint_is_426() {
    let error = parse("GET /ws HTTP/1.1\r\nHost: h\r\n\r\n").unwrap_err();
    assert_eq!(error.status(), 426);
    let response = String::from_utf8(error.response()).unwrap();
    assert!(response.contains("\r\nUpgrade: websocket\r\n"));
    assert!(response.contains("\r\nSec-WebSocket-Version: 13\r\n"));
}

#[test]
fn unsupported_websocket_version_is_426() {
    let text = upgrade_with("").replace("Version: 13", "Version: 8");
    assert_eq!(status(&text), 426);
    let missing = upgrade_with("").replace("Sec-WebSocket-Version: 13\r\n", "");
    assert_eq!(status(&missing), 426);
}

#[test]
fn handshake_rule_violations_are_400() {
    let cases = [
        upgrade_with("").replace("HTTP/1.1", "HTTP/1.0"),
        upgrade_with("").replace("Host: example.test\r\n", ""),
        upgrade_with("").replace("Connection: Upgrade", "Connection: keep-alive"),
        upgrade_with("").replace(KEY, "c2hvcnQ="),
        upgrade_with("").replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
        upgrade_with(&format!("Sec-WebSocket-Key: {KEY}\r\n")),
        upgrade_with("Content-Length: 5\r\n"),
        upgrade_with("Origin: a\r\nOrigin: b\r\n"),
    ];
    for text in cases {
        assert_eq!(status(&text), 400, "{text}");
    }
}

#[test]
fn non_get_on_the_websocket_endpoint_is_405() {
    let error = parse("POST /ws HTTP/1.1\r\nHost: h\r\n\r\n").unwrap_err();
    assert_eq!(error.status(), 405);
    assert!(
        String::from_utf8(error.response())
            .unwrap()
            .contains("\r\nAllow: GET\r\n")
    );
}

#[test]
fn origin_allow_list_decides_403() {
    let allowed = vec!["https://app.example".to_owned()];
    let from = |origin: &str| upgrade_with(&format!("Origin: {origin}\r\n"));
    let (result, _) = parse_with(from("https://evil.example").as_bytes(), &allowed);
    assert_eq!(result.unwrap().unwrap_err().status(), 403);
    let (result, _) = parse_with(from("https://APP.example").as_bytes(), &allowed);
    assert_eq!(result, Some(Ok(upgrade(None, Some("https://APP.example")))));
    let (result, _) = parse_with(upgrade_with("").as_bytes(), &allowed);
    assert_eq!(result, Some(Ok(upgrade(None, None))));
    let (result, _) = parse_with(from("https://evil.example").as_bytes(), &[]);
    assert_eq!(
        result,
        Some(Ok(upgrade(None, Some("https://evil.example"))))
    );
}

#[test]
fn plain_routes() {
    assert_eq!(
        parse("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"),
        Ok(route("GET", "/healthz", Route::Health, None, b""))
    );
    assert_eq!(
        parse("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
        Ok(route("GET", "/metrics", Route::Metrics, None, b""))
    );
    assert_eq!(
        parse("DELETE /nope HTTP/1.1\r\nHost: h\r\n\r\n"),
        Ok(route("DELETE", "/nope", Route::NotFound, None, b""))
    );
}

#[test]
fn browser_routes() {
    assert_eq!(
        parse("GET /tether.js HTTP/1.1\r\nHost: h\r\n\r\n"),
        Ok(route("GET", "/tether.js", Route::ClientScript, None, b""))
    );
    assert_eq!(
        parse("GET /tether.d.ts?v=1 HTTP/1.1\r\nHost: h\r\n\r\n"),
        Ok(route("GET", "/tether.d.ts", Route::ClientTypes, None, b""))
    );
    assert_eq!(
        parse("GET /?token=alice HTTP/1.1\r\nHost: h\r\n\r\n"),
        Ok(route("GET", "/", Route::DemoPage, None, b""))
    );
    assert_eq!(status("POST / HTTP/1.1\r\nHost: h\r\n\r\n"), 405);
    assert_eq!(status("PUT /tether.js HTTP/1.1\r\nHost: h\r\n\r\n"), 405);
}

#[test]
fn publish_carries_its_body_and_authorization() {
    let text = "POST /api/publish HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer k\r\n\
                Content-Length: 11\r\n\r\n{\"a\":\"b\"}\r\n";
    assert_eq!(
        parse(text),
        Ok(route(
            "POST",
            "/api/publish",
            Route::Api(ApiMethod::Publish),
            Some("Bearer k"),
            b"{\"a\":\"b\"}\r\n"
        ))
    );
}

#[test]
fn every_api_method_is_a_post_of_its_own_path_and_other_api_paths_are_not_found() {
    for method in ApiMethod::ALL {
        let path = method.path();
        assert_eq!(
            parse(&format!("POST {path} HTTP/1.1\r\nHost: h\r\n\r\n")),
            Ok(route("POST", path, Route::Api(method), None, b"")),
        );
        assert_eq!(
            status(&format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n")),
            405
        );
    }
    for path in ["/api/nope", "/api/publish/x", "/api/"] {
        assert_eq!(
            parse(&format!("POST {path} HTTP/1.1\r\nHost: h\r\n\r\n")),
            Ok(route("POST", path, Route::ApiNotFound, None, b"")),
        );
    }
    assert_eq!(
        parse("POST /apis HTTP/1.1\r\nHost: h\r\n\r\n"),
        Ok(route("POST", "/apis", Route::NotFound, None, b"")),
    );
}

#[test]
fn wrong_method_on_a_known_path_is_405() {
    let error = parse("GET /api/publish HTTP/1.1\r\nHost: h\r\n\r\n").unwrap_err();
    assert_eq!(error.status(), 405);
    assert!(
        String::from_utf8(error.response())
            .unwrap()
            .contains("\r\nAllow: POST\r\n")
    );
    assert_eq!(status("POST /healthz HTTP/1.1\r\nHost: h\r\n\r\n"), 405);
}

#[test]
fn body_framing_refusals() {
    let post = |headers: &str| format!("POST /api/publish HTTP/1.1\r\nHost: h\r\n{headers}\r\n");
    assert_eq!(status(&post("Transfer-Encoding: chunked\r\n")), 411);
    assert_eq!(status(&post("Content-Length: 101\r\n")), 413);
    assert_eq!(
        status(&post("Content-Length: 99999999999999999999999\r\n")),
        400
    );
    assert_eq!(status(&post("Content-Length: -1\r\n")), 400);
    assert_eq!(
        status(&post("Content-Length: 1\r\nContent-Length: 2\r\n")),
        400
    );
    assert_eq!(
        status(&post("Authorization: a\r\nAuthorization: b\r\n")),
        400
    );
}

#[test]
fn an_oversized_body_is_refused_before_it_arrives() {
    let mut parser = RequestParser::new(LIMITS);
    parser.feed(b"POST /api/publish HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n");
    assert_eq!(parser.poll(&[], &[]).unwrap_err().status(), 413);
    parser.feed(&[b'x'; 101]);
    assert_eq!(parser.poll(&[], &[]).unwrap_err().status(), 413);
    assert_eq!(parser.buf.capacity(), 0);
}

#[test]
fn a_body_of_exactly_max_body_is_accepted() {
    let body = [b'x'; 100];
    let mut bytes =
        b"POST /api/publish HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n".to_vec();
    bytes.extend_from_slice(&body);
    let (result, _) = parse_with(&bytes, &[]);
    assert_eq!(
        result,
        Some(Ok(route(
            "POST",
            "/api/publish",
            Route::Api(ApiMethod::Publish),
            None,
            &body
        )))
    );
}

#[test]
fn oversized_heads_are_431() {
    let long = format!(
        "GET /healthz HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(1024)
    );
    assert_eq!(status(&long), 431);
    let many: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(
        status(&format!("GET /healthz HTTP/1.1\r\nHost: h\r\n{many}\r\n")),
        431
    );
}

#[test]
fn a_head_of_exactly_max_head_is_accepted() {
    let start = "GET /healthz HTTP/1.1\r\nHost: h\r\nX-Pad: ";
    let pad = "a".repeat(LIMITS.max_head - start.len() - 4);
    let text = format!("{start}{pad}\r\n\r\n");
    assert_eq!(text.len(), LIMITS.max_head);
    assert!(parse(&text).is_ok());
}

#[test]
fn malformed_requests_are_400() {
    assert_eq!(status("GET /ws HTTP/1.1\r\nBad Header\r\n\r\n"), 400);
    assert_eq!(status("\x01\x02 / HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status("GET /healthz HTTP/2.0\r\n\r\n"), 400);
    assert_eq!(status("GET /healthz HTTP/1.1\r\n\r\n"), 400, "no host");
}

#[test]
fn a_failed_parser_repeats_its_error_and_drops_input() {
    let mut parser = RequestParser::new(LIMITS);
    parser.feed(b"GET /ws HTTP/1.1\r\nHost: h\r\n\r\n");
    let error = parser.poll(&[], &[]).unwrap_err();
    parser.feed(b"more");
    assert_eq!(parser.poll(&[], &[]), Err(error));
    assert!(parser.into_remaining().is_empty());
}

/// Splits `bytes` at the given cut points (taken modulo its length).
fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for point in points.into_iter().chain([bytes.len()]) {
        chunks.push(&bytes[from..point]);
        from = point;
    }
    chunks
}

/// Requests covering every outcome, each followed by some pipelined bytes.
fn sample_requests() -> Vec<String> {
    vec![
        upgrade_with("Sec-WebSocket-Protocol: tether.v1\r\nOrigin: https://app.example\r\n"),
        upgrade_with("Origin: https://evil.example\r\n"),
        upgrade_with("Sec-WebSocket-Protocol: mqtt\r\n"),
        "GET /ws HTTP/1.1\r\nHost: h\r\n\r\n".to_owned(),
        "POST /api/publish HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody".to_owned(),
        "POST /api/publish HTTP/1.1\r\nHost: h\r\nContent-Length: 400\r\n\r\n".to_owned(),
        format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000)),
        "GET /healthz HTTP/1.1\r\nHost h\r\n\r\n".to_owned(),
    ]
}

proptest! {
    #[test]
    fn any_split_gives_the_same_result(
        index in 0..8usize,
        tail in prop::collection::vec(any::<u8>(), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let allowed = vec!["https://app.example".to_owned()];
        let mut bytes = sample_requests()[index].clone().into_bytes();
        bytes.extend_from_slice(&tail);
        let whole = run_chunks([&bytes[..]], &allowed);
        prop_assert_eq!(whole.0.len(), 1);
        prop_assert_eq!(&run_chunks(split(&bytes, &cuts), &allowed), &whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        prefix in 0..3usize,
        bytes in prop::collection::vec(any::<u8>(), 0..3000),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        // Some inputs start like a real request so the parser gets further.
        let start: &[u8] = [&b""[..], b"GET /ws HTTP/1.1\r\n", b"POST /api/publish HTTP/1.1\r\nHost: h\r\nContent-Length: 90\r\n\r\n"][prefix];
        let input = [start, &bytes].concat();
        let whole = run_chunks([&input[..]], &[]);
        prop_assert_eq!(&run_chunks(split(&input, &cuts), &[]), &whole);
        let mut parser = RequestParser::new(LIMITS);
        for chunk in split(&input, &cuts) {
            parser.feed(chunk);
            let _ = parser.poll(&[], &[]);
            let held = parser.buf.len();
            match &parser.state {
                State::Head => prop_assert!(held <= LIMITS.max_head),
                State::Body { body_len, .. } => prop_assert!(held < *body_len && *body_len <= LIMITS.max_body),
                State::Failed(_) => prop_assert_eq!(parser.buf.capacity(), 0),
                State::Done => {}
            }
        }
    }
}
