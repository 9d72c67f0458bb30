//! PROTOCOL.md section 3 (and the draining decision of section 11):
//! graceful shutdown through the embedding API and, for the `tether`
//! binary, through SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::json;
use tether_core::config::ServerConfig;
use tungstenite::Message;

use crate::harness::{JOIN_LIMIT, Runtime, config, dev_auth};
use crate::http::get;
use crate::ws::{READ_TIMEOUT, Ws};

fn shutdown_flushes_queued_messages_then_closes_1001(runtime: Runtime) {
    let server = runtime.start(
        ServerConfig {
            close_timeout: Duration::from_secs(5),
            ..config()
        },
        dev_auth(),
    );
    let mut alice = Ws::auth(server.addr, "alice");
    alice.subscribe("news");
    for n in 1..=20 {
        server.publish("news", &n.to_string());
    }
    server.shutdown();
    for n in 1..=20 {
        assert_eq!(
            alice.recv(),
            json!({"type": "message", "channel": "news", "payload": n, "offset": n})
        );
    }
    match alice.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }

    // Alice has not answered the close yet, so the node is still draining.
    let health = get(server.addr, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (503, "draining"));
    match Ws::handshake(server.addr, "/ws", &[]) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status().as_u16(), 503),
        Err(other) => panic!("expected 503, got {other}"),
        Ok(_) => panic!("a WebSocket was opened while draining"),
    }

    alice.finish_close();
    server.join().expect("run returns Ok");
}

fn an_idle_node_stops_at_once(runtime: Runtime) {
    let server = runtime.start(config(), dev_auth());
    assert_eq!(get(server.addr, "/healthz").status, 200);
    server.shutdown();
    server.join().expect("run returns Ok");
}

/// A `tether` process, killed when dropped unless it has exited.
struct Process {
    pid: u32,
    exited: mpsc::Receiver<ExitStatus>,
    lines: mpsc::Receiver<String>,
    /// The exit status was taken by [`Process::wait`].
    reaped: bool,
}

impl Process {
    /// Starts `tether serve --dev` on a free port with `runtime`.
    fn serve(runtime: Runtime) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
            .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
            .args(["--runtime", runtime.name()])
            .env_remove("TETHER_JWT_SECRET")
            .env_remove("TETHER_API_KEY")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tether binary starts");
        let stderr = child.stderr.take().expect("a piped stderr");
        let (line_tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        let pid = child.id();
        let (exit_tx, exited) = mpsc::channel();
        thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exit_tx.send(status);
            }
        });
        Process {
            pid,
            exited,
            lines,
            reaped: false,
        }
    }

    /// The address from the log line `listening on ADDR ...`.
    fn listening_on(&self) -> SocketAddr {
        loop {
            let line = self
                .lines
                .recv_timeout(READ_TIMEOUT)
                .expect("the listening line");
            if let Some((_, rest)) = line.split_once("listening on ") {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                return addr
                    .parse()
                    .unwrap_or_else(|_| panic!("no address in {line:?}"));
            }
        }
    }

    /// Sends `signal` (a `kill` signal name) to the process.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The exit status, within [`JOIN_LIMIT`].
    fn wait(&mut self) -> ExitStatus {
        let status = self
            .exited
            .recv_timeout(JOIN_LIMIT)
            .expect("the process exits");
        self.reaped = true;
        status
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.reaped && self.exited.try_recv().is_err() {
            self.signal("KILL");
        }
    }
}

fn sigterm_drains_the_binary_and_it_exits_0(runtime: Runtime) {
    let mut process = Process::serve(runtime);
    let addr = process.listening_on();
    let mut alice = Ws::auth(addr, "alice");
    alice.subscribe("room");
    process.signal("TERM");
    assert_eq!(alice.expect_close().0, 1001);
    assert_eq!(process.wait().code(), Some(0));
}

runtime_tests! {
    shutdown_flushes_queued_messages_then_closes_1001 => smol, blocking;
    an_idle_node_stops_at_once => smol, blocking;
    sigterm_drains_the_binary_and_it_exits_0 => smol, blocking;
}
