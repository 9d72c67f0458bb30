//! Tokens against the scripted server: the provider asked before each
//! connection, refreshes at their exact instants, close `4004`, and
//! subscriptions the server ends by itself.

use super::*;

/// The harness's settings with a token provider.
fn provided() -> ClientConfig {
    ClientConfig {
        token: TokenSource::Provider,
        ..config()
    }
}

impl Harness {
    /// A harness whose provider gave `token`, connected and authenticated
    /// at `T0 + 2 s` with a token expiring `lifetime` later, its log
    /// cleared.
    fn open_until(token: &str, lifetime: Duration) -> Harness {
        let mut h = Harness::new(provided());
        h.give_token(token);
        h.connect();
        h.accept();
        h.now = T0 + secs(2);
        h.auth_ack_until(lifetime);
        h.take_log();
        h.take_received();
        h
    }

    /// An `auth_ack` for a token expiring `lifetime` from now.
    fn auth_ack_until(&mut self, lifetime: Duration) {
        let expires_at = unix_ms(self.now + lifetime);
        self.server_send(&format!(
            r#"{{"type":"auth_ack","user":"ann","session":"s1","heartbeat_ms":30000,"max_payload":65536,"expires_at":{expires_at}}}"#
        ));
    }
}

#[test]
fn a_provider_is_asked_before_every_dial_and_its_token_goes_in_auth() {
    let mut h = Harness::new(provided());
    assert_eq!(h.take_log(), ["token wanted at t+1s"]);
    assert_eq!(h.dials, 0, "no dial before the token");
    h.give_token("first");
    h.connect();
    h.accept();
    assert_eq!(h.take_received()[1], r#"{"type":"auth","token":"first"}"#);
    h.auth_ack();
    h.drop_transport();
    let log = h.take_log();
    assert_eq!(log[0], "dial at t+1s");
    let due = h.client.poll_timeout().unwrap();
    h.advance_to(due);
    assert_eq!(h.take_log(), [format!("token wanted at {due}")]);
    assert_eq!(h.dials, 1);
    h.give_token("second");
    h.connect();
    h.accept();
    assert_eq!(h.take_received()[1], r#"{"type":"auth","token":"second"}"#);
}

#[test]
fn a_failed_or_silent_provider_is_a_failed_attempt() {
    let mut h = Harness::new(provided());
    h.fail_token();
    let log = h.take_log();
    assert_eq!(
        log[1],
        "disconnected 1006 token provider failed reconnect=true"
    );
    assert!(log[2].starts_with("reconnecting #1 "), "{log:?}");
    let due = h.step();
    assert_eq!(h.take_log(), [format!("token wanted at {due}")]);
    h.advance_to(due + secs(10) - Duration::from_nanos(1));
    assert!(
        h.take_log().is_empty(),
        "the connect timeout covers the fetch"
    );
    h.advance_to(due + secs(10));
    let log = h.take_log();
    assert_eq!(log[0], "disconnected 1006 connect timeout reconnect=true");
    assert!(log[1].starts_with("reconnecting #2 "), "{log:?}");
    h.client.handle_token(h.now, "late".into());
    h.pump();
    assert_eq!(h.dials, 0, "a late token is ignored");
}

#[test]
fn a_refresh_is_sent_at_exactly_its_instant_and_not_a_nanosecond_before() {
    // Connected at T0 + 2 s with two minutes left: due after four fifths
    // of them, at T0 + 98 s (a minute before expiry would be earlier).
    let mut h = Harness::open_until("first", secs(120));
    let due = T0 + secs(98);
    h.advance_to(due - Duration::from_nanos(1));
    assert!(h.take_log().is_empty());
    h.take_received();
    h.advance_to(due);
    assert_eq!(h.take_log(), [format!("token wanted at {due}")]);
    h.give_token("second");
    assert_eq!(
        h.take_received(),
        [r#"{"type":"refresh","id":"r1","token":"second"}"#]
    );
    // An hour's token is refreshed a minute before it expires.
    let expires_at = unix_ms(h.now + secs(3_600));
    h.server_send(&format!(
        r#"{{"type":"refreshed","id":"r1","expires_at":{expires_at}}}"#
    ));
    assert_eq!(
        h.take_log(),
        [format!("refreshed until Some({expires_at})")]
    );
    let next = due + secs(3_540);
    let mut at = h.now;
    while at < next - Duration::from_nanos(1) {
        at = (at + secs(20)).min(next - Duration::from_nanos(1));
        h.client.handle_read(at, &text_frame(br#"{"type":"pong"}"#));
        h.advance_to(at);
    }
    assert!(!h.take_log().iter().any(|line| line.starts_with("token")));
    h.advance_to(next);
    assert_eq!(h.take_log(), [format!("token wanted at {next}")]);
}

#[test]
fn a_refused_refresh_is_retried_with_backoff_until_expiry() {
    let mut h = Harness::open_until("first", secs(120));
    h.advance_to(T0 + secs(98));
    h.give_token("other-user");
    assert_eq!(
        h.take_received().last().unwrap(),
        r#"{"type":"refresh","id":"r1","token":"other-user"}"#
    );
    h.server_send(r#"{"type":"error","code":"FORBIDDEN","id":"r1","message":"refused"}"#);
    let log = h.take_log();
    assert_eq!(log[1], "refresh failed Some(Forbidden) refused");
    let retry = h.client.poll_timeout().unwrap();
    let delay = retry - h.now;
    assert!(delay >= secs(1) && delay < secs(2), "{delay:?}");
    h.advance_to(retry);
    assert_eq!(h.take_log(), [format!("token wanted at {retry}")]);
    h.fail_token();
    assert_eq!(h.take_log(), ["refresh failed None token provider failed"]);
    let retry = h.client.poll_timeout().unwrap();
    let delay = retry - h.now;
    assert!(delay >= secs(2) && delay < secs(3), "{delay:?}");
    h.advance_to(retry);
    h.give_token("good");
    assert_eq!(
        h.take_received(),
        [r#"{"type":"refresh","id":"r2","token":"good"}"#]
    );
    h.server_send(r#"{"type":"refreshed","id":"r2"}"#);
    assert_eq!(
        h.take_log(),
        [
            format!("token wanted at {retry}"),
            "refreshed until None".into()
        ]
    );
    assert_eq!(
        h.client.poll_timeout(),
        Some(h.now + secs(25)),
        "a token without expiry is never refreshed"
    );
}

#[test]
fn no_refresh_is_retried_past_the_expiry() {
    // Three seconds of life: due at four fifths, 600 ms before expiry,
    // which is less than the first retry's delay.
    let mut h = Harness::open_until("first", secs(3));
    let due = T0 + secs(2) + Duration::from_millis(2_400);
    assert_eq!(h.client.poll_timeout(), Some(due));
    h.advance_to(due);
    h.give_token("second");
    h.advance_to(due + secs(10));
    let log = h.take_log();
    assert_eq!(log[1], "refresh failed None no answer in time");
    assert_eq!(h.client.poll_timeout(), Some(T0 + secs(2) + secs(25)));
    assert!(h.client.is_connected());
}

#[test]
fn close_4004_asks_for_a_new_token_then_reconnects() {
    let mut h = Harness::open_until("first", secs(120));
    h.server_bytes(&close_frame(CloseCode::TOKEN_EXPIRED, "token expired"));
    assert_eq!(h.take_received(), ["close 4004 "]);
    let log = h.take_log();
    assert_eq!(log[1], "disconnected 4004 token expired reconnect=true");
    assert!(log[2].starts_with("reconnecting #1 "), "{log:?}");
    let due = h.step();
    assert_eq!(h.take_log(), [format!("token wanted at {due}")]);
    assert_eq!(h.dials, 1, "no dial before the new token");
    h.give_token("fresh");
    assert_eq!(h.take_log(), [format!("dial at {due}")]);
    h.connect();
    h.accept();
    assert_eq!(h.take_received()[1], r#"{"type":"auth","token":"fresh"}"#);
    h.auth_ack();
    assert!(h.client.is_connected());
}

#[test]
fn without_a_provider_4004_is_final_unless_the_token_was_replaced() {
    let mut h = Harness::open(config());
    h.server_bytes(&close_frame(CloseCode::TOKEN_EXPIRED, "token expired"));
    assert_eq!(
        h.take_log()[1],
        "disconnected 4004 token expired reconnect=false"
    );
    assert!(h.client.is_closed());

    let mut h = Harness::open(config());
    h.client.set_token("renewed");
    h.server_bytes(&close_frame(CloseCode::TOKEN_EXPIRED, "token expired"));
    assert_eq!(
        h.take_log()[1],
        "disconnected 4004 token expired reconnect=true"
    );
    h.take_received();
    h.step();
    h.connect();
    h.accept();
    assert_eq!(h.take_received()[1], r#"{"type":"auth","token":"renewed"}"#);
}

#[test]
fn a_fixed_token_is_never_refreshed_and_its_expiry_is_reported() {
    let mut h = Harness::new(config());
    h.connect();
    h.accept();
    h.auth_ack_until(secs(120));
    let expires_at = unix_ms(h.now + secs(120));
    assert_eq!(
        h.take_log()[1],
        format!("connected ann s1 until {expires_at}")
    );
    assert_eq!(h.client.poll_timeout(), Some(h.now + secs(25)));
}

#[test]
fn an_unsolicited_unsubscribed_is_reported_and_not_resubscribed() {
    let mut h = Harness::open(config());
    h.client.subscribe(channel("a")).unwrap();
    h.client.subscribe(channel("b")).unwrap();
    h.server_send(r#"{"type":"subscribed","id":"r1","channel":"a","epoch":"e","offset":3}"#);
    h.server_send(r#"{"type":"subscribed","id":"r2","channel":"b","epoch":"e","offset":5}"#);
    h.server_send(r#"{"type":"unsubscribed","channel":"a","reason":"forbidden"}"#);
    assert_eq!(h.take_log()[2], "unsubscribed a Forbidden");
    h.take_received();
    h.drop_transport();
    h.step();
    h.connect_and_auth();
    assert_eq!(
        h.take_received()[2..],
        [r#"{"type":"subscribe","id":"r3","channel":"b","since":{"epoch":"e","offset":5}}"#]
    );
}
