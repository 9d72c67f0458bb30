//! The `[[namespaces]]` tables of the config file: who may do what on which
//! channels (PROTOCOL.md section 12), read into the core's [`Namespace`]s and
//! shown back as the same tables.
//!
//! Each table has a `pattern` and a rule per operation (`subscribe`,
//! `publish`, `presence`, `history`); an omitted rule is `"nobody"`. A
//! mistake names its place as `namespaces[<index>].<key>`, counting the
//! tables from 0 in the order of the file, as the core's own check of the
//! rules does (`entry <index>`). Whether a rule fits its operation is that
//! check's ([`tether_core::ServerConfig::validate`]), not the reader's.

use tether_core::{ChannelPattern, Namespace, Operation, Rule};
use toml::Value;

use super::SettingsError;
use super::keys::closest;
use super::kinds::Shown;

/// The config key of the tables.
pub(crate) const KEY: &str = "namespaces";

/// The keys of one table.
const FIELDS: [&str; 5] = ["pattern", "subscribe", "publish", "presence", "history"];

/// Reads the array of `[[namespaces]]` tables.
pub(crate) fn read(value: &Value) -> Result<Vec<Namespace>, SettingsError> {
    let Value::Array(tables) = value else {
        return Err(bad_value(
            KEY.to_owned(),
            format!(
                "expected [[namespaces]] tables with a pattern and rules, got a {}",
                value.type_str()
            ),
        ));
    };
    tables
        .iter()
        .enumerate()
        .map(|(index, table)| read_one(index, table))
        .collect()
}

/// The tables as the effective settings show them: every rule written out,
/// `"nobody"` included.
pub(crate) fn show(namespaces: &[Namespace]) -> Shown {
    let tables = namespaces
        .iter()
        .map(|namespace| {
            let pattern = ("pattern", Value::String(namespace.pattern.as_str().into()));
            let rules = Operation::ALL
                .into_iter()
                .map(|op| (op.name(), Value::String(namespace.rule(op).name().into())));
            std::iter::once(pattern).chain(rules).collect()
        })
        .collect();
    Shown::Tables(tables)
}

fn read_one(index: usize, value: &Value) -> Result<Namespace, SettingsError> {
    let place = format!("{KEY}[{index}]");
    let Value::Table(table) = value else {
        return Err(bad_value(
            place,
            format!("expected a table, got a {}", value.type_str()),
        ));
    };
    if let Some(unknown) = table.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(SettingsError::UnknownKey {
            key: format!("{place}.{unknown}"),
            suggestion: closest(unknown, FIELDS),
        });
    }
    let pattern = match table.get("pattern") {
        None => {
            return Err(bad_value(
                format!("{place}.pattern"),
                "is required: the channels the rules govern, like \"chat:*\"".into(),
            ));
        }
        Some(Value::String(text)) => ChannelPattern::new(text),
        Some(other) => Err(format!("expected a string, got {other}")),
    }
    .map_err(|message| bad_value(format!("{place}.pattern"), message))?;
    let rule = |op: Operation| -> Result<Rule, SettingsError> {
        match table.get(op.name()) {
            None => Ok(Rule::Nobody),
            Some(value) => value
                .as_str()
                .and_then(Rule::from_name)
                .ok_or_else(|| bad_value(format!("{place}.{}", op.name()), rules_of(op, value))),
        }
    };
    Ok(Namespace {
        pattern,
        subscribe: rule(Operation::Subscribe)?,
        publish: rule(Operation::Publish)?,
        presence: rule(Operation::Presence)?,
        history: rule(Operation::History)?,
    })
}

/// The message for a value that names no rule: the rules `op` takes.
fn rules_of(op: Operation, got: &Value) -> String {
    let names: Vec<String> = Rule::ALL
        .into_iter()
        .filter(|rule| op.takes(*rule))
        .map(|rule| format!("{:?}", rule.name()))
        .collect();
    let (last, rest) = names.split_last().expect("every operation takes a rule");
    format!("expected {} or {last}, got {got}", rest.join(", "))
}

fn bad_value(key: String, message: String) -> SettingsError {
    SettingsError::BadValue { key, message }
}

#[cfg(test)]
mod tests {
    use toml::Table;

    use super::*;

    fn error_of(text: &str) -> String {
        let table: Table = text.parse().expect("test TOML");
        read(&table[KEY]).unwrap_err().to_string()
    }

    #[test]
    fn an_omitted_rule_is_nobody() {
        let table: Table = "[[namespaces]]\npattern = \"chat:*\"\npublish = \"subscribers\"\n"
            .parse()
            .unwrap();
        let namespaces = read(&table[KEY]).unwrap();
        assert_eq!(
            namespaces,
            [Namespace {
                pattern: ChannelPattern::new("chat:*").unwrap(),
                subscribe: Rule::Nobody,
                publish: Rule::Subscribers,
                presence: Rule::Nobody,
                history: Rule::Nobody,
            }]
        );
    }

    #[test]
    fn an_unknown_key_names_its_table_and_gets_a_suggestion() {
        let text = "[[namespaces]]\npattern = \"a\"\n[[namespaces]]\npattern = \"b\"\npublsh = \"nobody\"\n";
        assert_eq!(
            error_of(text),
            "unknown config key \"namespaces[1].publsh\" (did you mean \"publish\"?)"
        );
        assert_eq!(
            error_of("[[namespaces]]\npattern = \"a\"\nwho = \"me\"\n"),
            "unknown config key \"namespaces[0].who\""
        );
    }

    #[test]
    fn a_rule_that_does_not_exist_lists_those_of_its_operation() {
        assert_eq!(
            error_of("[[namespaces]]\npattern = \"a\"\nsubscribe = \"everyone\"\n"),
            "config key \"namespaces[0].subscribe\": expected \"authenticated\", \"token\", \"backend\" or \"nobody\", got \"everyone\""
        );
        assert!(
            error_of("[[namespaces]]\npattern = \"a\"\nhistory = true\n")
                .starts_with("config key \"namespaces[0].history\": expected \"authenticated\", \"subscribers\", \"token\" or \"nobody\"")
        );
    }

    #[test]
    fn a_bad_or_missing_pattern_is_refused_naming_it() {
        for (text, problem) in [
            ("pattern = \"chat room\"", "no channel name has"),
            ("pattern = \"\"", "1 to 128 characters"),
            ("pattern = 7", "expected a string, got 7"),
            ("subscribe = \"authenticated\"", "is required"),
        ] {
            let error = error_of(&format!("[[namespaces]]\n{text}\n"));
            assert!(
                error.starts_with("config key \"namespaces[0].pattern\": "),
                "{error}"
            );
            assert!(error.contains(problem), "{error}");
        }
    }

    #[test]
    fn namespaces_must_be_tables() {
        assert_eq!(
            error_of("namespaces = \"chat:*\""),
            "config key \"namespaces\": expected [[namespaces]] tables with a pattern and rules, got a string"
        );
        assert_eq!(
            error_of("namespaces = [\"chat:*\"]"),
            "config key \"namespaces[0]\": expected a table, got a string"
        );
    }
}
