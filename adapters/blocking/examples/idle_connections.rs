//! Measures what an idle connection costs the blocking server: resident
//! memory and threads per authenticated, subscribed WebSocket.
//!
//! ```sh
//! ulimit -n 20000
//! cargo run --release -p tether-blocking --example idle_connections -- 5000
//! ```
//!
//! The server runs in this process; the clients run in a child process (this
//! same program, started with `--clients`), so that only the server's
//! memory is counted. Each client authenticates and subscribes to a channel
//! of its own, then goes idle. `VmRSS` and `Threads` come from
//! `/proc/self/status` before the clients connect and after the last one is
//! subscribed; the process's CPU time is then watched while the clients stay
//! idle. Kernel socket buffers are not part of a process's RSS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tether_blocking::{Server, ServerOptions};
use tether_core::ServerConfig;
use tether_testkit::authorizer::TestAuthorizer;
use tungstenite::Message;

/// How long the connected clients are left idle while the server's CPU time
/// is watched.
const IDLE_WINDOW: Duration = Duration::from_secs(2);

/// The unit of CPU times in `/proc/self/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--clients") => {
            let addr: SocketAddr = args[2].parse().expect("address");
            let count: usize = args[3].parse().expect("count");
            run_clients(addr, count);
        }
        count => measure(count.map_or(1_000, |count| count.parse().expect("count"))),
    }
}

/// The server side: starts the node, lets the child connect `count`
/// clients, and reports the difference.
fn measure(count: usize) {
    let config = ServerConfig {
        // Long enough that the unanswered heartbeat of an idle client never
        // fires during the measurement.
        heartbeat_interval: Duration::from_secs(600),
        ..ServerConfig::dev()
    };
    let options = ServerOptions {
        config,
        ..ServerOptions::new("127.0.0.1:0".parse().unwrap(), Arc::new(TestAuthorizer))
    };
    let server = Server::bind(options).expect("bind");
    let addr = server.local_addr();
    let handle = server.handle();
    let running = std::thread::spawn(move || server.run());
    // One answered request: the accept and timer threads are up.
    let mut probe = TcpStream::connect(addr).expect("connect");
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
        .expect("probe");
    probe.read_to_end(&mut Vec::new()).expect("probe answer");

    let before = Status::read();
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(["--clients", &addr.to_string(), &count.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the clients");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .expect("read from the clients");
    assert_eq!(ready.trim(), "ready", "the clients failed");
    let after = Status::read();
    // Idle connections must cost no CPU: no polling, no spinning.
    std::thread::sleep(IDLE_WINDOW);
    let idle = Status::read();

    let per_connection_kib = (after.rss_kib - before.rss_kib) as f64 / count as f64;
    let per_connection_threads = (after.threads - before.threads) as f64 / count as f64;
    println!("connections:            {count}");
    println!(
        "server RSS:             {} KiB -> {} KiB",
        before.rss_kib, after.rss_kib
    );
    println!(
        "server threads:         {} -> {}",
        before.threads, after.threads
    );
    println!("RSS per connection:     {per_connection_kib:.1} KiB");
    println!("threads per connection: {per_connection_threads:.2}");
    println!(
        "server CPU while idle:  {} ms in {IDLE_WINDOW:?}",
        (idle.cpu_ticks - after.cpu_ticks) * 1000 / TICKS_PER_SECOND
    );

    drop(child.stdin.take());
    child.wait().expect("the clients exit");
    handle.shutdown();
    running.join().unwrap().expect("server run");
}

/// The child: opens `count` authenticated, subscribed connections, says
/// `ready`, and holds them until its standard input closes.
fn run_clients(addr: SocketAddr, count: usize) {
    let mut sockets = Vec::with_capacity(count);
    for index in 0..count {
        let stream = TcpStream::connect(addr).expect("connect");
        let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws"), stream).expect("upgrade");
        let auth = format!(r#"{{"type":"auth","token":"user{index}"}}"#);
        ws.send(Message::text(auth)).expect("auth");
        let subscribe = format!(r#"{{"type":"subscribe","channel":"idle-{index}","id":"s"}}"#);
        ws.send(Message::text(subscribe)).expect("subscribe");
        while !ws
            .read()
            .expect("read")
            .to_text()
            .is_ok_and(|text| text.contains("\"subscribed\""))
        {}
        sockets.push(ws);
    }
    println!("ready");
    std::io::stdout().flush().expect("stdout");
    // Holds the connections until the parent closes our standard input.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(sockets);
}

/// The figures of `/proc/self` that matter here.
struct Status {
    rss_kib: u64,
    threads: u64,
    /// User and system CPU time of the whole process.
    cpu_ticks: u64,
}

impl Status {
    fn read() -> Status {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.split_whitespace().next())
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
        };
        let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th fields of the whole line.
        let after_name = stat.rsplit_once(')').expect("stat format").1;
        let times: Vec<u64> = after_name
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|value| value.parse().expect("CPU time"))
            .collect();
        Status {
            rss_kib: field("VmRSS:"),
            threads: field("Threads:"),
            cpu_ticks: times.iter().sum(),
        }
    }
}
