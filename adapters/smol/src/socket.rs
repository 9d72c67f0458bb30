//! Sockets registered with the node's [`Reactor`].
//!
//! A write is tried first; only when the kernel answers that it would block
//! does the task forget the socket's writability and wait for the reactor's
//! next report. Reads and accepts wait for a report of readability first,
//! and a read shorter than its buffer has emptied the socket's receive
//! queue, so it forgets readability without the extra `read` that would
//! fail.

use std::future::poll_fn;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::task::Poll;

use crate::reactor::{Interest, Reactor};

/// A non-blocking socket and its registration.
pub(crate) struct Registered<T: AsFd> {
    io: T,
    key: usize,
    reactor: Rc<Reactor>,
}

impl<T: AsFd> Registered<T> {
    /// Registers `io`, which must be in non-blocking mode.
    pub(crate) fn new(io: T, reactor: &Rc<Reactor>) -> io::Result<Registered<T>> {
        let key = reactor.register(io.as_fd())?;
        Ok(Registered {
            io,
            key,
            reactor: reactor.clone(),
        })
    }

    /// The socket itself.
    pub(crate) fn get_ref(&self) -> &T {
        &self.io
    }

    /// Resolves once the socket has something to read (or has failed).
    pub(crate) async fn readable(&self) {
        poll_fn(|cx| self.reactor.poll_ready(self.key, Interest::Read, cx)).await;
    }
}

impl<T: AsFd> Drop for Registered<T> {
    fn drop(&mut self) {
        self.reactor.deregister(self.key, self.io.as_fd());
    }
}

impl Registered<TcpListener> {
    /// Accepts the next connection. The listener's task is polled whenever
    /// the node's main future is, so it looks at the listener's readiness
    /// before it calls `accept`.
    pub(crate) async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        loop {
            self.readable().await;
            match self.io.accept() {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.reactor.clear_ready(self.key, Interest::Read);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                result => return result,
            }
        }
    }
}

impl Registered<TcpStream> {
    /// Reads what the socket has now, without waiting: `WouldBlock` if it
    /// has nothing.
    pub(crate) fn read_now(&self, buffer: &mut [u8]) -> io::Result<usize> {
        let result = (&self.io).read(buffer);
        match &result {
            Ok(n) if *n > 0 && *n < buffer.len() => {
                self.reactor.clear_ready(self.key, Interest::Read);
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                self.reactor.clear_ready(self.key, Interest::Read);
            }
            _ => {}
        }
        result
    }

    /// Calls `write` with the socket until the socket takes something, and
    /// returns what it took. `write` runs inside `poll`, so what it builds on
    /// its stack (the slices of a `writev`) is not kept in the future of the
    /// task, whose size every idle connection pays.
    pub(crate) async fn write_with(
        &self,
        mut write: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        poll_fn(|cx| {
            loop {
                match write(&self.io) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        self.reactor.clear_ready(self.key, Interest::Write);
                        if self
                            .reactor
                            .poll_ready(self.key, Interest::Write, cx)
                            .is_pending()
                        {
                            return Poll::Pending;
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    result => return Poll::Ready(result),
                }
            }
        })
        .await
    }
}
