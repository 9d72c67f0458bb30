//! Redis failing under the nodes: connections cut mid-stream lose no
//! acknowledged publication, and a Redis restarted without its data gives
//! new epochs, announced as `recovered:false`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    Cluster, Node, next_publication, offsets, publications, publications_through, publish,
    subscribers, until,
};
use tether_testkit::process::PROCESS_LIMIT;
use tether_testkit::ws::Ws;

/// How long a publisher waits before retrying a publish refused with
/// `UNAVAILABLE`, as a client backs off while the backplane is down.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// What a publisher got from the node.
#[derive(Default)]
struct Outcome {
    /// Acknowledged publications: offset -> payload.
    acked: BTreeMap<u64, Value>,
    /// Publishes refused with `UNAVAILABLE`.
    refused: u64,
}

/// Publishes numbered payloads on `channel`, one at a time, until `stop`
/// is set; reports each acknowledged offset on `progress` as it comes.
fn publish_until_stopped(
    ws: &mut Ws,
    channel: &str,
    stop: &AtomicBool,
    progress: &mpsc::Sender<u64>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut n = 0;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let payload = json!({"n": n});
        let answer = publish(ws, channel, payload.clone(), &format!("p{n}"));
        match answer["type"].as_str() {
            Some("ack") => {
                let offset = answer["offset"].as_u64().expect("an offset");
                assert_eq!(outcome.acked.insert(offset, payload), None, "{answer}");
                let _ = progress.send(offset);
            }
            Some("error") if answer["code"] == "UNAVAILABLE" => {
                outcome.refused += 1;
                thread::sleep(RETRY_PAUSE);
            }
            _ => panic!("unexpected answer {answer}"),
        }
    }
    outcome
}

/// Tells the publisher to stop when dropped, also when the test fails
/// while it runs.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Waits for `count` more acknowledgements from the publisher.
fn await_acks(progress: &mpsc::Receiver<u64>, count: usize) {
    for _ in 0..count {
        progress
            .recv_timeout(PROCESS_LIMIT)
            .expect("the publisher keeps getting acks");
    }
}

/// Kills the Redis clients of `kind` (`normal` or `pubsub`) through
/// `admin`, which is spared, and waits until every node has noticed and
/// linked up again. Each node has one connection of each kind; a closed
/// one Redis has not yet let go of may be killed too.
fn cut(admin: &mut redis::Connection, kind: &str, nodes: &[Node]) {
    let killed: usize = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg(kind)
        .query(admin)
        .expect("CLIENT KILL");
    assert!(killed >= nodes.len(), "{killed} {kind} connections killed");
    for node in nodes {
        node.await_link_failed();
        node.await_link_up();
    }
}

#[test]
fn cutting_the_nodes_redis_connections_mid_stream_loses_no_acknowledged_publication() {
    let cluster = Cluster::start();
    let (mut subscribers, _) = subscribers(&cluster.nodes, "stream");

    let stop = AtomicBool::new(false);
    let (progress_tx, progress) = mpsc::channel();
    let on_a = cluster.nodes[0].addr;
    let mut admin = cluster.redis.admin();
    let outcome = thread::scope(|scope| {
        let publisher = scope.spawn(|| {
            let mut ws = Ws::auth(on_a, "publisher");
            publish_until_stopped(&mut ws, "stream", &stop, &progress_tx)
        });
        let stopping = StopOnDrop(&stop);
        await_acks(&progress, 10);
        cut(&mut admin, "pubsub", &cluster.nodes);
        await_acks(&progress, 10);
        cut(&mut admin, "normal", &cluster.nodes);
        await_acks(&progress, 10);
        drop(stopping);
        publisher.join().expect("the publisher finishes")
    });

    let last = *outcome.acked.keys().last().expect("acks");
    assert!(outcome.acked.len() >= 30, "{} acks", outcome.acked.len());
    assert!(
        outcome.refused > 0,
        "the publisher kept publishing while node a was cut off"
    );
    for subscriber in &mut subscribers {
        let received = publications_through(subscriber, last);
        assert_eq!(
            offsets(&received),
            (1..=last).collect::<Vec<u64>>(),
            "every offset, in order ({} publishes were refused)",
            outcome.refused
        );
        for message in &received {
            let offset = message["offset"].as_u64().expect("an offset");
            if let Some(payload) = outcome.acked.get(&offset) {
                assert_eq!(&message["payload"], payload, "offset {offset}");
            }
        }
    }
}

#[test]
fn restarting_redis_without_persistence_changes_the_epoch_and_clients_are_told_recovered_false() {
    let mut cluster = Cluster::start();
    let (mut subscribers, answers) = subscribers(&cluster.nodes, "chat");
    let old_epoch = answers[0]["epoch"].clone();
    for n in 1..=3 {
        assert_eq!(cluster.nodes[0].api_publish_ok("chat", json!(n)), n);
    }
    for subscriber in &mut subscribers {
        assert_eq!(offsets(&publications(subscriber, 3)), [1, 2, 3]);
    }

    cluster.redis.kill();
    for node in &cluster.nodes {
        node.await_link_failed();
    }
    let refused = cluster.nodes[1].api_publish("chat", json!("lost"));
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.body.contains("UNAVAILABLE"), "{refused:?}");
    cluster.redis.restart();
    for node in &cluster.nodes {
        node.await_link_up();
    }

    assert_eq!(cluster.nodes[2].api_publish_ok("chat", json!("after")), 1);
    let mut new_epoch = None;
    for subscriber in &mut subscribers {
        let announced = until(subscriber, |message| {
            message["type"] != "join" && message["type"] != "leave"
        });
        assert_eq!(
            (
                &announced["type"],
                &announced["recovered"],
                &announced["offset"]
            ),
            (&json!("subscribed"), &json!(false), &json!(0)),
            "{announced}"
        );
        assert_eq!(announced.get("id"), None, "unsolicited: {announced}");
        assert_ne!(announced["epoch"], old_epoch);
        assert_eq!(
            new_epoch.get_or_insert_with(|| announced["epoch"].clone()),
            &announced["epoch"],
            "one new epoch on every node"
        );
        let after = next_publication(subscriber);
        assert_eq!(
            (&after["payload"], &after["offset"]),
            (&json!("after"), &json!(1))
        );
    }

    // A client that saw offset 3 of the old epoch is not handed the new
    // epoch's history as if it continued the old one.
    let mut late = Ws::auth(cluster.nodes[1].addr, "late");
    late.send_json(json!({"type": "subscribe", "channel": "chat", "id": "r",
                          "since": {"epoch": old_epoch, "offset": 3}}));
    let answer = late.recv();
    assert_eq!(
        (&answer["type"], &answer["recovered"], &answer["epoch"]),
        (
            &json!("subscribed"),
            &json!(false),
            new_epoch.as_ref().expect("an epoch")
        ),
        "no replay before the answer: {answer}"
    );
    assert_eq!(answer["offset"], 1);
}
