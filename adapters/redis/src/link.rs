//! The backplane task: one loop on the node's thread that opens the two
//! Redis connections when the core asks, carries requests in order, and
//! forwards pub/sub messages and replies as store events.
//!
//! - Commands go over one multiplexed connection, as pipelines: the loop
//!   takes every request already waiting (up to [`MAX_BATCH`]), sends them
//!   as one pipeline and waits for its replies before the next batch. Redis
//!   carries a pipeline out in order, so requests take effect in the order
//!   the core made them; under load, batches grow instead of round trips.
//! - `SUBSCRIBE` and `UNSUBSCRIBE` go over the pub/sub connection. The loop
//!   sends the batch before a follow, then waits for Redis to confirm the
//!   subscription before sending anything after it: the core relies on a
//!   follow being in force before its next request (a subscription's read)
//!   is carried out.
//! - An error reply to one command (`-OOM` when Redis is full, a script
//!   error) fails that request alone: the core hears
//!   [`StoreEvent::Refused`] and the link carries on, since the connection
//!   is fine. Only the replies that say this server cannot serve the link
//!   any more ([`LINK_ERRORS`]) count as a failure of the link.
//! - Any failure of the link (a connection closed, an error reply of
//!   [`LINK_ERRORS`], no answer within [`RESPONSE_TIMEOUT`]) drops both
//!   connections and reports [`StoreEvent::Down`] once; requests that
//!   arrive until the core asks to connect again are dropped, since the
//!   core has already answered them. Nothing of a dropped link reaches the
//!   core afterwards.

use std::time::Duration;

use async_io::Timer;
use futures_lite::{Stream, StreamExt, future, stream};
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::{AsyncConnectionConfig, Client, Msg, Pipeline, RedisError, Value};
use tether_core::{Channel, EventSink, RequestSource, StoreEvent, StoreRequest};

use crate::scripts::{Digests, SOURCES};
use crate::wire::{Context, Reply};

/// Requests sent to Redis in one pipeline at most.
const MAX_BATCH: usize = 512;

/// How long Redis may take to accept a connection or answer a command
/// before the link counts as failed.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Error replies that fail the link rather than one request: the scripts
/// are gone (`NOSCRIPT`, loaded again on connecting), or the server cannot
/// take writes until the link reaches the primary again (`READONLY`,
/// `MASTERDOWN`) or it has loaded its data (`LOADING`).
const LINK_ERRORS: [&str; 4] = ["NOSCRIPT", "READONLY", "MASTERDOWN", "LOADING"];

/// An open link: both connections and the scripts' digests.
struct Link {
    commands: MultiplexedConnection,
    subscriptions: PubSubSink,
    messages: PubSubStream,
    digests: Digests,
}

/// What woke the loop.
enum Next {
    Request(Option<StoreRequest>),
    Message(Option<Msg>),
}

/// Why a link failed.
#[derive(Debug)]
struct Failure(String);

impl From<RedisError> for Failure {
    fn from(error: RedisError) -> Self {
        Failure(error.to_string())
    }
}

/// Runs the backplane of one node until `requests` closes and is drained.
pub(crate) async fn run(
    client: Client,
    context: Context,
    mut requests: Box<dyn RequestSource>,
    events: Box<dyn EventSink>,
) {
    let events = events.as_ref();
    let mut requests = stream::poll_fn(move |cx| requests.poll_request(cx));
    let mut link: Option<Link> = None;
    loop {
        let next = match &mut link {
            Some(open) => {
                let message = async { Next::Message(open.messages.next().await) };
                let request = async { Next::Request(requests.next().await) };
                future::or(message, request).await
            }
            None => Next::Request(requests.next().await),
        };
        let outcome = match next {
            Next::Request(None) => return,
            Next::Request(Some(first)) => {
                let batch = waiting(first, &mut requests).await;
                carry(&client, &context, &mut link, batch, events).await
            }
            Next::Message(None) => Err(Failure("the pub/sub connection closed".into())),
            Next::Message(Some(message)) => {
                match context.message(message.get_channel_name(), message.get_payload_bytes()) {
                    Ok(event) => {
                        events.send(event);
                        Ok(())
                    }
                    Err(malformed) => Err(Failure(malformed.0)),
                }
            }
        };
        if let Err(failure) = outcome
            && link.take().is_some()
        {
            tracing::warn!(reason = %failure.0, "backplane link failed");
            events.send(StoreEvent::Down);
        }
    }
}

