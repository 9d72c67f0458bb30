//! The core's client session behind one lock, and the threads that serve it.
//!
//! - The timer thread sleeps until the session's next deadline (woken early
//!   when an input makes it earlier) and fires it.
//! - A link thread per [`Transmit::Dial`]: it dials (outside the lock),
//!   reports the outcome, then writes what the session hands out for that
//!   socket, in order, until the socket is closed.
//! - A reader thread per socket blocks in `read` and feeds the session.
//! - A token thread per [`Output::TokenWanted`] calls the application's
//!   provider (outside the lock) and hands its answer over, unless the
//!   session has asked for another token since.
//!
//! Socket actions are carried out in the order the session hands them out:
//! writes go through one channel per socket, and a close drops that channel,
//! so that the link thread shuts the socket down once it has written what
//! came before the close (the closing frame, usually). A socket the session
//! has closed (or a dial it abandoned) is recognised by its link number and
//! ignored from then on.

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant as Clock, SystemTime};

use bytes::Bytes;
use futures_lite::future;
use tether_core::{
    ClientConfig, ClientOutput as Output, ClientSession, Event, Instant, RequestError, RequestId,
    Routed, ServerMessage, TokenProvider, Transmit, Waiters, dial_address, unix_ms,
};

use tether_tls::Connector;

use crate::io::{spawn_socket_thread, write_frames};
use crate::tls::Secured;

/// The outcome of a request, for the thread blocked in it.
pub type Reply = Result<ServerMessage, RequestError>;

/// One client session shared by the application's threads and the
/// adapter's.
pub struct Driver {
    state: Mutex<State>,
    /// Wakes the timer thread when the next deadline moved earlier or the
    /// session finished.
    timer: Condvar,
    /// Wakes threads waiting in [`Driver::close`].
    finished: Condvar,
    /// The origin of the session's time line.
    start: Clock,
    /// Where tokens come from, when the application keeps them fresh;
    /// locked only by token threads, never with the state.
    provider: Option<Mutex<TokenProvider>>,
    /// What the client trusts, for `wss://`; `None` speaks plain `ws://`.
    tls: Option<Connector>,
}

/// Everything behind the driver's lock.
struct State {
    session: ClientSession,
    /// The socket (or dial) the session currently has.
    link: Option<Link>,
    /// Number of the next link.
    next_link: u64,
    /// Threads blocked in a request, by request id.
    waiters: Waiters<SyncSender<Reply>>,
    /// Where events go; dropped once the session is closed for good, which
    /// ends the application's event iterator.
    events: Option<Sender<Event>>,
    /// The session's next deadline, from its last drain.
    deadline: Option<Instant>,
    /// The deadline the timer thread is sleeping until (`None`: none).
    timer_until: Option<Instant>,
    /// Number of the session's latest token request: only its answer is
    /// handed over.
    token_request: u64,
}

/// The adapter's side of one dial and the socket it opened.
struct Link {
    number: u64,
    /// Bytes for the link thread to write, in order.
    writes: Sender<Bytes>,
    /// Disconnected when the link thread has ended.
    ended: Receiver<()>,
    /// The socket, once the dial succeeded.
    stream: Option<Arc<TcpStream>>,
}

impl Driver {
    /// Starts a session with `config`: it dials at once. Returns the driver
    /// and the receiving end of its events.
    pub fn start(
        config: ClientConfig,
        provider: Option<TokenProvider>,
        tls: Option<Connector>,
    ) -> io::Result<(Arc<Driver>, Receiver<Event>)> {
        let (events, receiver) = channel();
        let driver = Arc::new(Driver {
            state: Mutex::new(State {
                session: ClientSession::new(Instant::ZERO, config),
                link: None,
                next_link: 0,
                waiters: Waiters::default(),
                events: Some(events),
                deadline: None,
                timer_until: None,
                token_request: 0,
            }),
            timer: Condvar::new(),
            finished: Condvar::new(),
            start: Clock::now(),
            provider: provider.map(Mutex::new),
            tls,
        });
        let timer = Arc::clone(&driver);
        std::thread::Builder::new()
            .name("tether-client-timer".into())
            .spawn(move || timer.run_timers())?;
        driver.settle(driver.lock());
        Ok((driver, receiver))
    }

