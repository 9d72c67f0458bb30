//! How many connections a process can serve on threads.
//!
//! Each connection takes two threads, and each thread takes memory maps:
//! its stack with a guard page, and the alternate signal stack the standard
//! library installs, with its own guard page. On Linux a process may hold
//! at most `vm.max_map_count` maps (65,530 by default). When a thread's
//! stack cannot be mapped the spawn fails and the connection is refused
//! cleanly; but when its signal stack cannot be mapped the new thread
//! aborts the whole process. So the node admits no more connections than
//! the maps allow, with room left for everything else in the process.
//!
//! Each connection also takes a file descriptor; the process's limit on
//! them bounds the connections too
//! ([`tether_core::connections_within_open_files`]).

use std::fs;

/// Memory maps one connection's reader and writer threads take.
const MAPS_PER_CONNECTION: usize = 8;

/// Maps kept for the rest of the process: the binary and its libraries,
/// heap arenas, the accept, timer and backplane threads.
const MAPS_RESERVED: usize = 4096;

/// The connections that fit a process allowed `max_map_count` maps.
pub fn connection_limit(max_map_count: usize) -> usize {
    max_map_count.saturating_sub(MAPS_RESERVED) / MAPS_PER_CONNECTION
}

/// The system's limit on memory maps per process, where it is known.
pub fn max_map_count() -> Option<usize> {
    fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The process's limit on open file descriptors, where it has one.
pub fn open_files() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_linux_limit_leaves_room_below_where_threads_abort() {
        // The process aborted near 8,182 connections with 65,530 maps.
        assert_eq!(connection_limit(65_530), 7_679);
        assert_eq!(connection_limit(1_000), 0);
    }
}
