//! A `redis-server` of a test's own: a free loopback port, no persistence;
//! plain, or speaking TLS only.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::tls::ServerFiles;

/// A `redis-server` of the test's own.
pub struct Redis {
    port: u16,
    child: Child,
    /// `rediss` when it speaks TLS only, else `redis`.
    scheme: &'static str,
    /// What `redis-server` is started with besides the port.
    args: Vec<String>,
}

impl Redis {
    /// Starts Redis on a free loopback port and waits until it accepts
    /// connections.
    pub fn start() -> Redis {
        let port = free_port();
        let args = vec!["--port".to_owned(), port.to_string()];
        Redis {
            port,
            child: spawn_redis(&args),
            scheme: "redis",
            args,
        }
    }

    /// Starts Redis speaking TLS only (no plain port) with the certificate
    /// and key in `files`, and waits until it accepts connections. Clients
    /// need no certificate of their own.
    pub fn start_tls(files: &ServerFiles) -> Redis {
        let port = free_port();
        let path = |path: &Path| path.to_str().expect("a UTF-8 path").to_owned();
        let args = vec![
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            path(&files.cert),
            "--tls-key-file".to_owned(),
            path(&files.key),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        Redis {
            port,
            child: spawn_redis(&args),
            scheme: "rediss",
            args,
        }
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://` when it speaks TLS.
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// Kills Redis at once (SIGKILL): no goodbye to any client.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a fresh, empty Redis on the same port.
    pub fn restart(&mut self) {
        self.child = spawn_redis(&self.args);
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

/// A port of 127.0.0.1 free now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `redis-server` with `args` (its port or ports) without
/// persistence and waits until it accepts connections.
fn spawn_redis(args: &[String]) -> Child {
    let mut child = Command::new("redis-server")
        .args(args)
        .args(["--bind", "127.0.0.1"])
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
