//! Tests of loading: the file, the environment and the flags together.

use std::collections::HashMap;
use std::time::Duration;

use tether_core::{ChannelPattern, Namespace, Rule, ServerConfig};

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn error_of(text: &str) -> String {
    Settings::from_toml_str(text).unwrap_err().to_string()
}

#[test]
fn the_example_file_holds_exactly_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tether.example.toml");
    let text = std::fs::read_to_string(&path).expect("tether.example.toml at the repository root");
    assert_eq!(Settings::from_toml_str(&text).unwrap(), Settings::default());
    for key in keys::KEYS {
        // A key of a table is written under the table's header.
        let (from, name) = match key.name.split_once('.') {
            Some((section, name)) => {
                let header = format!("\n[{section}]\n");
                let at = text.find(&header);
                (at.unwrap_or_else(|| panic!("no {header:?}")), name)
            }
            None => (0, key.name),
        };
        let mentioned = text[from..].lines().any(|line| {
            let line = line.trim_start_matches(['#', ' ']);
            line.starts_with(&format!("{name} =")) || line.starts_with(&format!("[[{name}]]"))
        });
        assert!(
            mentioned,
            "tether.example.toml does not mention {}",
            key.name
        );
    }
}

/// The example file's commented `[[namespaces]]` examples, uncommented:
/// each stays a valid configuration.
#[test]
fn the_example_namespaces_are_valid_once_uncommented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tether.example.toml");
    let text = std::fs::read_to_string(&path).expect("tether.example.toml at the repository root");
    let is_toml = |line: &str| {
        line.strip_prefix("# ").is_some_and(|line| {
            line == "[[namespaces]]"
                || line
                    .split_once(" = ")
                    .is_some_and(|(key, _)| !key.contains(' '))
        })
    };
    let mut examples: Vec<String> = Vec::new();
    let mut previous_is_toml = false;
    for line in text.lines() {
        let this_is_toml = is_toml(line);
        if this_is_toml && !previous_is_toml && line == "# [[namespaces]]" {
            examples.push(String::new());
        }
        if this_is_toml && let Some(example) = examples.last_mut() {
            example.push_str(&line[2..]);
            example.push('\n');
        }
        previous_is_toml = this_is_toml;
    }
    let counts: Vec<usize> = examples
        .iter()
        .map(|example| {
            let settings = Settings::from_toml_str(example).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(settings.validate().map_err(|e| e.to_string()), Ok(()));
            settings.server.namespaces.len()
        })
        .collect();
    assert_eq!(
        counts,
        [1, 2],
        "an open example, then a production-style one"
    );
}

#[test]
fn namespaces_are_read_in_file_order() {
    let settings = Settings::from_toml_str(
        r#"
        rate_burst = 5

        [[namespaces]]
        pattern = "chat:*"
        subscribe = "authenticated"
        publish = "subscribers"

        [[namespaces]]
        pattern = "*"
        subscribe = "token"
        "#,
    )
    .unwrap();
    assert_eq!(settings.server.rate_burst, 5);
    assert_eq!(patterns(&settings), ["chat:*", "*"]);
    assert_eq!(settings.server.namespaces[0].publish, Rule::Subscribers);
    assert_eq!(settings.server.namespaces[1].history, Rule::Nobody);
}

#[test]
fn a_namespace_rule_that_does_not_fit_stops_start_up_naming_the_entry() {
    for (rules, problem) in [
        (
            "subscribe = \"subscribers\"",
            "entry 1 (chat:*), subscribe: \"subscribers\" is not a rule of subscribe",
        ),
        (
            "publish = \"backend\"",
            "entry 1 (chat:*), publish: \"backend\" asks the application through the proxy, which has no URL for it: set proxy.publish_url",
        ),
    ] {
        let text = format!(
            "[[namespaces]]\npattern = \"a\"\n[[namespaces]]\npattern = \"chat:*\"\n{rules}\n"
        );
        let settings = Settings::from_toml_str(&text).unwrap();
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.starts_with("setting \"namespaces\": "), "{error}");
        assert!(error.contains(problem), "{error}");
    }
}

