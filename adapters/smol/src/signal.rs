//! A wake-up for one task on the node's thread.
//!
//! Each connection task waits for the core's "frames queued / close now"
//! signal. A channel would do, at about a kilobyte per connection; this is
//! a flag and a waker, which is all a single-threaded node needs.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

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

    /// Resolves once the flag is raised, and lowers it. A wait given up
    /// (another event won the race) takes its waker back, so that a later
    /// raise by the waiting task itself does not schedule it once more.
    pub(crate) fn wait(&self) -> Wait<'_> {
        Wait { signal: self }
    }
}

/// The future of [`Signal::wait`].
pub(crate) struct Wait<'a> {
    signal: &'a Signal,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let signal = self.signal;
        if signal.raised.replace(false) {
            return Poll::Ready(());
        }
        let waker = match signal.waiter.take() {
            Some(waker) if waker.will_wake(cx.waker()) => waker,
            _ => cx.waker().clone(),
        };
        signal.waiter.set(Some(waker));
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        self.signal.waiter.take();
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

    #[test]
    fn a_wait_given_up_takes_its_waker_back() {
        let signal = Signal::default();
        let mut wait = Box::pin(signal.wait());
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        let held = signal.waiter.take();
        assert!(held.is_some(), "a pending wait leaves its waker");
        signal.waiter.set(held);
        drop(wait);
        assert!(
            signal.waiter.take().is_none(),
            "the dropped wait took it back"
        );
    }
}
