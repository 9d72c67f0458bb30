//! Identifiers shared by the server-side machines.

use std::fmt;

/// One server-side connection, unique for the life of a node (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// A connection id with the number `n`, for benchmarks that play the
    /// server's part; a server numbers its own.
    #[cfg(feature = "internals")]
    pub fn new(n: u64) -> ConnId {
        ConnId(n)
    }

    /// The number [`ConnId::new`] was given.
    #[cfg(feature = "internals")]
    pub fn number(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}
