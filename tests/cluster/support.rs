//! A cluster of three `tether serve --redis` processes on one Redis of the
//! test's own, one on each runtime (smol, blocking, tokio), and what the
//! tests do with its nodes and clients.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use tether_testkit::http::{Answer, post_api, post_publish};
use tether_testkit::process::Process;
use tether_testkit::redis::Redis;
use tether_testkit::tls::TestCa;
use tether_testkit::ws::Ws;

/// Every node's `presence_ttl`: a dead node's users leave within three
/// quarters of it.
pub const PRESENCE_TTL: Duration = Duration::from_secs(4);

/// The `tether` binary this package builds.
const TETHER: &str = env!("CARGO_BIN_EXE_tether");

/// The API key of every node.
pub const API_KEY: &str = "cluster-api-key-0123456789";

/// A node's config file, removed when dropped.
struct ConfigFile {
    path: PathBuf,
}

impl ConfigFile {
    /// Writes the settings of every node of a cluster: `presence_ttl`, a
    /// history long enough for every test, no rate limit in the way of a
    /// publisher that retries, and [`API_KEY`].
    fn write(presence_ttl: Duration, extra: &str) -> ConfigFile {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "tether-cluster-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let settings = format!(
            "presence_ttl = \"{}s\"\nhistory_size = 10000\nrate_limit = 100000\nrate_burst = 100000\napi_key = \"{API_KEY}\"\n{extra}",
            presence_ttl.as_secs()
        );
        fs::write(&path, settings).expect("the config file is written");
        ConfigFile { path }
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// One `tether serve --dev --redis` process.
pub struct Node {
    /// Where it listens.
    pub addr: SocketAddr,
    process: Process,
}

impl Node {
    /// Starts a node on `runtime` (`smol`, `blocking`, `tokio`) on a free port and
    /// waits for its log to say that its link to Redis is up.
    fn start(redis: &Redis, config: &ConfigFile, runtime: &str) -> Node {
        let node = Node::listening(redis, config, runtime);
        node.await_link_up();
        node
    }

    /// Starts a node on `runtime` on a free port and waits until it
    /// listens, whether or not its link to Redis comes up.
    fn listening(redis: &Redis, config: &ConfigFile, runtime: &str) -> Node {
        let url = redis.url();
        let config = config.path.to_str().expect("a UTF-8 temporary path");
        let process = Process::start(
            TETHER,
            &[
                "serve",
                "--dev",
                "--redis",
                &url,
                "--runtime",
                runtime,
                "--listen",
                "127.0.0.1:0",
                "--config",
                config,
            ],
        );
        let addr = process.listening_on();
        Node { addr, process }
    }

    /// Waits for the node's log to say that connecting to Redis failed;
    /// the line, which gives the reason.
    pub fn await_connection_failed(&self) -> String {
        self.process.wait_for_line("backplane connection failed")
    }

    /// Waits for the node's log to say that its link to Redis failed.
    pub fn await_link_failed(&self) {
        self.process.wait_for_line("backplane link failed");
    }

    /// Waits for the node's log to say that its link to Redis is up again.
    pub fn await_link_up(&self) {
        self.process.wait_for_line("backplane link up");
    }

    /// Stops the node with SIGTERM and checks that it exited 0 after its
    /// graceful shutdown.
    pub fn stop(&mut self) {
        self.process.signal("TERM");
        assert!(self.process.wait().success(), "a clean exit");
    }

    /// Kills the node with SIGKILL (no goodbye to its clients or to Redis)
    /// and checks that it died of it.
    pub fn kill(&mut self) {
        self.process.signal("KILL");
        assert_eq!(self.process.wait().signal(), Some(9), "killed by SIGKILL");
    }

    /// `POST /api/publish` of `payload` on `channel`, with the API key.
    pub fn api_publish(&self, channel: &str, payload: Value) -> Answer {
        let body = json!({"channel": channel, "payload": payload}).to_string();
        post_publish(self.addr, Some(&format!("Bearer {API_KEY}")), &body)
    }

