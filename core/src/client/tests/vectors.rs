//! The shared client test vectors (`core/src/client/vectors.json`) played
//! against the session through the scripted server. The JavaScript client
//! plays the same file (`web/tests/vectors.test.mjs`), so the two clients
//! cannot drift apart, and the file's defaults are the session's.

use std::collections::HashMap;

use serde_json::Value;

use super::*;
use crate::envelope::{RequestId, parse_client_message};

/// The vectors, as the JavaScript client's tests read them too.
const VECTORS: &str = include_str!("../vectors.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("the vectors are JSON")
}

fn number(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value} is a number"))
}

fn ms(value: &Value) -> Duration {
    Duration::from_millis(number(value))
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is a string"))
}

#[test]
fn the_session_defaults_are_the_vectors_defaults() {
    let defaults = &vectors()["defaults"];
    let config = ClientConfig::new("example.com", "secret");
    let backoff = &defaults["backoff"];
    assert_eq!(config.backoff.base, ms(&backoff["base_ms"]));
    assert_eq!(config.backoff.cap, ms(&backoff["cap_ms"]));
    assert_eq!(config.backoff.jitter, ms(&backoff["jitter_ms"]));
    let max_attempts = backoff["max_attempts"].as_u64().map(|max| max as u32);
    assert_eq!(config.backoff.max_attempts, max_attempts);
    assert_eq!(config.ping_idle, ms(&defaults["ping_idle_ms"]));
    assert_eq!(config.pong_timeout, ms(&defaults["pong_timeout_ms"]));
    assert_eq!(config.request_timeout, ms(&defaults["request_timeout_ms"]));
    assert_eq!(config.connect_timeout, ms(&defaults["connect_timeout_ms"]));
    assert_eq!(config.close_timeout, ms(&defaults["close_timeout_ms"]));
    assert_eq!(
        config.offline_queue as u64,
        number(&defaults["offline_queue"])
    );
}

#[test]
fn the_session_keeps_every_shared_vector() {
    let vectors = vectors();
    let cases = vectors["cases"].as_array().expect("a list of cases");
    assert!(!cases.is_empty());
    for case in cases {
        let name = text(&case["name"]);
        match case.get("each") {
            Some(values) => {
                for value in values.as_array().expect("a list of values") {
                    let steps = with_each(&case["steps"], value);
                    Run::new(&case["config"]).play(&steps, &format!("{name} ({value})"));
                }
            }
            None => Run::new(&case["config"]).play(&case["steps"], name),
        }
    }
}

/// `steps` with every `"$each"` replaced by `value`.
fn with_each(steps: &Value, value: &Value) -> Value {
    match steps {
        Value::String(text) if text == "$each" => value.clone(),
        Value::Array(items) => items.iter().map(|item| with_each(item, value)).collect(),
        Value::Object(fields) => fields
            .iter()
            .map(|(key, item)| (key.clone(), with_each(item, value)))
            .collect(),
        other => other.clone(),
    }
}

/// One case on a fresh session: the harness, the requests it named and
/// what it saw.
struct Run {
    h: Harness,
    requests: HashMap<String, RequestId>,
    refused: Option<SendError>,
    log: Vec<String>,
    /// How much of `log` the last `messages` expectation read.
    read: usize,
}

impl Run {
    fn new(settings: &Value) -> Run {
        let mut config = config();
        if let Some(max) = settings.get("max_attempts") {
            config.backoff.max_attempts = Some(number(max) as u32);
        }
        if let Some(bound) = settings.get("offline_queue") {
            config.offline_queue = number(bound) as usize;
        }
        let mut h = Harness::new(config);
        let log = h.take_log();
        h.take_received();
        Run {
            h,
            requests: HashMap::new(),
            refused: None,
            log,
            read: 0,
        }
    }

    fn play(mut self, steps: &Value, name: &str) {
        for (number, step) in steps
            .as_array()
            .expect("a list of steps")
            .iter()
            .enumerate()
        {
            self.step(step, &format!("{name}, step {number}: {step}"));
            let log = self.h.take_log();
            self.log.extend(log);
        }
    }