    /// Runs a command on the session and carries out what it caused.
    pub fn command<R>(
        self: &Arc<Self>,
        command: impl FnOnce(&mut ClientSession, Instant) -> R,
    ) -> R {
        let mut state = self.lock();
        let result = command(&mut state.session, self.now());
        self.settle(state);
        result
    }

    /// Runs `request` on the session and, if it produced an id, registers
    /// the caller to receive its outcome before anything can settle it.
    pub fn request<E>(
        self: &Arc<Self>,
        request: impl FnOnce(&mut ClientSession, Instant) -> Result<RequestId, E>,
    ) -> Result<Receiver<Reply>, E> {
        let mut state = self.lock();
        let id = request(&mut state.session, self.now())?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        state.waiters.wait(id, sender);
        self.settle(state);
        Ok(receiver)
    }

    /// Whether the server has accepted the token on the current connection.
    pub fn is_connected(&self) -> bool {
        self.lock().session.is_connected()
    }

    /// Closes the session for good and waits until it is (at most the
    /// session's `close_timeout`, which its timer enforces).
    pub fn close(self: &Arc<Self>) {
        let mut state = self.lock();
        let now = self.now();
        state.session.close(now);
        self.settle(state);
        let mut state = self.lock();
        while state.events.is_some() {
            state = self
                .finished
                .wait(state)
                .expect("the client session panicked");
        }
    }

    /// Starts closing the session without waiting for the close to finish.
    pub fn close_in_background(self: &Arc<Self>) {
        self.command(|session, now| session.close(now));
    }

    fn now(&self) -> Instant {
        Instant::from_origin(self.start.elapsed())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means the session panicked mid-input: a broken
        // invariant, after which no input can be trusted to be handled.
        self.state.lock().expect("the client session panicked")
    }

    /// Sleeps until the session's next deadline and fires it; ends when the
    /// session is closed for good.
    fn run_timers(self: Arc<Self>) {
        let mut state = self.lock();
        while state.events.is_some() {
            let now = self.now();
            let next = state.deadline;
            match next {
                Some(at) if at <= now => {
                    state.session.handle_timeout(now);
                    self.settle(state);
                    state = self.lock();
                    continue;
                }
                _ => state.timer_until = next,
            }
            let poisoned = "the client session panicked";
            state = match next {
                Some(at) => self.timer.wait_timeout(state, at - now).expect(poisoned).0,
                None => self.timer.wait(state).expect(poisoned),
            };
        }
    }

