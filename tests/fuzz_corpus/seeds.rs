//! The hand-written seeds of the operation targets, kept readable here and
//! checked in as the bytes the fuzzer's decoder turns back into them.
//!
//! A test encodes every scenario in the format `arbitrary` decodes (enum
//! tags as little-endian `u32`s scaled to the variant count, a `true` byte
//! before each element of the trailing operation list) and asserts that
//! the file in `fuzz/corpus/<target>/` holds exactly those bytes and
//! decodes to the scenario. With `TETHER_WRITE_SEEDS=1` it writes the files
//! instead.

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};

use tether_core::fuzzing::client_ops::Op as C;
use tether_core::fuzzing::server_ops::{Action as A, Op as S, RpcAnswer};

/// Writes a value the way `arbitrary` reads it.
trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

/// The tag that `arbitrary` decodes as variant `index` of `count`.
fn variant(out: &mut Vec<u8>, index: u64, count: u64) {
    let tag = u32::try_from((index << 32).div_ceil(count)).expect("index < count");
    out.extend_from_slice(&tag.to_le_bytes());
}

impl Encode for u8 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
}

impl Encode for u16 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.is_some().encode(out);
        if let Some(value) = self {
            value.encode(out);
        }
    }
}

impl Encode for S {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            S::Connect => variant(out, 0, 7),
            S::Client { conn, action } => {
                variant(out, 1, 7);
                conn.encode(out);
                action.encode(out);
            }
            S::Verdict { conn, accept } => {
                variant(out, 2, 7);
                conn.encode(out);
                accept.encode(out);
            }
            S::ApiPublish { channel, payload } => {
                variant(out, 3, 7);
                channel.encode(out);
                payload.encode(out);
            }
            S::Advance { millis } => {
                variant(out, 4, 7);
                millis.encode(out);
            }
            S::Shutdown => variant(out, 5, 7),
            S::Answer { conn, answer } => {
                variant(out, 6, 7);
                conn.encode(out);
                answer.encode(out);
            }
        }
    }
}

impl Encode for A {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            A::Auth(granting) => {
                variant(out, 0, 14);
                granting.encode(out);
            }
            A::AppPing => variant(out, 1, 14),
            A::Subscribe { channel, since } => {
                variant(out, 2, 14);
                channel.encode(out);
                since.encode(out);
            }
            A::Unsubscribe { channel } => {
                variant(out, 3, 14);
                channel.encode(out);
            }
            A::Publish {
                channel,
                payload,
                retry,
            } => {
                variant(out, 4, 14);
                channel.encode(out);
                payload.encode(out);
                retry.encode(out);
            }
            A::Presence { channel } => {
                variant(out, 5, 14);
                channel.encode(out);
            }
            A::Ping(data) => {
                variant(out, 6, 14);
                data.encode(out);
            }
            A::Pong => variant(out, 7, 14),
            A::Close(code) => {
                variant(out, 8, 14);
                code.encode(out);
            }
            A::Raw(_) => unimplemented!("seeds carry no raw bytes"),
            A::Read(units) => {
                variant(out, 10, 14);
                units.encode(out);
            }
            A::Drop => variant(out, 11, 14),
            A::Refresh(granting) => {
                variant(out, 12, 14);
                granting.encode(out);
            }
            A::Rpc { method, data } => {
                variant(out, 13, 14);
                method.encode(out);
                data.encode(out);
            }
        }
    }
}

impl Encode for RpcAnswer {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            RpcAnswer::Result(data) => {
                variant(out, 0, 3);
                data.encode(out);
            }
            RpcAnswer::Reject(code) => {
                variant(out, 1, 3);
                code.encode(out);
            }
            RpcAnswer::NotJson => variant(out, 2, 3),
        }
    }
}

