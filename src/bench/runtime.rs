//! The executor the simulated clients run on: one smol executor shared by
//! a fixed number of threads, the calling thread included.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use smol::{Executor, Timer, future};

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
            scope.spawn(move || future::block_on(executor.run(stopped.recv())));
        }
        let output = future::block_on(executor.run(make(executor.clone())));
        drop(stop);
        output
    })
}

/// Waits `duration`.
pub async fn sleep(duration: Duration) {
    Timer::after(duration).await;
}
