//! Starting a server node on a chosen runtime, and the bounds every test
//! runs within.
//!
//! A test is a function of a [`Runtime`]; `runtime_tests!` (in `main.rs`)
//! turns it into one `#[test]` per runtime it lists, each run through
//! [`tether_testkit::bounded`] within [`TEST_LIMIT`]. A runtime joins the suite with a variant of [`Runtime`], its
//! arm in [`Runtime::start_at`] and [`Runtime::name`], a [`Control`] impl for
//! its handle, and its arm in `runtime_tests!`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ChildStdin;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tether::auth::{Authenticator, JwtVerifier, NodeAuthorizer};
use tether::secret::Redacted;
use tether_core::{
    ChannelPattern, Handler, Namespace, NodeOptions, PublishError, Rule, ServerConfig,
};
use tether_testkit::process::Process;
use tether_tls::ServerTls;

/// The most any one test may take; they normally take milliseconds.
pub const TEST_LIMIT: Duration = Duration::from_secs(30);

/// How long a node may take to return from `run` once it has been told to
/// stop and its clients have answered.
pub const JOIN_LIMIT: Duration = Duration::from_secs(5);

/// The `tether` binary this package builds, for
/// [`tether_testkit::process::Process`].
pub const TETHER: &str = env!("CARGO_BIN_EXE_tether");

/// The API key of every test node.
pub const API_KEY: &str = "e2e-api-key-0123456789";

/// The JWT secret of the nodes started with [`jwt_auth`].
pub const JWT_SECRET: &str = "e2e-jwt-secret-at-least-32-bytes-long";

/// A runtime that drives the core as a server node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// `tether-smol`: one thread, an async task per connection.
    Smol,
    /// `tether-smol` with `threads = 2`: two shards, connections handed
    /// to them in turn (the first to shard 0).
    Smol2,
    /// `tether-blocking`: a reader and a writer thread per connection.
    Blocking,
    /// `tether-tokio`: a task per connection on a multi-threaded runtime.
    Tokio,
    /// `tether-tokio` with `threads = 2`: two shards, connections handed
    /// to them in turn (the first to shard 0).
    Tokio2,
    /// The core's `serve` example (`core/examples/serve.rs`) as a child
    /// process: the reference a new adapter is written from. It serves
    /// `ServerConfig::dev()` with development tokens (every token is
    /// its user id) and no API key, and shuts down when its standard input
    /// closes; it cannot publish from the application. The suite's smoke
    /// subset runs on it, tests that start the node with [`config`] and
    /// [`dev_auth`] and never call [`TestServer::publish`].
    Example,
}

/// The application of a node under test, shared across threads.
pub type SharedHandler = Arc<dyn Handler>;