impl Encode for C {
    fn encode(&self, out: &mut Vec<u8>) {
        const N: u64 = 19;
        match self {
            C::Subscribe(channel) => {
                variant(out, 0, N);
                channel.encode(out);
            }
            C::Unsubscribe(channel) => {
                variant(out, 1, N);
                channel.encode(out);
            }
            C::Publish { channel, payload } => {
                variant(out, 2, N);
                channel.encode(out);
                payload.encode(out);
            }
            C::Request {
                kind,
                channel,
                timeout,
            } => {
                variant(out, 3, N);
                kind.encode(out);
                channel.encode(out);
                timeout.encode(out);
            }
            C::Send(channel) => {
                variant(out, 4, N);
                channel.encode(out);
            }
            C::Close => variant(out, 5, N),
            C::Accept => variant(out, 6, N),
            C::Refuse => variant(out, 7, N),
            C::ToNode(units) => {
                variant(out, 8, N);
                units.encode(out);
            }
            C::ToClient(units) => {
                variant(out, 9, N);
                units.encode(out);
            }
            C::Flush => variant(out, 10, N),
            C::Verdict(accept) => {
                variant(out, 11, N);
                accept.encode(out);
            }
            C::NodePublish { channel, payload } => {
                variant(out, 12, N);
                channel.encode(out);
                payload.encode(out);
            }
            C::Drop => variant(out, 13, N),
            C::Restart => variant(out, 14, N),
            C::Garbage(_) => unimplemented!("seeds carry no raw bytes"),
            C::Advance(millis) => {
                variant(out, 16, N);
                millis.encode(out);
            }
            C::Token(given) => {
                variant(out, 17, N);
                given.encode(out);
            }
            C::SetToken => variant(out, 18, N),
        }
    }
}

/// A list of operations as `Vec::arbitrary_take_rest` reads it.
fn encode_all<T: Encode>(ops: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        true.encode(&mut out);
        op.encode(&mut out);
    }
    out
}

/// The client of connection 0 or 1.
fn c(conn: u8, action: A) -> S {
    S::Client { conn, action }
}

/// Connection `conn` upgrades, authenticates as user `user` and is accepted.
fn login(conn: u8, user: u8) -> Vec<S> {
    vec![
        c(conn, A::Auth(true)),
        c(conn, A::Auth(true)),
        S::Verdict {
            conn,
            accept: Some(user),
        },
        c(conn, A::Read(255)),
    ]
}

/// `ops` after one connection logged in as `u0`.
fn logged_in(ops: Vec<S>) -> Vec<S> {
    let mut all = vec![S::Connect];
    all.extend(login(0, 0));
    all.extend(ops);
    all
}

