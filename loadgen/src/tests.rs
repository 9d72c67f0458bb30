//! Correctness of the load generator against an in-process smol node: tiny
//! runs, no timing assertions.

use std::sync::Arc;

use clap::Parser;

use tether_core::ServerConfig;
use tether_smol::{Server, ServerOptions, ServerTls};
use tether_testkit::tls::TestCa;

use crate::args::{ConnectArgs, FanoutArgs, IdleArgs, RttArgs};
use crate::{BenchArgs, Report, Scenario, execute, run};
use tether::auth::{Authenticator, NodeAuthorizer};

/// A dev-mode node on a free loopback port, with a rate limit the tiny
/// runs cannot reach; returns its URL.
fn start_node() -> String {
    start_node_with(ServerConfig {
        rate_limit: 1_000_000,
        rate_burst: 1_000_000,
        ..ServerConfig::dev()
    })
}

/// A dev-mode node with `config` on a free loopback port; returns its URL.
fn start_node_with(config: ServerConfig) -> String {
    let server = bind(config);
    let url = format!("ws://{}/ws", server.local_addr().unwrap());
    std::thread::spawn(move || tether_smol::block_on(server.run()));
    url
}

fn bind(config: ServerConfig) -> Server {
    Server::bind(ServerOptions {
        config,
        listen: "127.0.0.1:0".parse().unwrap(),
        handler: Arc::new(NodeAuthorizer::new(Authenticator::Dev, None)),
        seed: Some(1),
    })
    .unwrap()
}

fn args(url: &str, scenario: Scenario) -> BenchArgs {
    BenchArgs {
        url: url.to_owned(),
        ca: None,
        insecure: false,
        peer: None,
        threads: 2,
        deflate: false,
        scenario,
    }
}

#[test]
fn a_tiny_fanout_over_wss_trusting_the_ca_or_anything() {
    let ca = TestCa::new("loadgen");
    let files = ca.server("node");
    let tls = ServerTls::load(&files.cert, &files.key).unwrap();
    let server = bind(ServerConfig {
        rate_limit: 1_000_000,
        rate_burst: 1_000_000,
        ..ServerConfig::dev()
    })
    .with_tls(tls);
    let url = format!("wss://localhost:{}/ws", server.local_addr().unwrap().port());
    std::thread::spawn(move || tether_smol::block_on(server.run()));
    let fanout = || {
        Scenario::Fanout(FanoutArgs {
            subscribers: 2,
            messages: 20,
            bytes: 100,
            window: 4,
            timeout: 10,
            targets: Vec::new(),
            chat: false,
        })
    };
    let trusting = BenchArgs {
        ca: Some(ca.ca_file().to_owned()),
        ..args(&url, fanout())
    };
    let report = execute(&trusting).unwrap();
    assert_eq!(number(&report, "deliveries"), 40.0, "{report:?}");
    let insecure = BenchArgs {
        insecure: true,
        ..args(&url, fanout())
    };
    let report = execute(&insecure).unwrap();
    assert_eq!(number(&report, "deliveries"), 40.0, "{report:?}");
    let error = execute(&args(&url, fanout())).expect_err("refused");
    assert!(error.to_string().contains("--ca"), "{error}");
}

fn bench(url: &str, scenario: Scenario) -> Report {
    execute(&args(url, scenario)).unwrap()
}

#[test]
fn a_run_the_rate_limit_cut_short_fails_and_says_which_config_to_bench() {
    let url = start_node_with(ServerConfig::dev());
    let rtt = Scenario::Rtt(RttArgs {
        connections: 1,
        seconds: 5,
        server_pid: None,
    });
    let error = run(&args(&url, rtt)).unwrap_err().to_string();
    assert!(error.contains("RATE_LIMITED"), "{error}");
    assert!(error.contains("benches/tether.toml"), "{error}");
}

fn number(report: &Report, key: &str) -> f64 {
    report
        .get(key)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("{key} in {report:?}"))
}

