//! `fanout`: S subscribers on one channel and a publisher sending M
//! messages of B bytes.
//!
//! The publisher keeps at most `window` messages in flight: message n goes
//! out once every subscriber has received message n - window. Server queues
//! therefore stay small (no server needs to drop anything, and none is
//! measured on how it drops), and the figure is the rate a server sustains,
//! not the rate at which its buffers fill. Latency runs from the
//! publisher's timestamp in the payload to the moment a subscriber has
//! read the message; with a window it includes the wait behind the
//! messages ahead in the same queue, as it would in production.
//!
//! Loss is what a subscriber never received before the deadline; a gap is
//! an offset that jumps by more than one, a duplicate one that does not
//! move forward.
//!
//! With `--target`s the subscribers are spread over several nodes (in
//! turn) while the publisher stays on one: the fan-out of nodes sharing a
//! backplane, with the same load as on one node.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use smol::channel::{self, Receiver, Sender};
use smol::future;
use smol::lock::Semaphore;

use super::args::FanoutArgs;
use super::report::{Report, round1};
use super::runtime::{Spawner, sleep};
use super::scan;
use super::socket::{Target, WsConn};
use super::stats::{Clock, Samples, rate};

/// Subscribers connecting at the same time during setup.
const SETUP_CONCURRENCY: usize = 100;
/// A subscriber's read buffer: large, so that one read takes many messages.
const READ_BUFFER: usize = 64 * 1024;
/// How long the publisher waits for a window slot before it counts the
/// message in the way as lost and goes on.
const WINDOW_PATIENCE: Duration = Duration::from_secs(2);
/// The smallest payload that holds a sequence number and a timestamp.
pub const MIN_BYTES: usize = 48;

/// How many subscribers have received each message.
struct Progress {
    delivered: Vec<AtomicU32>,
    subscribers: u32,
    complete: Sender<()>,
}

impl Progress {
    /// Counts one delivery of message `n`; the last one wakes the publisher.
    fn mark(&self, n: usize) {
        if let Some(count) = self.delivered.get(n)
            && count.fetch_add(1, Ordering::AcqRel) + 1 == self.subscribers
        {
            let _ = self.complete.try_send(());
        }
    }

    fn is_complete(&self, n: usize) -> bool {
        self.delivered[n].load(Ordering::Acquire) >= self.subscribers
    }
}

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    received: u64,
    /// Bytes the subscriber read from the wire while receiving.
    wire_bytes: u64,
    gaps: u64,
    duplicates: u64,
    last_ns: u64,
    samples: Samples,
    error: Option<String>,
}

