//! The task that owns a [`ClientSession`] and carries its inputs and outputs.
//!
//! One loop: drain the session's outputs (socket actions into the socket,
//! token requests to the provider, events to the application, request
//! outcomes to their callers), then wait for whichever comes first of a
//! dial's result, bytes read, bytes written, the provider's token, a
//! command, or the session's next deadline, and hand it to the session.
//! The loop ends when the session reports itself closed for good.

use std::future::{Future, pending};
use std::io;
use std::mem;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use serde_json::value::RawValue;
use tether_core::{
    Channel, ClientError, ClientMessage, ClientOutput as SessionOutput, ClientSession, Event,
    Instant, RequestId, Routed, SendError, ServerMessage, TokenFetch, TokenProvider, Transmit,
    Waiters, WriteQueue, unix_ms,
};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::sleep_until;

use tether_tls::{ClientOutput, Connector};

use super::dial::dial;

/// Bytes waiting for the socket beyond which the task takes no commands.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;

/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 16 * 1024;

/// The channel a command's answer goes back on.
type Reply<T> = oneshot::Sender<T>;

/// A call from a [`Client`](super::Client), with the channel for its answer.
#[derive(Debug)]
pub(super) enum Command {
    /// [`ClientSession::subscribe`].
    Subscribe {
        channel: Channel,
        reply: Reply<Result<(), SendError>>,
    },
    /// [`ClientSession::unsubscribe`].
    Unsubscribe {
        channel: Channel,
        reply: Reply<Result<(), SendError>>,
    },
    /// [`ClientSession::publish`]; the outcome goes to the event stream.
    Publish {
        channel: Channel,
        payload: Box<RawValue>,
        reply: Reply<Result<RequestId, SendError>>,
    },
    /// [`ClientSession::request`]; `reply` gets the outcome.
    Request {
        message: ClientMessage,
        timeout: Duration,
        reply: Reply<Result<ServerMessage, ClientError>>,
    },
    /// [`ClientSession::rpc`]; `reply` gets the outcome.
    Rpc {
        method: String,
        data: Box<RawValue>,
        reply: Reply<Result<ServerMessage, ClientError>>,
    },
    /// [`ClientSession::send`].
    Send {
        message: ClientMessage,
        reply: Reply<Result<(), SendError>>,
    },
    /// [`ClientSession::close`].
    Close,
}

/// A dial in progress.
type Dialing = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

/// The socket the session's last [`Transmit::Dial`] asked for.
enum Socket {
    /// No socket: between connections, or closed.
    Idle,
    /// Connecting.
    Dialing(Dialing),
    /// Connected.
    Open(TcpStream),
}

/// What woke the task up.
enum Wake {
    /// A command, or `None` when every handle is gone.
    Command(Option<Command>),
    /// The dial finished.
    Dialed(io::Result<TcpStream>),
    /// Bytes were read into the buffer (0 at end of stream).
    Read(io::Result<usize>),
    /// The socket took bytes from the output queue.
    Wrote(io::Result<usize>),
    /// The provider answered.
    Token(Result<String, String>),
    /// The session's deadline has come.
    Deadline,
}

/// The driver task's state: the session it owns and the channels to the
/// handles.
pub(super) struct Driver {
    session: ClientSession,
    /// The origin of the session's time line.
    start: std::time::Instant,
    /// The session's next deadline, from its last drain.
    deadline: Option<Instant>,
    socket: Socket,
    /// What waits for the socket, behind the connection's TLS for `wss://`.
    output: ClientOutput,
    /// Where tokens come from, when the application keeps them fresh.
    provider: Option<TokenProvider>,
    /// The provider's call under way, for the session's last token request.
    fetching: Option<TokenFetch>,
    commands: mpsc::Receiver<Command>,
    /// False once every handle is gone (the session is then closing).
    taking_commands: bool,
    events: mpsc::UnboundedSender<Event>,
    /// Callers of [`Client::request`](super::Client::request).
    waiting: Waiters<Reply<Result<ServerMessage, ClientError>>>,
    /// Held until the task ends, so that dropping it tells
    /// [`Client::close`](super::Client::close) the session is closed.
    finished: watch::Sender<()>,
}