    /// Carries out the session's socket actions, delivers its events, and
    /// wakes whoever must know. Releases the lock.
    fn settle<'a>(self: &'a Arc<Self>, mut state: MutexGuard<'a, State>) {
        let next = loop {
            match state.session.poll_output() {
                Output::Transmit(Transmit::Dial { host }) => self.dial(&mut state, host),
                Output::Transmit(Transmit::Write(bytes)) => {
                    if let Some(link) = &state.link {
                        // A closed channel means the link thread ended on a
                        // failed write; its reader reports the loss.
                        let _ = link.writes.send(bytes);
                    }
                }
                Output::Transmit(Transmit::Close) => {
                    if let Some(link) = state.link.take() {
                        link.close(state.session.config().close_timeout);
                    }
                }
                Output::TokenWanted => self.fetch_token(&mut state),
                Output::Event(event) => state.deliver(event),
                Output::Timeout(next) => break next,
            }
        };
        state.deadline = next;
        if next.is_some_and(|next| state.timer_until.is_none_or(|until| next < until)) {
            self.timer.notify_one();
        }
        if state.session.is_finished() && state.events.take().is_some() {
            self.timer.notify_one();
            self.finished.notify_all();
        }
    }

    /// Starts a token thread for the session's latest token request.
    fn fetch_token(self: &Arc<Self>, state: &mut State) {
        state.token_request += 1;
        let number = state.token_request;
        let spawned = match &self.provider {
            Some(_) => {
                let driver = Arc::clone(self);
                std::thread::Builder::new()
                    .name(format!("tether-client-token-{number}"))
                    .spawn(move || driver.run_token(number))
                    .is_ok()
            }
            None => false,
        };
        if !spawned {
            state.session.handle_token_failed(self.now());
        }
    }

    /// A token thread: calls the provider, polls the call to completion,
    /// and hands its answer to the session if it is still the one wanted.
    /// A provider that panicked in an earlier call is called again: the
    /// session bounds each call with its own deadline.
    fn run_token(self: Arc<Self>, number: u64) {
        let Some(provider) = &self.provider else {
            return;
        };
        let call = provider
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fetch();
        let answer = future::block_on(call);
        let mut state = self.lock();
        if state.token_request == number {
            let now = self.now();
            match answer {
                Ok(token) => state.session.handle_token(now, token),
                Err(error) => {
                    tracing::debug!(%error, "token provider failed");
                    state.session.handle_token_failed(now);
                }
            }
        }
        self.settle(state);
    }

    /// Starts a link thread that dials `host`.
    fn dial(self: &Arc<Self>, state: &mut State, host: String) {
        let number = state.next_link;
        state.next_link += 1;
        let (writes, to_write) = channel();
        let (ending, ended) = channel();
        state.link = Some(Link {
            number,
            writes,
            ended,
            stream: None,
        });
        let timeout = state.session.config().connect_timeout;
        let driver = Arc::clone(self);
        let spawned = spawn_socket_thread(format!("tether-client-link-{number}"), move || {
            driver.run_link(number, &host, timeout, &to_write);
            drop(ending);
        });
        if spawned.is_err() {
            state.link = None;
            state.session.handle_connect_failed(self.now());
        }
    }

    /// A link thread: dials, then writes until the session closes the link
    /// (or a write fails), then shuts the socket down.
    fn run_link(
        self: Arc<Self>,
        number: u64,
        host: &str,
        timeout: Duration,
        to_write: &Receiver<Bytes>,
    ) {
        let dialed = dial(host, timeout).and_then(|stream| {
            let secured = match &self.tls {
                Some(tls) => Some(Arc::new(Secured::new(tls.connect(host)?))),
                None => None,
            };
            Ok((stream, secured))
        });
        let Some((stream, secured)) = self.connected(number, dialed) else {
            return;
        };
        let write = |batch: &[Bytes]| match &secured {
            Some(secured) => secured.write(&stream, batch),
            None => write_frames(&stream, batch),
        };
        // With TLS, the client's hello goes first.
        let mut batch = Vec::new();
        let mut written = write(&batch);
        while written.is_ok()
            && let Ok(first) = to_write.recv()
        {
            batch.push(first);
            batch.extend(to_write.try_iter());
            written = write(&batch);
            batch.clear();
        }
        // After a failed write this wakes the reader, which reports the
        // loss to the session; after a close the peer may have closed
        // first, with the same outcome.
        let _ = stream.shutdown(Shutdown::Both);
    }

    /// Reports a dial's outcome, unless the session abandoned it meanwhile;
    /// on success starts the socket's reader and returns the socket and
    /// its TLS.
    fn connected(
        self: &Arc<Self>,
        number: u64,
        dialed: io::Result<(TcpStream, Option<Arc<Secured>>)>,
    ) -> Option<(Arc<TcpStream>, Option<Arc<Secured>>)> {
        let mut state = self.lock();
        let now = self.now();
        let link = state.link.as_mut().filter(|link| link.number == number)?;
        let dialed = dialed
            .inspect_err(|error| tracing::debug!(%error, "dial failed"))
            .ok()
            .map(|(stream, secured)| (Arc::new(stream), secured));
        let reader = dialed.as_ref().map(|(stream, secured)| {
            // Messages are small and latency matters; failure only slows.
            let _ = stream.set_nodelay(true);
            let (driver, stream, secured) = (Arc::clone(self), Arc::clone(stream), secured.clone());
            spawn_socket_thread(format!("tether-client-read-{number}"), move || {
                driver.run_reader(number, &stream, secured.as_deref());
            })
        });
        match (dialed, reader) {
            (Some((stream, secured)), Some(Ok(_))) => {
                link.stream = Some(Arc::clone(&stream));
                state
                    .session
                    .handle_connected(now, unix_ms(SystemTime::now()));
                self.settle(state);
                Some((stream, secured))
            }
            _ => {
                state.link = None;
                state.session.handle_connect_failed(now);
                self.settle(state);
                None
            }
        }
    }

    /// A reader thread: feeds what link `number`'s socket receives to the
    /// session (deciphered first, with TLS) until the socket ends.
    fn run_reader(self: Arc<Self>, number: u64, mut stream: &TcpStream, secured: Option<&Secured>) {
        let mut buffer = [0u8; 16 * 1024];
        let mut plaintext = Vec::new();
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => {
                    let bytes = match secured {
                        None => &buffer[..read],
                        Some(secured) => {
                            plaintext.clear();
                            let received = secured.receive(&buffer[..read], &mut plaintext);
                            // The handshake's answer, or an alert.
                            let _ = secured.write(stream, &[]);
                            if let Err(error) = received {
                                tracing::warn!(%error, "TLS failed: connection closed");
                                break;
                            }
                            &plaintext[..]
                        }
                    };
                    self.on_link(number, |session, now| session.handle_read(now, bytes));
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.on_link(number, |session, now| session.handle_transport_closed(now));
    }

    /// Feeds an input about link `number`, if it is still the session's.
    fn on_link(self: &Arc<Self>, number: u64, input: impl FnOnce(&mut ClientSession, Instant)) {
        let mut state = self.lock();
        if state
            .link
            .as_ref()
            .is_some_and(|link| link.number == number)
        {
            input(&mut state.session, self.now());
        }
        self.settle(state);
    }
}

