//! The server API on one node (PROTOCOL.md section 2): each method's exact
//! answers in memory mode, and, with a backplane, answers that wait for
//! the store and `503` without it.

use super::backplane::Cluster;
use super::*;

/// `POST path` with `body`, and the API key when `key`.
fn post(path: &str, key: bool, body: &str) -> String {
    let auth = if key {
        format!("Authorization: {API_KEY}\r\n")
    } else {
        String::new()
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The status and body of a complete HTTP answer.
fn answer(response: &str) -> (u16, &str) {
    let (head, body) = response.split_once("\r\n\r\n").expect("a whole answer");
    let status = head[9..12].parse().expect("a status");
    (status, body)
}

/// The status and body of `POST path` with the key.
fn call(node: &mut Node, path: &str, body: &str) -> (u16, String) {
    let response = node.http(&post(path, true, body));
    let (status, body) = answer(&response);
    (status, body.to_owned())
}

fn ok(body: &str) -> (u16, String) {
    (200, body.to_owned())
}

fn bad(code: &str, message: &str) -> (u16, String) {
    (400, format!(r#"{{"code":"{code}","message":"{message}"}}"#))
}

/// A node whose `alice` and `bob` are subscribed to `channels`.
fn node_with(config: ServerConfig, channels: &[&str]) -> (Node, ConnId, ConnId) {
    let mut node = Node::new(config);
    let alice = node.connect("alice");
    let bob = node.connect("bob");
    for conn in [alice, bob] {
        for channel in channels {
            node.send(
                conn,
                &format!(r#"{{"type":"subscribe","channel":"{channel}"}}"#),
            );
        }
    }
    node.replies(alice);
    node.replies(bob);
    (node, alice, bob)
}

#[test]
fn every_method_needs_the_key_and_other_api_paths_are_json_404s() {
    let mut node = Node::new(ServerConfig::dev());
    for method in ApiMethod::ALL {
        let response = node.http(&post(method.path(), false, "{}"));
        assert_eq!(
            answer(&response),
            (
                401,
                r#"{"code":"FORBIDDEN","message":"missing or invalid API key"}"#
            ),
            "{method:?}"
        );
    }
    assert_eq!(
        call(&mut node, "/api/nope", "{}"),
        (
            404,
            r#"{"code":"NOT_FOUND","message":"no such API method"}"#.to_owned()
        )
    );
    assert_eq!(
        call(&mut node, "/api/presence", "[1]"),
        bad("INVALID_MESSAGE", "the body must be a JSON object")
    );
    assert_eq!(call(&mut node, "/api/presence", "{").0, 400);
}

#[test]
fn broadcast_publishes_one_payload_per_channel_and_lists_each_offset() {
    let config = ServerConfig {
        api_max_broadcast_channels: 3,
        ..ServerConfig::dev()
    };
    let (mut node, alice, _) = node_with(config, &["a", "b"]);
    let body = r#"{"channels":["a","b","a"],"payload":{"x":1},"idempotency_key":"k1"}"#;
    let expected = r#"{"results":[{"channel":"a","offset":1},{"channel":"b","offset":1},{"channel":"a","offset":1}]}"#;
    assert_eq!(call(&mut node, "/api/broadcast", body), ok(expected));
    assert_eq!(
        call(&mut node, "/api/broadcast", body),
        ok(expected),
        "a retry with the key publishes nothing again"
    );
    let fresh = r#"{"channels":["a","b"],"payload":2}"#;
    assert_eq!(
        call(&mut node, "/api/broadcast", fresh),
        ok(r#"{"results":[{"channel":"a","offset":2},{"channel":"b","offset":2}]}"#)
    );
    let offsets: Vec<(String, u64)> = node
        .replies(alice)
        .into_iter()
        .filter_map(|message| match message {
            ServerMessage::Message {
                channel, offset, ..
            } => Some((channel.as_str().to_owned(), offset)),
            _ => None,
        })
        .collect();
    let expected = [("a", 1), ("b", 1), ("a", 2), ("b", 2)].map(|(c, o)| (c.to_owned(), o));
    assert_eq!(offsets, expected);

    let four = r#"{"channels":["a","b","c","d"],"payload":1}"#;
    assert_eq!(
        call(&mut node, "/api/broadcast", four),
        bad(
            "LIMIT_EXCEEDED",
            "too many channels: at most 3 per broadcast"
        )
    );
    assert_eq!(
        call(
            &mut node,
            "/api/broadcast",
            r#"{"channels":[],"payload":1}"#
        ),
        bad(
            "INVALID_MESSAGE",
            "invalid field channels: must name at least one channel"
        )
    );
    assert_eq!(
        call(
            &mut node,
            "/api/broadcast",
            r#"{"channels":["a","x y"],"payload":1}"#
        ),
        bad(
            "INVALID_CHANNEL",
            "channels[1]: channel names are 1 to 128 characters of A-Z a-z 0-9 _ - : . @ /"
        )
    );
    assert_eq!(
        call(&mut node, "/api/broadcast", r#"{"channels":["a"]}"#),
        bad("INVALID_MESSAGE", "missing field payload")
    );
}

#[test]
fn presence_lists_the_users_and_presence_stats_counts_users_and_connections() {
    let (mut node, _, _) = node_with(ServerConfig::dev(), &["room"]);
    let again = node.connect("alice");
    node.send(again, r#"{"type":"subscribe","channel":"room"}"#);
    let room = r#"{"channel":"room"}"#;
    assert_eq!(
        call(&mut node, "/api/presence", room),
        ok(r#"{"users":["alice","bob"]}"#)
    );
    assert_eq!(
        call(&mut node, "/api/presence_stats", room),
        ok(r#"{"connections":3,"users":2}"#)
    );
    assert_eq!(
        call(&mut node, "/api/presence_stats", r#"{"channel":"empty"}"#),
        ok(r#"{"connections":0,"users":0}"#)
    );
    assert_eq!(
        call(&mut node, "/api/presence", "{}"),
        bad("INVALID_MESSAGE", "missing field channel")
    );
    assert_eq!(
        call(&mut node, "/api/presence", r#"{"channel":7}"#),
        bad("INVALID_MESSAGE", "invalid field channel: must be a string")
    );
}

#[test]
fn history_answers_after_since_with_limit_and_newest_first_when_reverse() {
    let mut node = Node::new(ServerConfig {
        history_size: 3,
        ..ServerConfig::dev()
    });
    for n in 1..=4 {
        node.publish("news", &n.to_string()).expect("published");
    }
    let message =
        |n: u64| format!(r#"{{"type":"message","channel":"news","payload":{n},"offset":{n}}}"#);
    let (status, body) = call(&mut node, "/api/history", r#"{"channel":"news"}"#);
    assert_eq!(status, 200);
    let epoch = serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["epoch"]
        .as_str()
        .expect("an epoch")
        .to_owned();
    let history = |offsets: &[u64]| {
        let messages: Vec<String> = offsets.iter().map(|&n| message(n)).collect();
        ok(&format!(
            r#"{{"epoch":"{epoch}","offset":4,"publications":[{}]}}"#,
            messages.join(",")
        ))
    };
    assert_eq!(
        (status, body),
        history(&[2, 3, 4]),
        "history_size bounds it"
    );
    let since = format!(r#"{{"channel":"news","since":{{"epoch":"{epoch}","offset":2}}}}"#);
    assert_eq!(call(&mut node, "/api/history", &since), history(&[3, 4]));
    let other = r#"{"channel":"news","since":{"epoch":"gone","offset":3},"limit":2}"#;
    assert_eq!(
        call(&mut node, "/api/history", other),
        history(&[2, 3]),
        "a position of another epoch reads from the start"
    );
    let newest = r#"{"channel":"news","limit":2,"reverse":true}"#;
    assert_eq!(call(&mut node, "/api/history", newest), history(&[4, 3]));
    let position = r#"{"channel":"news","limit":0}"#;
    assert_eq!(call(&mut node, "/api/history", position), history(&[]));
    assert_eq!(
        call(
            &mut node,
            "/api/history",
            r#"{"channel":"news","limit":-1}"#
        ),
        bad(
            "INVALID_MESSAGE",
            "invalid field limit: must be a whole number, 0 or more"
        )
    );
    assert_eq!(
        call(&mut node, "/api/history", r#"{"channel":"news","since":3}"#),
        bad(
            "INVALID_MESSAGE",
            r#"invalid field since: must be {\"epoch\":E,\"offset\":N}"#
        )
    );
}

#[test]
fn channels_lists_the_active_channels_matching_a_pattern_within_its_bound() {
    let config = ServerConfig {
        api_max_channels: 2,
        ..ServerConfig::dev()
    };
    let (mut node, _, _) = node_with(config, &["news", "chat:2", "chat:1"]);
    node.publish("quiet", "1").expect("published");
    assert_eq!(
        call(&mut node, "/api/channels", "{}"),
        ok(r#"{"channels":["chat:1","chat:2"],"total":3}"#),
        "a channel with history but no subscriber is not active"
    );
    assert_eq!(
        call(&mut node, "/api/channels", r#"{"pattern":"*s"}"#),
        ok(r#"{"channels":["news"],"total":1}"#)
    );
    assert_eq!(
        call(&mut node, "/api/channels", r#"{"pattern":"chat:*"}"#),
        ok(r#"{"channels":["chat:1","chat:2"],"total":2}"#)
    );
    let (status, body) = call(&mut node, "/api/channels", r#"{"pattern":"a b"}"#);
    assert_eq!(status, 400);
    assert!(
        body.starts_with(r#"{"code":"INVALID_MESSAGE","message":"invalid field pattern: "#),
        "{body}"
    );
}

#[test]
fn disconnect_closes_every_connection_of_the_user_with_a_code_of_its_range() {
    let (mut node, alice, bob) = node_with(ServerConfig::dev(), &["room"]);
    let again = node.connect("alice");
    assert_eq!(
        call(
            &mut node,
            "/api/disconnect",
            r#"{"user":"alice","reconnect":false}"#
        ),
        ok("{}")
    );
    assert_eq!(node.close_frame(alice), Some(CloseCode(4500)));
    assert_eq!(node.close_frame(again), Some(CloseCode(4500)));
    assert_eq!(node.close_frame(bob), None);
    assert_eq!(node.server.transport(bob), Transport::Open);
    assert!(node.replies(bob).contains(&server_message(
        r#"{"type":"leave","channel":"room","user":"alice"}"#
    )));
    let body = r#"{"user":"bob","reconnect":true,"code":4321,"reason":"moved"}"#;
    assert_eq!(call(&mut node, "/api/disconnect", body), ok("{}"));
    assert_eq!(node.close_frame(bob), Some(CloseCode(4321)));
    assert!(matches!(
        node.wires[&bob].received.last(),
        Some(Message::Close(Some((CloseCode(4321), reason)))) if reason == "moved"
    ));

    for (body, message) in [
        (
            r#"{"user":"bob","reconnect":true,"code":4500}"#,
            "invalid field code: must be 4100 to 4499 with reconnect true",
        ),
        (
            r#"{"user":"bob","reconnect":false,"code":4001}"#,
            "invalid field code: must be 4500 to 4999 with reconnect false",
        ),
        (r#"{"user":"bob"}"#, "missing field reconnect"),
        (
            r#"{"user":"b b","reconnect":true}"#,
            "invalid field user: must be a user id (what fits after user: in a channel name)",
        ),
    ] {
        assert_eq!(
            call(&mut node, "/api/disconnect", body),
            bad("INVALID_MESSAGE", message),
            "{body}"
        );
    }
    let long = format!(
        r#"{{"user":"bob","reconnect":true,"reason":"{}"}}"#,
        "x".repeat(124)
    );
    assert_eq!(
        call(&mut node, "/api/disconnect", &long),
        bad(
            "INVALID_MESSAGE",
            "invalid field reason: must be a string of at most 123 bytes"
        )
    );
}

#[test]
fn unsubscribe_ends_the_users_subscription_on_each_of_its_connections() {
    let (mut node, alice, bob) = node_with(ServerConfig::dev(), &["room", "other"]);
    let body = r#"{"user":"alice","channel":"room"}"#;
    assert_eq!(call(&mut node, "/api/unsubscribe", body), ok("{}"));
    assert_eq!(
        node.replies(alice),
        [server_message(
            r#"{"type":"unsubscribed","channel":"room","reason":"server"}"#
        )]
    );
    assert_eq!(
        node.replies(bob),
        [server_message(
            r#"{"type":"leave","channel":"room","user":"alice"}"#
        )]
    );
    node.publish("room", "1").expect("published");
    node.publish("other", "2").expect("published");
    assert_eq!(
        node.replies(alice),
        [server_message(
            r#"{"type":"message","channel":"other","payload":2,"offset":1}"#
        )],
        "nothing of room after it"
    );
}

#[test]
fn info_reports_the_node_its_figures_and_the_totals() {
    let (mut node, _, _) = node_with(ServerConfig::dev(), &["room", "other"]);
    node.at(T0 + Duration::from_millis(2_500));
    let id = node.server.node_id().to_owned();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        call(&mut node, "/api/info", ""),
        ok(&format!(
            r#"{{"nodes":[{{"channels":2,"connections":2,"id":"{id}","uptime_ms":2500}}],"totals":{{"channels":2,"connections":2,"nodes":1}},"version":"{version}"}}"#
        ))
    );
    assert_eq!(call(&mut node, "/api/info", "{}").0, 200);
    assert_eq!(call(&mut node, "/api/info", "[]").0, 400);
}

#[test]
fn with_a_backplane_api_answers_wait_for_the_store_and_are_503_without_it() {
    let mut cluster = Cluster::new();
    let presence = r#"{"channel":"room"}"#;
    assert_eq!(
        call(&mut cluster.node, "/api/presence", presence),
        (
            503,
            r#"{"code":"UNAVAILABLE","message":"the backplane is unavailable; retry later"}"#
                .to_owned()
        )
    );
    let broadcast = r#"{"channels":["a","b"],"payload":1}"#;
    assert_eq!(call(&mut cluster.node, "/api/broadcast", broadcast).0, 503);
    cluster.exchange();

    let waiting = cluster.node.open();
    let request = post("/api/broadcast", true, broadcast);
    cluster.node.read(waiting, request.as_bytes());
    assert!(cluster.node.wires[&waiting].http.is_empty(), "waits");
    cluster.exchange();
    let response = String::from_utf8_lossy(&cluster.node.wires[&waiting].http).into_owned();
    assert_eq!(
        answer(&response),
        (
            200,
            r#"{"results":[{"channel":"a","offset":1},{"channel":"b","offset":1}]}"#
        )
    );

    let lost = cluster.node.open();
    cluster.node.read(lost, request.as_bytes());
    let asked = cluster.node.open();
    let request = post("/api/presence", true, presence);
    cluster.node.read(asked, request.as_bytes());
    cluster.down();
    let response = String::from_utf8_lossy(&cluster.node.wires[&lost].http).into_owned();
    let unavailable =
        r#"{"code":"UNAVAILABLE","message":"the backplane is unavailable; retry later"}"#;
    assert_eq!(
        answer(&response),
        (
            200,
            format!(
                r#"{{"results":[{{"channel":"a","error":{unavailable}}},{{"channel":"b","error":{unavailable}}}]}}"#
            )
            .as_str()
        ),
        "each channel whose answer was lost says so"
    );
    let response = String::from_utf8_lossy(&cluster.node.wires[&asked].http).into_owned();
    assert_eq!(answer(&response), (503, unavailable));
}

fn server_message(text: &str) -> ServerMessage {
    parse_server_message(text).expect("a server message")
}
