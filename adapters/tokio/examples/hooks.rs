//! An application in the loop of a Tether node on tokio (PROTOCOL.md
//! section 13): tokens looked up in the application's session table, the
//! subscriptions of `rooms:` channels decided by membership (with the
//! room's members as the `data` of `subscribed`), and one `rpc` method.
//! The README's embedding example is this file's handler.
//!
//! ```sh
//! cargo run -p tether-tokio --example hooks -- 127.0.0.1:8080
//! ```
//!
//! Then, with any WebSocket client, `{"type":"auth","token":"t-ann"}`,
//! `{"type":"subscribe","channel":"rooms:tea","id":"s"}` and
//! `{"type":"rpc","method":"rooms.list","id":"r"}`.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tether_core::{
    ChannelPattern, ChannelRequest, ConnectRequest, ErrorCode, Handler, Identity, Namespace,
    NodeOptions, Rejection, RpcRequest, Rule, ServerConfig,
};

/// The application's own state: who each token is, and who is in which
/// room. A real one would ask its database, awaiting it in each method.
struct App {
    sessions: BTreeMap<String, String>,
    rooms: BTreeMap<String, Vec<String>>,
}

#[tether_core::async_trait]
impl Handler for App {
    /// Who a token is: a lookup, with the user's plan as the connection
    /// info that comes back with the connection's later decisions.
    async fn connect(&self, request: ConnectRequest) -> Result<Identity, Rejection> {
        let user = self
            .sessions
            .get(&request.token)
            .ok_or_else(Rejection::forbidden)?;
        Ok(Identity {
            info: Some(r#"{"plan":"free"}"#.to_owned()),
            ..Identity::user(user.as_str())
        })
    }

    /// May the user join a `rooms:` channel (its namespace's `subscribe`
    /// rule is `backend`)? Members may, and learn who else is in it.
    async fn subscribe(&self, request: ChannelRequest) -> Result<Option<String>, Rejection> {
        let room = request.channel.as_str().trim_start_matches("rooms:");
        match self.rooms.get(room) {
            Some(members) if members.contains(&request.user) => {
                Ok(Some(serde_json::json!({ "members": members }).to_string()))
            }
            Some(_) => Err(Rejection::new(ErrorCode::Forbidden, "members only")),
            None => Err(Rejection::new(ErrorCode::NotFound, "no such room")),
        }
    }

    /// `rooms.list`: the rooms the caller is a member of.
    async fn rpc(&self, request: RpcRequest) -> Result<String, Rejection> {
        match request.method.as_str() {
            "rooms.list" => {
                let mine: Vec<&String> = self
                    .rooms
                    .iter()
                    .filter(|(_, members)| members.contains(&request.user))
                    .map(|(room, _)| room)
                    .collect();
                Ok(serde_json::json!(mine).to_string())
            }
            _ => Err(Rejection::unknown_method()),
        }
    }

    /// No HTTP API for this node.
    fn authorize_api(&self, _authorization: Option<&str>) -> bool {
        false
    }
}

fn main() -> io::Result<()> {
    let listen: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
        .parse()
        .map_err(io::Error::other)?;
    let app = App {
        sessions: BTreeMap::from([
            ("t-ann".to_owned(), "ann".to_owned()),
            ("t-bob".to_owned(), "bob".to_owned()),
        ]),
        rooms: BTreeMap::from([
            ("tea".to_owned(), vec!["ann".to_owned(), "bob".to_owned()]),
            ("board".to_owned(), vec!["ann".to_owned()]),
        ]),
    };
    let rooms = Namespace {
        subscribe: Rule::Backend,
        publish: Rule::Subscribers,
        presence: Rule::Subscribers,
        history: Rule::Subscribers,
        ..Namespace::open(ChannelPattern::new("rooms:*").expect("a valid pattern"))
    };
    let config = ServerConfig {
        namespaces: vec![rooms],
        ..ServerConfig::default()
    };
    let server = tether_tokio::Server::bind(NodeOptions {
        config,
        ..NodeOptions::new(listen, Arc::new(app))
    })?;
    println!("listening on {}", server.local_addr()?);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(server.run())
}
