//! What the tokio adapter's test files share.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::thread;

use tether_tokio::Handle;
use tokio::runtime::Runtime;

/// A node serving on a runtime of its own thread, shut down and joined
/// when dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: Handle,
    thread: Option<thread::JoinHandle<()>>,
}

impl Running {
    /// Runs `serve` (the node at `addr`, controlled by `handle`) on the
    /// runtime `runtime` builds, on a thread of its own, until it returns.
    pub fn spawn(
        addr: SocketAddr,
        handle: Handle,
        runtime: fn() -> io::Result<Runtime>,
        serve: impl Future<Output = ()> + Send + 'static,
    ) -> Running {
        let thread = thread::spawn(move || runtime().expect("a runtime").block_on(serve));
        Running {
            addr,
            handle,
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
