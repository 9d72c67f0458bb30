//! The node inside an axum application, over real sockets on 127.0.0.1:
//! the application's own routes beside the mount on one port, a client
//! authenticated by the application's async lookup, a publication made
//! through the handle from a REST route, permessage-deflate negotiated
//! through the mount, and upgrade refusals with the statuses of the node's
//! own parser.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::Running;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde_json::json;
use tether_core::{ConnectRequest, Handler, Identity, Rejection, ServerConfig, async_trait};
use tether_testkit::bounded;
use tether_testkit::deflate::DeflateClient;
use tether_testkit::http::{Answer, send};
use tether_testkit::ws::{Ws, shard_of};
use tether_tokio::{Handle, Server, ServerOptions};
use tokio::sync::RwLock;

const LIMIT: Duration = Duration::from_secs(30);

/// The application's users, looked up by token as a database would be:
/// asynchronously.
struct Directory {
    users: RwLock<HashMap<String, String>>,
}

#[async_trait]
impl Handler for Directory {
    async fn connect(&self, request: ConnectRequest) -> Result<Identity, Rejection> {
        let users = self.users.read().await;
        match users.get(&request.token) {
            Some(user) => Ok(Identity::user(user.as_str())),
            None => Err(Rejection::forbidden()),
        }
    }

    fn authorize_api(&self, _authorization: Option<&str>) -> bool {
        false
    }
}

fn directory() -> Arc<Directory> {
    let users = HashMap::from([("token-of-ann".to_owned(), "ann".to_owned())]);
    Arc::new(Directory {
        users: RwLock::new(users),
    })
}

fn config() -> ServerConfig {
    ServerConfig {
        allowed_origins: vec!["https://app.example".to_owned()],
        shutdown_timeout: Duration::from_secs(1),
        ..ServerConfig::dev()
    }
}

fn options(config: ServerConfig) -> ServerOptions {
    ServerOptions {
        config,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        handler: directory(),
        seed: None,
    }
}

/// Publishes the body of `POST /announce` on `news` through the handle.
async fn announce(State(handle): State<Handle>, text: String) -> (axum::http::StatusCode, String) {
    match handle
        .publish("news", &json!({ "text": text }).to_string())
        .await
    {
        Ok(offset) => (axum::http::StatusCode::OK, offset.to_string()),
        Err(error) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            error.to_string(),
        ),
    }
}

/// An axum application with routes of its own and the node's, on a port
/// of its own; the node has no listener.
fn application() -> Running {
    application_on(1)
}

/// [`application`] with a node of `threads` shards.
fn application_on(threads: usize) -> Running {
    let node = Server::without_listener(options(config()))
        .expect("a valid config")
        .with_threads(threads);
    let handle = node.handle();
    let app = Router::new()
        .route("/hello", get(|| async { "hello from the application" }))
        .route("/announce", post(announce))
        .with_state(handle.clone())
        .merge(handle.routes().with_metrics().with_client().into_router());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let addr = listener.local_addr().expect("its address");
    run(addr, handle, async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("on the runtime");
        tokio::select! {
            served = axum::serve(listener, app) => served.expect("the application serves"),
            ran = node.run() => ran.expect("the node runs"),
        }
    })
}

/// A node with a listener of its own, the same settings as the
/// application's.
fn standalone() -> Running {
    let node = Server::bind(options(config())).expect("a node on a free port");
    let addr = node.local_addr().expect("its address");
    let handle = node.handle();
    run(addr, handle, async move {
        node.run().await.expect("the node runs");
    })
}

/// Runs `serve` on a current-thread runtime of its own until it returns.
fn run(
    addr: SocketAddr,
    handle: Handle,
    serve: impl Future<Output = ()> + Send + 'static,
) -> Running {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    Running::spawn(addr, handle, runtime, serve)
}

