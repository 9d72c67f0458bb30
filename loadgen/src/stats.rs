//! Latency samples and their percentiles, and the run's clock.

use std::time::{Duration, Instant};

/// The run's clock: nanoseconds since the run started, comparable across
/// every thread of the load generator.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// Nanoseconds since the start.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Latency samples in nanoseconds.
#[derive(Debug, Default)]
pub struct Samples {
    values: Vec<u64>,
}

impl Samples {
    /// Room for `capacity` samples, reserved now rather than while measuring.
    pub fn with_capacity(capacity: usize) -> Samples {
        Samples {
            values: Vec::with_capacity(capacity),
        }
    }

    /// Records one sample.
    pub fn push(&mut self, nanos: u64) {
        self.values.push(nanos);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: Samples) {
        self.values.extend(other.values);
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The p50 and p99 (nearest rank), in microseconds; zeros without
    /// samples.
    pub fn percentiles_us(&mut self) -> Percentiles {
        self.values.sort_unstable();
        let at = |p: f64| {
            if self.values.is_empty() {
                return 0.0;
            }
            let rank = ((p * self.values.len() as f64).ceil() as usize).clamp(1, self.values.len());
            self.values[rank - 1] as f64 / 1_000.0
        };
        Percentiles {
            p50_us: at(0.50),
            p99_us: at(0.99),
            max_us: at(1.0),
        }
    }
}

/// Percentiles of a set of samples, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percentiles {
    /// The median.
    pub p50_us: f64,
    /// The 99th percentile.
    pub p99_us: f64,
    /// The largest sample.
    pub max_us: f64,
}

/// `count` per second over `elapsed`.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut samples = Samples::default();
        for us in 1..=100 {
            samples.push(us * 1_000);
        }
        let p = samples.percentiles_us();
        assert_eq!((p.p50_us, p.p99_us, p.max_us), (50.0, 99.0, 100.0));
        assert_eq!(Samples::default().percentiles_us().p99_us, 0.0);
    }
}