#[test]
fn a_tiny_fanout_delivers_everything_in_order() {
    let url = start_node();
    let report = bench(
        &url,
        Scenario::Fanout(FanoutArgs {
            subscribers: 3,
            messages: 50,
            bytes: 100,
            chat: false,
            window: 4,
            timeout: 20,
            targets: Vec::new(),
        }),
    );
    assert_eq!(number(&report, "deliveries"), 150.0, "{report:?}");
    assert_eq!(number(&report, "lost"), 0.0, "{report:?}");
    assert_eq!(number(&report, "gaps"), 0.0, "{report:?}");
    assert_eq!(number(&report, "duplicates"), 0.0, "{report:?}");
    assert_eq!(number(&report, "acks"), 50.0, "{report:?}");
}

#[test]
fn chat_deliveries_take_fewer_bytes_on_the_wire_with_deflate() {
    let url = start_node();
    let fanout = |deflate: bool| {
        let report = execute(&BenchArgs {
            deflate,
            ..args(
                &url,
                Scenario::Fanout(FanoutArgs {
                    subscribers: 2,
                    messages: 20,
                    bytes: 400,
                    chat: true,
                    window: 4,
                    timeout: 20,
                    targets: Vec::new(),
                }),
            )
        })
        .unwrap();
        assert_eq!(number(&report, "deliveries"), 40.0, "{report:?}");
        number(&report, "wire_bytes_per_delivery")
    };
    let plain = fanout(false);
    let compressed = fanout(true);
    assert!(plain > 400.0, "{plain}");
    assert!(compressed < plain * 0.8, "{compressed} vs {plain}");
}

#[test]
fn rtt_idle_and_connect_complete_against_a_node() {
    let url = start_node();
    let rtt = bench(
        &url,
        Scenario::Rtt(RttArgs {
            connections: 2,
            seconds: 1,
            server_pid: Some(std::process::id()),
        }),
    );
    assert!(number(&rtt, "round_trips") > 0.0, "{rtt:?}");
    assert!(
        number(&rtt, "server_cpu_us_per_round_trip") >= 0.0,
        "{rtt:?}"
    );
    let idle = bench(
        &url,
        Scenario::Idle(IdleArgs {
            connections: 5,
            server_pid: std::process::id(),
            concurrency: 5,
            settle: 0,
        }),
    );
    assert_eq!(number(&idle, "connections"), 5.0, "{idle:?}");
    assert_eq!(number(&idle, "failures"), 0.0, "{idle:?}");
    let connect = bench(
        &url,
        Scenario::Connect(ConnectArgs {
            clients: 5,
            timeout: 10,
        }),
    );
    assert_eq!(number(&connect, "connected"), 5.0, "{connect:?}");
}

#[test]
fn only_loopback_targets_are_accepted() {
    let args = BenchArgs {
        threads: 1,
        ..args(
            "ws://192.0.2.1:8080/ws",
            Scenario::Connect(ConnectArgs {
                clients: 1,
                timeout: 1,
            }),
        )
    };
    let error = execute(&args).unwrap_err();
    assert!(error.to_string().contains("loopback"), "{error}");
}

#[test]
fn the_command_line_takes_a_scenario_and_its_sizes() {
    assert!(BenchArgs::try_parse_from(["tether-loadgen"]).is_err());
    let args = BenchArgs::try_parse_from([
        "tether-loadgen",
        "--url",
        "ws://127.0.0.1:9000/ws",
        "--peer",
        "smol",
        "fanout",
        "--subscribers",
        "3",
    ])
    .unwrap();
    assert_eq!(args.peer.as_deref(), Some("smol"));
    let Scenario::Fanout(fanout) = args.scenario else {
        panic!("not fanout");
    };
    assert_eq!(
        (fanout.subscribers, fanout.messages, fanout.bytes),
        (3, 2_000, 100)
    );
}
