//! A channel server on tokio and tokio-tungstenite, written the way such
//! servers usually are: a task per connection, a writer task fed by an
//! unbounded per-client mpsc channel, one shared map of channels behind a
//! mutex, and serde_json for every message in and out.
//!
//! It speaks the message shapes of Tether's PROTOCOL.md that the benchmark
//! scenarios use: `auth` -> `auth_ack` (any token is the user id),
//! `subscribe` -> `subscribed`, `publish` -> `ack` (with an id) and a
//! `message` with an offset to every subscriber, `ping` -> `pong`; plus a
//! WebSocket Ping heartbeat every 30 s that drops silent peers.
//!
//! Usage: `tokio-ws-peer [ADDR]` (default 127.0.0.1:8082).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const HEARTBEAT: Duration = Duration::from_secs(30);
const MAX_PAYLOAD: usize = 64 * 1024;

/// A message from a client.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Auth {
        token: String,
    },
    Ping {
        id: Option<String>,
    },
    Subscribe {
        channel: String,
        id: Option<String>,
    },
    Unsubscribe {
        channel: String,
        id: Option<String>,
    },
    Publish {
        channel: String,
        payload: Value,
        id: Option<String>,
    },
}

/// One channel: its offset counter and its subscribers by connection id.
#[derive(Default)]
struct Channel {
    offset: u64,
    subscribers: HashMap<u64, UnboundedSender<Message>>,
}

/// Everything the connections share.
#[derive(Default)]
struct State {
    channels: Mutex<HashMap<String, Channel>>,
    next_id: AtomicU64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8082".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("tokio-ws-peer listening on {addr}");
    let state = Arc::new(State::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(handle(stream, state.clone()));
    }
}

fn text(value: Value) -> Message {
    Message::text(value.to_string())
}

/// Selects `tether.v1` when the client offers it.
#[allow(clippy::result_large_err)]
fn select_protocol(
    request: &Request,
    mut response: Response,
) -> Result<Response, tokio_tungstenite::tungstenite::handshake::server::ErrorResponse> {
    let offered = request
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "tether.v1"));
    if offered {
        response.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("tether.v1"),
        );
    }
    Ok(response)
}

async fn handle(stream: TcpStream, state: Arc<State>) {
    let config = WebSocketConfig::default().max_message_size(Some(MAX_PAYLOAD));
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, select_protocol, Some(config))
            .await
    else {
        return;
    };
    let conn = state.next_id.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });

    let mut user: Option<String> = None;
    let mut joined: Vec<String> = Vec::new();
    let mut alive = true;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                if !alive {
                    break;
                }
                alive = false;
                let _ = tx.send(Message::Ping(Default::default()));
            }
            incoming = stream.next() => {
                let Some(Ok(message)) = incoming else { break };
                match message {
                    Message::Text(body) => {
                        if !on_text(&state, conn, &tx, &mut user, &mut joined, body.as_str()) {
                            break;
                        }
                    }
                    Message::Pong(_) => alive = true,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        }
    }

    leave_all(&state, conn, joined);
    drop(tx);
    let _ = writer.await;
}

/// Removes the connection from every channel it joined.
fn leave_all(state: &State, conn: u64, joined: Vec<String>) {
    let mut channels = state.channels.lock().unwrap();
    for name in joined {
        if let Some(channel) = channels.get_mut(&name) {
            channel.subscribers.remove(&conn);
            if channel.subscribers.is_empty() && channel.offset == 0 {
                channels.remove(&name);
            }
        }
    }
}

/// Handles one text message; `false` closes the connection.
fn on_text(
    state: &State,
    conn: u64,
    tx: &UnboundedSender<Message>,
    user: &mut Option<String>,
    joined: &mut Vec<String>,
    body: &str,
) -> bool {
    let message: ClientMessage = match serde_json::from_str(body) {
        Ok(message) => message,
        Err(error) => {
            let _ = tx.send(text(json!({
                "type": "error", "code": "INVALID_MESSAGE", "message": error.to_string()
            })));
            return true;
        }
    };
    let Some(me) = user.clone() else {
        return match message {
            ClientMessage::Auth { token } => {
                let _ = tx.send(text(json!({
                    "type": "auth_ack", "user": token, "session": conn.to_string(),
                    "heartbeat_ms": HEARTBEAT.as_millis() as u64, "max_payload": MAX_PAYLOAD
                })));
                *user = Some(token);
                true
            }
            ClientMessage::Ping { id } => {
                let _ = tx.send(text(json!({ "type": "pong", "id": id })));
                true
            }
            _ => {
                let _ = tx.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Library(4001),
                    reason: "auth required".into(),
                })));
                false
            }
        };
    };
    match message {
        ClientMessage::Auth { .. } => {
            let _ = tx.send(text(json!({
                "type": "error", "code": "INVALID_MESSAGE", "message": "already authenticated"
            })));
        }
        ClientMessage::Ping { id } => {
            let _ = tx.send(text(json!({ "type": "pong", "id": id })));
        }
        ClientMessage::Subscribe { channel, id } => {
            let mut channels = state.channels.lock().unwrap();
            let entry = channels.entry(channel.clone()).or_default();
            entry.subscribers.insert(conn, tx.clone());
            let _ = tx.send(text(json!({
                "type": "subscribed", "id": id, "channel": channel, "epoch": "tokio",
                "offset": entry.offset
            })));
            if !joined.contains(&channel) {
                joined.push(channel);
            }
        }
        ClientMessage::Unsubscribe { channel, id } => {
            if let Some(entry) = state.channels.lock().unwrap().get_mut(&channel) {
                entry.subscribers.remove(&conn);
            }
            joined.retain(|name| *name != channel);
            let _ = tx.send(text(
                json!({ "type": "unsubscribed", "id": id, "channel": channel }),
            ));
        }
        ClientMessage::Publish {
            channel,
            payload,
            id,
        } => {
            let mut channels = state.channels.lock().unwrap();
            let entry = channels.entry(channel.clone()).or_default();
            entry.offset += 1;
            let offset = entry.offset;
            let message = text(json!({
                "type": "message", "channel": channel, "payload": payload, "sender": me,
                "offset": offset
            }));
            for subscriber in entry.subscribers.values() {
                let _ = subscriber.send(message.clone());
            }
            drop(channels);
            if let Some(id) = id {
                let _ = tx.send(text(json!({ "type": "ack", "id": id, "offset": offset })));
            }
        }
    }
    true
}