fn server_scenarios() -> Vec<(&'static str, Vec<S>)> {
    let sub = |channel, since| A::Subscribe { channel, since };
    let publish = |channel, retry| A::Publish {
        channel,
        payload: 7,
        retry,
    };
    let api = |channel| S::ApiPublish {
        channel,
        payload: 1,
    };
    let mut two_users = vec![S::Connect, S::Connect];
    two_users.extend(login(0, 0));
    two_users.extend(login(1, 1));
    two_users.extend([
        c(0, sub(0, None)),
        c(1, sub(0, None)),
        c(1, A::Presence { channel: 0 }),
        c(0, publish(0, false)),
        c(0, A::Read(255)),
        c(1, A::Read(255)),
        c(1, A::Drop),
        c(0, A::Read(255)),
    ]);
    vec![
        (
            "login_subscribe_publish",
            logged_in(vec![
                c(0, sub(0, None)),
                c(0, publish(0, false)),
                c(0, A::AppPing),
                c(0, A::Read(255)),
            ]),
        ),
        ("two_users_presence", two_users),
        (
            "publish_retried_with_its_id",
            logged_in(vec![
                c(0, publish(1, false)),
                c(0, A::Read(255)),
                c(0, publish(1, true)),
                c(0, A::Read(255)),
            ]),
        ),
        (
            "recover_since",
            logged_in(vec![
                c(0, sub(0, None)),
                api(0),
                api(0),
                c(0, A::Read(255)),
                c(0, A::Unsubscribe { channel: 0 }),
                api(0),
                api(0),
                c(0, sub(0, Some(1))),
                c(0, A::Read(255)),
            ]),
        ),
        (
            "refresh_drops_the_grant",
            logged_in(vec![
                c(0, sub(0, None)),
                c(0, A::Read(255)),
                c(0, A::Refresh(false)),
                S::Verdict {
                    conn: 0,
                    accept: Some(0),
                },
                api(0),
                c(0, A::Read(255)),
            ]),
        ),
        ("slow_consumer", {
            let mut ops = vec![c(0, sub(2, None)), c(0, sub(1, None))];
            ops.extend((0..40).map(|_| api(1)));
            ops.extend((0..10).map(|_| api(2)));
            ops.push(S::Advance { millis: 1500 });
            ops.push(c(0, A::Read(255)));
            logged_in(ops)
        }),
        (
            "auth_timeout_then_rejected_token",
            vec![
                S::Connect,
                c(0, A::Auth(true)),
                S::Advance { millis: 3000 },
                S::Connect,
                c(0, A::Auth(true)),
                c(0, A::Auth(true)),
                S::Verdict {
                    conn: 0,
                    accept: None,
                },
                c(0, A::Read(255)),
            ],
        ),
        (
            "heartbeat_answered_then_missed",
            logged_in(vec![
                S::Advance { millis: 5000 },
                c(0, A::Read(255)),
                c(0, A::Pong),
                S::Advance { millis: 5000 },
                S::Advance { millis: 5000 },
            ]),
        ),
        (
            "pipelined_before_the_verdict",
            vec![
                S::Connect,
                c(0, A::Auth(true)),
                c(0, A::Auth(true)),
                c(0, sub(0, None)),
                c(0, A::AppPing),
                S::Verdict {
                    conn: 0,
                    accept: Some(2),
                },
                c(0, A::Read(255)),
            ],
        ),
        (
            "too_many_before_the_verdict",
            vec![
                S::Connect,
                c(0, A::Auth(true)),
                c(0, A::Auth(true)),
                c(0, A::AppPing),
                c(0, A::AppPing),
                c(0, A::AppPing),
                c(0, A::AppPing),
                c(0, A::AppPing),
                c(0, A::Read(255)),
            ],
        ),
        (
            "private_channels",
            logged_in(vec![
                c(0, sub(3, None)),
                c(0, sub(4, None)),
                c(0, publish(3, false)),
                S::ApiPublish {
                    channel: 3,
                    payload: 9,
                },
                c(0, A::Read(255)),
            ]),
        ),
        (
            "pings_and_close_frames",
            logged_in(vec![
                c(0, A::Ping(1)),
                c(0, A::Read(0)),
                c(0, A::Close(1000)),
                c(0, A::Read(255)),
                S::Connect,
                c(1, A::Auth(true)),
                c(1, A::Close(1005)),
                c(1, A::Read(255)),
            ]),
        ),
        (
            "rpcs_answered_refused_and_timed_out",
            logged_in(vec![
                c(0, A::Rpc { method: 0, data: 1 }),
                c(0, A::AppPing),
                c(0, A::Rpc { method: 2, data: 2 }),
                S::Answer {
                    conn: 0,
                    answer: RpcAnswer::Result(5),
                },
                c(0, A::Rpc { method: 1, data: 3 }),
                S::Answer {
                    conn: 0,
                    answer: RpcAnswer::Reject(1),
                },
                c(0, A::Rpc { method: 0, data: 4 }),
                S::Answer {
                    conn: 0,
                    answer: RpcAnswer::NotJson,
                },
                c(0, A::Rpc { method: 0, data: 5 }),
                S::Advance { millis: 2000 },
                S::Answer {
                    conn: 0,
                    answer: RpcAnswer::Result(9),
                },
                c(0, A::Read(255)),
            ]),
        ),
        (
            "shutdown",
            logged_in(vec![
                c(0, sub(0, None)),
                S::Connect,
                S::Shutdown,
                S::Connect,
                c(0, A::Read(255)),
                S::Advance { millis: 2000 },
            ]),
        ),
    ]
}

