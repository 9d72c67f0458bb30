//! The `tether` executable as a user meets it: exit codes, messages, and
//! no secret in anything it prints.

use std::path::Path;
use std::process::{Command, Output};

use tether_testkit::tls::TestCa;

const SECRET: &str = "jwt-secret-never-printed-0123456789";
const API_KEY: &str = "api-key-never-printed-42";

fn tether(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tether"));
    command
        .args(args)
        .env_remove("TETHER_JWT_SECRET")
        .env_remove("TETHER_API_KEY")
        .env_remove("RUST_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the tether binary runs")
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn serve_without_a_secret_refuses_to_start_naming_both_ways() {
    let output = tether(&["serve"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let text = printed(&output);
    assert!(
        text.contains("--jwt-secret") && text.contains("TETHER_JWT_SECRET"),
        "{text}"
    );
}

#[test]
fn dev_mode_warns_loudly_and_shows_the_settings() {
    let output = tether(&["serve", "--dev", "--check"], &[]);
    let text = printed(&output);
    assert!(text.contains("DEV MODE"), "{text}");
    assert!(
        text.contains("channel that no configured namespace governs is open to every user"),
        "{text}"
    );
    assert!(!text.contains("no [[namespaces]] configured"), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:8080\""), "{text}");
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn secrets_from_flags_and_environment_are_never_printed() {
    for (args, env) in [
        (
            vec![
                "serve",
                "--check",
                "--jwt-secret",
                SECRET,
                "--api-key",
                API_KEY,
            ],
            vec![("RUST_LOG", "trace")],
        ),
        (
            vec!["serve", "--check"],
            vec![
                ("TETHER_JWT_SECRET", SECRET),
                ("TETHER_API_KEY", API_KEY),
                ("RUST_LOG", "trace"),
            ],
        ),
    ] {
        let output = tether(&args, &env);
        let text = printed(&output);
        assert_eq!(output.status.code(), Some(0), "{text}");
        assert!(text.contains("jwt_secret is set"), "{text}");
        assert!(!text.contains(SECRET) && !text.contains(API_KEY), "{text}");
    }
}

#[test]
fn without_namespaces_the_refused_channels_are_announced() {
    let output = tether(&["serve", "--check", "--jwt-secret", SECRET], &[]);
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let warning = text
        .lines()
        .find(|line| line.contains("no [[namespaces]] configured"))
        .unwrap_or_else(|| panic!("no warning: {text}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains("every channel except each user's own user:<id> is refused"),
        "{warning}"
    );
}

#[test]
fn a_namespace_mistake_stops_start_up_naming_its_place() {
    let dir = std::env::temp_dir().join(format!("tether-binary-ns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut texts = Vec::new();
    for (name, body) in [
        ("typo", "publsh = \"authenticated\""),
        ("unfit", "subscribe = \"subscribers\""),
    ] {
        let path = dir.join(format!("{name}.toml"));
        let config = format!("[[namespaces]]\npattern = \"chat:*\"\n{body}\n");
        std::fs::write(&path, config).unwrap();
        let output = tether(
            &[
                "serve",
                "--check",
                "--jwt-secret",
                SECRET,
                "--config",
                path.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(output.status.code(), Some(2));
        texts.push(printed(&output));
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        texts[0]
            .contains("unknown config key \"namespaces[0].publsh\" (did you mean \"publish\"?)"),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].contains(
            "setting \"namespaces\": entry 0 (chat:*), subscribe: \"subscribers\" is not a rule of subscribe"
        ),
        "{}",
        texts[1]
    );
}

#[test]
fn a_bad_config_file_stops_start_up_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("tether-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "rate_burst = 0\n").unwrap();
    let output = tether(&["serve", "--dev", "--config", path.to_str().unwrap()], &[]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = printed(&output);
    assert!(
        text.contains("\"rate_burst\": must be at least 1"),
        "{text}"
    );
}

#[test]
fn a_bad_compression_setting_stops_start_up_naming_its_key() {
    let dir = std::env::temp_dir().join(format!("tether-compression-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "compression_min_size = \"1MiB\"\n",
            "\"compression_min_size\": must be at most max_payload",
        ),
        (
            "compression = \"yes\"\n",
            "config key \"compression\": expected true or false",
        ),
    ];
    for (text, expected) in cases {
        let path = dir.join("compression.toml");
        std::fs::write(&path, text).unwrap();
        let output = tether(&["serve", "--dev", "--config", path.to_str().unwrap()], &[]);
        assert_eq!(output.status.code(), Some(2), "{text}");
        let printed = printed(&output);
        assert!(printed.contains(expected), "{printed}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unreadable_key_set_stops_start_up_naming_its_key() {
    let dir = std::env::temp_dir().join(format!("tether-binary-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.toml");
    std::fs::write(
        &path,
        "jwt_algorithm = \"RS256\"\njwt_jwks_file = \"absent-jwks.json\"\n",
    )
    .unwrap();
    let output = tether(
        &["serve", "--check", "--config", path.to_str().unwrap()],
        &[],
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = printed(&output);
    assert!(
        text.contains("\"jwt_jwks_file\": absent-jwks.json"),
        "{text}"
    );
}

#[test]
fn the_example_config_passes_the_check() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/tether.example.toml");
    let output = tether(&["serve", "--dev", "--check", "--config", example], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", printed(&output));
}

#[test]
fn a_proxy_mistake_stops_start_up_naming_its_key_and_a_connect_url_needs_no_secret() {
    let dir = std::env::temp_dir().join(format!("tether-binary-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let check = |name: &str, config: &str| {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        tether(
            &["serve", "--check", "--config", path.to_str().unwrap()],
            &[],
        )
    };
    let secret = "backend-secret-never-printed";
    let slow = check(
        "slow",
        &format!(
            "[proxy]\nconnect_url = \"http://127.0.0.1:3000/connect\"\ntimeout = \"10s\"\nheaders = {{ \"x-backend-key\" = \"{secret}\" }}\n"
        ),
    );
    let unset = check(
        "unset",
        "[proxy]\nconnect_url = \"http://127.0.0.1:3000/connect\"\n\n[[namespaces]]\npattern = \"room:*\"\npublish = \"backend\"\n",
    );
    let fine = check(
        "fine",
        &format!(
            "[proxy]\nconnect_url = \"http://127.0.0.1:3000/connect\"\nheaders = {{ \"x-backend-key\" = \"{secret}\" }}\n"
        ),
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(slow.status.code(), Some(2));
    let text = printed(&slow);
    assert!(
        text.contains("setting \"proxy.timeout\": must be at most decision_timeout (5s)"),
        "{text}"
    );
    assert_eq!(unset.status.code(), Some(2));
    let text = printed(&unset);
    assert!(
        text.contains("entry 0 (room:*), publish: \"backend\"")
            && text.contains("set proxy.publish_url"),
        "{text}"
    );
    assert_eq!(fine.status.code(), Some(0), "{}", printed(&fine));
    let text = printed(&fine);
    assert!(
        text.contains("tokens are decided by the proxy backend at http://127.0.0.1:3000/connect"),
        "{text}"
    );
    assert!(text.contains("# headers is set (not shown)"), "{text}");
    assert!(!text.contains(secret), "{text}");
}

/// `serve --dev --check` with a config file of `settings` written at
/// `path`: what it printed, after checking that it exited 2.
fn refused_check(path: &Path, settings: &str) -> String {
    std::fs::write(path, settings).unwrap();
    let output = tether(
        &[
            "serve",
            "--dev",
            "--check",
            "--config",
            path.to_str().unwrap(),
        ],
        &[],
    );
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(2), "{settings}\n{text}");
    text
}

#[test]
fn a_tls_file_that_cannot_be_used_stops_start_up_naming_its_key() {
    let ca = TestCa::new("binary-tls-files");
    let (node, other) = (ca.server("node"), ca.server("other"));
    let missing = ca.ca_file().with_file_name("absent.pem");
    let config = ca.ca_file().with_file_name("tether.toml");
    let cases = [
        (&missing, &node.key, "tls_cert", "cannot read"),
        (&config, &node.key, "tls_cert", "no certificate in the file"),
        (
            &node.key,
            &node.key,
            "tls_cert",
            "no certificate in the file",
        ),
        (&node.cert, &missing, "tls_key", "cannot read"),
        (&node.cert, &config, "tls_key", "no private key in the file"),
        (
            &node.cert,
            &node.cert,
            "tls_key",
            "no private key in the file",
        ),
        (
            &node.cert,
            &other.key,
            "tls_key",
            "is not the key of the certificate",
        ),
    ];
    for (cert, key, named, why) in cases {
        let settings = format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            cert.to_str().unwrap(),
            key.to_str().unwrap()
        );
        let text = refused_check(&config, &settings);
        assert!(
            text.contains(&format!("setting \"{named}\"")) && text.contains(why),
            "{settings}\n{text}"
        );
    }
}

#[test]
fn a_redis_ca_file_that_cannot_be_used_stops_start_up_naming_its_key() {
    let ca = TestCa::new("binary-redis-ca");
    let node = ca.server("node");
    let missing = ca.ca_file().with_file_name("absent.pem");
    let config = ca.ca_file().with_file_name("tether.toml");
    let cases = [
        (&missing, "cannot read"),
        (&config, "no certificate in the file"),
        (&node.key, "no certificate in the file"),
    ];
    for (file, why) in cases {
        let settings = format!(
            "redis_url = \"rediss://127.0.0.1:1\"\nredis_ca_file = {:?}\n",
            file.to_str().unwrap()
        );
        let text = refused_check(&config, &settings);
        assert!(
            text.contains("setting \"redis_ca_file\"") && text.contains(why),
            "{settings}\n{text}"
        );
    }
}

#[test]
fn connect_refuses_a_ca_file_for_a_plain_url_or_one_it_cannot_use() {
    let ca = TestCa::new("binary-connect-ca");
    let node = ca.server("node");
    let ca_file = ca.ca_file().to_str().unwrap();
    let missing = ca.ca_file().with_file_name("absent.pem");
    // Nothing listens on port 1: every refusal comes before any dial.
    let cases = [
        ("ws://127.0.0.1:1/ws", ca_file, "--ca is for wss:// URLs"),
        (
            "wss://127.0.0.1:1/ws",
            missing.to_str().unwrap(),
            "cannot read",
        ),
        (
            "wss://127.0.0.1:1/ws",
            node.key.to_str().unwrap(),
            "no certificate in the file",
        ),
    ];
    for (url, file, why) in cases {
        let output = tether(&["connect", url, "--token", "t", "--ca", file], &[]);
        let text = printed(&output);
        assert_eq!(output.status.code(), Some(2), "{url} --ca {file}\n{text}");
        let error = text
            .lines()
            .find(|line| line.starts_with("tether: "))
            .unwrap_or_else(|| panic!("no error line: {text}"));
        assert!(
            error.contains("--ca") && error.contains(why),
            "{url} --ca {file}\n{error}"
        );
    }
}
