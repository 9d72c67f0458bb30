use super::*;

fn offered(values: &[&str]) -> Option<&'static str> {
    let headers: Vec<Header<'_>> = values
        .iter()
        .map(|value| Header {
            name: "Sec-WebSocket-Extensions",
            value: value.as_bytes(),
        })
        .collect();
    accept_deflate(&headers)
}

fn answered(value: &str) -> Result<Option<Deflate>, Unexpected> {
    agreed_deflate(&[Header {
        name: "sec-websocket-extensions",
        value: value.as_bytes(),
    }])
}

#[test]
fn a_browser_offer_is_accepted_with_both_no_context_takeovers() {
    assert_eq!(
        offered(&["permessage-deflate; client_max_window_bits"]),
        Some(ACCEPT)
    );
    assert_eq!(offered(&["permessage-deflate"]), Some(ACCEPT));
    assert_eq!(
        offered(&["PerMessage-Deflate; server_no_context_takeover; client_no_context_takeover"]),
        Some(ACCEPT)
    );
    assert_eq!(
        ACCEPT,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
}

#[test]
fn no_offer_or_another_extension_means_no_compression() {
    assert_eq!(offered(&[]), None);
    assert_eq!(offered(&["x-webkit-deflate-frame"]), None);
    assert_eq!(offered(&[""]), None);
}

#[test]
fn a_smaller_server_window_is_declined_and_a_later_offer_accepted() {
    assert_eq!(
        offered(&["permessage-deflate; server_max_window_bits=10"]),
        None
    );
    assert_eq!(
        offered(&[
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover"
        ]),
        Some(ACCEPT)
    );
    assert_eq!(
        offered(&["permessage-deflate; server_max_window_bits=8, permessage-deflate"]),
        Some(ACCEPT)
    );
}

#[test]
fn the_largest_server_window_is_accepted_and_echoed() {
    assert_eq!(
        offered(&["permessage-deflate; server_max_window_bits=15"]),
        Some(ACCEPT_WINDOW_15)
    );
    assert_eq!(
        offered(&["permessage-deflate; server_max_window_bits=\"15\""]),
        Some(ACCEPT_WINDOW_15)
    );
}

#[test]
fn invalid_offers_are_declined() {
    for offer in [
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=010",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; mystery",
        "permessage-deflate; ",
    ] {
        assert_eq!(offered(&[offer]), None, "{offer}");
    }
    assert_eq!(
        offered(&["permessage-deflate; client_max_window_bits=10"]),
        Some(ACCEPT)
    );
}

#[test]
fn the_client_reads_the_server_answer() {
    assert_eq!(answered(""), Ok(None));
    assert_eq!(
        answered(ACCEPT),
        Ok(Some(Deflate {
            server_keeps_context: false,
            client_may_compress: true,
        }))
    );
    assert_eq!(
        answered("permessage-deflate; server_max_window_bits=10"),
        Ok(Some(Deflate {
            server_keeps_context: true,
            client_may_compress: true,
        }))
    );
    assert_eq!(
        answered("permessage-deflate; client_max_window_bits=9"),
        Ok(Some(Deflate {
            server_keeps_context: true,
            client_may_compress: false,
        }))
    );
}

#[test]
fn the_client_refuses_what_it_did_not_offer() {
    for answer in [
        "x-webkit-deflate-frame",
        "permessage-deflate, permessage-deflate",
        "permessage-deflate; mystery",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    ] {
        assert_eq!(answered(answer), Err(Unexpected), "{answer}");
    }
}
