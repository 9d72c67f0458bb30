//! `tether connect`: an interactive client on the project's own smol client.
//!
//! Lines read from stdin go to the server; everything the session reports
//! comes out on stdout as one JSON object per line, so the output can be
//! piped into `jq` or a test. A line that is a JSON object is sent as it is
//! (`{"type":"publish","channel":"chat","payload":1,"id":"a"}`); any other
//! non-empty line is published as a JSON string to the first `--subscribe`
//! channel, which makes a chat out of two terminals. The end of the input
//! leaves the client listening (so it can run in the background); Ctrl-C or
//! SIGTERM closes the connection normally (1000). Reconnecting,
//! resubscribing and recovery are the session's, as for any client.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use futures_lite::{AsyncBufReadExt, StreamExt};
use serde_json::{Value, json};
use tether_core::{Event, ServerMessage, encode_publication, encode_server_message};
use tether_smol::client::{Client, Connector, endpoint_from_url};
use tracing::warn;

use crate::app::AppError;
use crate::cli::ConnectArgs;
use crate::serve::on_shutdown_signal;

/// Connects, subscribes, then relays stdin to the server and the session's
/// events to stdout until the connection ends for good: the server closes
/// it with a final code, or a signal makes the client close it.
pub fn connect(args: ConnectArgs) -> Result<(), AppError> {
    let endpoint = endpoint_from_url(&args.url, args.token.expose().clone())
        .map_err(|error| AppError::Connect(error.to_string()))?;
    let tls = connector(args.ca.as_deref(), endpoint.secure)?;
    smol::block_on(async {
        let client = Arc::new(match tls {
            Some(tls) => Client::connect_tls(endpoint.config, tls),
            None => Client::connect(endpoint.config),
        });
        for channel in &args.subscribe {
            client
                .subscribe(channel.as_str())
                .await
                .map_err(|error| AppError::Connect(error.to_string()))?;
        }
        let default_channel = args.subscribe.first().map(|c| c.as_str().to_owned());
        smol::spawn(forward_stdin(client.clone(), default_channel)).detach();
        let closing = client.clone();
        on_shutdown_signal(move || smol::block_on(closing.close()))
            .map_err(|error| AppError::Connect(format!("cannot catch signals: {error}")))?;
        let mut final_close = None;
        while let Some(event) = client.next_event().await {
            if let Event::Disconnected {
                reason,
                will_reconnect: false,
            } = &event
            {
                final_close = Some(reason.clone());
            }
            print_line(&event_json(&event));
        }
        match final_close {
            Some(reason) if reason.code.is_final() && reason.code.0 != 1000 => Err(
                AppError::Connect(format!("the server closed the connection: {reason}")),
            ),
            _ => Ok(()),
        }
    })
}

/// What a `wss://` connection trusts: the CA file of `--ca`, or Mozilla's
/// roots; `None` for `ws://`. A CA file for a `ws://` URL is refused
/// rather than ignored: it says the user meant TLS and would not get it.
/// A CA file that cannot be used is refused before any dial. Both are
/// usage errors naming `--ca`.
fn connector(ca: Option<&Path>, secure: bool) -> Result<Option<Connector>, AppError> {
    match (ca, secure) {
        (Some(ca), true) => Connector::with_ca_file(ca)
            .map(Some)
            .map_err(|error| AppError::Usage(format!("--ca {error}"))),
        (None, true) => Ok(Some(Connector::public_roots())),
        (Some(_), false) => Err(AppError::Usage(
            "--ca is for wss:// URLs; this one is ws://: use wss:// or drop --ca".to_owned(),
        )),
        (None, false) => Ok(None),
    }
}

async fn forward_stdin(client: Arc<Client>, default_channel: Option<String>) {
    let mut lines = smol::io::BufReader::new(smol::Unblock::new(std::io::stdin())).lines();
    while let Some(Ok(line)) = lines.next().await {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let sent = if line.starts_with('{') {
            match tether_core::parse_client_message(line) {
                Ok(message) => client.send(message).await.map_err(|e| e.to_string()),
                Err(error) => Err(format!("not a message: {error}")),
            }
        } else if let Some(channel) = &default_channel {
            let payload = Value::String(line.to_owned()).to_string();
            client
                .publish(channel, &payload)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            Err("a plain line needs a --subscribe channel to publish to".to_owned())
        };
        if let Err(error) = sent {
            warn!(%error, "line not sent");
        }
    }
}

fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// One JSON line for a session event: the wire shape for what came from
/// the server, an `event` object for the connection's own life.
fn event_json(event: &Event) -> String {
    let server = |message: ServerMessage| {
        String::from_utf8_lossy(&encode_server_message(&message)).into_owned()
    };
    match event {
        Event::Connected {
            user,
            session,
            expires_at,
        } => {
            let mut line = json!({"event": "connected", "user": user, "session": session});
            if let Some(expires_at) = expires_at {
                line["expires_at"] = json!(expires_at);
            }
            line.to_string()
        }
        Event::Refreshed { expires_at } => {
            json!({"event": "refreshed", "expires_at": expires_at}).to_string()
        }
        Event::RefreshFailed { code, message } => json!({
            "event": "refresh_failed",
            "code": code.map(|code| code.as_str()),
            "message": message,
        })
        .to_string(),
        Event::Unsubscribed { channel, reason } => server(ServerMessage::Unsubscribed {
            id: None,
            channel: channel.clone(),
            reason: Some(*reason),
        }),
        Event::Disconnected {
            reason,
            will_reconnect,
        } => json!({
            "event": "disconnected",
            "code": reason.code.0,
            "reason": reason.reason,
            "will_reconnect": will_reconnect,
        })
        .to_string(),
        Event::Reconnecting { attempt, delay } => json!({
            "event": "reconnecting",
            "attempt": attempt,
            "delay_ms": delay.as_millis() as u64,
        })
        .to_string(),
        Event::Subscribed {
            channel,
            epoch,
            offset,
            recovered,
            data,
        } => json!({
            "event": "subscribed",
            "channel": channel.as_str(),
            "epoch": epoch,
            "offset": offset,
            "recovered": recovered,
            "data": data.as_deref().and_then(|data| serde_json::from_str::<serde_json::Value>(data).ok()),
        })
        .to_string(),
        Event::SubscribeFailed {
            channel,
            code,
            message,
        } => json!({
            "event": "subscribe_failed",
            "channel": channel.as_str(),
            "code": code.as_str(),
            "message": message,
        })
        .to_string(),
        Event::Message {
            channel,
            payload,
            sender,
            offset,
        } => String::from_utf8_lossy(&encode_publication(
            channel.as_str(),
            payload,
            sender.as_deref(),
            *offset,
        ))
        .into_owned(),
        Event::Presence { channel, users } => server(ServerMessage::Presence {
            id: None,
            channel: channel.clone(),
            users: users.clone(),
        }),
        Event::Join { channel, user } => server(ServerMessage::Join {
            channel: channel.clone(),
            user: user.clone(),
        }),
        Event::Leave { channel, user } => server(ServerMessage::Leave {
            channel: channel.clone(),
            user: user.clone(),
        }),
        Event::Error { id, code, message } => server(ServerMessage::Error {
            id: id.clone(),
            code: *code,
            message: message.clone(),
        }),
        Event::RequestDone { id, result } => match result {
            Ok(reply) => server(reply.clone()),
            Err(error) => json!({
                "event": "request_failed",
                "id": id.as_str(),
                "error": error.to_string(),
            })
            .to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::{Channel, CloseCode, CloseReason};

    #[test]
    fn messages_print_in_their_wire_shape_and_lifecycle_as_events() {
        let message = Event::Message {
            channel: Channel::new("chat").unwrap(),
            payload: serde_json::value::RawValue::from_string("\"hi\"".into()).unwrap(),
            sender: Some("alice".into()),
            offset: 3,
        };
        assert_eq!(
            event_json(&message),
            r#"{"type":"message","channel":"chat","payload":"hi","sender":"alice","offset":3}"#
        );
        let closed = Event::Disconnected {
            reason: CloseReason::new(CloseCode::FORBIDDEN, "forbidden"),
            will_reconnect: false,
        };
        let line: Value = serde_json::from_str(&event_json(&closed)).unwrap();
        assert_eq!(line["event"], "disconnected");
        assert_eq!(line["code"], 4003);
        assert_eq!(line["will_reconnect"], false);
    }
}
