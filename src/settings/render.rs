//! The effective settings as TOML text, for the start-up log.
//!
//! The output is itself a valid config file: every key with its value,
//! secrets only as a comment saying whether they are set, and the arrays of
//! tables (`[[namespaces]]`) last, since a plain key after a table header
//! would belong to the table. Copying it into a file and adding the secrets
//! back reproduces the running configuration.

use std::fmt;

use super::Settings;
use super::keys::KEYS;
use super::kinds::Shown;

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tables = Vec::new();
        for key in KEYS {
            match (key.show)(self) {
                Shown::Value(value) => writeln!(f, "{} = {value}", key.name)?,
                Shown::Secret { set: true } => writeln!(f, "# {} is set (not shown)", key.name)?,
                Shown::Secret { set: false } | Shown::Unset => {
                    writeln!(f, "# {} is not set", key.name)?
                }
                Shown::Tables(shown) => tables.push((key.name, shown)),
            }
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