/// Runs the scenario.
pub async fn run(spawner: Spawner, target: Target, args: FanoutArgs) -> io::Result<Report> {
    if args.bytes < MIN_BYTES || args.subscribers == 0 || args.messages == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "fanout needs subscribers and messages, and payloads of at least {MIN_BYTES} bytes"
            ),
        ));
    }
    let targets = if args.targets.is_empty() {
        vec![target.clone()]
    } else {
        args.targets
            .iter()
            .map(|url| {
                let tls = target.tls.as_ref().map(|(config, _)| config);
                Target::parse(url, tls).map(|parsed| Target {
                    deflate: target.deflate,
                    ..parsed
                })
            })
            .collect::<io::Result<Vec<_>>>()?
    };
    let clock = Clock::start();
    let channel = unique_channel();
    let (complete_tx, complete_rx) = channel::bounded(1);
    let progress = Arc::new(Progress {
        delivered: (0..args.messages).map(|_| AtomicU32::new(0)).collect(),
        subscribers: args.subscribers as u32,
        complete: complete_tx,
    });
    let (ready_tx, ready_rx) = channel::unbounded::<Result<(), String>>();
    let (go_tx, go_rx) = channel::bounded::<()>(1);
    let (stop_tx, stop_rx) = channel::bounded::<()>(1);
    let setup = Arc::new(Semaphore::new(SETUP_CONCURRENCY));

    let subscribers: Vec<_> = (0..args.subscribers)
        .map(|i| {
            let subscriber = Subscriber {
                index: i,
                target: targets[i % targets.len()].clone(),
                channel: channel.clone(),
                messages: args.messages,
                clock,
                progress: progress.clone(),
            };
            spawner.spawn(subscriber.run(
                setup.clone(),
                ready_tx.clone(),
                go_rx.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    drop(ready_tx);

    let mut publisher = WsConn::open(&target, u64::MAX, READ_BUFFER).await?;
    publisher.authenticate("publisher").await?;
    await_all(&ready_rx, args.subscribers, "subscribed").await?;
    drop(go_tx);
    await_all(&ready_rx, args.subscribers, "in sync").await?;

    spawner
        .spawn(async move {
            sleep(Duration::from_secs(args.timeout)).await;
            drop(stop_tx);
        })
        .detach();

    let start_ns = clock.now_ns();
    let publish = Publish {
        channel: &channel,
        args: &args,
        clock,
        progress: &progress,
        complete: &complete_rx,
        stop: &stop_rx,
    };
    let acks = publish.run(&mut publisher).await?;
    let published_ns = clock.now_ns();

    let mut total = Seen::default();
    for task in subscribers {
        let seen = task.await;
        total.received += seen.received;
        total.wire_bytes += seen.wire_bytes;
        total.gaps += seen.gaps;
        total.duplicates += seen.duplicates;
        total.last_ns = total.last_ns.max(seen.last_ns);
        total.samples.merge(seen.samples);
        total.error = total.error.or(seen.error);
    }
    Ok(report(
        &args,
        targets.len(),
        start_ns,
        published_ns,
        acks,
        total,
    ))
}

fn unique_channel() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("bench-fanout-{nanos:x}")
}

/// Waits for `count` readiness signals, failing on the first error.
async fn await_all(
    ready: &Receiver<Result<(), String>>,
    count: usize,
    what: &str,
) -> io::Result<()> {
    for done in 0..count {
        match ready.recv().await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return Err(io::Error::other(format!(
                    "a subscriber failed before {what}: {error}"
                )));
            }
            Err(_) => {
                return Err(io::Error::other(format!(
                    "only {done} of {count} subscribers {what}"
                )));
            }
        }
    }
    Ok(())
}

/// One subscriber's part of the run.
struct Subscriber {
    index: usize,
    target: Target,
    channel: String,
    messages: usize,
    clock: Clock,
    progress: Arc<Progress>,
}

impl Subscriber {
    async fn run(
        self,
        setup: Arc<Semaphore>,
        ready: Sender<Result<(), String>>,
        go: Receiver<()>,
        stop: Receiver<()>,
    ) -> Seen {
        let permit = setup.acquire().await;
        let opened = self.subscribe().await;
        drop(permit);
        let (mut conn, base) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                let _ = ready.send(Err(error.to_string())).await;
                return Seen::default();
            }
        };
        let _ = ready.send(Ok(())).await;
        let _ = go.recv().await;
        // The pong comes after every join the other subscribers caused.
        let synced = conn.sync().await.map_err(|error| error.to_string());
        let _ = ready.send(synced).await;
        drop(ready);
        self.receive(&mut conn, base, &stop).await
    }

    async fn subscribe(&self) -> io::Result<(WsConn, u64)> {
        let mut conn = WsConn::open(&self.target, self.index as u64, READ_BUFFER).await?;
        conn.authenticate(&format!("sub-{}", self.index)).await?;
        let base = conn.subscribe(&self.channel).await?;
        Ok((conn, base))
    }

    async fn receive(&self, conn: &mut WsConn, base: u64, stop: &Receiver<()>) -> Seen {
        let mut seen = Seen {
            samples: Samples::with_capacity(self.messages),
            ..Seen::default()
        };
        let mut last_offset = base;
        let wire_before = conn.wire_bytes();
        while seen.received < self.messages as u64 {
            let next = future::or(async { Some(conn.recv().await) }, async {
                let _ = stop.recv().await;
                None
            });
            let text = match next.await {
                Some(Ok(text)) => text,
                Some(Err(error)) => {
                    seen.error = Some(error.to_string());
                    break;
                }
                None => break,
            };
            if scan::kind(&text) != Some(&b"message"[..]) {
                continue;
            }
            let now = self.clock.now_ns();
            if let Some(offset) = scan::u64_field(&text, b"offset") {
                if offset > last_offset + 1 {
                    seen.gaps += 1;
                } else if offset <= last_offset {
                    seen.duplicates += 1;
                }
                last_offset = last_offset.max(offset);
            }
            if let (Some(n), Some(sent)) =
                (scan::u64_field(&text, b"n"), scan::u64_field(&text, b"t"))
            {
                seen.samples.push(now.saturating_sub(sent));
                self.progress.mark(n as usize);
            }
            seen.received += 1;
            seen.last_ns = now;
        }
        seen.wire_bytes = conn.wire_bytes() - wire_before;
        seen
    }
}

