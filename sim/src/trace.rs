//! The event log of a run: one line per thing that happened, folded into a
//! hash as it is written, with the last lines kept for a failure report.
//!
//! The hash is FNV-1a (64 bits), written out here rather than taken from
//! `std::hash`, whose algorithms may change between Rust releases: a golden
//! hash must mean the same trace for as long as the code is the same.

use std::collections::VecDeque;
use std::fmt;

use tether_core::Instant;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The log of one run.
#[derive(Debug)]
pub struct Trace {
    hash: u64,
    lines: u64,
    tail: VecDeque<String>,
    keep: usize,
}

impl Trace {
    /// An empty log that keeps its last `keep` lines in full.
    pub fn new(keep: usize) -> Self {
        Trace {
            hash: FNV_OFFSET,
            lines: 0,
            tail: VecDeque::new(),
            keep,
        }
    }

    /// Appends one line, stamped with `at`.
    pub fn record(&mut self, at: Instant, line: fmt::Arguments<'_>) {
        let line = format!("{:>12} {line}", at.since_origin().as_micros());
        for byte in line.bytes().chain([b'\n']) {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
        self.lines += 1;
        if self.keep > 0 {
            if self.tail.len() == self.keep {
                self.tail.pop_front();
            }
            self.tail.push_back(line);
        }
    }

    /// The hash of every line so far, in order.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Lines recorded.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The last lines, oldest first (timestamps in microseconds).
    pub fn tail(&self) -> impl Iterator<Item = &str> {
        self.tail.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_depends_on_content_and_order() {
        let at = Instant::from_millis(1);
        let mut ab = Trace::new(1);
        ab.record(at, format_args!("a"));
        ab.record(at, format_args!("b"));
        let mut ba = Trace::new(0);
        ba.record(at, format_args!("b"));
        ba.record(at, format_args!("a"));
        assert_ne!(ab.hash(), ba.hash());
        assert_eq!(ab.lines(), 2);
        assert_eq!(ab.tail().collect::<Vec<_>>(), ["        1000 b"]);
        assert_eq!(ba.tail().count(), 0);
    }

    #[test]
    fn the_hash_of_a_known_line_is_fixed() {
        assert_eq!(Trace::new(0).hash(), 0xcbf2_9ce4_8422_2325);
        let mut trace = Trace::new(0);
        trace.record(Instant::ZERO, format_args!("x"));
        assert_eq!(trace.hash(), 0x718d_2d66_998e_dc1d, "FNV-1a of the line");
    }
}
