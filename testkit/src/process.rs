//! The `tether` binary (or the core's `serve` example) run as a child
//! process, as a user runs it: the lines it prints (standard output and its
//! log on standard error, interleaved) are read as they come, and it is
//! killed when dropped unless it has exited.
//!
//! The binary's path is the caller's: `env!("CARGO_BIN_EXE_tether")` is
//! known only to the test targets of the package that builds it.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The longest a test waits for a log line or for the process to exit.
pub const PROCESS_LIMIT: Duration = Duration::from_secs(10);

/// A running `tether` process.
pub struct Process {
    pid: u32,
    exited: mpsc::Receiver<ExitStatus>,
    lines: mpsc::Receiver<String>,
    /// The exit status was taken by [`Process::wait`].
    reaped: bool,
}

impl Process {
    /// Starts the `tether` binary at `binary` with `args`, logging at
    /// `info`, without the secrets of the test's own environment.
    pub fn start(binary: &str, args: &[&str]) -> Process {
        let mut command = Command::new(binary);
        command.args(args);
        Process::spawn(command, Stdio::null()).0
    }

    /// Starts `binary` with `args` like [`Process::start`], with the
    /// environment variables `env` set.
    pub fn start_with_env(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = Command::new(binary);
        command.args(args).envs(env.iter().copied());
        Process::spawn(command, Stdio::null()).0
    }

    /// Starts `binary` with `args` like [`Process::start`], its standard
    /// input a pipe: dropping the returned end closes it (the `serve`
    /// example's order to shut down).
    pub fn start_with_input(binary: &str, args: &[&str]) -> (Process, ChildStdin) {
        let mut command = Command::new(binary);
        command.args(args);
        let (process, input) = Process::spawn(command, Stdio::piped());
        (process, input.expect("a piped stdin"))
    }

    /// Starts `tether` with `args` like [`Process::start`], but from a
    /// `bash` that first runs `script`: limits it sets (`ulimit`) and
    /// descriptors it opens are the process's.
    pub fn start_after(binary: &str, script: &str, args: &[&str]) -> Process {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(format!("{script}\nexec \"$0\" \"$@\""))
            .arg(binary)
            .args(args);
        Process::spawn(command, Stdio::null()).0
    }

    fn spawn(mut command: Command, stdin: Stdio) -> (Process, Option<ChildStdin>) {
        let mut child = command
            .env_remove("TETHER_JWT_SECRET")
            .env_remove("TETHER_API_KEY")
            .env("RUST_LOG", "info")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let (line_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("a piped stdout");
        let stderr = child.stderr.take().expect("a piped stderr");
        read_lines(stdout, line_tx.clone());
        read_lines(stderr, line_tx);
        let input = child.stdin.take();
        let pid = child.id();
        let (exit_tx, exited) = mpsc::channel();
        thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exit_tx.send(status);
            }
        });
        let process = Process {
            pid,
            exited,
            lines,
            reaped: false,
        };
        (process, input)
    }

    /// The next printed or logged line containing `needle`, skipping the lines before
    /// it; panics after [`PROCESS_LIMIT`] without one.
    pub fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + PROCESS_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?} within {PROCESS_LIMIT:?}"),
            }
        }
    }

    /// How many of the log lines written so far, and not yet skipped by
    /// [`Process::wait_for_line`], contain `needle`.
    pub fn count_lines(&self, needle: &str) -> usize {
        self.lines
            .try_iter()
            .filter(|line| line.contains(needle))
            .count()
    }

    /// The address from the log line `listening on ADDR ...`.
    pub fn listening_on(&self) -> SocketAddr {
        let line = self.wait_for_line("listening on ");
        let (_, rest) = line.split_once("listening on ").expect("the needle");
        let addr = rest.split_whitespace().next().unwrap_or_default();
        addr.parse()
            .unwrap_or_else(|_| panic!("no address in {line:?}"))
    }

    /// Sends `signal` (a `kill` signal name) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The exit status, within [`PROCESS_LIMIT`].
    pub fn wait(&mut self) -> ExitStatus {
        let status = self
            .exited
            .recv_timeout(PROCESS_LIMIT)
            .expect("the process exits");
        self.reaped = true;
        status
    }
}

/// Sends every line `from` gives to `to`, on a thread of its own.
fn read_lines(from: impl Read + Send + 'static, to: mpsc::Sender<String>) {
    thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            let _ = to.send(line);
        }
    });
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.reaped && self.exited.try_recv().is_err() {
            self.signal("KILL");
        }
    }
}
