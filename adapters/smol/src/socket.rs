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

    /// Resolves once the socket has something to read (or has failed); an
    /// error is the poller's, which could not arm the registration.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| {
            self.reactor
                .poll_ready(self.key, self.io.as_fd(), Interest::Read, cx)
        })
        .await
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
            self.readable().await?;
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
                        let ready =
                            self.reactor
                                .poll_ready(self.key, self.io.as_fd(), Interest::Write, cx);
                        match ready {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                            Poll::Ready(Ok(())) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::block_on_oneshot;
    use futures_lite::future;
    use std::io::{Read, Write};

    /// A registered listener's accepted, registered connection and the
    /// peer's end of it.
    async fn connected(reactor: &Rc<Reactor>) -> (Registered<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = Registered::new(listener, reactor).unwrap();
        let peer = TcpStream::connect(addr).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nonblocking(true).unwrap();
        (Registered::new(stream, reactor).unwrap(), peer)
    }

    async fn a_short_read_waits_for_the_next_report() {
        let reactor = Reactor::current().unwrap();
        let (stream, mut peer) = connected(&reactor).await;

        peer.write_all(b"ping").unwrap();
        stream.readable().await.unwrap();
        let mut buffer = [0; 16];
        assert_eq!(stream.read_now(&mut buffer).unwrap(), 4);
        assert!(
            future::poll_once(stream.readable()).await.is_none(),
            "a short read forgets readability"
        );

        peer.write_all(b"pong").unwrap();
        stream.readable().await.unwrap();
        assert_eq!(stream.read_now(&mut buffer).unwrap(), 4);
        assert_eq!(&buffer[..4], b"pong");

        let written = stream.write_with(|mut socket| socket.write(b"ack")).await;
        assert_eq!(written.unwrap(), 3);
        let mut answer = [0; 3];
        peer.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"ack");
    }

    /// Fills the socket until a write would block, then has a thread drain
    /// the peer: the blocked write resumes once the socket is reported
    /// writable again.
    async fn a_blocked_write_resumes_when_the_peer_reads() {
        let reactor = Reactor::current().unwrap();
        let (stream, mut peer) = connected(&reactor).await;
        let chunk = [7u8; 64 * 1024];
        let mut sent = 0;
        loop {
            match (stream.get_ref()).write(&chunk) {
                Ok(n) => sent += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => panic!("{error}"),
            }
        }
        let total = sent + chunk.len();
        let drain = std::thread::spawn(move || {
            let mut received = vec![0; total];
            peer.read_exact(&mut received).unwrap();
        });
        let mut left = &chunk[..];
        while !left.is_empty() {
            let n = stream
                .write_with(|mut socket| socket.write(left))
                .await
                .unwrap();
            left = &left[n..];
        }
        drain.join().unwrap();
    }

    #[test]
    fn a_short_read_waits_for_the_next_report_edge_triggered() {
        crate::block_on(a_short_read_waits_for_the_next_report());
    }

    #[test]
    fn a_short_read_waits_for_the_next_report_one_shot() {
        block_on_oneshot(a_short_read_waits_for_the_next_report());
    }

    #[test]
    fn a_blocked_write_resumes_when_the_peer_reads_edge_triggered() {
        crate::block_on(a_blocked_write_resumes_when_the_peer_reads());
    }

    #[test]
    fn a_blocked_write_resumes_when_the_peer_reads_one_shot() {
        block_on_oneshot(a_blocked_write_resumes_when_the_peer_reads());
    }
}
