//! Why a call of a client adapter's `Client` failed: one error type for
//! every runtime's client, so that an application (or a test) handles the
//! smol, tokio and blocking clients' failures alike.

use std::fmt;

use serde_json::value::RawValue;

use super::event::{RequestError, SendError};
use crate::envelope::{EnvelopeError, ServerMessage, is_valid_method};

/// Why a client call failed: the caller's input, the session's refusal, or
/// the outcome of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The channel name breaks PROTOCOL.md section 6; nothing was sent.
    InvalidChannel(EnvelopeError),
    /// The payload (a publication's, or an `rpc`'s data) is not JSON;
    /// nothing was sent.
    InvalidPayload(String),
    /// The `rpc` method name breaks PROTOCOL.md section 13 (1 to 64
    /// characters of the channel-name alphabet); nothing was sent. Holds
    /// the name as given.
    InvalidMethod(String),
    /// The session refused the command: closed, or offline with a full
    /// queue.
    Refused(SendError),
    /// The request was sent (or queued) but got no successful reply.
    Request(RequestError),
    /// A publication was answered with something other than an `ack`
    /// (see [`published_offset`]), or an `rpc` with something other than
    /// an `rpc_result` (see [`rpc_result`]): a server that breaks
    /// PROTOCOL.md.
    UnexpectedReply(Box<ServerMessage>),
}

impl ClientError {
    /// The error of a call made after the session closed for good, which a
    /// client gives when the task or thread that owned the session is gone.
    pub fn closed() -> ClientError {
        ClientError::Refused(SendError::Closed)
    }
}

/// The offset a publication got, from the outcome of its request (an
/// [`Event::RequestDone`](super::Event::RequestDone)): the `ack`'s offset,
/// or why there is none.
pub fn published_offset(outcome: Result<ServerMessage, RequestError>) -> Result<u64, ClientError> {
    match outcome? {
        ServerMessage::Ack { offset, .. } => Ok(offset),
        other => Err(ClientError::UnexpectedReply(Box::new(other))),
    }
}

/// A publication's payload, checked: the JSON text `payload_json` as it
/// will go out, or [`ClientError::InvalidPayload`].
pub fn publication_payload(payload_json: &str) -> Result<Box<RawValue>, ClientError> {
    Ok(RawValue::from_string(payload_json.to_owned())?)
}

/// An `rpc` call's method and data, checked before anything is sent: the
/// method name as it will go out, or [`ClientError::InvalidMethod`], and
/// the JSON text `data_json`, or [`ClientError::InvalidPayload`].
pub fn rpc_call(method: &str, data_json: &str) -> Result<(String, Box<RawValue>), ClientError> {
    if !is_valid_method(method) {
        return Err(ClientError::InvalidMethod(method.to_owned()));
    }
    Ok((
        method.to_owned(),
        RawValue::from_string(data_json.to_owned())?,
    ))
}

/// What an `rpc` returns, from the reply that settled it: the `data` of its
/// `rpc_result`, the application's answer as JSON text. The application's
/// refusal never gets here: its `error` settles the request as
/// [`RequestError::Server`], with the application's code and message.
pub fn rpc_result(reply: ServerMessage) -> Result<Box<RawValue>, ClientError> {
    match reply {
        ServerMessage::RpcResult { data, .. } => Ok(data),
        other => Err(ClientError::UnexpectedReply(Box::new(other))),
    }
}

/// A client call's channel name that [`Channel::new`](crate::Channel::new)
/// refused: the only envelope error a client's own input meets.
impl From<EnvelopeError> for ClientError {
    fn from(error: EnvelopeError) -> ClientError {
        ClientError::InvalidChannel(error)
    }
}

/// A client call's payload that is not JSON, as
/// [`RawValue::from_string`] found.
impl From<serde_json::Error> for ClientError {
    fn from(error: serde_json::Error) -> ClientError {
        ClientError::InvalidPayload(error.to_string())
    }
}

/// The session's refusal of a command.
impl From<SendError> for ClientError {
    fn from(error: SendError) -> ClientError {
        ClientError::Refused(error)
    }
}