fn client_scenarios() -> Vec<(&'static str, Vec<C>)> {
    let connect = || {
        vec![
            C::Token(true),
            C::Accept,
            C::Flush,
            C::Verdict(Some(0)),
            C::Flush,
        ]
    };
    let with = |before: Vec<C>, after: Vec<C>| {
        let mut ops = before;
        ops.extend(after);
        ops
    };
    vec![
        (
            "connect_subscribe_publish",
            with(
                connect(),
                vec![
                    C::Subscribe(0),
                    C::Flush,
                    C::Publish {
                        channel: 0,
                        payload: 3,
                    },
                    C::NodePublish {
                        channel: 0,
                        payload: 4,
                    },
                    C::Flush,
                ],
            ),
        ),
        (
            "reconnect_and_recover",
            with(
                connect(),
                vec![
                    C::Subscribe(1),
                    C::Flush,
                    C::Drop,
                    C::NodePublish {
                        channel: 1,
                        payload: 1,
                    },
                    C::Advance(300),
                    C::Token(true),
                    C::Accept,
                    C::Flush,
                    C::Verdict(Some(0)),
                    C::Flush,
                ],
            ),
        ),
        (
            "restart_new_epoch",
            with(
                connect(),
                vec![
                    C::Subscribe(0),
                    C::Flush,
                    C::Restart,
                    C::Advance(300),
                    C::Token(true),
                    C::Accept,
                    C::Flush,
                    C::Verdict(Some(1)),
                    C::Flush,
                ],
            ),
        ),
        ("refused_dials_until_giving_up", {
            let mut ops = vec![C::Request {
                kind: 0,
                channel: 0,
                timeout: 60_000,
            }];
            for _ in 0..7 {
                ops.extend([C::Token(true), C::Refuse, C::Advance(2500)]);
            }
            ops
        }),
        (
            "offline_requests_time_out",
            vec![
                C::Request {
                    kind: 1,
                    channel: 0,
                    timeout: 100,
                },
                C::Publish {
                    channel: 2,
                    payload: 0,
                },
                C::Send(1),
                C::Advance(2500),
                C::Advance(300),
                C::Token(true),
                C::Accept,
                C::Flush,
                C::Verdict(Some(0)),
                C::Flush,
            ],
        ),
        (
            "token_rejected",
            vec![
                C::Token(true),
                C::Accept,
                C::Flush,
                C::Verdict(None),
                C::Flush,
                C::Advance(3000),
            ],
        ),
        (
            "requests_and_close",
            with(
                connect(),
                vec![
                    C::Request {
                        kind: 0,
                        channel: 0,
                        timeout: 500,
                    },
                    C::Request {
                        kind: 2,
                        channel: 1,
                        timeout: 500,
                    },
                    C::Request {
                        kind: 3,
                        channel: 0,
                        timeout: 500,
                    },
                    C::ToNode(1),
                    C::Close,
                    C::Flush,
                ],
            ),
        ),
        (
            "partial_deliveries_and_heartbeat",
            vec![
                C::Token(true),
                C::Accept,
                C::ToNode(1),
                C::ToClient(1),
                C::ToNode(255),
                C::Verdict(Some(2)),
                C::ToClient(0),
                C::ToClient(255),
                C::Advance(3000),
                C::Flush,
                C::Advance(3000),
                C::Advance(1000),
            ],
        ),
        (
            "token_refreshed_then_expired",
            vec![
                C::Token(true),
                C::Accept,
                C::Flush,
                // A token that lives 1 s: refreshed at 800 ms.
                C::Verdict(Some(3)),
                C::Flush,
                C::Advance(800),
                C::Token(true),
                C::Flush,
                C::Verdict(Some(3)),
                C::Flush,
                // The next refresh finds no token, and its retry would
                // come after the expiry: the node closes 4004.
                C::Advance(800),
                C::Token(false),
                C::Advance(300),
                C::Flush,
                C::Advance(300),
                C::Token(true),
                C::Accept,
                C::Flush,
                C::Verdict(Some(0)),
                C::Flush,
            ],
        ),
        (
            "token_switched_to_fixed",
            vec![
                C::SetToken,
                C::Token(true),
                C::Accept,
                C::Flush,
                C::Verdict(Some(1)),
                C::Flush,
                C::Drop,
                C::Advance(300),
                C::Accept,
                C::Flush,
                C::Verdict(Some(1)),
                C::Flush,
            ],
        ),
    ]
}

/// Checks (or writes) the seed files of `target`.
fn seeds<T: Encode + std::fmt::Debug + for<'a> Arbitrary<'a>>(
    target: &str,
    scenarios: Vec<(&str, Vec<T>)>,
) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let write = std::env::var_os("TETHER_WRITE_SEEDS").is_some();
    for (name, ops) in scenarios {
        let bytes = encode_all(&ops);
        let decoded = Vec::<T>::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
        assert_eq!(format!("{decoded:?}"), format!("{ops:?}"), "{name}");
        let path = dir.join(format!("{name}.ops"));
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let file = std::fs::read(&path).unwrap_or_default();
        assert_eq!(file, bytes, "{} is stale", path.display());
    }
}

#[test]
fn server_ops_seeds_are_checked_in() {
    seeds("server_ops", server_scenarios());
}

#[test]
fn client_ops_seeds_are_checked_in() {
    seeds("client_ops", client_scenarios());
}