impl Driver {
    /// A driver for `session`, whose time line starts at `start`.
    pub(super) fn new(
        session: ClientSession,
        start: std::time::Instant,
        provider: Option<TokenProvider>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::UnboundedSender<Event>,
        finished: watch::Sender<()>,
        tls: Option<Connector>,
    ) -> Driver {
        Driver {
            session,
            start,
            deadline: None,
            socket: Socket::Idle,
            output: ClientOutput::new(tls),
            provider,
            fetching: None,
            commands,
            taking_commands: true,
            events,
            waiting: Waiters::default(),
            finished,
        }
    }

    /// Runs the session until it is closed for good, then refuses every
    /// command still queued.
    pub(super) async fn run(mut self) {
        let mut buffer = vec![0; READ_BUFFER];
        while self.drain() {
            let wake = self.wait(&mut buffer).await;
            self.handle(wake, &buffer);
        }
        self.commands.close();
        // Dropping a queued command drops its reply channel: its caller
        // learns that the session is closed.
        while self.commands.try_recv().is_ok() {}
        drop(self.finished);
    }

    /// Carries out every pending output of the session and keeps its next
    /// deadline; false once the session is finished.
    fn drain(&mut self) -> bool {
        loop {
            match self.session.poll_output() {
                SessionOutput::Transmit(transmit) => self.transmit(transmit),
                SessionOutput::TokenWanted => self.fetch_token(),
                SessionOutput::Event(event) => self.deliver(event),
                SessionOutput::Timeout(deadline) => {
                    self.deadline = deadline;
                    return !self.session.is_finished();
                }
            }
        }
    }

    /// Carries out one socket action.
    fn transmit(&mut self, transmit: Transmit) {
        match transmit {
            Transmit::Dial { host } => {
                tracing::debug!(%host, "dialing");
                self.socket = match self.output.dial(&host) {
                    Ok(()) => Socket::Dialing(Box::pin(dial(host))),
                    Err(error) => Socket::Dialing(Box::pin(async { Err(error) })),
                };
            }
            Transmit::Write(bytes) => {
                // Bytes for a socket that has already failed have nowhere
                // to go; the session was told it failed.
                if matches!(self.socket, Socket::Open(_)) {
                    self.output.write(bytes);
                }
            }
            Transmit::Close => {
                // Dropping the stream (or the dial) closes it.
                if let Socket::Open(stream) = mem::replace(&mut self.socket, Socket::Idle) {
                    self.output.close();
                    self.output
                        .queue_mut()
                        .flush_now(|chunk| stream.try_write(chunk));
                }
                self.output.reset();
            }
        }
    }

    /// Starts the provider's call for the token the session wants; a call
    /// still under way for an earlier request is dropped.
    fn fetch_token(&mut self) {
        self.fetching = Some(match &mut self.provider {
            Some(provider) => provider.fetch(),
            None => Box::pin(async { Err("no token provider".to_owned()) }),
        });
    }

    /// Hands `event` to the caller waiting for it, or to the event stream.
    fn deliver(&mut self, event: Event) {
        match self.waiting.route(event) {
            Routed::Caller { caller, outcome } => answer(caller, outcome.map_err(Into::into)),
            // The stream is unbounded: sending fails only when no handle
            // is left to read it.
            Routed::Event(event) => drop(self.events.send(event)),
        }
    }

    /// Waits for the next input: the socket, the session's deadline, or a
    /// command (unless too many bytes wait for the socket).
    async fn wait(&mut self, buffer: &mut [u8]) -> Wake {
        let deadline = self
            .deadline
            .and_then(|at| self.start.checked_add(at.since_origin()));
        let take_commands =
            self.taking_commands && self.output.queue().queued() < OUTPUT_HIGH_WATER;
        let commands = &mut self.commands;
        let output = self.output.queue();
        let socket = &mut self.socket;
        let fetching = &mut self.fetching;
        let timer = async move {
            match deadline {
                Some(at) => sleep_until(at.into()).await,
                None => pending().await,
            }
        };
        let token = async move {
            match fetching {
                Some(fetch) => fetch.await,
                None => pending().await,
            }
        };
        tokio::select! {
            wake = io(socket, output, buffer) => wake,
            () = timer => Wake::Deadline,
            result = token => Wake::Token(result),
            command = commands.recv(), if take_commands => Wake::Command(command),
        }
    }

