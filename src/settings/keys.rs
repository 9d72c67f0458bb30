//! The table of config keys: every setting's name, kind and place.
//!
//! One table drives reading the file, refusing unknown keys and showing the
//! effective settings, so a key cannot be readable but invisible, or the
//! other way round. A key of a table of the file (`[proxy]`) is named
//! with the table's name and a dot (`proxy.timeout`), as every message
//! about it says.

use toml::Value;

use super::kinds::{
    AddrKind, AlgorithmKind, CountKind, DurationKind, FlagKind, HeadersKind, Kind, PathKind,
    RuntimeKind, SecretKind, Shown, SizeKind, StringsKind, TextKind, ThreadsKind, UrlKind,
};
use super::{Settings, SettingsError, namespaces};

/// One config key.
pub(crate) struct Key {
    /// The key as written in the file (and in PROTOCOL.md).
    pub name: &'static str,
    /// Reads the key's value into the settings; the error names the key,
    /// or the place inside its value, at fault.
    pub read: fn(&mut Settings, &Value) -> Result<(), SettingsError>,
    /// Shows the key's current value.
    pub show: fn(&Settings) -> Shown,
}

/// Builds a [`Key`] from its name, kind and field path in [`Settings`].
macro_rules! key {
    ($name:literal, $kind:ty, $($field:ident).+) => {
        Key {
            name: $name,
            read: |settings, value| {
                settings.$($field).+ =
                    <$kind>::read(value).map_err(|message| SettingsError::BadValue {
                        key: $name.to_owned(),
                        message,
                    })?;
                Ok(())
            },
            show: |settings| <$kind>::show(&settings.$($field).+),
        }
    };
}

/// Every key, in the order the effective settings are shown.
pub(crate) const KEYS: &[Key] = &[
    key!("listen", AddrKind, listen),
    key!("runtime", RuntimeKind, runtime),
    key!("threads", ThreadsKind, threads),
    key!("dev", FlagKind, dev),
    key!("demo", FlagKind, server.demo),
    key!("jwt_secret", SecretKind, jwt_secret),
    key!("jwt_algorithm", AlgorithmKind, jwt.algorithm),
    key!("jwt_public_key_file", PathKind, jwt.public_key_file),
    key!("jwt_jwks_file", PathKind, jwt.jwks_file),
    key!("jwt_issuer", TextKind, jwt.issuer),
    key!("jwt_audience", TextKind, jwt.audience),
    key!("api_key", SecretKind, api_key),
    key!("redis_url", UrlKind, redis_url),
    key!("redis_ca_file", PathKind, redis_ca_file),
    key!("tls_cert", PathKind, tls.cert),
    key!("tls_key", PathKind, tls.key),
    key!(
        "heartbeat_interval",
        DurationKind,
        server.heartbeat_interval
    ),
    key!("auth_timeout", DurationKind, server.auth_timeout),
    key!("decision_timeout", DurationKind, server.decision_timeout),
    key!("handshake_timeout", DurationKind, server.handshake_timeout),
    key!("close_timeout", DurationKind, server.close_timeout),
    key!("shutdown_timeout", DurationKind, server.shutdown_timeout),
    key!("max_payload", SizeKind, server.max_payload),
    key!("compression", FlagKind, server.compression),
    key!(
        "compression_min_size",
        SizeKind,
        server.compression_min_size
    ),
    key!("max_http_head", SizeKind, server.max_http_head),
    key!("high_water", SizeKind, server.high_water),
    key!("hard_limit", SizeKind, server.hard_limit),
    key!("slow_timeout", DurationKind, server.slow_timeout),
    key!("latest_only", StringsKind, server.latest_only),
    key!("history_size", CountKind<usize>, server.history_size),
    key!("history_ttl", DurationKind, server.history_ttl),
    key!("history_max_bytes", SizeKind, server.history_max_bytes),
    key!(
        "history_max_channels",
        CountKind<usize>,
        server.history_max_channels
    ),
    key!(
        "idempotency_max_records",
        CountKind<usize>,
        server.idempotency_max_records
    ),
    key!(
        "idempotency_window",
        DurationKind,
        server.idempotency_window
    ),
    key!("rate_limit", CountKind<u32>, server.rate_limit),
    key!("rate_burst", CountKind<u32>, server.rate_burst),
    key!(
        "max_subscriptions",
        CountKind<usize>,
        server.max_subscriptions
    ),
    key!("max_connections", CountKind<usize>, server.max_connections),
    key!(
        "max_connections_per_user",
        CountKind<usize>,
        server.max_connections_per_user
    ),
    key!(
        "max_new_channels_per_user",
        CountKind<usize>,
        server.max_new_channels_per_user
    ),
    key!(
        "max_pending_before_auth",
        CountKind<usize>,
        server.max_pending_before_auth
    ),
    key!("allowed_origins", StringsKind, server.allowed_origins),
    key!("forward_headers", StringsKind, server.forward_headers),
    key!("presence_ttl", DurationKind, server.presence_ttl),
    key!(
        "api_max_broadcast_channels",
        CountKind<usize>,
        server.api_max_broadcast_channels
    ),
    key!(
        "api_max_channels",
        CountKind<usize>,
        server.api_max_channels
    ),
    key!("proxy.connect_url", UrlKind, proxy.connect_url),
    key!("proxy.subscribe_url", UrlKind, proxy.subscribe_url),
    key!("proxy.publish_url", UrlKind, proxy.publish_url),
    key!("proxy.rpc_url", UrlKind, proxy.rpc_url),
    key!("proxy.timeout", DurationKind, proxy.timeout),
    key!(
        "proxy.max_concurrency",
        CountKind<usize>,
        proxy.max_concurrency
    ),
    key!("proxy.headers", HeadersKind, proxy.headers),
    // Last: shown as [[namespaces]] tables, after which no plain key may come.
    Key {
        name: namespaces::KEY,
        read: |settings, value| {
            settings.server.namespaces = namespaces::read(value)?;
            Ok(())
        },
        show: |settings| namespaces::show(&settings.server.namespaces),
    },
];

