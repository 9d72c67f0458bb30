//! The machinery behind [`Server`](crate::Server), for the core's own
//! benchmarks and the simulator's tests only (feature `internals`): no
//! stability promise, and nothing an adapter needs.

pub use crate::connection::{AuthVerdict, Connection, Event as ConnectionEvent};
pub use crate::hub::{Hub, MemoryStore, Outbox};
pub use crate::queue::{CoalesceKey, FrameAdmission, OutboundQueue};
