//! The client suite: the decisions of PROTOCOL.md sections 10 and 11 that
//! a client takes, checked on each of the project's clients against a
//! scripted server on 127.0.0.1: real sockets, real time, every decision
//! still the core's.
//!
//! Each shared test is written once, as a function generic over
//! [`harness::TestClient`], and `client_tests!` makes one `#[test]` per
//! client it is listed for (`requests::requests_resolve_with_their_reply_or_error::smol`,
//! ...). Tests of what only one client offers live in `smol_only` and
//! `blocking_only`. Every test is bounded by [`harness::TEST_LIMIT`], and
//! every wait within it by [`harness::PATIENCE`].

/// Declares, for each `test => client, ...` line, a module named after the
/// test holding one `#[test]` per listed client, each running the test
/// function of the same name for that client within the suite's bounds.
macro_rules! client_tests {
    (@client smol) => {
        $crate::harness::SmolClient
    };
    (@client blocking) => {
        tether_blocking::Client
    };
    (@client tokio) => {
        $crate::harness::TokioClient
    };
    ($($test:ident => $($client:ident),+;)+) => {
        $(
            mod $test {
                $(
                    #[test]
                    fn $client() {
                        tether_testkit::bounded(
                            $crate::harness::TEST_LIMIT,
                            super::$test::<client_tests!(@client $client)>,
                        );
                    }
                )+
            }
        )+
    };
}

mod harness;
mod script;

mod blocking_only;
mod lifecycle;
mod queue;
mod reconnect;
mod requests;
mod smol_only;
