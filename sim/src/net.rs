//! The simulated network: the shape of one link, and one direction of a TCP
//! stream over it.
//!
//! A stream is modelled as a [`Pipe`]: bytes written are cut into chunks at
//! random points (so every parser sees arbitrary splits), serialised one
//! after the other at the link's bandwidth, and each chunk arrives one
//! latency (plus jitter) after it left, never before the chunk ahead of it,
//! since TCP delivers in order. The bytes still being serialised are the
//! sender's socket buffer: a writer that fills it must wait, which is what
//! pushes a slow consumer's backlog back into the server's queue.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use tether_core::Instant;

/// How one client's link to the servers behaves, both directions alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkProfile {
    /// One-way delay of every chunk.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `[0, jitter)` for each chunk.
    pub jitter: Duration,
    /// Bytes per second; `None` serialises instantly.
    pub bandwidth: Option<u64>,
    /// Writes are cut into chunks of 1 to `max_chunk` bytes.
    pub max_chunk: usize,
}

impl LinkProfile {
    /// A link with `latency` and `jitter`, no bandwidth limit, and chunks of
    /// up to one Ethernet segment.
    pub fn lan(latency: Duration, jitter: Duration) -> Self {
        LinkProfile {
            latency,
            jitter,
            bandwidth: None,
            max_chunk: 1_460,
        }
    }

    /// Time to serialise `len` bytes.
    fn transmission(&self, len: usize) -> Duration {
        match self.bandwidth {
            Some(rate) if rate > 0 => {
                let nanos = (len as u128 * 1_000_000_000).div_ceil(u128::from(rate));
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
            _ => Duration::ZERO,
        }
    }
}

/// One direction of one TCP stream.
#[derive(Clone, Debug, Default)]
pub struct Pipe {
    /// When the last byte written has left the sender.
    busy_until: Instant,
    /// When the last chunk arrives.
    last_arrival: Instant,
    /// Chunks that have not left the sender yet: when each leaves, and its
    /// length.
    unsent: VecDeque<(Instant, usize)>,
    /// The sum of the lengths in `unsent`.
    unsent_bytes: usize,
}

impl Pipe {
    /// Writes `bytes` at `start` (the instant they may begin to move: now,
    /// or the end of a partition); returns each chunk with its arrival
    /// instant, in order.
    pub fn send(
        &mut self,
        start: Instant,
        bytes: Bytes,
        link: &LinkProfile,
        rng: &mut fastrand::Rng,
    ) -> Vec<(Instant, Bytes)> {
        let mut chunks = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = rng.usize(1..=link.max_chunk.clamp(1, rest.len()));
            let chunk = rest.split_to(len);
            let arrival = self.carry(start, chunk.len(), link, rng);
            chunks.push((arrival, chunk));
        }
        chunks
    }

    /// The arrival instant of the end of the stream (a FIN) sent at `start`,
    /// behind every byte already written.
    pub fn send_end(
        &mut self,
        start: Instant,
        link: &LinkProfile,
        rng: &mut fastrand::Rng,
    ) -> Instant {
        self.carry(start, 0, link, rng)
    }

    /// Bytes written that have not left the sender at `now` (held by the
    /// bandwidth or a partition): the fill of the sender's socket buffer.
    pub fn backlog(&mut self, now: Instant) -> usize {
        while let Some(&(leaves, len)) = self.unsent.front() {
            if leaves > now {
                break;
            }
            self.unsent.pop_front();
            self.unsent_bytes -= len;
        }
        self.unsent_bytes
    }

    /// The instant from which at most `target` bytes are left unsent
    /// (`Instant::ZERO` if that is already so).
    pub fn drained_to(&self, target: usize) -> Instant {
        let mut behind = 0;
        for &(leaves, len) in self.unsent.iter().rev() {
            if behind + len > target {
                return leaves;
            }
            behind += len;
        }
        Instant::ZERO
    }

    fn carry(
        &mut self,
        start: Instant,
        len: usize,
        link: &LinkProfile,
        rng: &mut fastrand::Rng,
    ) -> Instant {
        let departs = start.max(self.busy_until);
        self.busy_until = departs + link.transmission(len);
        if len > 0 {
            self.unsent.push_back((self.busy_until, len));
            self.unsent_bytes += len;
        }
        let jitter = draw(link.jitter, rng);
        let arrival = (self.busy_until + link.latency + jitter).max(self.last_arrival);
        self.last_arrival = arrival;
        arrival
    }
}

/// A uniform draw from `[0, bound)`, zero for a zero bound.
pub fn draw(bound: Duration, rng: &mut fastrand::Rng) -> Duration {
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rng.u64(0..nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn chunks_arrive_in_order_one_latency_later_and_reassemble() {
        let link = LinkProfile {
            max_chunk: 3,
            ..LinkProfile::lan(10 * MS, 5 * MS)
        };
        let mut rng = fastrand::Rng::with_seed(7);
        let mut pipe = Pipe::default();
        let start = Instant::from_millis(100);
        let chunks = pipe.send(start, Bytes::from_static(b"hello, world"), &link, &mut rng);
        assert!(chunks.len() >= 4, "12 bytes in chunks of at most 3");
        let mut previous = start + 10 * MS;
        for (arrival, chunk) in &chunks {
            assert!(*arrival >= previous && *arrival < start + 15 * MS);
            assert!(chunk.len() <= 3);
            previous = *arrival;
        }
        let whole: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.to_vec()).collect();
        assert_eq!(whole, b"hello, world");
        assert!(pipe.send_end(start, &link, &mut rng) >= previous);
    }

    #[test]
    fn bytes_held_by_a_partition_fill_the_buffer_until_it_heals() {
        let link = LinkProfile {
            max_chunk: 10,
            ..LinkProfile::lan(10 * MS, Duration::ZERO)
        };
        let mut rng = fastrand::Rng::with_seed(3);
        let mut pipe = Pipe::default();
        let heal = Instant::from_millis(5_000);
        let chunks = pipe.send(heal, Bytes::from(vec![1; 30]), &link, &mut rng);
        assert!(chunks.iter().all(|(at, _)| *at == heal + 10 * MS));
        assert_eq!(pipe.backlog(Instant::from_millis(4_999)), 30);
        assert_eq!(pipe.drained_to(0), heal);
        assert_eq!(pipe.backlog(heal), 0);
    }

    #[test]
    fn bandwidth_serialises_writes_and_fills_the_socket_buffer() {
        let link = LinkProfile {
            bandwidth: Some(1_000),
            max_chunk: 1_000,
            ..LinkProfile::lan(10 * MS, Duration::ZERO)
        };
        let mut rng = fastrand::Rng::with_seed(1);
        let mut pipe = Pipe::default();
        let t0 = Instant::ZERO;
        let chunks = pipe.send(t0, Bytes::from(vec![0; 500]), &link, &mut rng);
        let last = chunks.last().unwrap().0;
        assert_eq!(last, t0 + 510 * MS, "500 bytes at 1,000 B/s, then 10 ms");
        assert_eq!(pipe.backlog(t0), 500);
        let drained = pipe.drained_to(100);
        assert!(pipe.clone().backlog(drained - Duration::from_nanos(1)) > 100);
        assert!(pipe.clone().backlog(drained) <= 100);
        assert_eq!(pipe.backlog(t0 + 600 * MS), 0);
        assert_eq!(pipe.drained_to(0), Instant::ZERO);
    }
}