    /// Hands what woke the task up to the session.
    fn handle(&mut self, wake: Wake, buffer: &[u8]) {
        let now = self.now();
        match wake {
            Wake::Command(Some(command)) => self.command(now, command),
            Wake::Command(None) => {
                self.taking_commands = false;
                self.session.close(now);
            }
            Wake::Dialed(Ok(stream)) => {
                self.socket = Socket::Open(stream);
                self.session
                    .handle_connected(now, unix_ms(SystemTime::now()));
            }
            Wake::Dialed(Err(error)) => {
                tracing::debug!(%error, "dial failed");
                self.socket = Socket::Idle;
                self.session.handle_connect_failed(now);
            }
            Wake::Read(Ok(0)) => self.lost(now, "end of stream"),
            Wake::Read(Ok(read)) => match self.output.receive(&buffer[..read]) {
                Ok(received) => self.session.handle_read(now, received),
                Err(error) => {
                    tracing::warn!(%error, "connection failed");
                    self.lost(now, &error.to_string());
                }
            },
            Wake::Wrote(Ok(0)) => self.lost(now, "socket takes no more bytes"),
            Wake::Wrote(Ok(written)) => self.output.queue_mut().advance(written),
            Wake::Read(Err(error)) | Wake::Wrote(Err(error)) => self.lost(now, &error.to_string()),
            Wake::Token(result) => {
                self.fetching = None;
                match result {
                    Ok(token) => self.session.handle_token(now, token),
                    Err(error) => {
                        tracing::debug!(%error, "token provider failed");
                        self.session.handle_token_failed(now);
                    }
                }
            }
            Wake::Deadline => self.session.handle_timeout(now),
        }
    }

    /// Hands a command to the session and answers its caller.
    fn command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Subscribe { channel, reply } => answer(reply, self.session.subscribe(channel)),
            Command::Unsubscribe { channel, reply } => {
                answer(reply, self.session.unsubscribe(channel));
            }
            Command::Publish {
                channel,
                payload,
                reply,
            } => answer(reply, self.session.publish(now, channel, payload)),
            Command::Request {
                message,
                timeout,
                reply,
            } => {
                let sent = self.session.request(now, message, timeout);
                self.wait_for(sent, reply);
            }
            Command::Rpc {
                method,
                data,
                reply,
            } => {
                let sent = self.session.rpc(now, method, data);
                self.wait_for(sent, reply);
            }
            Command::Send { message, reply } => answer(reply, self.session.send(message)),
            Command::Close => self.session.close(now),
        }
    }

    /// Makes `reply` wait for the outcome of the request `sent`, or
    /// answers it at once with the session's refusal.
    fn wait_for(
        &mut self,
        sent: Result<RequestId, SendError>,
        reply: Reply<Result<ServerMessage, ClientError>>,
    ) {
        match sent {
            Ok(id) => self.waiting.wait(id, reply),
            Err(error) => answer(reply, Err(error.into())),
        }
    }

    /// The socket ended by itself: tell the session, which decides what
    /// follows.
    fn lost(&mut self, now: Instant, why: &str) {
        tracing::debug!(why, "connection lost");
        self.socket = Socket::Idle;
        self.output.reset();
        self.session.handle_transport_closed(now);
    }

    /// The current instant on the session's time line.
    fn now(&self) -> Instant {
        Instant::from_origin(self.start.elapsed())
    }
}

/// What the socket has to say: a dial's result, bytes read, or bytes
/// written from the front of `output`; never, when there is no socket.
async fn io(socket: &mut Socket, output: &WriteQueue, buffer: &mut [u8]) -> Wake {
    match socket {
        Socket::Idle => pending().await,
        Socket::Dialing(dialing) => Wake::Dialed(dialing.await),
        Socket::Open(stream) => {
            let stream = &*stream;
            let read = async {
                let read = stream.async_io(Interest::READABLE, || stream.try_read(buffer));
                Wake::Read(read.await)
            };
            let write = async {
                let Some(chunk) = output.front() else {
                    return pending().await;
                };
                let written = stream.async_io(Interest::WRITABLE, || stream.try_write(chunk));
                Wake::Wrote(written.await)
            };
            tokio::select! {
                wake = read => wake,
                wake = write => wake,
            }
        }
    }
}

/// Answers a caller; one that stopped waiting needs no answer.
fn answer<T>(reply: Reply<T>, value: T) {
    let _ = reply.send(value);
}
