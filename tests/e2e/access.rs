//! Who may do what on which channel (PROTOCOL.md section 12): the rules of
//! a node's namespaces, a JWT's `channels` claim, `refresh`, and the close
//! `4004` of a connection whose token expired, against JWT-checking nodes.

use serde_json::{Value, json};
use tether_core::{ChannelPattern, Namespace, Rule, ServerConfig};

use crate::harness::{
    API_KEY, JWT_SECRET, Runtime, config, jwt_auth, sign_jwt, unix_now, unix_now_ms,
};
use tether_testkit::http::post_publish;
use tether_testkit::ws::Ws;

/// A namespace with its rules of subscribe, publish, presence and history.
fn namespace(pattern: &str, [subscribe, publish, presence, history]: [Rule; 4]) -> Namespace {
    Namespace {
        pattern: ChannelPattern::new(pattern).expect("a pattern"),
        subscribe,
        publish,
        presence,
        history,
    }
}

/// The suite's settings with these namespaces and no other: `chat:*`
/// for those who joined, `news:*` that only the application writes,
/// `team:*` that the token decides, `vault:*` closed to every client.
fn access_config() -> ServerConfig {
    use Rule::{Authenticated, Nobody, Subscribers, Token};
    ServerConfig {
        namespaces: vec![
            namespace(
                "chat:*",
                [Authenticated, Subscribers, Subscribers, Subscribers],
            ),
            namespace("news:*", [Authenticated, Nobody, Nobody, Nobody]),
            namespace("team:*", [Token; 4]),
            namespace("vault:*", [Nobody; 4]),
        ],
        ..config()
    }
}

/// A token of `sub` expiring at `exp` (Unix seconds), with `channels` as
/// its claim when given.
fn token_until(sub: &str, exp: u64, channels: Option<Value>) -> String {
    let mut claims = json!({"sub": sub, "exp": exp});
    if let Some(channels) = channels {
        claims["channels"] = channels;
    }
    sign_jwt(JWT_SECRET, &claims)
}

/// A token of `sub` valid for ten minutes.
fn token(sub: &str, channels: Option<Value>) -> String {
    token_until(sub, unix_now() + 600, channels)
}

/// The request of operation `op` (`subscribe`, `publish` or `presence`) on
/// `channel`, with `id`.
fn request(op: &str, channel: &str, id: &str) -> Value {
    match op {
        "publish" => json!({"type": "publish", "channel": channel, "payload": 1, "id": id}),
        _ => json!({"type": op, "channel": channel, "id": id}),
    }
}

/// Asks `op` on `channel` and checks that the answer is exactly the
/// refusal, with the request's id.
fn refused(ws: &mut Ws, op: &str, channel: &str, id: &str) {
    ws.send_json(request(op, channel, id));
    assert_eq!(
        ws.recv(),
        json!({
            "type": "error",
            "code": "FORBIDDEN",
            "id": id,
            "message": format!("not allowed to {op} on this channel"),
        }),
        "{op} on {channel}"
    );
}

/// Publishes on `channel` as one of its subscribers, with `id` as the
/// request's id and payload: the ack and the publication itself come back,
/// in either order. Gives the offset.
fn publish_own(ws: &mut Ws, channel: &str, id: &str) -> u64 {
    ws.send_json(json!({"type": "publish", "channel": channel, "payload": id, "id": id}));
    let mut replies = [ws.recv(), ws.recv()];
    replies.sort_by_key(|reply| reply["type"].as_str().map(str::to_owned));
    let [ack, message] = replies;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["id"], id, "{ack}");
    assert_eq!(message["payload"], id, "{message}");
    ack["offset"].as_u64().expect("an offset")
}

fn an_unmatched_channel_is_forbidden_whether_it_exists_or_not(runtime: Runtime) {
    let server = runtime.start(access_config(), jwt_auth());
    // The application gives one unmatched channel a history, and Bob is
    // present on one chat room.
    server.publish("other:busy", "1");
    let (mut bob, _) = Ws::auth_with(server.addr, &token("bob", None));
    bob.subscribe("chat:busy");

    let (mut alice, _) = Ws::auth_with(server.addr, &token("alice", None));
    for op in ["subscribe", "publish", "presence"] {
        for channel in ["other:busy", "other:unused"] {
            refused(&mut alice, op, channel, &format!("{op}-{channel}"));
        }
    }
    // Under the subscribers rule, a channel with subscribers is refused in
    // the same words as one without.
    for op in ["publish", "presence"] {
        for channel in ["chat:busy", "chat:empty"] {
            refused(&mut alice, op, channel, &format!("{op}-{channel}"));
        }
    }
}