#[test]
fn the_proxy_table_reads_every_key_and_names_each_in_its_errors() {
    let settings = Settings::from_toml_str(
        r#"
        forward_headers = ["cookie"]

        [proxy]
        connect_url = "http://127.0.0.1:3000/connect"
        subscribe_url = "http://127.0.0.1:3000/subscribe"
        publish_url = "http://127.0.0.1:3000/publish"
        rpc_url = "https://backend.example/rpc"
        timeout = "1500ms"
        max_concurrency = 8
        headers = { "x-backend-key" = "backend-secret" }
        "#,
    )
    .unwrap();
    let proxy = &settings.proxy;
    assert_eq!(
        proxy.connect_url.as_deref(),
        Some("http://127.0.0.1:3000/connect")
    );
    assert_eq!(
        proxy.subscribe_url.as_deref(),
        Some("http://127.0.0.1:3000/subscribe")
    );
    assert_eq!(
        proxy.publish_url.as_deref(),
        Some("http://127.0.0.1:3000/publish")
    );
    assert_eq!(
        proxy.rpc_url.as_deref(),
        Some("https://backend.example/rpc")
    );
    assert_eq!(proxy.timeout, Duration::from_millis(1500));
    assert_eq!(proxy.max_concurrency, 8);
    assert_eq!(
        proxy.headers,
        [(
            "x-backend-key".into(),
            Redacted::new("backend-secret".into())
        )]
    );
    assert_eq!(settings.server.forward_headers, ["cookie"]);
    assert_eq!(settings.validate().map_err(|e| e.to_string()), Ok(()));

    for (text, key) in [
        ("connect_url = 7", "proxy.connect_url"),
        ("subscribe_url = true", "proxy.subscribe_url"),
        ("publish_url = []", "proxy.publish_url"),
        ("rpc_url = 1.5", "proxy.rpc_url"),
        ("timeout = \"3\"", "proxy.timeout"),
        ("max_concurrency = -1", "proxy.max_concurrency"),
        ("headers = \"x-key: v\"", "proxy.headers"),
        ("headers = { x-key = 1 }", "proxy.headers"),
    ] {
        let error = error_of(&format!("[proxy]\n{text}\n"));
        assert!(
            error.starts_with(&format!("config key \"{key}\": ")),
            "{error}"
        );
    }
    assert_eq!(
        error_of("[proxy]\nconect_url = \"http://b\"\n"),
        "unknown config key \"proxy.conect_url\" (did you mean \"proxy.connect_url\"?)"
    );
    assert_eq!(
        error_of("proxy = \"http://b\""),
        "config key \"proxy\": expected a [proxy] table, got a string"
    );
    for (text, key) in [
        ("connect_url = \"ftp://b/connect\"", "proxy.connect_url"),
        ("subscribe_url = \"b/subscribe\"", "proxy.subscribe_url"),
        ("publish_url = \"http://\"", "proxy.publish_url"),
        ("rpc_url = \"https://u:p@b/rpc\"", "proxy.rpc_url"),
        ("timeout = \"0s\"", "proxy.timeout"),
        ("timeout = \"6s\"", "proxy.timeout"),
        ("max_concurrency = 0", "proxy.max_concurrency"),
        (
            "headers = { \"content-type\" = \"text/plain\" }",
            "proxy.headers",
        ),
    ] {
        let settings = Settings::from_toml_str(&format!("[proxy]\n{text}\n")).unwrap();
        let error = settings.validate().unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("setting \"{key}\": ")),
            "{text}: {error}"
        );
    }
}