/// The publisher's part of the run.
struct Publish<'a> {
    channel: &'a str,
    args: &'a FanoutArgs,
    clock: Clock,
    progress: &'a Progress,
    complete: &'a Receiver<()>,
    stop: &'a Receiver<()>,
}

enum Wake {
    Complete,
    Message(io::Result<bytes::Bytes>),
    Patience,
    Stop,
}

impl Publish<'_> {
    /// Publishes every message, window permitting, then collects the
    /// remaining acks; returns the number of acks.
    async fn run(&self, conn: &mut WsConn) -> io::Result<u64> {
        let mut acks = 0;
        let mut patience_from = None;
        let mut n = 0;
        while n < self.args.messages {
            if n >= self.args.window && !self.progress.is_complete(n - self.args.window) {
                let started = *patience_from.get_or_insert(self.clock.now_ns());
                let waited = Duration::from_nanos(self.clock.now_ns() - started);
                match self
                    .wait(conn, WINDOW_PATIENCE.saturating_sub(waited))
                    .await
                {
                    Wake::Complete => continue,
                    Wake::Message(text) => {
                        acks += count_ack(&text?);
                        continue;
                    }
                    Wake::Patience => {}
                    Wake::Stop => return Ok(acks),
                }
            }
            patience_from = None;
            let sent_ns = self.clock.now_ns();
            let message = if self.args.chat {
                chat_message(self.channel, n, sent_ns, self.args.bytes)
            } else {
                publish_message(self.channel, n, sent_ns, self.args.bytes)
            };
            conn.send(message.as_bytes()).await?;
            n += 1;
        }
        while acks < self.args.messages as u64 {
            match self
                .wait(conn, Duration::from_secs(self.args.timeout))
                .await
            {
                Wake::Message(text) => acks += count_ack(&text?),
                Wake::Complete => {}
                Wake::Patience | Wake::Stop => break,
            }
        }
        Ok(acks)
    }

    async fn wait(&self, conn: &mut WsConn, patience: Duration) -> Wake {
        let complete = async {
            let _ = self.complete.recv().await;
            Wake::Complete
        };
        let message = async { Wake::Message(conn.recv().await) };
        let patience = async {
            sleep(patience).await;
            Wake::Patience
        };
        let stop = async {
            let _ = self.stop.recv().await;
            Wake::Stop
        };
        future::or(future::or(complete, message), future::or(patience, stop)).await
    }
}

fn count_ack(text: &[u8]) -> u64 {
    u64::from(scan::kind(text) == Some(&b"ack"[..]))
}