impl Runtime {
    /// The name the `tether` binary's `--runtime` flag takes.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Smol | Runtime::Smol2 => "smol",
            Runtime::Blocking => "blocking",
            Runtime::Tokio | Runtime::Tokio2 => "tokio",
            Runtime::Example => "example",
        }
    }

    /// The arguments of `tether serve` in dev mode on this runtime, on a
    /// free port of 127.0.0.1.
    pub fn dev_binary_args(self) -> [&'static str; 6] {
        [
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--runtime",
            self.name(),
        ]
    }

    /// Runs `tether serve` on this runtime with the config file `config`
    /// (and `--dev` when `dev`), on a free port of 127.0.0.1.
    pub fn binary_with_config(self, config: &Path, dev: bool) -> Process {
        let config = config.to_str().expect("a UTF-8 path");
        let mut args = vec!["serve"];
        if dev {
            args.push("--dev");
        }
        args.extend(["--config", config, "--listen", "127.0.0.1:0"]);
        args.extend(["--runtime", self.name()]);
        Process::start(TETHER, &args)
    }

    /// Starts a node on a free port of 127.0.0.1.
    pub fn start(self, config: ServerConfig, handler: SharedHandler) -> TestServer {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        self.start_at(any_port, config, handler)
    }

    /// Starts a node listening on `listen`, on a thread of its own.
    pub fn start_at(
        self,
        listen: SocketAddr,
        config: ServerConfig,
        handler: SharedHandler,
    ) -> TestServer {
        self.start_on(listen, config, handler, None)
    }

    /// Starts a node speaking TLS with `tls` on a free port of 127.0.0.1.
    pub fn start_tls(
        self,
        config: ServerConfig,
        handler: SharedHandler,
        tls: ServerTls,
    ) -> TestServer {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        self.start_on(any_port, config, handler, Some(tls))
    }

    fn start_on(
        self,
        listen: SocketAddr,
        config: ServerConfig,
        handler: SharedHandler,
        tls: Option<ServerTls>,
    ) -> TestServer {
        match self {
            Runtime::Smol | Runtime::Smol2 => {
                let threads = if self == Runtime::Smol2 { 2 } else { 1 };
                let mut server = tether_smol::Server::bind(NodeOptions {
                    config,
                    ..NodeOptions::new(listen, handler)
                })
                .expect("the smol node binds")
                .with_threads(threads);
                if let Some(tls) = tls {
                    server = server.with_tls(tls);
                }
                let addr = server.local_addr().expect("a bound address");
                let handle = server.handle();
                TestServer::spawn(addr, Box::new(handle), move || {
                    tether_smol::block_on(server.run())
                })
            }
            Runtime::Blocking => {
                let mut server = tether_blocking::Server::bind(NodeOptions {
                    config,
                    ..NodeOptions::new(listen, handler)
                })
                .expect("the blocking node binds");
                if let Some(tls) = tls {
                    server = server.with_tls(tls);
                }
                let addr = server.local_addr();
                let handle = server.handle();
                TestServer::spawn(addr, Box::new(handle), move || server.run())
            }
            Runtime::Tokio | Runtime::Tokio2 => {
                let threads = if self == Runtime::Tokio2 { 2 } else { 1 };
                let mut server = tether_tokio::Server::bind(NodeOptions {
                    config,
                    ..NodeOptions::new(listen, handler)
                })
                .expect("the tokio node binds")
                .with_threads(threads);
                if let Some(tls) = tls {
                    server = server.with_tls(tls);
                }
                let addr = server.local_addr().expect("a bound address");
                let handle = server.handle();
                TestServer::spawn(addr, Box::new(handle), move || {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .enable_all()
                        .build()?;
                    let served = runtime.block_on(server.run());
                    runtime.shutdown_background();
                    served
                })
            }
            Runtime::Example => {
                assert!(tls.is_none(), "the serve example speaks no TLS");
                assert!(
                    config == self::config(),
                    "the serve example runs on its own settings: list for it only tests \
                     that start the node with config()"
                );
                let binary = example_binary();
                let binary = binary.to_str().expect("a UTF-8 path");
                let (mut process, input) =
                    Process::start_with_input(binary, &[&listen.to_string()]);
                let addr = process.listening_on();
                let (stop, stopping) = mpsc::channel();
                let control = ExampleControl {
                    input: Mutex::new(Some(input)),
                    stop: Mutex::new(Some(stop)),
                };
                TestServer::spawn(addr, Box::new(control), move || {
                    // The wait for the exit starts with the shutdown, so
                    // that it is bounded by the shutdown's own limits.
                    let _ = stopping.recv();
                    match process.wait() {
                        status if status.success() => Ok(()),
                        status => Err(io::Error::other(format!("the example ended: {status}"))),
                    }
                })
            }
        }
    }
}

/// The `serve` example's binary, which `cargo test --workspace` builds next
/// to the test binaries (`target/<profile>/examples`). A run of this suite
/// alone builds it first: `cargo build -p tether-core --example serve`.
fn example_binary() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test binary>");
    let binary = profile_dir
        .join("examples")
        .join(format!("serve{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p tether-core --example serve`",
        binary.display()
    );
    binary
}

/// What a test does to a running node through its embedding API, whatever
/// the runtime.
pub trait Control: Send + Sync {
    /// Publishes `payload` (JSON text) on `channel` as the HTTP API does,
    /// giving the offset.
    fn publish(&self, channel: &str, payload: &str) -> Result<u64, PublishError>;

    /// Starts the graceful shutdown.
    fn shutdown(&self);
}

impl Control for tether_smol::Handle {
    fn publish(&self, channel: &str, payload: &str) -> Result<u64, PublishError> {
        smol::block_on(tether_smol::Handle::publish(self, channel, payload))
    }

    fn shutdown(&self) {
        tether_smol::Handle::shutdown(self);
    }
}

impl Control for tether_blocking::Handle {
    fn publish(&self, channel: &str, payload: &str) -> Result<u64, PublishError> {
        tether_blocking::Handle::publish(self, channel, payload)
    }

    fn shutdown(&self) {
        tether_blocking::Handle::shutdown(self);
    }
}

impl Control for tether_tokio::Handle {
    fn publish(&self, channel: &str, payload: &str) -> Result<u64, PublishError> {
        futures_lite::future::block_on(tether_tokio::Handle::publish(self, channel, payload))
    }

    fn shutdown(&self) {
        tether_tokio::Handle::shutdown(self);
    }
}

/// The `serve` example's controls: closing its standard input starts its
/// graceful shutdown.
struct ExampleControl {
    input: Mutex<Option<ChildStdin>>,
    /// Tells the thread that waits for the process that the shutdown began.
    stop: Mutex<Option<mpsc::Sender<()>>>,
}

impl Control for ExampleControl {
    fn publish(&self, _channel: &str, _payload: &str) -> Result<u64, PublishError> {
        panic!(
            "the serve example cannot publish from the application: do not list this test for it"
        )
    }

