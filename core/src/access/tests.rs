use serde_json::json;

use super::*;

fn pattern(text: &str) -> ChannelPattern {
    ChannelPattern::new(text).expect("a valid pattern")
}

fn channel(name: &str) -> Channel {
    Channel::new(name).expect("a valid channel")
}

#[test]
fn a_star_matches_any_run_of_characters_including_none() {
    let cases = [
        ("chat:*", "chat:", true),
        ("chat:*", "chat:room", true),
        ("chat:*", "chats", false),
        ("*", "anything", true),
        ("org:*:feed", "org:acme:feed", true),
        ("org:*:feed", "org::feed", true),
        ("org:*:feed", "org:acme:feeds", false),
        ("a*b*c", "abc", true),
        ("a*b*c", "aXbYbZc", true),
        ("a*b*c", "acb", false),
        ("exact", "exact", true),
        ("exact", "exactly", false),
        ("*end", "the-end", true),
        ("*end", "end-not", false),
    ];
    for (glob, name, expected) in cases {
        assert_eq!(pattern(glob).matches(name), expected, "{glob} ~ {name}");
    }
}

#[test]
fn a_pattern_uses_the_channel_alphabet_and_star() {
    assert!(ChannelPattern::new("").is_err());
    assert!(ChannelPattern::new("chat room").is_err());
    assert!(ChannelPattern::new("chat?").is_err());
    assert!(ChannelPattern::new(&"a".repeat(129)).is_err());
    assert!(ChannelPattern::new("*").is_ok());
}

#[test]
fn grants_come_from_the_channels_claim_and_refuse_anything_else() {
    let grants = Grants::from_claim(&json!({
        "chat:*": ["subscribe", "history"],
        "chat:lobby": ["publish"],
    }))
    .expect("a valid claim");
    assert!(grants.allows("chat:x", Operation::Subscribe));
    assert!(grants.allows("chat:x", Operation::History));
    assert!(!grants.allows("chat:x", Operation::Publish));
    assert!(grants.allows("chat:lobby", Operation::Publish));
    assert!(!grants.allows("news", Operation::Subscribe));
    assert!(!Grants::default().allows("chat:x", Operation::Subscribe));
    for bad in [
        json!(["chat:*"]),
        json!({"chat:*": "subscribe"}),
        json!({"chat:*": ["admin"]}),
        json!({"chat:*": [1]}),
        json!({"bad pattern": ["subscribe"]}),
    ] {
        assert!(Grants::from_claim(&bad).is_err(), "{bad}");
    }
}

#[test]
fn the_first_matching_namespace_governs_and_no_match_is_forbidden() {
    let namespaces = [
        Namespace {
            pattern: pattern("chat:admin"),
            subscribe: Rule::Nobody,
            publish: Rule::Nobody,
            presence: Rule::Nobody,
            history: Rule::Nobody,
        },
        Namespace::open(pattern("chat:*")),
    ];
    let grants = Grants::default();
    let asker = Asker {
        user: "alice",
        grants: &grants,
        subscribed: false,
        allowed_by_application: false,
    };
    let sub = Operation::Subscribe;
    assert_eq!(
        decide(&namespaces, &asker, &channel("chat:room"), sub),
        Access::Allowed
    );
    assert_eq!(
        decide(&namespaces, &asker, &channel("chat:admin"), sub),
        Access::Forbidden
    );
    assert_eq!(
        decide(&namespaces, &asker, &channel("admin:secrets"), sub),
        Access::Forbidden
    );
    assert_eq!(
        decide(&[], &asker, &channel("chat:room"), sub),
        Access::Forbidden
    );
}

#[test]
fn each_rule_decides_as_named() {
    let grants = Grants::new([(pattern("feed:*"), &[Operation::Publish][..])]);
    let feed = channel("feed:x");
    let rule_says = |rule: Rule, subscribed: bool| {
        let namespace = Namespace {
            publish: rule,
            ..Namespace::open(pattern("feed:*"))
        };
        let asker = Asker {
            user: "alice",
            grants: &grants,
            subscribed,
            allowed_by_application: false,
        };
        decide(&[namespace], &asker, &feed, Operation::Publish)
    };
    assert_eq!(rule_says(Rule::Authenticated, false), Access::Allowed);
    assert_eq!(rule_says(Rule::Subscribers, false), Access::Forbidden);
    assert_eq!(rule_says(Rule::Subscribers, true), Access::Allowed);
    assert_eq!(rule_says(Rule::Token, false), Access::Allowed);
    assert_eq!(rule_says(Rule::Nobody, true), Access::Forbidden);
    let no_grants = Grants::default();
    let asker = Asker {
        user: "alice",
        grants: &no_grants,
        subscribed: true,
        allowed_by_application: false,
    };
    let token_rule = Namespace {
        publish: Rule::Token,
        ..Namespace::open(pattern("feed:*"))
    };
    assert_eq!(
        decide(&[token_rule], &asker, &feed, Operation::Publish),
        Access::Forbidden
    );
}

#[test]
fn a_private_channel_is_its_users_whatever_the_namespaces_say() {
    let open = [Namespace::open(pattern("*"))];
    let grants = Grants::new([(pattern("*"), &Operation::ALL[..])]);
    let asker = |user| Asker {
        user,
        grants: &grants,
        subscribed: true,
        allowed_by_application: false,
    };
    let own = channel("user:alice");
    for op in [
        Operation::Subscribe,
        Operation::Presence,
        Operation::History,
    ] {
        assert_eq!(decide(&[], &asker("alice"), &own, op), Access::Allowed);
        assert_eq!(
            decide(&open, &asker("mallory"), &own, op),
            Access::Forbidden
        );
    }
    assert_eq!(
        decide(&open, &asker("alice"), &own, Operation::Publish),
        Access::Forbidden
    );
}

#[test]
fn a_backend_rule_asks_the_application_once() {
    let namespace = Namespace {
        subscribe: Rule::Backend,
        ..Namespace::open(pattern("app:*"))
    };
    let grants = Grants::default();
    let mut asker = Asker {
        user: "alice",
        grants: &grants,
        subscribed: false,
        allowed_by_application: false,
    };
    let app = channel("app:x");
    let namespaces = [namespace];
    assert_eq!(
        decide(&namespaces, &asker, &app, Operation::Subscribe),
        Access::Ask
    );
    assert_eq!(
        decide(&namespaces, &asker, &app, Operation::Publish),
        Access::Allowed
    );
    asker.allowed_by_application = true;
    assert_eq!(
        decide(&namespaces, &asker, &app, Operation::Subscribe),
        Access::Allowed
    );
}

#[test]
fn subscribe_cannot_be_left_to_subscribers_nor_presence_to_a_backend() {
    assert!(!Operation::Subscribe.takes(Rule::Subscribers));
    assert!(Operation::Publish.takes(Rule::Subscribers));
    assert!(Operation::Publish.takes(Rule::Backend));
    assert!(!Operation::Presence.takes(Rule::Backend));
    assert!(!Operation::History.takes(Rule::Backend));
}