/// A `publish` with id `n` whose payload, exactly `bytes` long when it
/// fits, carries the sequence number and the send time.
fn publish_message(channel: &str, n: usize, sent_ns: u64, bytes: usize) -> String {
    let head = format!(r#"{{"n":{n},"t":{sent_ns},"pad":""#);
    let pad = bytes.saturating_sub(head.len() + 2);
    format!(
        r#"{{"type":"publish","channel":"{channel}","id":"{n}","payload":{head}{}"}}}}"#,
        "x".repeat(pad)
    )
}

/// Senders of the chat payloads: id, name.
const SENDERS: [(&str, &str); 4] = [
    ("u-10482", "Alice Liddell"),
    ("u-20931", "Bob Marley-Smith"),
    ("u-31877", "Chidi Anagonye"),
    ("u-47120", "Dana Scully"),
];

/// Sentences the chat payloads' text is made of.
const SENTENCES: [&str; 6] = [
    "Shall we meet at the station at half past five? ",
    "The deploy went fine, the dashboards look green again. ",
    "I pushed the fix for the login redirect, can you review it today? ",
    "Lunch is on me if the demo works on the first try. ",
    "Running ten minutes late, the tram is stuck behind a delivery van. ",
    "Here are the notes from the planning meeting, see the second page. ",
];

/// A `publish` with id `n` whose payload looks like a chat message (a
/// sender, a room, a line of text, a time) with the sequence number and
/// the send time, exactly `bytes` long when it fits: the text is as long
/// as the rest leaves room for.
fn chat_message(channel: &str, n: usize, sent_ns: u64, bytes: usize) -> String {
    let (user, name) = SENDERS[n % SENDERS.len()];
    let head = format!(
        r#"{{"n":{n},"t":{sent_ns},"id":"msg-{n:08}","room":"general","user":{{"id":"{user}","name":"{name}","avatar":"https://cdn.example.com/avatars/{user}.png"}},"mentions":[],"text":""#
    );
    let room = bytes.saturating_sub(head.len() + 2);
    let text: String = SENTENCES
        .iter()
        .cycle()
        .skip(n % SENTENCES.len())
        .flat_map(|sentence| sentence.chars())
        .take(room)
        .collect();
    format!(r#"{{"type":"publish","channel":"{channel}","id":"{n}","payload":{head}{text}"}}}}"#)
}

fn report(
    args: &FanoutArgs,
    nodes: usize,
    start_ns: u64,
    published_ns: u64,
    acks: u64,
    mut seen: Seen,
) -> Report {
    let expected = (args.subscribers * args.messages) as u64;
    let elapsed = Duration::from_nanos(seen.last_ns.max(published_ns).saturating_sub(start_ns));
    let deliveries_per_sec = rate(seen.received, elapsed);
    let latency = seen.samples.percentiles_us();
    let lost = expected.saturating_sub(seen.received);
    let mut report = Report::new("fanout");
    report
        .set("subscribers", args.subscribers)
        .set("messages", args.messages)
        .set("bytes", args.bytes)
        .set("chat", args.chat)
        .set(
            "wire_bytes_per_delivery",
            round1(seen.wire_bytes as f64 / seen.received.max(1) as f64),
        )
        .set("window", args.window)
        .set("nodes", nodes)
        .set("deliveries", seen.received)
        .set("deliveries_per_sec", round1(deliveries_per_sec))
        .set("seconds", elapsed.as_secs_f64())
        .set("p50_us", round1(latency.p50_us))
        .set("p99_us", round1(latency.p99_us))
        .set("max_us", round1(latency.max_us))
        .set("lost", lost)
        .set("gaps", seen.gaps)
        .set("duplicates", seen.duplicates)
        .set("acks", acks);
    if let Some(error) = &seen.error {
        report.set("error", error.as_str());
    }
    report.summary = format!(
        "fanout {} subscribers on {nodes} node(s) x {} messages of {} B: {:.0} deliveries/s over {:.2} s, latency p50 {:.0} us p99 {:.0} us, {} lost, {} gaps, {} duplicates, {}/{} acks{}",
        args.subscribers,
        args.messages,
        args.bytes,
        deliveries_per_sec,
        elapsed.as_secs_f64(),
        latency.p50_us,
        latency.p99_us,
        lost,
        seen.gaps,
        seen.duplicates,
        acks,
        args.messages,
        seen.error
            .map_or_else(String::new, |e| format!(" (first error: {e})")),
    );
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_payloads_have_the_requested_size_and_vary() {
        let first = chat_message("c", 7, 123_456_789_012, 400);
        let payload = first.split(r#""payload":"#).nth(1).unwrap();
        assert_eq!(payload.len() - 1, 400, "{payload}");
        let value: serde_json::Value = serde_json::from_str(&first).unwrap();
        assert_eq!(value["payload"]["n"], 7);
        assert_eq!(value["payload"]["user"]["id"], "u-47120");
        let second = chat_message("c", 8, 123_456_789_012, 400);
        assert_ne!(
            serde_json::from_str::<serde_json::Value>(&second).unwrap()["payload"]["text"],
            value["payload"]["text"]
        );
    }

    #[test]
    fn payloads_have_the_requested_size() {
        let message = publish_message("c", 1999, 123_456_789_012, 100);
        let payload = message.split(r#""payload":"#).nth(1).unwrap();
        assert_eq!(payload.len() - 1, 100, "{payload}");
        let value: serde_json::Value = serde_json::from_str(&message).unwrap();
        assert_eq!(value["payload"]["n"], 1999);
        assert_eq!(value["id"], "1999");
    }
}