    fn shutdown(&self) {
        drop(self.input.lock().expect("an unpoisoned lock").take());
        drop(self.stop.lock().expect("an unpoisoned lock").take());
    }
}

/// A node running on a thread of its own. Dropping it starts the node's
/// shutdown without waiting for it.
pub struct TestServer {
    /// The address the node listens on.
    pub addr: SocketAddr,
    control: Box<dyn Control>,
    /// Locked only by `join`; the lock makes the server shareable between
    /// a test's threads.
    stopped: Mutex<mpsc::Receiver<io::Result<()>>>,
}

impl TestServer {
    /// Runs `run` (the node's `run`) on a new thread and reports its result
    /// to [`TestServer::join`].
    fn spawn(
        addr: SocketAddr,
        control: Box<dyn Control>,
        run: impl FnOnce() -> io::Result<()> + Send + 'static,
    ) -> TestServer {
        let (report, stopped) = mpsc::channel();
        thread::Builder::new()
            .name(format!("node {addr}"))
            .spawn(move || {
                let _ = report.send(run());
            })
            .expect("a thread for the node");
        TestServer {
            addr,
            control,
            stopped: Mutex::new(stopped),
        }
    }

    /// Publishes through the embedding API, as the HTTP API does (no
    /// sender); panics if the node refuses.
    pub fn publish(&self, channel: &str, payload: &str) -> u64 {
        self.control
            .publish(channel, payload)
            .unwrap_or_else(|error| panic!("publish on {channel} refused: {error}"))
    }

    /// Starts the graceful shutdown.
    pub fn shutdown(&self) {
        self.control.shutdown();
    }

    /// Waits, at most [`JOIN_LIMIT`], for the node's `run` to return, and
    /// gives what it returned.
    pub fn join(self) -> io::Result<()> {
        let stopped = self.stopped.lock().expect("an unpoisoned lock");
        match stopped.recv_timeout(JOIN_LIMIT) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the node's run did not return within {JOIN_LIMIT:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the node's thread panicked"),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.control.shutdown();
    }
}

/// The protocol's defaults with the waits a test may sit through made
/// short: a test that needs a deadline to fire sets that one lower still.
/// The heartbeat stays long enough that a client busy elsewhere in a test
/// is not terminated for missing a Ping.
pub fn config() -> ServerConfig {
    ServerConfig {
        heartbeat_interval: Duration::from_secs(5),
        auth_timeout: Duration::from_secs(5),
        close_timeout: Duration::from_secs(1),
        shutdown_timeout: Duration::from_secs(2),
        handshake_timeout: Duration::from_secs(5),
        ..ServerConfig::dev()
    }
}

/// [`config`] with the `app:` channels' subscribe and publish left to the
/// application (rule `backend`, PROTOCOL.md section 13).
pub fn backend_config() -> ServerConfig {
    let app = Namespace {
        subscribe: Rule::Backend,
        publish: Rule::Backend,
        ..Namespace::open(ChannelPattern::new("app:*").expect("a pattern"))
    };
    let mut config = config();
    config.namespaces.insert(0, app);
    config
}

/// The binary's authorizer in dev mode (the token is the user id), with
/// [`API_KEY`] for the HTTP API.
pub fn dev_auth() -> Arc<NodeAuthorizer> {
    Arc::new(NodeAuthorizer::new(
        Authenticator::Dev,
        Some(Redacted::new(API_KEY.to_owned())),
    ))
}

/// The binary's authorizer checking HS256 JWTs signed with [`JWT_SECRET`].
pub fn jwt_auth() -> Arc<NodeAuthorizer> {
    let verifier = JwtVerifier::new(&Redacted::new(JWT_SECRET.to_owned()));
    Arc::new(NodeAuthorizer::new(
        Authenticator::Jwt(Box::new(verifier)),
        Some(Redacted::new(API_KEY.to_owned())),
    ))
}

/// A directory of a test's own (config and key files), removed when
/// dropped.
pub struct TestDir(PathBuf);

impl TestDir {
    /// Creates the directory, named after `name` and this process.
    pub fn new(name: &str) -> TestDir {
        let path = std::env::temp_dir().join(format!("tether-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("a test directory");
        TestDir(path)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whole seconds since the Unix epoch, the unit of a JWT's `exp`.
pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

/// Milliseconds since the Unix epoch, as the node's authorizer reads them.
pub fn unix_now_ms() -> u64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970");
    u64::try_from(elapsed.as_millis()).expect("milliseconds that fit")
}

/// An HS256 JWT for `sub` expiring at `exp` (Unix seconds), signed with
/// `secret`.
pub fn mint_jwt(secret: &str, sub: &str, exp: u64) -> String {
    sign_jwt(secret, &json!({ "sub": sub, "exp": exp }))
}

/// An HS256 JWT carrying `claims`, signed with `secret`.
pub fn sign_jwt(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("a token")
}
