//! The node thread's own poller and the loop that drives it.
//!
//! async-io registers a socket in one-shot mode: every wait for readiness
//! re-arms it, and when a node's thread and async-io's own thread take
//! turns at that reactor, they hand it over with futex wake-ups. Here a
//! socket is registered once, edge-triggered, for reading and writing, and
//! its readiness is remembered until an operation finds it gone: a round
//! trip costs its `read`, its `writev` and a share of one wait, whose
//! timeout is the core's next deadline. The loop waits only when no task
//! can run.
//!
//! The poller is the `polling` crate's: epoll on Linux and Android, kqueue
//! on macOS, iOS and the BSDs, both with edge-triggered registrations. On
//! epoll a wait costs four system calls besides `epoll_wait` (`polling`
//! arms a timer fd for the timeout and re-arms its notifier). Where the
//! poller has no edge mode (the `poll` fallback of other Unixes, event
//! ports on illumos and Solaris) sockets are registered one-shot instead:
//! the bookkeeping is the same, and a socket is re-armed, for the
//! directions a task waits for, only when that task starts waiting and no
//! registration for them is outstanding. Level mode would not do there: it
//! would report every idle socket writable on every wait, and event ports
//! lack it.
//!
//! [`block_on`] runs a future (the node) on the calling thread and waits in
//! this poller whenever the future has nothing to do. Wake-ups from other
//! threads (commands, the backplane, async-io timers) notify the poller,
//! and only while the loop is asleep.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::{Future, poll_fn};
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::BorrowedFd;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use polling::{Event, Events, PollMode, Poller};

/// Events taken from the kernel per wait.
const EVENTS_PER_WAIT: NonZeroUsize = NonZeroUsize::new(256).unwrap();
/// The longest single wait: a later deadline is waited for in steps, so
/// that the timeout fits every backend's (`poll`'s milliseconds in an
/// `int`, `epoll_wait`'s where no timer fd could be created).
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

thread_local! {
    static CURRENT: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
}

/// Runs `future` to completion on the calling thread, waiting for the
/// sockets of the nodes it runs when it has nothing else to do.
///
/// A [`crate::Server`]'s `run` must be driven by this function: its sockets
/// are registered with the poller this thread waits in.
pub fn block_on<T>(future: impl Future<Output = T>) -> T {
    let reactor = Reactor::new().expect("cannot create the node's poller");
    run(Rc::new(reactor), future)
}

/// Runs `future` to completion with `reactor` as this thread's reactor.
fn run<T>(reactor: Rc<Reactor>, future: impl Future<Output = T>) -> T {
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
        reactor.turn().expect("the node's poller failed to wait");
    };
    drop(restore);
    output
}

