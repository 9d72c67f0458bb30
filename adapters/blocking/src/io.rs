//! Socket and thread helpers shared by the server and the client.

use std::io::{self, IoSlice, Write};
use std::net::TcpStream;
use std::thread::{self, JoinHandle};

use bytes::Bytes;

/// Stack size of the threads that serve one socket. A reader runs the core
/// (parsing, fan-out to every subscriber) and the authorizer; the heaviest
/// path the tests take needs under 48 KiB in a debug build, and the rest is
/// headroom for authorizers. Only touched pages cost memory, so the size
/// bounds the worst case, not the typical cost.
pub const SOCKET_THREAD_STACK: usize = 128 * 1024;

/// Most slices handed to one `writev` call; far below every `IOV_MAX`.
const MAX_SLICES: usize = 64;

/// Spawns a named thread with the small stack of socket threads.
pub fn spawn_socket_thread(
    name: String,
    body: impl FnOnce() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(name)
        .stack_size(SOCKET_THREAD_STACK)
        .spawn(body)
}

/// Writes every frame of `frames`, in order, with vectored writes.
pub fn write_frames(mut stream: &TcpStream, frames: &[Bytes]) -> io::Result<()> {
    for chunk in frames.chunks(MAX_SLICES) {
        let mut slices: Vec<IoSlice<'_>> = chunk.iter().map(|frame| IoSlice::new(frame)).collect();
        let mut remaining: &mut [IoSlice<'_>] = &mut slices;
        while !remaining.is_empty() {
            match stream.write_vectored(remaining) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => IoSlice::advance_slices(&mut remaining, written),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(())
}
