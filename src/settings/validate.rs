//! Rules that a complete set of settings must obey, checked once all
//! sources (file, environment, flags) are merged, so that a server never
//! starts with values that would misbehave later.

use std::time::Duration;

use tether_core::envelope::Channel;

use super::{Settings, SettingsError};

/// The largest `max_payload`: a bigger message is not real-time traffic,
/// and every queue and history entry must be able to hold several.
pub const MAX_PAYLOAD_LIMIT: usize = 16 * 1024 * 1024;

/// The smallest `max_http_head`: a browser's upgrade request with cookies
/// needs a few hundred bytes.
pub const MIN_HTTP_HEAD: usize = 1024;

/// The largest `max_http_head`.
pub const MAX_HTTP_HEAD: usize = 1024 * 1024;

/// The shortest JWT secret: RFC 7518 section 3.2 asks for an HS256 key of
/// at least the hash size, 256 bits.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The shortest API key, so that it cannot be guessed.
pub const MIN_API_KEY_CHARS: usize = 16;

/// Checks every rule; the first broken one is reported, naming its key.
pub(crate) fn validate(settings: &Settings) -> Result<(), SettingsError> {
    durations(settings)?;
    sizes(settings)?;
    counts(settings)?;
    patterns(settings)?;
    secrets(settings)?;
    redis(settings)
}

fn invalid(key: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        message: message.into(),
    }
}