/// Runs `future` like [`block_on`] but with sockets registered one-shot,
/// the mode of pollers without edge mode, so that it is tested on every
/// platform.
#[cfg(test)]
pub(crate) fn block_on_oneshot<T>(future: impl Future<Output = T>) -> T {
    let poller = Poller::new().expect("cannot create a poller");
    run(
        Rc::new(Reactor::with_poller(poller, PollMode::Oneshot)),
        future,
    )
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

/// One poller, the readiness of every socket registered in it, and one
/// deadline.
pub(crate) struct Reactor {
    /// `Edge` where the poller has it, else `Oneshot` (see the module docs).
    mode: PollMode,
    slots: RefCell<Slots>,
    events: RefCell<Events>,
    /// Wakers collected during a turn, woken once the slots are released.
    ready: RefCell<Vec<Waker>>,
    deadline: Cell<Option<Instant>>,
    deadline_passed: Cell<bool>,
    deadline_waiter: Cell<Option<Waker>>,
    /// Tasks in [`Reactor::sleep_until`], by instant and a number that
    /// tells two sleeps until the same instant apart.
    sleepers: RefCell<BTreeMap<(Instant, u64), Waker>>,
    next_sleeper: Cell<u64>,
    notifier: Arc<Notifier>,
}

/// The registered sockets, by key.
#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

/// What the reactor knows of one socket: the readiness the kernel last
/// reported and not yet found gone, the task waiting for each direction,
/// and, in one-shot mode, the directions the registration is armed for.
#[derive(Default)]
struct Slot {
    readable: bool,
    writable: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
    read_armed: bool,
    write_armed: bool,
}

impl Reactor {
    fn new() -> io::Result<Reactor> {
        let poller = Poller::new()?;
        let mode = if poller.supports_edge() {
            PollMode::Edge
        } else {
            PollMode::Oneshot
        };
        Ok(Reactor::with_poller(poller, mode))
    }

    fn with_poller(poller: Poller, mode: PollMode) -> Reactor {
        Reactor {
            mode,
            slots: RefCell::default(),
            events: RefCell::new(Events::with_capacity(EVENTS_PER_WAIT)),
            ready: RefCell::default(),
            deadline: Cell::new(None),
            deadline_passed: Cell::new(false),
            deadline_waiter: Cell::new(None),
            sleepers: RefCell::default(),
            next_sleeper: Cell::new(0),
            notifier: Arc::new(Notifier {
                woken: AtomicBool::new(false),
                sleeping: AtomicBool::new(false),
                poller,
            }),
        }
    }

    /// The reactor of the [`block_on`] running on this thread.
    pub(crate) fn current() -> io::Result<Rc<Reactor>> {
        CURRENT
            .with(|current| current.borrow().clone())
            .ok_or_else(|| {
                io::Error::other("a tether-smol server must run under tether_smol::block_on")
            })
    }

    /// Registers `fd` and returns its key: for both directions in edge
    /// mode, for none yet in one-shot mode. The caller must call
    /// [`Reactor::deregister`] before it closes `fd`.
    pub(crate) fn register(&self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let mut slots = self.slots.borrow_mut();
        let key = match slots.free.pop() {
            Some(key) => key,
            None => {
                slots.slots.push(Slot::default());
                slots.slots.len() - 1
            }
        };
        let interest = match self.mode {
            PollMode::Edge => Event::all(key),
            _ => Event::none(key),
        };
        // SAFETY: `polling` requires the source to be deleted from the
        // poller before it is closed. The only caller, `Registered`, owns
        // the socket and deletes it in its `Drop`, which runs before the
        // socket (a field of it) is dropped and closed; the poller lives as
        // long as any `Registered` holds the reactor.
        #[allow(unsafe_code)]
        let added = unsafe { self.notifier.poller.add_with_mode(&fd, interest, self.mode) };
        if let Err(error) = added {
            slots.free.push(key);
            return Err(error);
        }
        Ok(key)
    }

    /// Removes `fd`, registered under `key`, and frees the key.
    pub(crate) fn deregister(&self, key: usize, fd: BorrowedFd<'_>) {
        let _ = self.notifier.poller.delete(fd);
        let mut slots = self.slots.borrow_mut();
        // The wakers are dropped after the slots are released: dropping
        // one can schedule its task, which is code this module does not own.
        let slot = std::mem::take(&mut slots.slots[key]);
        slots.free.push(key);
        drop(slots);
        drop(slot);
    }

    /// Ready once the socket `fd` of `key` was reported ready for
    /// `interest` and has not been found blocked since; otherwise the task
    /// waits for the next report. In one-shot mode the registration is
    /// armed for `interest` here if it is not already; an error is that
    /// re-arming's.
    pub(crate) fn poll_ready(
        &self,
        key: usize,
        fd: BorrowedFd<'_>,
        interest: Interest,
        cx: &Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots.slots[key];
        let ready = match interest {
            Interest::Read => slot.readable,
            Interest::Write => slot.writable,
        };
        if ready {
            return Poll::Ready(Ok(()));
        }
        if self.mode != PollMode::Edge
            && let Err(error) = self.arm(key, fd, slot, interest)
        {
            return Poll::Ready(Err(error));
        }
        let waiter = match interest {
            Interest::Read => &mut slot.reader,
            Interest::Write => &mut slot.writer,
        };
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

    /// One-shot mode: arms the registration of `fd` for `interest` as well
    /// as for what it is armed for already, unless it is armed for it.
    fn arm(
        &self,
        key: usize,
        fd: BorrowedFd<'_>,
        slot: &mut Slot,
        interest: Interest,
    ) -> io::Result<()> {
        let armed = match interest {
            Interest::Read => &mut slot.read_armed,
            Interest::Write => &mut slot.write_armed,
        };
        if *armed {
            return Ok(());
        }
        *armed = true;
        let event = Event::new(key, slot.read_armed, slot.write_armed);
        self.notifier.poller.modify_with_mode(fd, event, self.mode)
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

    /// Resolves at `at`. The wait is this poller's, so a sleep needs no
    /// file descriptor: async-io's timers would start async-io's reactor on
    /// first use, which fails when the process has no descriptor left.
    pub(crate) fn sleep_until(&self, at: Instant) -> Sleep<'_> {
        Sleep {
            reactor: self,
            at,
            key: None,
        }
    }

    /// Waits for readiness, the deadline, a sleep's end or a wake-up (not
    /// at all if a wake-up came already), and wakes the tasks they concern.
    fn turn(&self) -> io::Result<()> {
        let notifier = &self.notifier;
        notifier.sleeping.store(true, Ordering::SeqCst);
        let timeout = if notifier.woken.load(Ordering::SeqCst) {
            Some(Duration::ZERO)
        } else {
            let first_sleep = self.sleepers.borrow().keys().next().map(|&(at, _)| at);
            [self.deadline.get(), first_sleep]
                .into_iter()
                .flatten()
                .min()
                .map(|at| {
                    at.saturating_duration_since(Instant::now())
                        .min(LONGEST_WAIT)
                })
        };
        let mut events = self.events.borrow_mut();
        events.clear();
        let waited = notifier.poller.wait(&mut events, timeout);
        notifier.sleeping.store(false, Ordering::SeqCst);
        match waited {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
        let oneshot = self.mode != PollMode::Edge;
        let mut ready = self.ready.take();
        {
            let mut slots = self.slots.borrow_mut();
            for event in events.iter() {
                let Some(slot) = slots.slots.get_mut(event.key) else {
                    continue;
                };
                slot.readable |= event.readable;
                slot.writable |= event.writable;
                if oneshot {
                    // The report disarmed the registration: a task still
                    // waiting re-arms it when it polls again.
                    slot.read_armed = false;
                    slot.write_armed = false;
                }
                if event.readable || oneshot {
                    ready.extend(slot.reader.take());
                }
                if event.writable || oneshot {
                    ready.extend(slot.writer.take());
                }
            }
        }
        drop(events);
        let now = Instant::now();
        if self.deadline.get().is_some_and(|at| at <= now) {
            self.deadline.set(None);
            self.deadline_passed.set(true);
            ready.extend(self.deadline_waiter.take());
        }
        {
            let mut sleepers = self.sleepers.borrow_mut();
            while let Some(sleeper) = sleepers.first_entry() {
                if sleeper.key().0 > now {
                    break;
                }
                ready.push(sleeper.remove());
            }
        }
        for waker in ready.drain(..) {
            waker.wake();
        }
        self.ready.replace(ready);
        Ok(())
    }
}

/// The future of [`Reactor::sleep_until`].
pub(crate) struct Sleep<'a> {
    reactor: &'a Reactor,
    at: Instant,
    /// The sleep's entry among the reactor's sleepers, once it has one.
    key: Option<u64>,
}

impl Sleep<'_> {
    /// Removes the sleep's entry, if it has one.
    fn forget(&mut self) {
        if let Some(key) = self.key.take() {
            // The waker is dropped after the sleepers are released.
            let removed = self.reactor.sleepers.borrow_mut().remove(&(self.at, key));
            drop(removed);
        }
    }
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            self.forget();
            return Poll::Ready(());
        }
        let reactor = self.reactor;
        let key = *self.key.get_or_insert_with(|| {
            let key = reactor.next_sleeper.get();
            reactor.next_sleeper.set(key.wrapping_add(1));
            key
        });
        let replaced = reactor
            .sleepers
            .borrow_mut()
            .insert((self.at, key), cx.waker().clone());
        drop(replaced);
        Poll::Pending
    }
}

impl Drop for Sleep<'_> {
    fn drop(&mut self) {
        self.forget();
    }
}

/// Wakes the loop: a flag while it runs, the poller's notification while it
/// sleeps.
struct Notifier {
    woken: AtomicBool,
    sleeping: AtomicBool,
    poller: Poller,
}

impl Wake for Notifier {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::SeqCst) && self.sleeping.load(Ordering::SeqCst) {
            let _ = self.poller.notify();
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
    fn sleeps_end_in_the_order_of_their_instants() {
        block_on(async {
            let reactor = Reactor::current().unwrap();
            let start = Instant::now();
            let later = reactor.sleep_until(start + Duration::from_millis(30));
            let sooner = reactor.sleep_until(start + Duration::from_millis(10));
            let first = futures_lite::future::or(
                async {
                    later.await;
                    "later"
                },
                async {
                    sooner.await;
                    "sooner"
                },
            )
            .await;
            assert_eq!(first, "sooner");
            assert!(start.elapsed() >= Duration::from_millis(10));
            assert!(
                reactor.sleepers.borrow().is_empty(),
                "the dropped sleep left its entry"
            );
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
