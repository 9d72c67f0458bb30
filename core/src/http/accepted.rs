//! An upgrade that another HTTP server parsed and answers: the same checks
//! as the node's own parser, on the parts that server already has.
//!
//! An application that runs its own HTTP server (hyper, axum) hands the
//! node its WebSocket connections after the `101`, so the node never sees
//! the request head. [`check_upgrade`] applies the rules of RFC 6455
//! section 4.2.1, the origin allow-list and the subprotocol rule of
//! PROTOCOL.md section 1 to the method, version and header fields that
//! server parsed, with the code the node's own parser runs, and says what
//! the `101` must carry; [`crate::Server::accept_upgraded`] takes the
//! connection once the `101` is written.

use httparse::Header;
use tungstenite::handshake::derive_accept_key;

use super::classify::{Parsed, upgrade};
use super::response::HttpError;

/// The parts of an upgrade request that another HTTP server parsed.
#[derive(Clone, Copy, Debug)]
pub struct UpgradeHead<'a> {
    /// The request method, as sent (`GET` upgrades).
    pub method: &'a str,
    /// Whether the request is HTTP/1.1, the only version Tether upgrades
    /// (an HTTP/1.0 or HTTP/2 request is refused 400, as by the node's own
    /// parser).
    pub http_1_1: bool,
    /// Every header field, name and raw value, in the order received; a
    /// field sent twice appears twice. Names are compared ignoring ASCII
    /// case.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// An upgrade request that passed every check: what the `101` carries, and
/// what the node keeps for the connection's `auth`. Made only by
/// [`crate::Server::check_upgrade`], so a connection handed to
/// [`crate::Server::accept_upgraded`] was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedUpgrade {
    accept_key: String,
    protocol: Option<&'static str>,
    deflate: Option<&'static str>,
    forwarded: Vec<(String, String)>,
}

impl AcceptedUpgrade {
    /// The `Sec-WebSocket-Accept` value of the `101` (RFC 6455 section
    /// 4.2.2), derived from the client's key.
    pub fn accept_key(&self) -> &str {
        &self.accept_key
    }

    /// The `Sec-WebSocket-Protocol` of the `101`: `Some("tether.v1")` when
    /// the client offered it, `None` (no field) when it offered none.
    pub fn protocol(&self) -> Option<&'static str> {
        self.protocol
    }

    /// The `Sec-WebSocket-Extensions` of the `101`: the permessage-deflate
    /// answer when the client offered it and the node compresses, `None`
    /// (no field) otherwise.
    pub fn deflate(&self) -> Option<&'static str> {
        self.deflate
    }

    /// This upgrade without compression: the node's `compression` is off.
    pub(crate) fn without_deflate(self) -> Self {
        AcceptedUpgrade {
            deflate: None,
            ..self
        }
    }

    /// The header fields named in `forward_headers`, lower-cased name and
    /// value, in the order received, that the connect decision sees.
    pub fn forwarded(&self) -> &[(String, String)] {
        &self.forwarded
    }

    pub(crate) fn into_forwarded(self) -> Vec<(String, String)> {
        self.forwarded
    }
}

