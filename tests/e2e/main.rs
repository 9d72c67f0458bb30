//! The end-to-end suite: every observable rule of PROTOCOL.md sections 1
//! to 9, and the application's part of section 13 (`hooks`: an embedder's
//! handler), checked against a running node over real sockets on
//! 127.0.0.1.
//!
//! Each test is written once, as a function of the [`harness::Runtime`]
//! that drives the node, and `runtime_tests!` makes one `#[test]` per
//! runtime it is listed for (`routes::healthz_answers_ok::smol`, ...). A
//! smoke subset also runs against the core's `serve` example
//! (`...::example`), the reference for writing an adapter. Every
//! test binds port 0, every read has a timeout, and every test as a whole
//! is bounded by [`harness::TEST_LIMIT`]. The clients and the child
//! process are the project's test kit (`tether-testkit`).
//!
//! Most clients are tungstenite, an independent WebSocket implementation;
//! `async_clients` and `token_refresh` use the project's own
//! clients, and `shutdown` also runs
//! the `tether` binary itself.

/// Declares, for each `test => runtime, ...` line, a module named after the
/// test holding one `#[test]` per listed runtime, each running the test
/// function of the same name within the suite's bounds.
macro_rules! runtime_tests {
    (@runtime smol) => {
        $crate::harness::Runtime::Smol
    };
    (@runtime smol2) => {
        $crate::harness::Runtime::Smol2
    };
    (@runtime blocking) => {
        $crate::harness::Runtime::Blocking
    };
    (@runtime tokio) => {
        $crate::harness::Runtime::Tokio
    };
    (@runtime tokio2) => {
        $crate::harness::Runtime::Tokio2
    };
    (@runtime example) => {
        $crate::harness::Runtime::Example
    };
    ($($test:ident => $($runtime:ident),+;)+) => {
        $(
            mod $test {
                $(
                    #[test]
                    fn $runtime() {
                        let runtime = runtime_tests!(@runtime $runtime);
                        tether_testkit::bounded($crate::harness::TEST_LIMIT, move || super::$test(runtime));
                    }
                )+
            }
        )+
    };
}

mod harness;

mod access;
mod api;
mod async_clients;
mod auth;
mod backpressure;
mod closes;
mod compression;
mod connect;
mod fd_limit;
mod handshake;
mod heartbeat;
mod hooks;
mod keys;
mod limits;
mod presence;
mod private;
mod proxy;
mod pubsub;
mod recovery;
mod routes;
mod shards;
mod shutdown;
mod tls;
mod token_refresh;
mod validation;
