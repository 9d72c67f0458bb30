//! The node thread's own epoll instance and the loop that drives it.
//!
//! async-io registers a socket in one-shot mode: every wait for readiness
//! re-arms it with an `epoll_ctl`, and every wait of its reactor costs a
//! `timerfd_settime`, two more `epoll_ctl`s and a `read` around the
//! `epoll_wait`; when a node's thread and async-io's own thread take turns
//! at that reactor, they hand it over with futex wake-ups. Here a socket is
//! registered once, edge-triggered, for reading and writing, and its
//! readiness is remembered until an operation finds it gone: a round trip
//! costs its `read`, its `writev` and a share of one `epoll_wait`, whose
//! timeout is the core's next deadline (no timer fd).
//!
//! [`block_on`] runs a future (the node) on the calling thread and waits in
//! this epoll instance whenever the future has nothing to do. Wake-ups from
//! other threads (commands, the backplane, async-io timers) write an
//! eventfd, and only while the loop is asleep.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{EventfdFlags, Timespec, eventfd};

/// Events taken from the kernel per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;
/// The epoll key of the eventfd that wakes the loop from other threads.
const NOTIFY_KEY: u64 = u64::MAX;
/// The longest single wait: a later deadline is waited for in steps, so
/// that the timeout always fits `epoll_wait`'s milliseconds in an `int`
/// (longer ones need `epoll_pwait2`, which older kernels lack).
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

thread_local! {
    static CURRENT: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
}

/// Runs `future` to completion on the calling thread, waiting for the
/// sockets of the nodes it runs when it has nothing else to do.
///
/// A [`crate::Server`]'s `run` must be driven by this function: its sockets
/// are registered with the epoll instance this thread waits in.
pub fn block_on<T>(future: impl Future<Output = T>) -> T {
    let reactor = Rc::new(Reactor::new().expect("cannot create the node's epoll instance"));
    let previous = CURRENT.with(|current| current.replace(Some(reactor.clone())));
    let restore = Restore(previous);
    let waker = Waker::from(reactor.notifier.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let output = loop {
        reactor.notifier.woken.store(false, Ordering::SeqCst);
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            break output;
        }
        reactor.turn().expect("the node's epoll wait failed");
    };
    drop(restore);
    output
}