/// A request that got no successful reply.
impl From<RequestError> for ClientError {
    fn from(error: RequestError) -> ClientError {
        ClientError::Request(error)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidChannel(error) => write!(f, "invalid channel: {error}"),
            ClientError::InvalidPayload(error) => write!(f, "payload is not JSON: {error}"),
            ClientError::InvalidMethod(method) => write!(f, "invalid rpc method {method:?}"),
            ClientError::Refused(error) => write!(f, "refused: {error}"),
            ClientError::Request(error) => write!(f, "request failed: {error}"),
            ClientError::UnexpectedReply(reply) => write!(f, "unexpected reply: {reply:?}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::InvalidChannel(error) => Some(error),
            ClientError::Refused(error) => Some(error),
            ClientError::Request(error) => Some(error),
            ClientError::InvalidPayload(_)
            | ClientError::InvalidMethod(_)
            | ClientError::UnexpectedReply(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Channel, RequestId};

    #[test]
    fn a_client_s_input_errors_say_what_was_wrong() {
        let channel = Channel::new("not a channel!").map_err(ClientError::from);
        assert!(
            matches!(&channel, Err(ClientError::InvalidChannel(_))),
            "{channel:?}"
        );
        let payload = publication_payload("{not json");
        assert!(
            matches!(&payload, Err(ClientError::InvalidPayload(_))),
            "{payload:?}"
        );
        assert!(
            payload
                .unwrap_err()
                .to_string()
                .starts_with("payload is not JSON: ")
        );
        assert_eq!(
            publication_payload(r#"{"n": 1}"#).unwrap().get(),
            r#"{"n": 1}"#
        );
    }

    #[test]
    fn a_publication_s_outcome_gives_its_offset_or_why_there_is_none() {
        let id = RequestId::new("r1").unwrap();
        assert_eq!(
            published_offset(Ok(ServerMessage::Ack {
                id: id.clone(),
                offset: 7
            })),
            Ok(7)
        );
        assert_eq!(
            published_offset(Err(RequestError::Timeout)),
            Err(ClientError::Request(RequestError::Timeout))
        );
        let pong = ServerMessage::Pong { id: Some(id) };
        assert_eq!(
            published_offset(Ok(pong.clone())),
            Err(ClientError::UnexpectedReply(Box::new(pong)))
        );
        assert_eq!(ClientError::closed().to_string(), "refused: session closed");
    }

    #[test]
    fn an_rpc_s_method_and_data_are_checked_before_anything_is_sent() {
        let (method, data) = rpc_call("orders.create", r#"{"n": 1}"#).unwrap();
        assert_eq!(
            (method.as_str(), data.get()),
            ("orders.create", r#"{"n": 1}"#)
        );
        let longest = "m".repeat(crate::MAX_METHOD_CHARS);
        assert!(rpc_call(&longest, "null").is_ok());
        for method in ["", "has space", "é", &format!("{longest}m")] {
            assert_eq!(
                rpc_call(method, "null").unwrap_err(),
                ClientError::InvalidMethod(method.to_owned()),
                "{method:?}"
            );
        }
        assert!(matches!(
            rpc_call("m", "{not json").unwrap_err(),
            ClientError::InvalidPayload(_)
        ));
        assert_eq!(
            ClientError::InvalidMethod("a b".into()).to_string(),
            r#"invalid rpc method "a b""#
        );
    }

    #[test]
    fn an_rpc_returns_the_data_of_its_rpc_result_and_nothing_else() {
        let id = RequestId::new("r1").unwrap();
        let result = ServerMessage::RpcResult {
            id: id.clone(),
            data: RawValue::from_string(r#"{"ok":true}"#.into()).unwrap(),
        };
        assert_eq!(rpc_result(result).unwrap().get(), r#"{"ok":true}"#);
        let ack = ServerMessage::Ack { id, offset: 1 };
        assert_eq!(
            rpc_result(ack.clone()).unwrap_err(),
            ClientError::UnexpectedReply(Box::new(ack))
        );
    }
}
