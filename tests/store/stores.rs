//! The three stores behind [`Store`]: the node's own, the simulator's
//! model and Redis.

use std::task::Context;
use std::thread;
use std::time::Duration;

use futures_lite::{Stream, future};
use smol::channel::{Receiver, Sender};
use tether_core::internals::MemoryStore;
use tether_core::{Backplane as _, Instant, ServerConfig, StoreEvent, StoreRequest};
use tether_redis::RedisBackplane;
use tether_sim::backplane::{Backplane, Delivery};
use tether_testkit::redis::Redis as RedisServer;

use crate::Store;

/// The most any one case may take on any store.
pub const TEST_LIMIT: Duration = Duration::from_secs(30);

/// How long a case waits for any one event of Redis.
const PATIENCE: Duration = Duration::from_secs(10);

/// The name of the one node that uses the store.
const NODE: &str = "n1";

/// The in-memory store of a node without a backplane.
pub struct Memory(MemoryStore);

impl Store for Memory {
    fn start(config: &ServerConfig) -> Self {
        Memory(MemoryStore::new(config, NODE))
    }

    fn handle(&mut self, now: Instant, request: StoreRequest) {
        self.0.handle_request(now, request);
    }

    fn next_event(&mut self) -> StoreEvent {
        self.0.poll_event().expect("an event of the memory store")
    }
}

/// The simulator's model of the Redis backplane, reached by one world
/// node over link 0; it gets the messages of the topics it follows.
pub struct Model {
    store: Backplane,
    events: Vec<StoreEvent>,
}

impl Store for Model {
    fn start(config: &ServerConfig) -> Self {
        Model {
            store: Backplane::new(config),
            events: Vec::new(),
        }
    }

    fn handle(&mut self, now: Instant, request: StoreRequest) {
        for delivery in self.store.handle(now, NODE, 0, request) {
            match delivery {
                Delivery::Reply(event) => self.events.push(event),
                Delivery::Topic(channel, event) => {
                    if self.store.followers(&channel).contains(&0) {
                        self.events.push(event);
                    }
                }
                Delivery::Everyone(event) => self.events.push(event),
            }
        }
    }

    fn next_event(&mut self) -> StoreEvent {
        assert!(!self.events.is_empty(), "no event of the model");
        self.events.remove(0)
    }
}

/// The Redis backplane over a `redis-server` of the case's own, its task
/// running on a thread of its own.
pub struct Redis {
    requests: Sender<StoreRequest>,
    events: Receiver<StoreEvent>,
    stop: Sender<()>,
    task: Option<thread::JoinHandle<()>>,
    /// Outlives the task, which is stopped first.
    _server: RedisServer,
}

impl Store for Redis {
    fn start(config: &ServerConfig) -> Self {
        let server = RedisServer::start();
        let backplane = Box::new(RedisBackplane::new(&server.url(), config).expect("a URL"));
        let (requests, requests_rx) = smol::channel::unbounded();
        let (events_tx, events) = smol::channel::unbounded();
        let (stop, stopped) = smol::channel::bounded(1);
        let mut requests_rx = Box::pin(requests_rx);
        let source = move |cx: &mut Context<'_>| requests_rx.as_mut().poll_next(cx);
        let sink = move |event| {
            let _ = events_tx.try_send(event);
        };
        let task = thread::spawn(move || {
            let task = backplane.run(NODE, Box::new(source), Box::new(sink));
            smol::block_on(future::or(task, async {
                let _ = stopped.recv().await;
            }));
        });
        let mut redis = Redis {
            requests,
            events,
            stop,
            task: Some(task),
            _server: server,
        };
        redis.handle(Instant::ZERO, StoreRequest::Connect);
        assert!(matches!(redis.next_event(), StoreEvent::Up));
        redis
    }

    fn handle(&mut self, _: Instant, request: StoreRequest) {
        self.requests
            .send_blocking(request)
            .expect("the backplane task runs");
    }

    fn next_event(&mut self) -> StoreEvent {
        smol::block_on(future::or(
            async { Some(self.events.recv().await.expect("the task runs")) },
            async {
                smol::Timer::after(PATIENCE).await;
                None
            },
        ))
        .unwrap_or_else(|| panic!("no event of Redis within {PATIENCE:?}"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.stop.try_send(());
        if let Some(task) = self.task.take() {
            let _ = task.join();
        }
    }
}
