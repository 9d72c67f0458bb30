//! A `redis-server` of a test's own: a free loopback port, no persistence.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

/// A `redis-server` of the test's own.
pub struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    /// Starts Redis on a free loopback port and waits until it accepts
    /// connections.
    pub fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        Redis {
            port,
            child: spawn_redis(port),
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills Redis at once (SIGKILL): no goodbye to any client.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a fresh, empty Redis on the same port.
    pub fn restart(&mut self) {
        self.child = spawn_redis(self.port);
    }

    /// A plain connection for the test's own commands.
    pub fn admin(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .expect("an admin connection")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `redis-server` on `port` without persistence and waits until it
/// accepts connections.
fn spawn_redis(port: u16) -> Child {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--logfile", ""])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs (scripts/test installs it)");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    for line in lines.by_ref() {
        let line = line.expect("Redis's log");
        if line.contains("Ready to accept connections") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    child
}