#[test]
fn dev_mode_opens_what_no_configured_namespace_governs() {
    let dir = std::env::temp_dir().join(format!("tether-settings-dev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dev.toml");
    std::fs::write(&path, "[[namespaces]]\npattern = \"chat:*\"\n").unwrap();
    let dev = Overrides {
        dev: true,
        ..Overrides::default()
    };
    let settings = Settings::load(Some(&path), &no_env, dev).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(patterns(&settings), ["chat:*", "*"]);
    assert_eq!(settings.server.namespaces[0].subscribe, Rule::Nobody);
    assert_eq!(
        settings.server.namespaces[1],
        ServerConfig::dev().namespaces[0]
    );
}

#[test]
fn an_empty_file_gives_the_defaults() {
    assert_eq!(Settings::from_toml_str("").unwrap(), Settings::default());
}

#[test]
fn values_are_read_in_their_units() {
    let settings = Settings::from_toml_str(
        r#"
        listen = "0.0.0.0:9000"
        runtime = "blocking"
        heartbeat_interval = "250ms"
        history_ttl = "2m"
        max_payload = "1MiB"
        high_water = 1000
        latest_only = ["ticker:*"]
        rate_burst = 5
        "#,
    )
    .unwrap();
    assert_eq!(settings.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(settings.runtime, Runtime::Blocking);
    assert_eq!(
        settings.server.heartbeat_interval,
        Duration::from_millis(250)
    );
    assert_eq!(settings.server.history_ttl, Duration::from_secs(120));
    assert_eq!(settings.server.max_payload, 1 << 20);
    assert_eq!(settings.server.high_water, 1000);
    assert_eq!(settings.server.latest_only, vec!["ticker:*".to_owned()]);
    assert_eq!(settings.server.rate_burst, 5);
}

#[test]
fn a_bad_value_names_its_key() {
    assert_eq!(
        error_of("heartbeat_interval = \"30\""),
        "config key \"heartbeat_interval\": expected a duration like \"30s\" (units ms, s, m, h), got \"30\""
    );
    assert!(error_of("auth_timeout = \"-1s\"").starts_with("config key \"auth_timeout\""));
    assert!(error_of("max_payload = \"64KB\"").starts_with("config key \"max_payload\""));
    assert!(error_of("runtime = \"glommio\"").starts_with("config key \"runtime\""));
    assert!(error_of("dev = \"yes\"").starts_with("config key \"dev\""));
}

#[test]
fn unknown_keys_are_refused_with_a_suggestion() {
    assert_eq!(
        error_of("heartbeat_intervall = \"30s\""),
        "unknown config key \"heartbeat_intervall\" (did you mean \"heartbeat_interval\"?)"
    );
    assert_eq!(
        error_of("[server]\nport = 1"),
        "unknown config key \"server\""
    );
}

#[test]
fn broken_toml_is_refused() {
    assert!(error_of("listen = ").starts_with("invalid TOML"));
}

#[test]
fn errors_from_a_file_name_the_file() {
    let dir = std::env::temp_dir().join(format!("tether-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "rate_burst = -1\n").unwrap();
    let error = Settings::load(Some(&path), &no_env, Overrides::default()).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    let message = error.to_string();
    assert!(
        message.contains("bad.toml: config key \"rate_burst\""),
        "{message}"
    );
}

#[test]
fn a_missing_file_is_an_error() {
    let error = Settings::load(
        Some(Path::new("does-not-exist.toml")),
        &no_env,
        Overrides::default(),
    )
    .unwrap_err();
    assert!(matches!(error, SettingsError::Read { .. }), "{error}");
}

#[test]
fn cross_field_rules_run_on_load() {
    let dir = std::env::temp_dir().join(format!("tether-settings-x-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("limits.toml");
    std::fs::write(&path, "high_water = \"4MiB\"\nhard_limit = \"4MiB\"\n").unwrap();
    let error = Settings::load(Some(&path), &no_env, Overrides::default()).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        error.to_string().starts_with("setting \"high_water\""),
        "{error}"
    );
}

#[test]
fn the_environment_beats_the_defaults_and_flags_beat_the_environment() {
    let env: HashMap<&str, String> = [
        (JWT_SECRET_ENV, "e".repeat(32)),
        (API_KEY_ENV, "k".repeat(16)),
    ]
    .into();
    let lookup = |name: &str| env.get(name).cloned();

    let from_env = Settings::load(None, &lookup, Overrides::default()).unwrap();
    assert_eq!(from_env.jwt_secret.unwrap().expose(), &"e".repeat(32));
    assert_eq!(from_env.api_key.unwrap().expose(), &"k".repeat(16));

    let flags = Overrides {
        jwt_secret: Some(Redacted::new("f".repeat(32))),
        listen: Some("127.0.0.1:1".parse().unwrap()),
        runtime: Some(Runtime::Blocking),
        dev: true,
        ..Overrides::default()
    };
    let from_flags = Settings::load(None, &lookup, flags).unwrap();
    assert_eq!(from_flags.jwt_secret.unwrap().expose(), &"f".repeat(32));
    assert_eq!(from_flags.api_key.unwrap().expose(), &"k".repeat(16));
    assert_eq!(from_flags.listen, "127.0.0.1:1".parse().unwrap());
    assert_eq!(from_flags.runtime, Runtime::Blocking);
    assert!(from_flags.dev);
    assert!(from_flags.server.demo, "dev mode serves the demo page");
    assert!(!from_env.server.demo);
    let redis = Overrides {
        redis_url: Some("redis://127.0.0.1:6379".into()),
        ..Overrides::default()
    };
    let with_redis = Settings::load(None, &lookup, redis).unwrap();
    assert_eq!(
        with_redis.redis_url.as_deref(),
        Some("redis://127.0.0.1:6379")
    );
}

#[test]
fn an_empty_environment_variable_counts_as_unset() {
    let lookup = |_: &str| Some(String::new());
    let settings = Settings::load(None, &lookup, Overrides::default()).unwrap();
    assert_eq!(settings.jwt_secret, None);
    assert_eq!(settings.api_key, None);
}

/// Every field set away from its default. The struct literal is exhaustive
/// on purpose: a new `ServerConfig` field stops this test from compiling
/// until the field has a config key.
fn everything_changed() -> Settings {
    Settings {
        server: ServerConfig {
            handshake_timeout: Duration::from_secs(11),
            close_timeout: Duration::from_millis(1500),
            auth_timeout: Duration::from_secs(12),
            decision_timeout: Duration::from_secs(24),
            forward_headers: vec!["cookie".into()],
            heartbeat_interval: Duration::from_secs(60),
            max_payload: 1000,
            compression: false,
            compression_min_size: 512,
            high_water: 2000,
            hard_limit: 3 << 20,
            slow_timeout: Duration::from_secs(3),
            history_size: 7,
            history_ttl: Duration::from_secs(3600),
            history_max_bytes: 5 << 20,
            history_max_channels: 19,
            rate_limit: 9,
            rate_burst: 10,
            max_subscriptions: 11,
            allowed_origins: vec!["https://a.example".into()],
            latest_only: vec!["ticker:*".into(), "scores".into()],
            shutdown_timeout: Duration::from_secs(13),
            max_connections: 14,
            max_connections_per_user: 22,
            max_new_channels_per_user: 23,
            max_pending_before_auth: 15,
            max_http_head: 16 * 1024,
            idempotency_window: Duration::from_secs(17),
            idempotency_max_records: 21,
            presence_ttl: Duration::from_secs(18),
            api_max_broadcast_channels: 24,
            api_max_channels: 25,
            demo: true,
            namespaces: vec![
                Namespace {
                    pattern: ChannelPattern::new("chat:*").unwrap(),
                    subscribe: Rule::Authenticated,
                    publish: Rule::Subscribers,
                    presence: Rule::Subscribers,
                    history: Rule::Nobody,
                },
                Namespace {
                    pattern: ChannelPattern::new("org:*:feed").unwrap(),
                    subscribe: Rule::Token,
                    publish: Rule::Nobody,
                    presence: Rule::Token,
                    history: Rule::Token,
                },
                Namespace {
                    pattern: ChannelPattern::new("room:*").unwrap(),
                    subscribe: Rule::Backend,
                    publish: Rule::Backend,
                    presence: Rule::Subscribers,
                    history: Rule::Subscribers,
                },
            ],
        },
        listen: "[::1]:9000".parse().unwrap(),
        jwt_secret: None,
        jwt: JwtSettings {
            algorithm: JwtAlgorithm::EdDSA,
            public_key_file: None,
            jwks_file: Some("keys/jwks.json".into()),
            issuer: Some("https://auth.example".into()),
            audience: Some("tether".into()),
        },
        api_key: None,
        runtime: Runtime::Blocking,
        threads: Some(1),
        dev: true,
        redis_url: Some("rediss://127.0.0.1:6379/0".into()),
        redis_ca_file: Some("tls/redis-ca.pem".into()),
        proxy: ProxySettings {
            connect_url: Some("http://127.0.0.1:3000/connect".into()),
            subscribe_url: Some("http://127.0.0.1:3000/subscribe".into()),
            publish_url: Some("http://127.0.0.1:3000/publish".into()),
            rpc_url: Some("https://backend.example/rpc".into()),
            timeout: Duration::from_secs(2),
            max_concurrency: 9,
            // A secret, like jwt_secret and api_key: never shown, so not
            // read back (see the_effective_settings_never_show_secrets).
            headers: Vec::new(),
        },
        tls: TlsSettings {
            cert: Some("tls/node.crt".into()),
            key: Some("tls/node.key".into()),
        },
    }
}

#[test]
fn the_effective_settings_read_back_as_a_config_file() {
    let settings = everything_changed();
    assert_eq!(settings.validate().map_err(|e| e.to_string()), Ok(()));
    let text = settings.to_string();
    assert_eq!(Settings::from_toml_str(&text).unwrap(), settings);
}

#[test]
fn the_effective_settings_never_show_secrets() {
    let settings = Settings {
        jwt_secret: Some(Redacted::new("jwt-secret-that-must-not-leak-000".into())),
        api_key: Some(Redacted::new("api-key-that-must-not-leak".into())),
        redis_url: Some("redis://app:redis-password@db:6379".into()),
        proxy: ProxySettings {
            headers: vec![(
                "x-backend-key".into(),
                Redacted::new("backend-key-that-must-not-leak".into()),
            )],
            ..ProxySettings::default()
        },
        ..Settings::default()
    };
    let shown = format!("{settings}\n{settings:?}");
    assert!(
        shown.contains("\n# headers is set (not shown)\n"),
        "{shown}"
    );
    for secret in [
        "jwt-secret-that",
        "api-key-that",
        "redis-password",
        "backend-key-that",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }
    assert!(shown.contains("# jwt_secret is set (not shown)"), "{shown}");
}

#[test]
fn listen_takes_a_host_name_and_prefers_its_ipv4_address() {
    let settings = Settings::from_toml_str("listen = \"localhost:9000\"").unwrap();
    assert_eq!(settings.listen, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(
        error_of("listen = \"localhost\""),
        "config key \"listen\": expected a host or IP address and a port like \"127.0.0.1:8080\", \"localhost:8080\" or \"[::1]:8080\", got \"localhost\""
    );
}

#[test]
fn the_jwt_keys_read_their_algorithm_files_and_claims() {
    let settings = Settings::from_toml_str(
        "jwt_algorithm = \"RS256\"\njwt_public_key_file = \"keys/jwt.pub\"\njwt_issuer = \"https://auth.example\"\njwt_audience = \"tether\"\n",
    )
    .unwrap();
    assert_eq!(settings.jwt.algorithm, JwtAlgorithm::RS256);
    assert_eq!(settings.jwt.public_key_file, Some("keys/jwt.pub".into()));
    assert_eq!(settings.jwt.issuer.as_deref(), Some("https://auth.example"));
    assert_eq!(settings.jwt.audience.as_deref(), Some("tether"));
    for refused in [
        "jwt_algorithm = \"none\"",
        "jwt_algorithm = \"hs256\"",
        "jwt_jwks_file = \"\"",
        "jwt_audience = 7",
    ] {
        let key = refused.split(' ').next().unwrap();
        let error = error_of(refused);
        assert!(
            error.starts_with(&format!("config key \"{key}\"")),
            "{error}"
        );
    }
}

/// The patterns of the namespaces, in order.
fn patterns(settings: &Settings) -> Vec<&str> {
    settings
        .server
        .namespaces
        .iter()
        .map(|namespace| namespace.pattern.as_str())
        .collect()
}
