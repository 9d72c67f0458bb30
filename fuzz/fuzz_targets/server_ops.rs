//! Fuzz target `server_ops`: the contract is `tether_core::fuzzing::server_ops::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_core::fuzzing::server_ops::check(data));