/// Checks an upgrade request by the node's own rules (RFC 6455 section
/// 4.2.1 in order, then the origin allow-list `allowed_origins` and the
/// subprotocol): the first failed rule gives the refusal, with the status
/// the node's own parser answers. `forwarded` names the fields the connect
/// decision sees (lower case). The request's path and `Host` are the
/// other server's business: it routed the request here.
pub fn check_upgrade(
    head: &UpgradeHead<'_>,
    allowed_origins: &[String],
    forwarded: &[String],
) -> Result<AcceptedUpgrade, HttpError> {
    let headers: Vec<Header<'_>> = head
        .headers
        .iter()
        .map(|&(name, value)| Header { name, value })
        .collect();
    let parsed = Parsed {
        method: head.method,
        target: "",
        minor_version: u8::from(head.http_1_1),
        headers: &headers,
    };
    let upgrade = upgrade(&parsed, allowed_origins, forwarded)?;
    Ok(AcceptedUpgrade {
        accept_key: derive_accept_key(upgrade.key.as_bytes()),
        protocol: upgrade.protocol,
        deflate: upgrade.deflate,
        forwarded: upgrade.forwarded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Request, RequestLimits, RequestParser};

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// The head `text` parsed by httparse, checked by [`check_upgrade`],
    /// and the same bytes answered by the node's own parser: both must
    /// agree, on the refusal's status and reason or on the upgrade.
    fn both(
        text: &str,
        allowed: &[String],
        forwarded: &[String],
    ) -> Result<AcceptedUpgrade, HttpError> {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut fields);
        let status = request.parse(text.as_bytes()).expect("a well-formed head");
        assert!(status.is_complete());
        let headers: Vec<(&str, &[u8])> =
            request.headers.iter().map(|h| (h.name, h.value)).collect();
        let head = UpgradeHead {
            method: request.method.unwrap(),
            http_1_1: request.version == Some(1),
            headers: &headers,
        };
        let checked = check_upgrade(&head, allowed, forwarded);
        let mut parser = RequestParser::new(RequestLimits {
            max_head: 8192,
            max_body: 1024,
        });
        parser.feed(text.as_bytes());
        let parsed = parser.poll(allowed, forwarded);
        match (&checked, parsed) {
            (Err(checked), Err(parsed)) => assert_eq!(checked, &parsed, "{text}"),
            (Ok(checked), Ok(Some(Request::Upgrade(parsed)))) => {
                assert_eq!(checked.accept_key, derive_accept_key(parsed.key.as_bytes()));
                assert_eq!(checked.protocol, parsed.protocol);
                assert_eq!(checked.forwarded, parsed.forwarded);
            }
            (checked, parsed) => panic!("{text}: checked {checked:?}, parsed {parsed:?}"),
        }
        checked
    }

    fn head(method: &str, version: &str, extra: &str) -> String {
        format!(
            "{method} /ws HTTP/1.{version}\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    }

    fn status(text: &str, allowed: &[String]) -> u16 {
        both(text, allowed, &[]).expect_err("a refusal").status()
    }

    #[test]
    fn a_valid_upgrade_carries_the_accept_key_and_the_protocol() {
        let accepted = both(
            &head("GET", "1", "Sec-WebSocket-Protocol: chat, tether.v1\r\n"),
            &[],
            &[],
        )
        .expect("accepted");
        // RFC 6455 section 1.3's example.
        assert_eq!(accepted.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(accepted.protocol(), Some("tether.v1"));
        let plain = both(&head("GET", "1", ""), &[], &[]).expect("accepted");
        assert_eq!(plain.protocol(), None, "no offer, no protocol");
    }

    #[test]
    fn refusals_have_the_status_and_reason_of_the_nodes_own_parser() {
        let allowed = vec!["https://app.example".to_owned()];
        assert_eq!(status(&head("POST", "1", ""), &[]), 405);
        assert_eq!(status(&head("GET", "0", ""), &[]), 400, "HTTP/1.0");
        assert_eq!(
            status(
                &head("GET", "1", "").replace("Upgrade: websocket\r\n", ""),
                &[]
            ),
            426
        );
        assert_eq!(
            status(
                &head("GET", "1", "").replace("Connection: Upgrade", "Connection: keep-alive"),
                &[]
            ),
            400
        );
        assert_eq!(
            status(&head("GET", "1", "").replace(": 13", ": 8"), &[]),
            426
        );
        assert_eq!(
            status(&head("GET", "1", "").replace(KEY, "c2hvcnQ="), &[]),
            400
        );
        assert_eq!(status(&head("GET", "1", "Content-Length: 3\r\n"), &[]), 400);
        assert_eq!(
            status(&head("GET", "1", "Sec-WebSocket-Protocol: chat\r\n"), &[]),
            400
        );
        assert_eq!(
            status(
                &head("GET", "1", "Origin: https://evil.example\r\n"),
                &allowed
            ),
            403
        );
        assert!(
            both(
                &head("GET", "1", "Origin: https://app.example\r\n"),
                &allowed,
                &[]
            )
            .is_ok()
        );
        assert!(
            both(&head("GET", "1", ""), &allowed, &[]).is_ok(),
            "no Origin, not a browser"
        );
    }

    #[test]
    fn a_refusal_names_what_its_answer_carries() {
        let error = both(&head("GET", "1", "").replace(": 13", ": 8"), &[], &[]).unwrap_err();
        assert_eq!(
            error.headers(),
            [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")]
        );
        let method = both(&head("PUT", "1", ""), &[], &[]).unwrap_err();
        assert_eq!(method.headers(), [("Allow", "GET")]);
    }

    #[test]
    fn the_forwarded_fields_are_kept_in_order_with_lower_case_names() {
        let forwarded = vec!["cookie".to_owned(), "x-tenant".to_owned()];
        let text = head(
            "GET",
            "1",
            "Cookie: a=1\r\nX-Other: no\r\nX-Tenant: t\r\ncookie: b=2\r\n",
        );
        let accepted = both(&text, &[], &forwarded).expect("accepted");
        let expected = [("cookie", "a=1"), ("x-tenant", "t"), ("cookie", "b=2")];
        let got: Vec<(&str, &str)> = accepted
            .forwarded()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(got, expected);
    }
}