fn durations(settings: &Settings) -> Result<(), SettingsError> {
    let server = &settings.server;
    let all: [(&'static str, Duration); 9] = [
        ("heartbeat_interval", server.heartbeat_interval),
        ("auth_timeout", server.auth_timeout),
        ("handshake_timeout", server.handshake_timeout),
        ("close_timeout", server.close_timeout),
        ("shutdown_timeout", server.shutdown_timeout),
        ("slow_timeout", server.slow_timeout),
        ("history_ttl", server.history_ttl),
        ("idempotency_window", server.idempotency_window),
        ("presence_ttl", server.presence_ttl),
    ];
    match all.iter().find(|(_, duration)| duration.is_zero()) {
        Some((key, _)) => Err(invalid(key, "must be longer than zero")),
        None => Ok(()),
    }
}

fn sizes(settings: &Settings) -> Result<(), SettingsError> {
    let server = &settings.server;
    if !(1..=MAX_PAYLOAD_LIMIT).contains(&server.max_payload) {
        return Err(invalid(
            "max_payload",
            format!(
                "must be from 1 byte to 16MiB, got {} bytes",
                server.max_payload
            ),
        ));
    }
    if !(MIN_HTTP_HEAD..=MAX_HTTP_HEAD).contains(&server.max_http_head) {
        return Err(invalid(
            "max_http_head",
            format!(
                "must be from 1KiB to 1MiB, got {} bytes",
                server.max_http_head
            ),
        ));
    }
    if server.high_water == 0 {
        return Err(invalid("high_water", "must be at least 1 byte"));
    }
    if server.high_water >= server.hard_limit {
        return Err(invalid(
            "high_water",
            format!(
                "must be below hard_limit ({} bytes), got {} bytes",
                server.hard_limit, server.high_water
            ),
        ));
    }
    if server.history_max_bytes < server.max_payload {
        return Err(invalid(
            "history_max_bytes",
            format!(
                "must be at least max_payload ({} bytes) so that the history holds a largest message, got {} bytes",
                server.max_payload, server.history_max_bytes
            ),
        ));
    }
    if server.hard_limit <= server.max_payload {
        return Err(invalid(
            "hard_limit",
            format!(
                "must be above max_payload ({} bytes) so that one largest message fits in a queue, got {} bytes",
                server.max_payload, server.hard_limit
            ),
        ));
    }
    Ok(())
}

fn counts(settings: &Settings) -> Result<(), SettingsError> {
    let server = &settings.server;
    let all: [(&'static str, u64); 6] = [
        ("rate_limit", u64::from(server.rate_limit)),
        ("rate_burst", u64::from(server.rate_burst)),
        ("max_subscriptions", server.max_subscriptions as u64),
        ("max_connections", server.max_connections as u64),
        ("history_max_channels", server.history_max_channels as u64),
        (
            "max_pending_before_auth",
            server.max_pending_before_auth as u64,
        ),
    ];
    match all.iter().find(|(_, count)| *count == 0) {
        Some((key, _)) => Err(invalid(key, "must be at least 1")),
        None => Ok(()),
    }
}

fn patterns(settings: &Settings) -> Result<(), SettingsError> {
    for origin in &settings.server.allowed_origins {
        if origin.is_empty() || origin.contains(char::is_whitespace) {
            return Err(invalid(
                "allowed_origins",
                format!("{origin:?} is not an origin like \"https://example.com\""),
            ));
        }
        if origin.ends_with('/') {
            return Err(invalid(
                "allowed_origins",
                format!(
                    "{origin:?} ends with '/', which a browser's Origin header never does; write {:?}",
                    origin.trim_end_matches('/')
                ),
            ));
        }
    }
    for pattern in &settings.server.latest_only {
        let valid = match pattern.strip_suffix('*') {
            Some("") => true,
            Some(prefix) => Channel::new(prefix).is_ok(),
            None => Channel::new(pattern).is_ok(),
        };
        if !valid {
            return Err(invalid(
                "latest_only",
                format!(
                    "{pattern:?} is not a channel name with an optional trailing '*' (like \"ticker:*\")"
                ),
            ));
        }
    }
    Ok(())
}

fn secrets(settings: &Settings) -> Result<(), SettingsError> {
    if let Some(secret) = &settings.jwt_secret
        && secret.expose().len() < MIN_JWT_SECRET_BYTES
    {
        return Err(invalid(
            "jwt_secret",
            format!(
                "must be at least {MIN_JWT_SECRET_BYTES} bytes for HS256 (from the config file, --jwt-secret or TETHER_JWT_SECRET), got {}",
                secret.expose().len()
            ),
        ));
    }
    if let Some(key) = &settings.api_key {
        let key = key.expose();
        let printable = key.bytes().all(|b| b.is_ascii_graphic());
        if !printable || key.len() < MIN_API_KEY_CHARS {
            return Err(invalid(
                "api_key",
                format!(
                    "must be at least {MIN_API_KEY_CHARS} printable ASCII characters without spaces (from the config file, --api-key or TETHER_API_KEY)"
                ),
            ));
        }
    }
    Ok(())
}

/// A backplane the node cannot use is refused here rather than ignored:
/// an operator asking for one must not get an isolated node instead.
fn redis(settings: &Settings) -> Result<(), SettingsError> {
    let Some(url) = &settings.redis_url else {
        return Ok(());
    };
    if url.starts_with("rediss://") {
        return Err(invalid(
            "redis_url",
            "rediss:// (TLS) is not supported; use redis:// on a trusted network",
        ));
    }
    if !url.starts_with("redis://") {
        return Err(invalid("redis_url", "must start with redis://"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Redacted;

    fn key_of(settings: &Settings) -> Option<&'static str> {
        match validate(settings) {
            Ok(()) => None,
            Err(SettingsError::Invalid { key, .. }) => Some(key),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    fn with(change: impl FnOnce(&mut Settings)) -> Settings {
        let mut settings = Settings::default();
        change(&mut settings);
        settings
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(key_of(&Settings::default()), None);
    }

    #[test]
    fn zero_durations_are_refused_by_name() {
        let settings = with(|s| s.server.heartbeat_interval = Duration::ZERO);
        assert_eq!(key_of(&settings), Some("heartbeat_interval"));
        let settings = with(|s| s.server.presence_ttl = Duration::ZERO);
        assert_eq!(key_of(&settings), Some("presence_ttl"));
    }

    #[test]
    fn max_payload_is_bounded() {
        assert_eq!(
            key_of(&with(|s| s.server.max_payload = 0)),
            Some("max_payload")
        );
        let at_limit = with(|s| {
            s.server.max_payload = MAX_PAYLOAD_LIMIT;
            s.server.hard_limit = 2 * MAX_PAYLOAD_LIMIT;
        });
        assert_eq!(key_of(&at_limit), None);
        let above = with(|s| {
            s.server.max_payload = MAX_PAYLOAD_LIMIT + 1;
            s.server.hard_limit = 2 * MAX_PAYLOAD_LIMIT;
        });
        assert_eq!(key_of(&above), Some("max_payload"));
    }

    #[test]
    fn high_water_must_stay_below_hard_limit() {
        let equal = with(|s| s.server.high_water = s.server.hard_limit);
        assert_eq!(key_of(&equal), Some("high_water"));
        let just_below = with(|s| s.server.high_water = s.server.hard_limit - 1);
        assert_eq!(key_of(&just_below), None);
        assert_eq!(
            key_of(&with(|s| s.server.high_water = 0)),
            Some("high_water")
        );
    }

    #[test]
    fn hard_limit_must_hold_one_largest_message() {
        let settings = with(|s| {
            s.server.high_water = 1024;
            s.server.hard_limit = s.server.max_payload;
        });
        assert_eq!(key_of(&settings), Some("hard_limit"));
    }

    #[test]
    fn counts_of_zero_are_refused() {
        assert_eq!(
            key_of(&with(|s| s.server.rate_burst = 0)),
            Some("rate_burst")
        );
        assert_eq!(
            key_of(&with(|s| s.server.rate_limit = 0)),
            Some("rate_limit")
        );
        assert_eq!(key_of(&with(|s| s.server.rate_burst = 1)), None);
        assert_eq!(
            key_of(&with(|s| s.server.max_connections = 0)),
            Some("max_connections")
        );
    }

    #[test]
    fn the_history_bounds_are_refused_by_name_when_they_hold_nothing() {
        let small = with(|s| s.server.history_max_bytes = s.server.max_payload - 1);
        assert_eq!(key_of(&small), Some("history_max_bytes"));
        let fits = with(|s| s.server.history_max_bytes = s.server.max_payload);
        assert_eq!(key_of(&fits), None);
        let none = with(|s| s.server.history_max_channels = 0);
        assert_eq!(key_of(&none), Some("history_max_channels"));
    }

    #[test]
    fn http_head_limit_is_bounded() {
        assert_eq!(
            key_of(&with(|s| s.server.max_http_head = 1023)),
            Some("max_http_head")
        );
        assert_eq!(key_of(&with(|s| s.server.max_http_head = 1024)), None);
    }

    #[test]
    fn origins_must_look_like_origins() {
        let slash = with(|s| s.server.allowed_origins = vec!["https://a.example/".into()]);
        assert_eq!(key_of(&slash), Some("allowed_origins"));
        let empty = with(|s| s.server.allowed_origins = vec![String::new()]);
        assert_eq!(key_of(&empty), Some("allowed_origins"));
        let fine = with(|s| s.server.allowed_origins = vec!["https://a.example".into()]);
        assert_eq!(key_of(&fine), None);
    }

    #[test]
    fn latest_only_patterns_are_channel_names_with_a_trailing_star() {
        for good in ["ticker:*", "scores", "*"] {
            let settings = with(|s| s.server.latest_only = vec![good.into()]);
            assert_eq!(key_of(&settings), None, "{good}");
        }
        for bad in ["", "tick*er", "**", "a b*"] {
            let settings = with(|s| s.server.latest_only = vec![bad.into()]);
            assert_eq!(key_of(&settings), Some("latest_only"), "{bad}");
        }
    }

    #[test]
    fn short_secrets_are_refused_without_echoing_them() {
        let settings = with(|s| s.jwt_secret = Some(Redacted::new("short-secret".into())));
        let error = validate(&settings).unwrap_err().to_string();
        assert!(error.contains("jwt_secret"), "{error}");
        assert!(!error.contains("short-secret"), "{error}");
        let ok = with(|s| s.jwt_secret = Some(Redacted::new("x".repeat(32))));
        assert_eq!(key_of(&ok), None);
    }

    #[test]
    fn api_keys_must_be_long_and_sendable() {
        let spaced = with(|s| s.api_key = Some(Redacted::new("a key with spaces inside".into())));
        assert_eq!(key_of(&spaced), Some("api_key"));
        let short = with(|s| s.api_key = Some(Redacted::new("abc".into())));
        assert_eq!(key_of(&short), Some("api_key"));
        let ok = with(|s| s.api_key = Some(Redacted::new("k".repeat(16))));
        assert_eq!(key_of(&ok), None);
    }

    #[test]
    fn redis_urls_need_a_redis_scheme() {
        let http = with(|s| s.redis_url = Some("http://localhost".into()));
        assert_eq!(key_of(&http), Some("redis_url"));
        let ok = with(|s| s.redis_url = Some("redis://127.0.0.1:6379".into()));
        assert_eq!(key_of(&ok), None);
    }

    #[test]
    fn a_backplane_the_node_cannot_use_is_refused_not_ignored() {
        let tls = with(|s| s.redis_url = Some("rediss://127.0.0.1:6379".into()));
        assert_eq!(key_of(&tls), Some("redis_url"));
    }
}
