//! A chat inside an axum application: the application's page, its own
//! login and a REST route that publishes, and the chat on `/ws`, one port.
//!
//! ```sh
//! cargo run -p tether-tokio --features axum --example axum_chat -- 127.0.0.1:8080
//! # open http://127.0.0.1:8080/ in two browser tabs, then:
//! curl -d 'the server restarts at noon' http://127.0.0.1:8080/announce
//! ```
//!
//! `POST /login` is the application's own sign-in: it keeps a session per
//! name and answers its token. The node asks the application's
//! [`Handler`] who a token proves, here by looking the session up (an
//! async lookup, as a database's would be). `POST /announce` publishes
//! through the node's handle, without a sender. The browser client is the
//! node's (`/tether.js`).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, post};
use tether_core::{
    ChannelPattern, ConnectRequest, Handler, Identity, Namespace, Rejection, ServerConfig,
    async_trait,
};
use tether_tokio::{Handle, Server, ServerOptions};
use tokio::sync::RwLock;

/// The chat's one channel.
const ROOM: &str = "chat";

/// The application's sessions: token to user name.
#[derive(Default)]
struct Sessions {
    users: RwLock<HashMap<String, String>>,
    keys: RandomState,
}

impl Sessions {
    /// Opens a session for `name`; gives its token.
    async fn open(&self, name: &str) -> String {
        let mut users = self.users.write().await;
        let token = format!("{:016x}", self.keys.hash_one((name, users.len())));
        users.insert(token.clone(), name.to_owned());
        token
    }
}

#[async_trait]
impl Handler for Sessions {
    /// Who a token proves: the user of its session.
    async fn connect(&self, request: ConnectRequest) -> Result<Identity, Rejection> {
        match self.users.read().await.get(&request.token) {
            Some(user) => Ok(Identity::user(user.as_str())),
            None => Err(Rejection::forbidden()),
        }
    }

    /// The server API is not mounted: no key opens it.
    fn authorize_api(&self, _authorization: Option<&str>) -> bool {
        false
    }
}

/// What the application's routes share.
#[derive(Clone)]
struct App {
    sessions: Arc<Sessions>,
    tether: Handle,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(std::io::Error::other)?,
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
    };
    let sessions = Arc::new(Sessions::default());
    let room = ChannelPattern::new(ROOM).map_err(std::io::Error::other)?;
    let config = ServerConfig {
        namespaces: vec![Namespace::open(room)],
        ..ServerConfig::default()
    };
    let options = ServerOptions {
        config,
        ..ServerOptions::new(addr, sessions.clone())
    };
    let node = Server::without_listener(options)?;
    let app = App {
        sessions,
        tether: node.handle(),
    };
    let router = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/login", post(login))
        .route("/announce", post(announce))
        .with_state(app.clone())
        .merge(app.tether.routes().with_client().into_router());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    tokio::select! {
        served = axum::serve(listener, router) => served,
        ran = node.run() => ran,
    }
}

/// The application's sign-in: a session for the name in the body.
async fn login(State(app): State<App>, name: String) -> Result<String, StatusCode> {
    let name = name.trim();
    if !tether_core::is_valid_user_id(name) {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok(app.sessions.open(name).await)
}

/// Publishes the body to the room, as the application.
async fn announce(State(app): State<App>, text: String) -> (StatusCode, String) {
    let payload = serde_json::json!({ "text": text }).to_string();
    match app.tether.publish(ROOM, &payload).await {
        Ok(offset) => (StatusCode::OK, format!("published at offset {offset}\n")),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")),
    }
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>chat</title>
<form id="login"><input id="name" placeholder="your name" required> <button>join</button></form>
<ul id="lines"></ul>
<form id="composer" hidden><input id="text" autocomplete="off"> <button>send</button></form>
<script type="module">
import { TetherClient } from '/tether.js';
const $ = (id) => document.getElementById(id);
const line = (text) => $('lines').append(Object.assign(document.createElement('li'), { textContent: text }));
$('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const answer = await fetch('/login', { method: 'POST', body: $('name').value });
  if (!answer.ok) return line(`sign-in refused (${answer.status})`);
  const token = await answer.text();
  const client = new TetherClient(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`, { token });
  client.on('message', ({ sender, payload }) => line(`${sender ?? 'announcement'}: ${payload.text}`));
  client.on('join', ({ user }) => line(`${user} joined`));
  client.on('leave', ({ user }) => line(`${user} left`));
  client.subscribe('chat');
  $('login').hidden = true;
  $('composer').hidden = false;
  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    client.publish('chat', { text: $('text').value });
    $('text').value = '';
  });
});
</script>
"#;