/// `first` and every request already waiting behind it, up to
/// [`MAX_BATCH`].
async fn waiting(
    first: StoreRequest,
    requests: &mut (impl Stream<Item = StoreRequest> + Unpin),
) -> Vec<StoreRequest> {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match future::poll_once(requests.next()).await {
            Some(Some(request)) => batch.push(request),
            Some(None) | None => break,
        }
    }
    batch
}

/// Carries out a batch of requests in order.
async fn carry(
    client: &Client,
    context: &Context,
    link: &mut Option<Link>,
    batch: Vec<StoreRequest>,
    events: &dyn EventSink,
) -> Result<(), Failure> {
    let mut pipeline = redis::pipe();
    let mut replies = Vec::new();
    for request in batch {
        match request {
            StoreRequest::Connect => {
                flush(link, &mut pipeline, &mut replies, events).await?;
                match within_timeout(connect(client, &context.keys.control())).await {
                    Ok(open) => {
                        *link = Some(open);
                        tracing::info!("backplane link up");
                        events.send(StoreEvent::Up);
                    }
                    Err(failure) => {
                        tracing::warn!(reason = %failure.0, "backplane connection failed");
                        events.send(StoreEvent::Down);
                    }
                }
            }
            StoreRequest::Follow { channel } => {
                flush(link, &mut pipeline, &mut replies, events).await?;
                route(link, context, &channel, true).await?;
            }
            StoreRequest::Unfollow { channel } => {
                flush(link, &mut pipeline, &mut replies, events).await?;
                route(link, context, &channel, false).await?;
            }
            request => {
                if let Some(open) = link.as_ref()
                    && let Some((command, reply)) = context.command(&open.digests, request)
                {
                    pipeline.add_command(command);
                    replies.push(reply);
                }
            }
        }
    }
    flush(link, &mut pipeline, &mut replies, events).await
}

/// Sends the pipeline and turns its replies into events, in order.
async fn flush(
    link: &mut Option<Link>,
    pipeline: &mut Pipeline,
    replies: &mut Vec<Reply>,
    events: &dyn EventSink,
) -> Result<(), Failure> {
    if replies.is_empty() {
        return Ok(());
    }
    let mut sent = std::mem::take(pipeline);
    sent.ignore_errors();
    let expected = std::mem::take(replies);
    let Some(open) = link.as_mut() else {
        return Ok(());
    };
    let values: Vec<Value> = within_timeout(async {
        sent.query_async(&mut open.commands)
            .await
            .map_err(Failure::from)
    })
    .await?;
    if values.len() != expected.len() {
        return Err(Failure(format!(
            "{} replies to {} commands",
            values.len(),
            expected.len()
        )));
    }
    for (reply, value) in expected.into_iter().zip(values) {
        if let Value::ServerError(error) = &value {
            if LINK_ERRORS.contains(&error.code()) {
                return Err(Failure(format!("{error:?}")));
            }
            tracing::warn!(reply = ?error, "the backplane refused a request");
            events.send(StoreEvent::Refused(reply.refusal()));
            continue;
        }
        match reply.event(value) {
            Ok(Some(event)) => events.send(event),
            Ok(None) => {}
            Err(malformed) => return Err(Failure(malformed.0)),
        }
    }
    Ok(())
}

/// Subscribes to or unsubscribes from the channel's topic and waits for
/// Redis to confirm it.
async fn route(
    link: &mut Option<Link>,
    context: &Context,
    channel: &Channel,
    follow: bool,
) -> Result<(), Failure> {
    let Some(open) = link.as_mut() else {
        return Ok(());
    };
    let topic = context.keys.topic(channel);
    let sink = &mut open.subscriptions;
    within_timeout(async {
        if follow {
            sink.subscribe(&topic).await?;
        } else {
            sink.unsubscribe(&topic).await?;
        }
        Ok(())
    })
    .await
}

/// Opens both connections, follows the `control` topic and loads the
/// scripts.
async fn connect(client: &Client, control: &str) -> Result<Link, Failure> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut commands = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let (mut subscriptions, messages) = client.get_async_pubsub().await?.split();
    subscriptions.subscribe(control).await?;
    let mut load = redis::pipe();
    for source in SOURCES {
        load.cmd("SCRIPT").arg("LOAD").arg(source);
    }
    let digests: Vec<String> = load.query_async(&mut commands).await?;
    Ok(Link {
        commands,
        subscriptions,
        messages,
        digests: Digests(digests),
    })
}

/// `work`, or a failure after [`RESPONSE_TIMEOUT`].
async fn within_timeout<T>(work: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    let deadline = async {
        Timer::after(RESPONSE_TIMEOUT).await;
        Err(Failure("Redis did not answer in time".into()))
    };
    future::or(work, deadline).await
}