fn authenticated_may_subscribe_and_subscribers_publish_and_see_presence(runtime: Runtime) {
    let server = runtime.start(access_config(), jwt_auth());
    let (mut alice, _) = Ws::auth_with(server.addr, &token("alice", None));
    let (mut bob, _) = Ws::auth_with(server.addr, &token("bob", None));
    alice.subscribe("chat:room");

    refused(&mut bob, "publish", "chat:room", "early-publish");
    refused(&mut bob, "presence", "chat:room", "early-presence");
    bob.subscribe("chat:room");
    assert_eq!(
        alice.recv(),
        json!({"type": "join", "channel": "chat:room", "user": "bob"})
    );

    let offset = publish_own(&mut bob, "chat:room", "hello");
    assert_eq!(
        alice.recv(),
        json!({"type": "message", "channel": "chat:room", "payload": "hello", "sender": "bob", "offset": offset})
    );
    bob.send_json(request("presence", "chat:room", "who"));
    let presence = bob.recv_type("presence");
    assert_eq!(presence["id"], "who", "{presence}");
    assert_eq!(presence["users"], json!(["alice", "bob"]), "{presence}");
}

fn token_grants_open_their_channels_and_nothing_else(runtime: Runtime) {
    let server = runtime.start(access_config(), jwt_auth());
    let red = json!({"team:red": ["subscribe", "publish"]});
    let (mut alice, _) = Ws::auth_with(server.addr, &token("alice", Some(red)));
    alice.subscribe("team:red");
    publish_own(&mut alice, "team:red", "granted");
    refused(&mut alice, "presence", "team:red", "not-granted");
    refused(&mut alice, "subscribe", "team:blue", "other-team");

    let (mut bob, _) = Ws::auth_with(server.addr, &token("bob", None));
    refused(&mut bob, "subscribe", "team:red", "no-claim");

    let malformed = token("carol", Some(json!({"team:red": "everything"})));
    let mut carol = Ws::open(server.addr);
    carol.send_json(json!({"type": "auth", "token": malformed}));
    assert_eq!(carol.expect_close(), (4003, "forbidden".into()));
}

fn nobody_refuses_every_client_and_the_http_api_still_publishes(runtime: Runtime) {
    let server = runtime.start(access_config(), jwt_auth());
    let (mut alice, _) = Ws::auth_with(server.addr, &token("alice", None));
    alice.subscribe("news:today");
    refused(&mut alice, "publish", "news:today", "write");
    refused(&mut alice, "presence", "news:today", "look");
    refused(&mut alice, "subscribe", "vault:gold", "enter");

    let authorization = format!("Bearer {API_KEY}");
    for channel in ["news:today", "vault:gold"] {
        let body = json!({"channel": channel, "payload": "from the backend"}).to_string();
        let answer = post_publish(server.addr, Some(&authorization), &body);
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, r#"{"offset":1}"#),
            "{channel}"
        );
    }
    assert_eq!(
        alice.recv(),
        json!({"type": "message", "channel": "news:today", "payload": "from the backend", "offset": 1})
    );
}

fn a_refused_history_subscribes_without_replay(runtime: Runtime) {
    let server = runtime.start(access_config(), jwt_auth());
    let (mut alice, _) = Ws::auth_with(server.addr, &token("alice", None));
    // Each channel's keeper stays, so that Alice hears no one leave.
    let mut keepers = Vec::new();
    for channel in ["news:today", "chat:room"] {
        let (mut keeper, _) = Ws::auth_with(server.addr, &token("keeper", None));
        let epoch = keeper.subscribe(channel)["epoch"].clone();
        for n in 1..=2 {
            server.publish(channel, &n.to_string());
            assert_eq!(keeper.recv_type("message")["offset"], n);
        }
        let since = json!({"epoch": epoch, "offset": 0});
        alice
            .send_json(json!({"type": "subscribe", "channel": channel, "id": "r", "since": since}));
        if channel == "chat:room" {
            // History for subscribers: the subscribe with since recovers.
            for n in 1..=2 {
                assert_eq!(alice.recv_type("message")["offset"], n);
            }
        }
        let recovered = channel == "chat:room";
        assert_eq!(
            alice.recv(),
            json!({"type": "subscribed", "id": "r", "channel": channel, "epoch": epoch, "offset": 2, "recovered": recovered})
        );
        alice.recv_type("presence");
        keepers.push(keeper);
    }
}

fn auth_ack_and_refreshed_carry_the_token_expiry(runtime: Runtime) {
    let server = runtime.start(access_config(), jwt_auth());
    let exp = unix_now() + 600;
    let (mut alice, ack) = Ws::auth_with(server.addr, &token_until("alice", exp, None));
    assert_eq!(ack["expires_at"], exp * 1000, "{ack}");

    let later = exp + 60;
    let renewed = token_until("alice", later, None);
    alice.send_json(json!({"type": "refresh", "token": renewed, "id": "r"}));
    assert_eq!(
        alice.recv(),
        json!({"type": "refreshed", "id": "r", "expires_at": later * 1000})
    );
}

fn a_refused_refresh_is_forbidden_and_the_connection_keeps_its_token(runtime: Runtime) {
    let server = runtime.start(access_config(), jwt_auth());
    let red = json!({"team:red": ["subscribe"]});
    let (mut alice, _) = Ws::auth_with(server.addr, &token("alice", Some(red.clone())));
    alice.subscribe("team:red");
    let refusal = "token refused; the connection keeps its current token";
    for (id, new) in [
        ("other-user", token("mallory", Some(red))),
        ("not-a-jwt", "not-a-jwt".to_owned()),
    ] {
        alice.send_json(json!({"type": "refresh", "token": new, "id": id}));
        assert_eq!(
            alice.recv(),
            json!({"type": "error", "code": "FORBIDDEN", "id": id, "message": refusal})
        );
    }
    server.publish("team:red", "\"still here\"");
    assert_eq!(alice.recv_type("message")["payload"], "still here");
    alice.send_json(request("subscribe", "team:red", "again"));
    assert_eq!(alice.recv_type("subscribed")["id"], "again");
}