    /// `POST path` (a method of the server API) with `body` and the API
    /// key: the status and the JSON body.
    pub fn api(&self, path: &str, body: Value) -> (u16, Value) {
        let key = format!("Bearer {API_KEY}");
        let answer = post_api(self.addr, path, Some(&key), &body.to_string());
        let json = serde_json::from_str(&answer.body)
            .unwrap_or_else(|_| panic!("a JSON answer from {path}: {answer:?}"));
        (answer.status, json)
    }

    /// [`Node::api_publish`], which must succeed; the offset it answers.
    pub fn api_publish_ok(&self, channel: &str, payload: Value) -> u64 {
        let answer = self.api_publish(channel, payload);
        assert_eq!(answer.status, 200, "{answer:?}");
        let body: Value = serde_json::from_str(&answer.body).expect("a JSON answer");
        body["offset"].as_u64().expect("an offset")
    }
}

/// Three nodes sharing one Redis: smol, blocking, tokio.
pub struct Cluster {
    /// The nodes; dropping them kills those still running.
    pub nodes: [Node; 3],
    /// Their Redis.
    pub redis: Redis,
    /// Kept until the nodes are gone.
    _config: ConfigFile,
}

impl Cluster {
    /// Starts Redis and three nodes with the short [`PRESENCE_TTL`], each
    /// with its link to Redis up.
    pub fn start() -> Cluster {
        Cluster::with_presence_ttl(PRESENCE_TTL)
    }

    /// [`Cluster::start`] with another `presence_ttl`.
    pub fn with_presence_ttl(presence_ttl: Duration) -> Cluster {
        Cluster::on(Redis::start(), presence_ttl, "", Node::start)
    }

    /// [`Cluster::start`] on a Redis speaking TLS only, whose certificate
    /// `ca` signed and every node trusts (`redis_ca_file`).
    pub fn with_tls(ca: &TestCa) -> Cluster {
        Cluster::on_tls(ca, ca, Node::start)
    }

    /// Three nodes on a Redis speaking TLS only, whose certificate
    /// `signer` signed, each trusting only `trusted` (`redis_ca_file`);
    /// `start` starts each node.
    fn on_tls(
        signer: &TestCa,
        trusted: &TestCa,
        start: fn(&Redis, &ConfigFile, &str) -> Node,
    ) -> Cluster {
        let redis = Redis::start_tls(&signer.server("redis"));
        let extra = format!(
            "redis_ca_file = {:?}\n",
            trusted.ca_file().display().to_string()
        );
        Cluster::on(redis, PRESENCE_TTL, &extra, start)
    }

    /// [`Cluster::on_tls`] with `trusted` another authority than the one
    /// that signed Redis's certificate: each node is started as soon as it
    /// listens, since its link never comes up.
    pub fn on_untrusted_tls(signer: &TestCa, trusted: &TestCa) -> Cluster {
        Cluster::on_tls(signer, trusted, Node::listening)
    }

    /// Three nodes on `redis`, with `extra` settings, each started by
    /// `start`.
    fn on(
        redis: Redis,
        presence_ttl: Duration,
        extra: &str,
        start: fn(&Redis, &ConfigFile, &str) -> Node,
    ) -> Cluster {
        let config = ConfigFile::write(presence_ttl, extra);
        let nodes = ["smol", "blocking", "tokio"].map(|runtime| start(&redis, &config, runtime));
        Cluster {
            nodes,
            redis,
            _config: config,
        }
    }
}

/// Two nodes of `threads` shards each sharing one Redis: smol, tokio.
pub struct ShardedPair {
    /// The nodes; dropping them kills those still running.
    pub nodes: [Node; 2],
    /// Their Redis.
    pub redis: Redis,
    /// Kept until the nodes are gone.
    _config: ConfigFile,
}

impl ShardedPair {
    /// Starts Redis and a smol and a tokio node of `threads` shards with
    /// the short [`PRESENCE_TTL`], each with its link to Redis up.
    pub fn start(threads: usize) -> ShardedPair {
        let redis = Redis::start();
        let config = ConfigFile::write(PRESENCE_TTL, &format!("threads = {threads}\n"));
        let nodes = ["smol", "tokio"].map(|runtime| Node::start(&redis, &config, runtime));
        ShardedPair {
            nodes,
            redis,
            _config: config,
        }
    }
}

/// One subscriber of `channel` on each node, with the `subscribed` answers.
pub fn subscribers(nodes: &[Node], channel: &str) -> (Vec<Ws>, Vec<Value>) {
    nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let mut ws = Ws::auth(node.addr, &format!("sub-{i}"));
            let (subscribed, _) = join(&mut ws, channel);
            (ws, subscribed)
        })
        .unzip()
}