/// Puts back the reactor of an enclosing [`block_on`].
struct Restore(Option<Rc<Reactor>>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

/// Readiness a task can wait for.
#[derive(Clone, Copy)]
pub(crate) enum Interest {
    Read,
    Write,
}

/// One epoll instance, the readiness of every socket registered in it, and
/// one deadline.
pub(crate) struct Reactor {
    epoll: OwnedFd,
    slots: RefCell<Slots>,
    events: RefCell<Vec<epoll::Event>>,
    /// Wakers collected during a turn, woken once the slots are released.
    ready: RefCell<Vec<Waker>>,
    deadline: Cell<Option<Instant>>,
    deadline_passed: Cell<bool>,
    deadline_waiter: Cell<Option<Waker>>,
    notifier: Arc<Notifier>,
}

/// The registered sockets, by key.
#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

/// What the reactor knows of one socket: the readiness the kernel last
/// reported and not yet found gone, and the task waiting for each.
#[derive(Default)]
struct Slot {
    readable: bool,
    writable: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Reactor {
    fn new() -> io::Result<Reactor> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let notifier = Arc::new(Notifier {
            woken: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            eventfd: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
        });
        epoll::add(
            &epoll,
            &notifier.eventfd,
            EventData::new_u64(NOTIFY_KEY),
            EventFlags::IN,
        )?;
        Ok(Reactor {
            epoll,
            slots: RefCell::default(),
            events: RefCell::new(Vec::with_capacity(EVENTS_PER_WAIT)),
            ready: RefCell::default(),
            deadline: Cell::new(None),
            deadline_passed: Cell::new(false),
            deadline_waiter: Cell::new(None),
            notifier,
        })
    }

    /// The reactor of the [`block_on`] running on this thread.
    pub(crate) fn current() -> io::Result<Rc<Reactor>> {
        CURRENT
            .with(|current| current.borrow().clone())
            .ok_or_else(|| {
                io::Error::other("a tether-smol server must run under tether_smol::block_on")
            })
    }

    /// Registers `fd` for both directions, edge-triggered; returns its key.
    pub(crate) fn register(&self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let mut slots = self.slots.borrow_mut();
        let key = match slots.free.pop() {
            Some(key) => key,
            None => {
                slots.slots.push(Slot::default());
                slots.slots.len() - 1
            }
        };
        let flags = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
        if let Err(error) = epoll::add(&self.epoll, fd, EventData::new_u64(key as u64), flags) {
            slots.free.push(key);
            return Err(error.into());
        }
        Ok(key)
    }

    /// Removes `fd`, registered under `key`, and frees the key.
    pub(crate) fn deregister(&self, key: usize, fd: BorrowedFd<'_>) {
        let _ = epoll::delete(&self.epoll, fd);
        let mut slots = self.slots.borrow_mut();
        // The wakers are dropped after the slots are released: dropping
        // one can schedule its task, which is code this module does not own.
        let slot = std::mem::take(&mut slots.slots[key]);
        slots.free.push(key);
        drop(slots);
        drop(slot);
    }

    /// Ready once the socket of `key` was reported ready for `interest` and
    /// has not been found blocked since; otherwise the task waits for the
    /// next report.
    pub(crate) fn poll_ready(&self, key: usize, interest: Interest, cx: &Context<'_>) -> Poll<()> {
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots.slots[key];
        let (ready, waiter) = match interest {
            Interest::Read => (slot.readable, &mut slot.reader),
            Interest::Write => (slot.writable, &mut slot.writer),
        };
        if ready {
            return Poll::Ready(());
        }
        if waiter
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let replaced = waiter.replace(cx.waker().clone());
        drop(slots);
        drop(replaced);
        Poll::Pending
    }

    /// An operation found the socket of `key` blocked for `interest`: wait
    /// for the kernel's next report.
    pub(crate) fn clear_ready(&self, key: usize, interest: Interest) {
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots.slots[key];
        match interest {
            Interest::Read => slot.readable = false,
            Interest::Write => slot.writable = false,
        }
    }

    /// Makes `at` the deadline the loop wakes up for (`None`: no deadline).
    pub(crate) fn set_deadline(&self, at: Option<Instant>) {
        self.deadline.set(at);
    }

    /// Resolves once the deadline has passed.
    pub(crate) async fn deadline_passed(&self) {
        poll_fn(|cx| {
            if self.deadline_passed.replace(false) {
                return Poll::Ready(());
            }
            let waker = match self.deadline_waiter.take() {
                Some(waker) if waker.will_wake(cx.waker()) => waker,
                _ => cx.waker().clone(),
            };
            self.deadline_waiter.set(Some(waker));
            Poll::Pending
        })
        .await;
    }

    /// Waits for readiness, the deadline or a wake-up (not at all if a
    /// wake-up came already), and wakes the tasks they concern.
    fn turn(&self) -> io::Result<()> {
        let notifier = &self.notifier;
        notifier.sleeping.store(true, Ordering::SeqCst);
        let timeout = if notifier.woken.load(Ordering::SeqCst) {
            Some(Timespec::default())
        } else {
            self.deadline.get().map(|at| {
                let left = at
                    .saturating_duration_since(Instant::now())
                    .min(LONGEST_WAIT);
                Timespec {
                    tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
                    tv_nsec: left.subsec_nanos().into(),
                }
            })
        };
        let mut events = self.events.borrow_mut();
        events.clear();
        let waited = epoll::wait(&self.epoll, spare_capacity(&mut *events), timeout.as_ref());
        notifier.sleeping.store(false, Ordering::SeqCst);
        match waited {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(error) => return Err(error.into()),
        }
        let mut ready = self.ready.take();
        {
            let mut slots = self.slots.borrow_mut();
            for event in events.iter() {
                let key = event.data.u64();
                if key == NOTIFY_KEY {
                    let mut count = [0; 8];
                    let _ = rustix::io::read(&notifier.eventfd, &mut count);
                    continue;
                }
                let flags = event.flags;
                let Some(slot) = usize::try_from(key)
                    .ok()
                    .and_then(|key| slots.slots.get_mut(key))
                else {
                    continue;
                };
                let failed = flags.intersects(EventFlags::HUP | EventFlags::ERR);
                if failed || flags.intersects(EventFlags::IN | EventFlags::RDHUP) {
                    slot.readable = true;
                    ready.extend(slot.reader.take());
                }
                if failed || flags.contains(EventFlags::OUT) {
                    slot.writable = true;
                    ready.extend(slot.writer.take());
                }
            }
        }
        drop(events);
        if self.deadline.get().is_some_and(|at| at <= Instant::now()) {
            self.deadline.set(None);
            self.deadline_passed.set(true);
            ready.extend(self.deadline_waiter.take());
        }
        for waker in ready.drain(..) {
            waker.wake();
        }
        self.ready.replace(ready);
        Ok(())
    }
}

/// Wakes the loop: a flag while it runs, the eventfd while it sleeps.
struct Notifier {
    woken: AtomicBool,
    sleeping: AtomicBool,
    eventfd: OwnedFd,
}

impl Wake for Notifier {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::SeqCst) && self.sleeping.load(Ordering::SeqCst) {
            let _ = rustix::io::write(&self.eventfd, &1u64.to_ne_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_from_another_thread_ends_the_wait() {
        let (sender, receiver) = async_channel::bounded(1);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            sender.send_blocking(7).unwrap();
        });
        assert_eq!(block_on(receiver.recv()), Ok(7));
        thread.join().unwrap();
    }

    #[test]
    fn the_deadline_ends_the_wait_once_it_has_passed() {
        block_on(async {
            let reactor = Reactor::current().unwrap();
            let start = Instant::now();
            reactor.set_deadline(Some(start + Duration::from_millis(15)));
            reactor.deadline_passed().await;
            assert!(start.elapsed() >= Duration::from_millis(15));
        });
    }

    #[test]
    fn a_server_needs_the_reactor_of_its_thread() {
        assert!(Reactor::current().is_err());
        block_on(async { assert!(Reactor::current().is_ok()) });
        assert!(
            Reactor::current().is_err(),
            "the reactor ends with block_on"
        );
    }
}
