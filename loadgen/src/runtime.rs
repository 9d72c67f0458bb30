//! The executor the simulated clients run on: one smol executor shared by
//! a fixed number of threads, the calling thread included.
//!
//! Each thread runs it under `smol::block_on`, which waits in async-io's
//! reactor itself. `futures_lite`'s `block_on` would only park the thread
//! and leave every wait to async-io's own thread, which then wakes the
//! clients' thread with a futex per batch of events: with `--threads 1` the
//! clients would run on two threads, taking CPU from the server measured.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use smol::{Executor, Timer};

/// The executor handed to a scenario, to spawn its clients on.
pub type Spawner = Arc<Executor<'static>>;

/// Runs `make(executor)` to completion on `threads` threads.
pub fn block_on<T, F>(threads: usize, make: impl FnOnce(Spawner) -> F) -> T
where
    F: Future<Output = T>,
{
    let executor: Spawner = Arc::new(Executor::new());
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    std::thread::scope(|scope| {
        for _ in 1..threads {
            let executor = executor.clone();
            let stopped = stopped.clone();
            scope.spawn(move || smol::block_on(executor.run(stopped.recv())));
        }
        let output = smol::block_on(executor.run(make(executor.clone())));
        drop(stop);
        output
    })
}

/// Waits `duration`.
pub async fn sleep(duration: Duration) {
    Timer::after(duration).await;
}
