//! Fuzz target `client_ops`: the contract is `tether_core::fuzzing::client_ops::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_core::fuzzing::client_ops::check(data));
