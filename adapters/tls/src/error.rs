//! Why a certificate, a key or a CA file cannot be used.

use std::fmt;
use std::path::PathBuf;

/// Which file an error is about, so that a caller can name its own setting
/// (`tls_cert`, `tls_key`, `--ca`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFile {
    /// The node's certificate chain.
    Cert,
    /// The node's private key (also when it does not match the
    /// certificate).
    Key,
    /// The certificates a client trusts.
    Ca,
}

/// A file that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError {
    /// The file at fault.
    pub file: TlsFile,
    /// Its path.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

impl TlsError {
    pub(crate) fn new(file: TlsFile, path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TlsError {
            file,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for TlsError {}
