//! A wake-up for one task on the node's thread.
//!
//! Each connection task waits for the core's "frames queued / close now"
//! signal. A channel would do, at about a kilobyte per connection; this is
//! a flag and a waker, which is all a single-threaded node needs.

use std::cell::Cell;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// A flag one side raises and one task waits for.
#[derive(Default)]
pub(crate) struct Signal {
    raised: Cell<bool>,
    waiter: Cell<Option<Waker>>,
}

impl Signal {
    /// Raises the flag and wakes the waiting task, if any.
    pub(crate) fn raise(&self) {
        self.raised.set(true);
        if let Some(waker) = self.waiter.take() {
            waker.wake();
        }
    }

    /// Lowers the flag without waking anyone: what it announced is done.
    pub(crate) fn clear(&self) {
        self.raised.set(false);
    }

    /// Resolves once the flag is raised, and lowers it.
    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.raised.replace(false) {
                return Poll::Ready(());
            }
            let waker = match self.waiter.take() {
                Some(waker) if waker.will_wake(cx.waker()) => waker,
                _ => cx.waker().clone(),
            };
            self.waiter.set(Some(waker));
            Poll::Pending
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn a_raise_before_the_wait_is_kept_and_a_clear_is_honoured() {
        let signal = Rc::new(Signal::default());
        signal.raise();
        smol::block_on(signal.wait());

        signal.raise();
        signal.clear();
        let executor = smol::LocalExecutor::new();
        let waiting = executor.spawn({
            let signal = signal.clone();
            async move { signal.wait().await }
        });
        while executor.try_tick() {}
        assert!(!waiting.is_finished(), "a cleared flag does not wake");
        signal.raise();
        while executor.try_tick() {}
        assert!(waiting.is_finished(), "a raise wakes the waiting task");
    }
}