impl Link {
    /// Carries out the session's close of this link. Dropping `writes` lets
    /// the link thread write what it was handed before the close (the
    /// closing frame, usually) and then shut the socket down. Those writes
    /// get `close_timeout`; a write already under way when the close came
    /// (to a server slow to read) does not see that timeout, so a guard
    /// thread shuts the socket down if the link thread has not ended by
    /// then.
    fn close(self, close_timeout: Duration) {
        let Link {
            number,
            writes,
            ended,
            stream,
        } = self;
        let Some(stream) = stream else {
            // Still dialing: the link thread drops the socket it may get.
            return;
        };
        // Fails only for a zero `close_timeout`, which the guard then
        // enforces alone.
        let _ = stream.set_write_timeout(Some(close_timeout));
        drop(writes);
        let guard_stream = Arc::clone(&stream);
        let guard = spawn_socket_thread(format!("tether-client-close-{number}"), move || {
            if ended.recv_timeout(close_timeout) == Err(RecvTimeoutError::Timeout) {
                let _ = guard_stream.shutdown(Shutdown::Both);
            }
        });
        if guard.is_err() {
            // Without a guard, only an immediate shutdown bounds the close.
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl State {
    /// Hands an event to the thread waiting for it, or to the application.
    fn deliver(&mut self, event: Event) {
        match self.waiters.route(event) {
            // The waiter may have given up (its thread unwound).
            Routed::Caller { caller, outcome } => drop(caller.send(outcome)),
            Routed::Event(event) => {
                if let Some(events) = &self.events {
                    // The application may have dropped its receiver;
                    // events are then of no interest.
                    let _ = events.send(event);
                }
            }
        }
    }
}

/// Opens a TCP connection to `host` (`host` or `host:port`, at the port
/// the core's [`dial_address`] gives), trying each address it resolves to
/// within `timeout`.
fn dial(host: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
    for address in resolve(host)? {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// The addresses of `host`.
fn resolve(host: &str) -> io::Result<Vec<SocketAddr>> {
    Ok(dial_address(host)?.to_socket_addrs()?.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bracketed_ipv6_host_resolves_at_port_80_and_a_bad_port_fails_the_dial() {
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(resolve("[::1]").unwrap(), [v6]);
        let bad_port = resolve("127.0.0.1:http").unwrap_err();
        assert_eq!(bad_port.kind(), io::ErrorKind::InvalidInput);
    }
}