fn a_refresh_without_a_grant_ends_its_subscription(runtime: Runtime) {
    let server = runtime.start(access_config(), jwt_auth());
    let both = json!({"team:red": ["subscribe"], "team:blue": ["subscribe"]});
    let (mut alice, _) = Ws::auth_with(server.addr, &token("alice", Some(both)));
    alice.subscribe("team:red");
    alice.subscribe("team:blue");

    let exp = unix_now() + 600;
    let blue = token_until("alice", exp, Some(json!({"team:blue": ["subscribe"]})));
    alice.send_json(json!({"type": "refresh", "token": blue, "id": "r"}));
    assert_eq!(
        alice.recv(),
        json!({"type": "refreshed", "id": "r", "expires_at": exp * 1000})
    );
    assert_eq!(
        alice.recv(),
        json!({"type": "unsubscribed", "channel": "team:red", "reason": "forbidden"})
    );
    // Red first: had it still been delivered, it would come before blue.
    server.publish("team:red", "\"red\"");
    server.publish("team:blue", "\"blue\"");
    let next = alice.recv_type("message");
    assert_eq!(
        (next["channel"].clone(), next["payload"].clone()),
        (json!("team:blue"), json!("blue"))
    );
}

fn a_token_that_expires_closes_4004_at_its_exp(runtime: Runtime) {
    let server = runtime.start(access_config(), jwt_auth());
    let exp = unix_now() + 2;
    let (mut alice, ack) = Ws::auth_with(server.addr, &token_until("alice", exp, None));
    assert_eq!(ack["expires_at"], exp * 1000, "{ack}");
    assert_eq!(alice.expect_close(), (4004, "token expired".into()));
    assert!(unix_now_ms() >= exp * 1000, "closed before exp");
}

fn a_refresh_before_exp_keeps_the_connection_open_past_it(runtime: Runtime) {
    let server = runtime.start(access_config(), jwt_auth());
    let exp = unix_now() + 2;
    let (mut alice, _) = Ws::auth_with(server.addr, &token_until("alice", exp, None));
    alice.send_json(json!({"type": "refresh", "token": token("alice", None), "id": "r"}));
    alice.recv_type("refreshed");
    // A witness whose token expires a second after Alice's first one: its
    // close says that her first exp has passed.
    let (mut witness, _) = Ws::auth_with(server.addr, &token_until("bob", exp + 1, None));
    assert_eq!(witness.expect_close(), (4004, "token expired".into()));
    alice.send_json(json!({"type": "ping", "id": "still-open"}));
    assert_eq!(alice.recv(), json!({"type": "pong", "id": "still-open"}));
}

fn messages_behind_a_refresh_count_against_the_rate_limit(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            rate_limit: 1,
            rate_burst: 4,
            ..access_config()
        },
        jwt_auth(),
    );
    let (mut alice, _) = Ws::auth_with(server.addr, &token("alice", None));
    // One write: the pings arrive while the refresh waits for its verdict.
    let pings = 31;
    let mut burst = vec![json!({"type": "refresh", "token": token("alice", None), "id": "r"})];
    burst.extend((0..pings).map(|n| json!({"type": "ping", "id": format!("p{n}")})));
    alice.send_batch(&burst);
    assert_eq!(alice.recv_type("refreshed")["id"], "r");
    let limited = (0..pings)
        .filter(|_| alice.recv()["code"] == "RATE_LIMITED")
        .count();
    // A burst of 4 at one message a second: the refresh and three pings
    // pass, and one more for every second the test took.
    assert!(
        limited > 0,
        "{pings} pings behind a refresh, none rate limited"
    );
}

runtime_tests! {
    an_unmatched_channel_is_forbidden_whether_it_exists_or_not => smol, blocking, tokio;
    authenticated_may_subscribe_and_subscribers_publish_and_see_presence => smol, blocking, tokio;
    token_grants_open_their_channels_and_nothing_else => smol, blocking, tokio;
    nobody_refuses_every_client_and_the_http_api_still_publishes => smol, blocking, tokio;
    a_refused_history_subscribes_without_replay => smol, blocking, tokio;
    auth_ack_and_refreshed_carry_the_token_expiry => smol, blocking, tokio;
    a_refused_refresh_is_forbidden_and_the_connection_keeps_its_token => smol, blocking, tokio;
    a_refresh_without_a_grant_ends_its_subscription => smol, blocking, tokio;
    a_token_that_expires_closes_4004_at_its_exp => smol, blocking, tokio;
    a_refresh_before_exp_keeps_the_connection_open_past_it => smol, blocking, tokio;
    messages_behind_a_refresh_count_against_the_rate_limit => smol, blocking, tokio;
}
