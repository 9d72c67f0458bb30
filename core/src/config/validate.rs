//! The rules a [`ServerConfig`] must obey, so that a node never runs with
//! values that would misbehave later (a queue that cannot hold one message,
//! a timer that fires at once). Every embedder gets them through
//! [`ServerConfig::validate`]; the binary maps the field to its TOML key,
//! which has the same name.

use std::fmt;
use std::time::Duration;

use super::ServerConfig;
use crate::access::Operation;
use crate::envelope::Channel;

/// The largest `max_payload`: a bigger message is not real-time traffic,
/// and every queue and history entry must be able to hold several.
pub const MAX_PAYLOAD_LIMIT: usize = 16 * 1024 * 1024;

/// The smallest `max_http_head`: a browser's upgrade request with cookies
/// needs a few hundred bytes.
pub const MIN_HTTP_HEAD: usize = 1024;

/// The largest `max_http_head`.
pub const MAX_HTTP_HEAD: usize = 1024 * 1024;

/// A [`ServerConfig`] field whose value breaks a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The field's name, which is also its key in the binary's TOML file.
    pub field: &'static str,
    /// What the rule asks for, and what the value was.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        message: message.into(),
    }
}

impl ServerConfig {
    /// Checks every rule across fields; the first broken one is reported,
    /// naming its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_durations()?;
        self.check_sizes()?;
        self.check_counts()?;
        self.check_patterns()?;
        self.check_namespaces()
    }

    fn check_durations(&self) -> Result<(), ConfigError> {
        let all: [(&'static str, Duration); 10] = [
            ("heartbeat_interval", self.heartbeat_interval),
            ("auth_timeout", self.auth_timeout),
            ("decision_timeout", self.decision_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("close_timeout", self.close_timeout),
            ("shutdown_timeout", self.shutdown_timeout),
            ("slow_timeout", self.slow_timeout),
            ("history_ttl", self.history_ttl),
            ("idempotency_window", self.idempotency_window),
            ("presence_ttl", self.presence_ttl),
        ];
        match all.iter().find(|(_, duration)| duration.is_zero()) {
            Some((field, _)) => Err(invalid(field, "must be longer than zero")),
            None => Ok(()),
        }
    }

    fn check_sizes(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_PAYLOAD_LIMIT).contains(&self.max_payload) {
            return Err(invalid(
                "max_payload",
                format!(
                    "must be from 1 byte to 16MiB, got {} bytes",
                    self.max_payload
                ),
            ));
        }
        if !(MIN_HTTP_HEAD..=MAX_HTTP_HEAD).contains(&self.max_http_head) {
            return Err(invalid(
                "max_http_head",
                format!(
                    "must be from 1KiB to 1MiB, got {} bytes",
                    self.max_http_head
                ),
            ));
        }
        if self.high_water == 0 {
            return Err(invalid("high_water", "must be at least 1 byte"));
        }
        if self.high_water >= self.hard_limit {
            return Err(invalid(
                "high_water",
                format!(
                    "must be below hard_limit ({} bytes), got {} bytes",
                    self.hard_limit, self.high_water
                ),
            ));
        }
        if self.history_max_bytes < self.max_payload {
            return Err(invalid(
                "history_max_bytes",
                format!(
                    "must be at least max_payload ({} bytes) so that the history holds a largest message, got {} bytes",
                    self.max_payload, self.history_max_bytes
                ),
            ));
        }
        if self.compression_min_size > self.max_payload {
            return Err(invalid(
                "compression_min_size",
                format!(
                    "must be at most max_payload ({} bytes), or nothing would be compressed, got {} bytes",
                    self.max_payload, self.compression_min_size
                ),
            ));
        }
        if self.hard_limit <= self.max_payload {
            return Err(invalid(
                "hard_limit",
                format!(
                    "must be above max_payload ({} bytes) so that one largest message fits in a queue, got {} bytes",
                    self.max_payload, self.hard_limit
                ),
            ));
        }
        Ok(())
    }

    fn check_counts(&self) -> Result<(), ConfigError> {
        let all: [(&'static str, u64); 11] = [
            ("rate_limit", u64::from(self.rate_limit)),
            ("rate_burst", u64::from(self.rate_burst)),
            ("max_subscriptions", self.max_subscriptions as u64),
            ("max_connections", self.max_connections as u64),
            (
                "max_connections_per_user",
                self.max_connections_per_user as u64,
            ),
            (
                "max_new_channels_per_user",
                self.max_new_channels_per_user as u64,
            ),
            ("history_max_channels", self.history_max_channels as u64),
            (
                "idempotency_max_records",
                self.idempotency_max_records as u64,
            ),
            (
                "max_pending_before_auth",
                self.max_pending_before_auth as u64,
            ),
            (
                "api_max_broadcast_channels",
                self.api_max_broadcast_channels as u64,
            ),
            ("api_max_channels", self.api_max_channels as u64),
        ];
        match all.iter().find(|(_, count)| *count == 0) {
            Some((field, _)) => Err(invalid(field, "must be at least 1")),
            None => Ok(()),
        }
    }

    fn check_patterns(&self) -> Result<(), ConfigError> {
        if self.forward_headers.len() > super::MAX_FORWARD_HEADERS {
            return Err(invalid(
                "forward_headers",
                format!("at most {} names", super::MAX_FORWARD_HEADERS),
            ));
        }
        for name in &self.forward_headers {
            let token = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
            if name.is_empty() || !name.bytes().all(token) {
                return Err(invalid(
                    "forward_headers",
                    format!("{name:?} is not a lower-case header name like \"cookie\""),
                ));
            }
        }
        for origin in &self.allowed_origins {
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
        for pattern in &self.latest_only {
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

    /// Every rule fits its operation.
    fn check_namespaces(&self) -> Result<(), ConfigError> {
        for (index, namespace) in self.namespaces.iter().enumerate() {
            for op in Operation::ALL {
                let rule = namespace.rule(op);
                let place = format!("entry {index} ({}), {}", namespace.pattern, op.name());
                if !op.takes(rule) {
                    return Err(invalid(
                        "namespaces",
                        format!(
                            "{place}: \"{}\" is not a rule of {}",
                            rule.name(),
                            op.name()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(change: impl FnOnce(&mut ServerConfig)) -> Option<&'static str> {
        let mut config = ServerConfig::default();
        change(&mut config);
        config.validate().err().map(|error| error.field)
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(ServerConfig::default().validate(), Ok(()));
    }

    #[test]
    fn a_namespace_rule_must_fit_its_operation() {
        use crate::access::{ChannelPattern, Namespace, Rule};
        let namespace = |change: fn(&mut Namespace)| {
            let mut namespace = Namespace::open(ChannelPattern::new("chat:*").unwrap());
            change(&mut namespace);
            field_of(move |c| c.namespaces = vec![namespace])
        };
        assert_eq!(namespace(|_| {}), None);
        assert_eq!(namespace(|n| n.publish = Rule::Subscribers), None);
        assert_eq!(
            namespace(|n| n.subscribe = Rule::Subscribers),
            Some("namespaces")
        );
        assert_eq!(
            namespace(|n| n.presence = Rule::Backend),
            Some("namespaces")
        );
        assert_eq!(namespace(|n| n.subscribe = Rule::Backend), None);
    }

    #[test]
    fn zero_durations_are_refused_by_name() {
        assert_eq!(
            field_of(|c| c.heartbeat_interval = Duration::ZERO),
            Some("heartbeat_interval")
        );
        assert_eq!(
            field_of(|c| c.presence_ttl = Duration::ZERO),
            Some("presence_ttl")
        );
    }

    #[test]
    fn compression_min_size_is_at_most_max_payload() {
        assert_eq!(
            field_of(|c| c.compression_min_size = c.max_payload + 1),
            Some("compression_min_size")
        );
        assert_eq!(field_of(|c| c.compression_min_size = c.max_payload), None);
        assert_eq!(field_of(|c| c.compression_min_size = 0), None);
    }

    #[test]
    fn max_payload_is_bounded() {
        assert_eq!(field_of(|c| c.max_payload = 0), Some("max_payload"));
        let at_limit = field_of(|c| {
            c.max_payload = MAX_PAYLOAD_LIMIT;
            c.hard_limit = 2 * MAX_PAYLOAD_LIMIT;
        });
        assert_eq!(at_limit, None);
        let above = field_of(|c| {
            c.max_payload = MAX_PAYLOAD_LIMIT + 1;
            c.hard_limit = 2 * MAX_PAYLOAD_LIMIT;
        });
        assert_eq!(above, Some("max_payload"));
    }

    #[test]
    fn high_water_must_stay_below_hard_limit() {
        assert_eq!(
            field_of(|c| c.high_water = c.hard_limit),
            Some("high_water")
        );
        assert_eq!(field_of(|c| c.high_water = c.hard_limit - 1), None);
        assert_eq!(field_of(|c| c.high_water = 0), Some("high_water"));
    }

    #[test]
    fn hard_limit_must_hold_one_largest_message() {
        let field = field_of(|c| {
            c.high_water = 1024;
            c.hard_limit = c.max_payload;
        });
        assert_eq!(field, Some("hard_limit"));
    }

    #[test]
    fn counts_of_zero_are_refused() {
        assert_eq!(field_of(|c| c.rate_burst = 0), Some("rate_burst"));
        assert_eq!(field_of(|c| c.rate_limit = 0), Some("rate_limit"));
        assert_eq!(field_of(|c| c.rate_burst = 1), None);
        assert_eq!(field_of(|c| c.max_connections = 0), Some("max_connections"));
        assert_eq!(
            field_of(|c| c.max_connections_per_user = 0),
            Some("max_connections_per_user")
        );
        assert_eq!(
            field_of(|c| c.max_new_channels_per_user = 0),
            Some("max_new_channels_per_user")
        );
    }

    #[test]
    fn the_history_bounds_are_refused_by_name_when_they_hold_nothing() {
        assert_eq!(
            field_of(|c| c.history_max_bytes = c.max_payload - 1),
            Some("history_max_bytes")
        );
        assert_eq!(field_of(|c| c.history_max_bytes = c.max_payload), None);
        assert_eq!(
            field_of(|c| c.history_max_channels = 0),
            Some("history_max_channels")
        );
    }

    #[test]
    fn http_head_limit_is_bounded() {
        assert_eq!(field_of(|c| c.max_http_head = 1023), Some("max_http_head"));
        assert_eq!(field_of(|c| c.max_http_head = 1024), None);
    }

    #[test]
    fn origins_must_look_like_origins() {
        let slash = field_of(|c| c.allowed_origins = vec!["https://a.example/".into()]);
        assert_eq!(slash, Some("allowed_origins"));
        let empty = field_of(|c| c.allowed_origins = vec![String::new()]);
        assert_eq!(empty, Some("allowed_origins"));
        let fine = field_of(|c| c.allowed_origins = vec!["https://a.example".into()]);
        assert_eq!(fine, None);
    }

    #[test]
    fn latest_only_patterns_are_channel_names_with_a_trailing_star() {
        for good in ["ticker:*", "scores", "*"] {
            assert_eq!(
                field_of(|c| c.latest_only = vec![good.into()]),
                None,
                "{good}"
            );
        }
        for bad in ["", "tick*er", "**", "a b*"] {
            assert_eq!(
                field_of(|c| c.latest_only = vec![bad.into()]),
                Some("latest_only"),
                "{bad}"
            );
        }
    }
}
