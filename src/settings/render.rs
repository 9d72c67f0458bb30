//! The effective settings as TOML text, for the start-up log.
//!
//! The output is itself a valid config file: every key with its value,
//! secrets only as a comment saying whether they are set, then the tables
//! (`[proxy]`) and the arrays of tables (`[[namespaces]]`) last, since a
//! plain key after a table header would belong to the table. Copying it into a file and adding the secrets
//! back reproduces the running configuration.

use std::fmt;

use super::Settings;
use super::keys::{KEYS, section_of};
use super::kinds::Shown;

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tables = Vec::new();
        let plain = KEYS.iter().filter(|key| section_of(key.name).is_none());
        for key in plain {
            match (key.show)(self) {
                Shown::Tables(shown) => tables.push((key.name, shown)),
                shown => show_line(f, key.name, shown)?,
            }
        }
        let mut section = None;
        for key in KEYS {
            let Some((name, entry)) = key.name.split_once('.') else {
                continue;
            };
            if section != Some(name) {
                writeln!(f, "\n[{name}]")?;
                section = Some(name);
            }
            show_line(f, entry, (key.show)(self))?;
        }
        for (name, shown) in tables {
            if shown.is_empty() {
                writeln!(f, "# no [[{name}]]")?;
            }
            for table in shown {
                writeln!(f, "\n[[{name}]]")?;
                for (field, value) in table {
                    writeln!(f, "{field} = {value}")?;
                }
            }
        }
        Ok(())
    }
}

/// One plain key's line: its value, or a comment for a secret or an unset
/// key.
fn show_line(f: &mut fmt::Formatter<'_>, name: &str, shown: Shown) -> fmt::Result {
    match shown {
        Shown::Value(value) => writeln!(f, "{name} = {value}"),
        Shown::Secret { set: true } => writeln!(f, "# {name} is set (not shown)"),
        Shown::Secret { set: false } | Shown::Unset => writeln!(f, "# {name} is not set"),
        Shown::Tables(_) => unreachable!("arrays of tables are shown after every plain key"),
    }
}
