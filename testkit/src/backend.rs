//! A test's application backend: a real HTTP server on 127.0.0.1 (`tiny_http`)
//! whose answer to each JSON `POST` the test gives as a function of the
//! path and the body, and which may hold a request unanswered until the
//! test releases it, to play a slow backend without a sleep.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;
use tiny_http::{Header, Request, Response, Server};

/// The longest a test waits for a request to reach the backend.
pub const BACKEND_LIMIT: Duration = Duration::from_secs(10);

/// How the backend answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// This status and body (sent as `application/json`, whatever it is).
    Answer(u16, String),
    /// No answer until [`TestBackend::release`].
    Hold,
}

impl Reply {
    /// `200` with `body`.
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply::Answer(200, body.into())
    }
}

/// One request the backend received.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    /// Its path.
    pub path: String,
    /// Its body, as JSON (`null` when it is not JSON).
    pub body: Value,
    /// Its header fields, names in lower case.
    pub headers: Vec<(String, String)>,
}

/// A running backend; dropping it stops it (held requests end unanswered).
pub struct TestBackend {
    addr: SocketAddr,
    server: Arc<Server>,
    held: Arc<Mutex<Vec<Request>>>,
    holding: mpsc::Receiver<Received>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl TestBackend {
    /// Starts a backend on a free port of 127.0.0.1 answering each request
    /// with `answer(received)`, on a thread of its own.
    pub fn start(answer: impl Fn(&Received) -> Reply + Send + 'static) -> TestBackend {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("the backend binds"));
        let addr = server
            .server_addr()
            .to_ip()
            .expect("a backend on an IP address");
        let held = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (hold, holding) = mpsc::channel();
        let (serving, keep, log) = (server.clone(), held.clone(), received.clone());
        thread::Builder::new()
            .name(format!("backend {addr}"))
            .spawn(move || {
                for mut request in serving.incoming_requests() {
                    let seen = read(&mut request);
                    log.lock().expect("an unpoisoned lock").push(seen.clone());
                    match answer(&seen) {
                        Reply::Answer(status, body) => respond(request, status, body),
                        Reply::Hold => {
                            keep.lock().expect("an unpoisoned lock").push(request);
                            let _ = hold.send(seen);
                        }
                    }
                }
            })
            .expect("a thread for the backend");
        TestBackend {
            addr,
            server,
            held,
            holding,
            received,
        }
    }

    /// The URL of `path` on this backend.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request the backend holds, within [`BACKEND_LIMIT`].
    pub fn next_held(&self) -> Received {
        self.holding
            .recv_timeout(BACKEND_LIMIT)
            .expect("a request reaches the backend and is held")
    }

    /// Answers every held request with `status` and `body`, giving how
    /// many there were.
    pub fn release(&self, status: u16, body: &str) -> usize {
        let held: Vec<Request> = self
            .held
            .lock()
            .expect("an unpoisoned lock")
            .drain(..)
            .collect();
        let count = held.len();
        for request in held {
            respond(request, status, body.to_owned());
        }
        count
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("an unpoisoned lock").clone()
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn read(request: &mut Request) -> Received {
    let mut text = String::new();
    let _ = request.as_reader().read_to_string(&mut text);
    Received {
        path: request.url().to_owned(),
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        headers: request
            .headers()
            .iter()
            .map(|header| {
                (
                    header.field.as_str().as_str().to_ascii_lowercase(),
                    header.value.as_str().to_owned(),
                )
            })
            .collect(),
    }
}

fn respond(request: Request, status: u16, body: String) {
    let json = Header::from_bytes("content-type", "application/json").expect("a header");
    let response = Response::from_string(body)
        .with_status_code(status)
        .with_header(json);
    // The node may have given up on the request (its timeout): nothing to
    // answer then.
    let _ = request.respond(response);
}
