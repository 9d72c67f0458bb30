//! Tokio nodes of two shards on a real Redis: the shards share the node's
//! one link whether the backplane is set before `with_threads` or after
//! it. Real sockets on 127.0.0.1 and a `redis-server` of the test's own.

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::Running;

use serde_json::json;
use tether_core::{
    ConnectRequest, Handler, Identity, PublishError, Rejection, ServerConfig, async_trait,
};
use tether_redis::RedisBackplane;
use tether_testkit::bounded;
use tether_testkit::http::get;
use tether_testkit::redis::Redis;
use tether_testkit::ws::Ws;
use tether_tokio::{Server, ServerOptions};

const LIMIT: Duration = Duration::from_secs(30);

/// How many `/healthz` round trips a node may take to report its link up.
const LINK_UP_ATTEMPTS: usize = 10_000;

/// The token is the user id.
struct Dev;

#[async_trait]
impl Handler for Dev {
    async fn connect(&self, request: ConnectRequest) -> Result<Identity, Rejection> {
        Ok(Identity::user(request.token.as_str()))
    }

    fn authorize_api(&self, _authorization: Option<&str>) -> bool {
        false
    }
}

/// A node of two shards on `redis`, the backplane set before the shards
/// (`backplane_first`) or after them, with its link up.
fn start(redis: &Redis, backplane_first: bool) -> Running {
    let config = ServerConfig {
        shutdown_timeout: Duration::from_secs(1),
        ..ServerConfig::dev()
    };
    let backplane = RedisBackplane::new(&redis.url(), &config).expect("a Redis URL");
    let options = ServerOptions {
        config,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        handler: std::sync::Arc::new(Dev),
        seed: None,
    };
    let server = Server::bind(options).expect("a free port");
    let server = if backplane_first {
        server.with_backplane(backplane).with_threads(2)
    } else {
        server.with_threads(2).with_backplane(backplane)
    };
    let addr = server.local_addr().expect("an address");
    let handle = server.handle();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    let running = Running::spawn(addr, handle, runtime, async move {
        server.run().await.expect("the node runs to its end");
    });
    let up = (0..LINK_UP_ATTEMPTS).any(|_| get(addr, "/healthz").status == 200);
    assert!(up, "the node's link to Redis comes up");
    running
}

#[test]
fn shards_share_the_node_s_link_whichever_is_set_first() {
    bounded(LIMIT, || {
        let redis = Redis::start();
        let first = start(&redis, true);
        let second = start(&redis, false);
        // Consecutive connections sit on the node's two shards.
        let mut subscribers = [
            Ws::auth(first.addr, "ann"),
            Ws::auth(first.addr, "bob"),
            Ws::auth(second.addr, "cid"),
            Ws::auth(second.addr, "dee"),
        ];
        for ws in &mut subscribers {
            let subscribed = ws.subscribe("news");
            assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        for n in 1..=2u64 {
            let publisher = [&first, &second][n as usize - 1];
            let published: Result<u64, PublishError> =
                runtime.block_on(publisher.handle.publish("news", &n.to_string()));
            assert_eq!(published, Ok(n));
        }
        for ws in &mut subscribers {
            for n in 1..=2u64 {
                // Presence news of the other subscribers comes between.
                let message = std::iter::repeat_with(|| ws.recv())
                    .find(|message| message["type"] == "message")
                    .expect("a publication");
                assert_eq!(
                    (&message["offset"], &message["payload"]),
                    (&json!(n), &json!(n))
                );
            }
        }
    });
}
