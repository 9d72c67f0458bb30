//! Why a configuration was refused, always naming the key at fault.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A configuration that the server refuses to start with.
#[derive(Debug)]
pub enum SettingsError {
    /// The config file could not be read.
    Read {
        /// The file named by `--config`.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The config file is not valid TOML.
    Syntax {
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A key in the config file is not a setting (a typo would otherwise be
    /// silently ignored and its default used).
    UnknownKey {
        /// The key as written; inside a table, its place, like
        /// `namespaces[1].publsh`.
        key: String,
        /// A known key within a few typos of it.
        suggestion: Option<&'static str>,
    },
    /// A value in the config file has the wrong type or form.
    BadValue {
        /// The key whose value is wrong; inside a table, its place, like
        /// `namespaces[1].publish`.
        key: String,
        /// What was expected and what was found.
        message: String,
    },
    /// A setting, from whichever source, breaks a rule on its own or
    /// together with another setting.
    Invalid {
        /// The key of the setting at fault.
        key: &'static str,
        /// The rule it breaks.
        message: String,
    },
    /// An error found in the config file, with the file's name.
    InFile {
        /// The file named by `--config`.
        path: PathBuf,
        /// The error inside it.
        source: Box<SettingsError>,
    },
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::Read { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            SettingsError::Syntax { message } => write!(f, "invalid TOML: {message}"),
            SettingsError::UnknownKey { key, suggestion } => {
                write!(f, "unknown config key {key:?}")?;
                match suggestion {
                    Some(known) => write!(f, " (did you mean {known:?}?)"),
                    None => Ok(()),
                }
            }
            SettingsError::BadValue { key, message } => write!(f, "config key {key:?}: {message}"),
            SettingsError::Invalid { key, message } => write!(f, "setting {key:?}: {message}"),
            SettingsError::InFile { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for SettingsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SettingsError::Read { source, .. } => Some(source),
            SettingsError::InFile { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}