/// The key called `name`.
pub(crate) fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// Whether `name` is a table of the file whose keys are `name.<key>`.
pub(crate) fn is_section(name: &str) -> bool {
    KEYS.iter().any(|key| section_of(key.name) == Some(name))
}

/// The table a key belongs to (`proxy` for `proxy.timeout`), if any.
pub(crate) fn section_of(name: &str) -> Option<&str> {
    name.split_once('.').map(|(section, _)| section)
}

/// Reads the value of the key called `name` into `settings`; an unknown
/// name is refused with the nearest known one suggested.
pub(crate) fn read(
    settings: &mut Settings,
    name: &str,
    value: &Value,
) -> Result<(), SettingsError> {
    let key = find(name).ok_or_else(|| SettingsError::UnknownKey {
        key: name.to_owned(),
        suggestion: suggest(name),
    })?;
    (key.read)(settings, value)
}

/// The known key closest to a mistyped `name`, when one is within two
/// edits of it.
pub(crate) fn suggest(name: &str) -> Option<&'static str> {
    closest(name, KEYS.iter().map(|key| key.name))
}

/// The one of `known` closest to a mistyped `name`, when one is within two
/// edits of it.
pub(crate) fn closest(
    name: &str,
    known: impl IntoIterator<Item = &'static str>,
) -> Option<&'static str> {
    known
        .into_iter()
        .map(|known| (edit_distance(name, known), known))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance over bytes, enough for ASCII key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_listed_once() {
        let mut names: Vec<&str> = KEYS.iter().map(|key| key.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KEYS.len());
    }

    #[test]
    fn typos_get_a_suggestion_and_nonsense_does_not() {
        assert_eq!(suggest("heartbeat_intervall"), Some("heartbeat_interval"));
        assert_eq!(suggest("max_payloda"), Some("max_payload"));
        assert_eq!(suggest("colour"), None);
        assert_eq!(suggest("proxy.conect_url"), Some("proxy.connect_url"));
    }

    #[test]
    fn a_table_of_the_file_is_known_by_its_keys() {
        assert!(is_section("proxy"));
        assert!(!is_section("listen"));
        assert!(!is_section("namespaces"));
        assert_eq!(section_of("proxy.timeout"), Some("proxy"));
        assert_eq!(section_of("listen"), None);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