/// Subscribes `ws` to `channel`: the `subscribed` answer and the users of
/// the presence snapshot that follows it.
pub fn join(ws: &mut Ws, channel: &str) -> (Value, Vec<String>) {
    ws.send_json(json!({"type": "subscribe", "channel": channel, "id": "sub"}));
    let subscribed = ws.recv_type("subscribed");
    assert_eq!(subscribed["id"], "sub", "{subscribed}");
    let snapshot = ws.recv_type("presence");
    (subscribed, users(&snapshot))
}

/// The users of a `presence` message, sorted.
fn users(presence: &Value) -> Vec<String> {
    let mut users: Vec<String> = presence["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users in {presence}"))
        .iter()
        .map(|user| user.as_str().expect("a user id").to_owned())
        .collect();
    users.sort();
    users
}

/// Asks for the users of `channel`; presence deltas and publications
/// before the answer are skipped.
pub fn presence(ws: &mut Ws, channel: &str) -> Vec<String> {
    ws.send_json(json!({"type": "presence", "channel": channel, "id": "who"}));
    users(&until(ws, |message| {
        message["type"] == "presence" && message["id"] == "who"
    }))
}

/// Publishes `payload` on `channel` with `id` from a connection that is
/// not subscribed, so the next message is the answer (`ack` or `error`),
/// which is returned.
pub fn publish(ws: &mut Ws, channel: &str, payload: Value, id: &str) -> Value {
    ws.send_json(json!({"type": "publish", "channel": channel, "payload": payload, "id": id}));
    let answer = ws.recv();
    assert_eq!(answer["id"], id, "{answer}");
    answer
}

/// The next message for which `wanted` holds; the messages before it are
/// skipped.
pub fn until(ws: &mut Ws, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let message = ws.recv();
        if wanted(&message) {
            return message;
        }
    }
}

/// The next publication, skipping presence news, which may arrive between
/// publications: deltas (`join`, `leave`) and the unrequested snapshot a
/// node sends when its backplane link comes back (no `id`); anything else
/// fails the test.
pub fn next_publication(ws: &mut Ws) -> Value {
    loop {
        let message = ws.recv();
        match message["type"].as_str() {
            Some("message") => return message,
            Some("join" | "leave") => {}
            Some("presence") if message.get("id").is_none() => {}
            _ => panic!("expected a publication, got {message}"),
        }
    }
}

/// The next `count` publications ([`next_publication`]).
pub fn publications(ws: &mut Ws, count: usize) -> Vec<Value> {
    (0..count).map(|_| next_publication(ws)).collect()
}

/// Publications up to the one with offset `last`, which must come.
pub fn publications_through(ws: &mut Ws, last: u64) -> Vec<Value> {
    let mut received = Vec::new();
    loop {
        let message = next_publication(ws);
        let offset = message["offset"].as_u64().expect("an offset");
        received.push(message);
        if offset >= last {
            return received;
        }
    }
}

/// The offsets of publications.
pub fn offsets(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|message| message["offset"].as_u64().expect("an offset"))
        .collect()
}