    fn step(&mut self, step: &Value, at: &str) {
        let h = &mut self.h;
        if step.get("accept").is_some() {
            h.connect_and_auth();
        } else if step.get("fail_dial").is_some() {
            h.fail_dial();
        } else if step.get("dial").is_some() {
            let dials = h.dials;
            h.step();
            assert_eq!(h.dials, dials + 1, "{at}: a dial");
        } else if step.get("drop").is_some() {
            h.drop_transport();
        } else if let Some(code) = step.get("close") {
            let code = u16::try_from(number(code)).expect("a close code");
            h.server_bytes(&close_frame(CloseCode(code), "bye"));
        } else if let Some(message) = step.get("receive") {
            h.server_send(&message.to_string());
        } else if let Some(name) = step.get("subscribe") {
            h.client.subscribe(channel(text(name))).unwrap();
        } else if let Some(message) = step.get("send") {
            let message = parse_client_message(&message.to_string()).expect("a client message");
            self.refused = h.client.send(message).err();
        } else if let Some(message) = step.get("request") {
            let message = parse_client_message(&message.to_string()).expect("a client message");
            let timeout = h.client.config().request_timeout;
            let sent = h.client.request(h.now, message, timeout);
            self.keep(step, sent);
        } else if let Some(publication) = step.get("publish") {
            let payload = raw(&publication["payload"].to_string());
            let sent = h
                .client
                .publish(h.now, channel(text(&publication["channel"])), payload);
            self.keep(step, sent);
        } else if let Some(expected) = step.get("expect") {
            self.check(expected, at);
        } else {
            panic!("{at}: an unknown step");
        }
    }

    /// Names the request `step` made, or keeps why it was refused.
    fn keep(&mut self, step: &Value, sent: Result<RequestId, SendError>) {
        match sent {
            Ok(id) => {
                self.requests.insert(text(&step["as"]).to_owned(), id);
                self.refused = None;
            }
            Err(error) => self.refused = Some(error),
        }
    }

    fn check(&mut self, expected: &Value, at: &str) {
        let log = self.h.take_log();
        self.log.extend(log);
        if let Some(sent) = expected.get("sent") {
            assert_eq!(&Value::from(self.sent()), sent, "{at}");
        }
        if let Some(messages) = expected.get("messages") {
            let delivered: Vec<Value> = self.log[self.read..]
                .iter()
                .filter_map(|line| {
                    let rest = line.strip_prefix("message ")?;
                    let (channel, rest) = rest.split_once(" #")?;
                    let offset: u64 = rest.split_once(' ')?.0.parse().ok()?;
                    Some(serde_json::json!([channel, offset]))
                })
                .collect();
            self.read = self.log.len();
            assert_eq!(&Value::from(delivered), messages, "{at}");
        }
        if let Some(reconnect) = expected.get("reconnect") {
            let attempt = number(&reconnect["attempt"]);
            let last = self
                .log
                .iter()
                .rev()
                .find(|line| line.starts_with("reconnecting #"));
            let wanted = format!("reconnecting #{attempt} in ");
            assert!(
                last.is_some_and(|line| line.starts_with(&wanted)),
                "{at}: {last:?}"
            );
            let delay = self.h.client.poll_timeout().expect("a dial is due") - self.h.now;
            let (min, max) = (ms(&reconnect["min_ms"]), ms(&reconnect["max_ms"]));
            assert!(delay >= min && delay < max, "{at}: {delay:?}");
        }
        if expected.get("closed").is_some() {
            assert!(self.h.client.is_closed(), "{at}");
            let dials = self.h.dials;
            self.h.advance_to(self.h.now + secs(3_600));
            assert_eq!(self.h.dials, dials, "{at}: no dial after the end");
        }
        if let Some(outcomes) = expected.get("outcomes") {
            for (name, outcome) in outcomes.as_object().expect("named outcomes") {
                assert_eq!(self.outcome(name), text(outcome), "{at}: {name}");
            }
        }
        if let Some(refused) = expected.get("refused") {
            let kind = match self.refused.take() {
                Some(SendError::QueueFull) => "queue-full",
                Some(SendError::Closed) => "closed",
                other => panic!("{at}: refused with {other:?}"),
            };
            assert_eq!(kind, text(refused), "{at}");
        }
    }

    /// What the server received since the last look, parsed: the upgrade
    /// request and close frames left out, idempotency keys as `<key>`.
    fn sent(&mut self) -> Vec<Value> {
        self.h
            .take_received()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|mut message| {
                if let Some(key) = message.get_mut("idempotency_key") {
                    let hex = key.as_str().is_some_and(|key| {
                        key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())
                    });
                    assert!(hex, "a key of 32 hex digits: {key}");
                    *key = Value::from("<key>");
                }
                message
            })
            .collect()
    }

    /// How the request named `name` ended, in the vectors' words.
    fn outcome(&self, name: &str) -> &'static str {
        let id = &self.requests[name];
        let done = format!("done {id} ");
        let Some(line) = self.log.iter().find(|line| line.starts_with(&done)) else {
            return "pending";
        };
        match line[done.len()..].strip_prefix("failed: ") {
            None => "ok",
            Some("connection dropped") => "disconnected",
            Some("session closed") => "closed",
            Some("request timed out") => "timeout",
            Some(_) => "server",
        }
    }
}