fn request(addr: SocketAddr, head: &str) -> Answer {
    send(
        addr,
        &format!("{head}Host: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

/// `POST /announce` of `text` to the application at `addr`.
fn post_announce(addr: SocketAddr, text: &str) -> Answer {
    send(
        addr,
        &format!(
            "POST /announce HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        ),
    )
}

#[test]
fn the_applications_routes_and_the_nodes_share_one_port() {
    bounded(LIMIT, || {
        let app = application();
        let hello = request(app.addr, "GET /hello HTTP/1.1\r\n");
        assert_eq!(
            (hello.status, hello.body.as_str()),
            (200, "hello from the application")
        );
        let metrics = request(app.addr, "GET /metrics HTTP/1.1\r\n");
        assert_eq!(metrics.status, 200);
        assert!(
            metrics.body.contains("\ntether_connections 0\n"),
            "{}",
            metrics.body
        );
        let script = request(app.addr, "GET /tether.js HTTP/1.1\r\n");
        assert_eq!(script.status, 200);
        assert!(
            script.head.to_ascii_lowercase().contains("text/javascript"),
            "{}",
            script.head
        );
        assert_eq!(script.body, tether_web::CLIENT_SCRIPT);
    });
}

#[test]
fn a_client_authenticated_by_the_applications_lookup_gets_a_publication_from_a_rest_route() {
    bounded(LIMIT, || {
        let app = application();
        let (mut ann, ack) = Ws::auth_with(app.addr, "token-of-ann");
        assert_eq!(ack["user"], "ann", "{ack}");
        ann.subscribe("news");
        let announced = post_announce(app.addr, "hello");
        assert_eq!((announced.status, announced.body.as_str()), (200, "1"));
        let message = ann.recv_type("message");
        assert_eq!(message["channel"], "news");
        assert_eq!(message["payload"], json!({"text": "hello"}));
        assert_eq!(message["offset"], 1);
        assert!(message.get("sender").is_none(), "{message}");
        let metrics = request(app.addr, "GET /metrics HTTP/1.1\r\n");
        assert!(
            metrics.body.contains("\ntether_connections 1\n"),
            "{}",
            metrics.body
        );

        let (mut stranger, _) = Ws::handshake(app.addr, "/ws", &[]).expect("the upgrade");
        stranger.send_json(json!({"type": "auth", "token": "unknown"}));
        assert_eq!(stranger.expect_close(), (4003, "forbidden".to_owned()));
    });
}

#[test]
fn a_client_offering_permessage_deflate_through_the_mount_gets_publications_compressed() {
    bounded(LIMIT, || {
        let app = application();
        let mut ann = DeflateClient::open(app.addr);
        ann.send(&json!({"type": "auth", "token": "token-of-ann"}));
        assert_eq!(ann.recv_type("auth_ack").0["user"], "ann");
        ann.send(&json!({"type": "subscribe", "channel": "news", "id": "s"}));
        ann.recv_type("subscribed");
        // Above the default compression_min_size (128 bytes).
        let text = "The station reopens on Monday: trains to the coast leave at six, \
                    at half past seven and at nine, and the last one back is at eleven.";
        assert_eq!(post_announce(app.addr, text).status, 200);
        let (message, compressed) = ann.recv_type("message");
        assert_eq!(message["payload"], json!({ "text": text }));
        assert!(compressed, "the publication arrived uncompressed");
    });
}

#[test]
fn a_bad_upgrade_gets_the_status_the_nodes_own_parser_gives() {
    bounded(LIMIT, || {
        let app = application();
        let node = standalone();
        let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        let cases = [
            (
                format!("GET /ws HTTP/1.1\r\n{upgrade}Sec-WebSocket-Version: 8\r\n"),
                426,
            ),
            (
                format!(
                    "GET /ws HTTP/1.1\r\n{upgrade}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n"
                ),
                400,
            ),
            (
                format!(
                    "GET /ws HTTP/1.1\r\n{upgrade}Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n"
                ),
                403,
            ),
            (
                format!("POST /ws HTTP/1.1\r\n{upgrade}Sec-WebSocket-Version: 13\r\n"),
                405,
            ),
            ("GET /ws HTTP/1.1\r\n".to_owned(), 426),
        ];
        for (head, status) in cases {
            let mounted = request(app.addr, &head);
            let own = request(node.addr, &head);
            assert_eq!(own.status, status, "the node's own parser: {head}");
            assert_eq!(mounted.status, status, "the mount: {head}");
            assert_eq!(mounted.body, own.body, "{head}");
            // The fields a refusal carries (426: the version; 405: Allow).
            for field in ["sec-websocket-version: 13", "allow: get"] {
                let named = |answer: &Answer| answer.head.to_ascii_lowercase().contains(field);
                assert_eq!(named(&mounted), named(&own), "{field} after {head}");
            }
        }
        let (_ws, response) = Ws::handshake(app.addr, "/ws", &[("Origin", "https://app.example")])
            .expect("an allowed origin upgrades");
        assert_eq!(response.status(), 101);
    });
}

#[test]
fn while_the_node_drains_a_mounted_websocket_gets_1001() {
    bounded(LIMIT, || {
        let app = application();
        let (mut ann, _) = Ws::auth_with(app.addr, "token-of-ann");
        app.handle.shutdown();
        assert_eq!(ann.expect_close(), (1001, "going away".to_owned()));
    });
}

#[test]
fn a_node_of_two_shards_spreads_mounted_websockets_over_both() {
    bounded(LIMIT, || {
        let app = application_on(2);
        let (mut first, first_ack) = Ws::auth_with(app.addr, "token-of-ann");
        let (mut second, second_ack) = Ws::auth_with(app.addr, "token-of-ann");
        assert_ne!(shard_of(&first_ack), shard_of(&second_ack));
        first.subscribe("news");
        second.subscribe("news");
        let announced = send(
            app.addr,
            &format!(
                "POST /announce HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
                app.addr
            ),
        );
        assert_eq!((announced.status, announced.body.as_str()), (200, "1"));
        for ws in [&mut first, &mut second] {
            let message = ws.recv_type("message");
            assert_eq!(message["payload"], json!({"text": "hello"}));
            assert_eq!(message["offset"], 1);
        }
        let metrics = request(app.addr, "GET /metrics HTTP/1.1\r\n");
        assert!(
            metrics.body.contains("\ntether_connections 2\n"),
            "{}",
            metrics.body
        );
    });
}
