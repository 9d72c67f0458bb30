//! The store conformance suite: the store seam's contract
//! (`tether_core::StoreRequest`, `StoreEvent`) checked, case by case,
//! on every store the project has: the in-memory store of a lone node
//! (`MemoryStore`), the simulator's model of the Redis backplane
//! (`tether_sim::backplane::Backplane`) and the Redis backplane itself over
//! a `redis-server` of the test's own.
//!
//! Each case is written once in [`cases`], over the small [`Store`] trait,
//! and `store_cases!` makes one `#[test]` per store it is listed for
//! (`cases::epochs_and_offsets::memory`, ...). A case that needs the
//! store's clock to move runs only on the stores that take their time from
//! the `now` they are given: Redis keeps its windows as key TTLs in real
//! seconds, which a test would have to sleep through.

/// Declares, for each `case => store, ...` line, a module named after the
/// case holding one `#[test]` per listed store, each running the case on a
/// fresh store of that kind.
macro_rules! store_cases {
    (@store memory) => {
        $crate::stores::Memory
    };
    (@store model) => {
        $crate::stores::Model
    };
    (@store redis) => {
        $crate::stores::Redis
    };
    ($($case:ident => $($store:ident),+;)+) => {
        $(
            mod $case {
                $(
                    #[test]
                    fn $store() {
                        tether_testkit::bounded($crate::stores::TEST_LIMIT, || {
                            super::$case::<store_cases!(@store $store)>();
                        });
                    }
                )+
            }
        )+
    };
}

mod seam;
mod stores;

mod cases;

pub use seam::Store;
