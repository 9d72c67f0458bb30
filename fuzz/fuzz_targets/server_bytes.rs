//! Fuzz target `server_bytes`: the contract is `tether_core::fuzzing::server_bytes::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_core::fuzzing::server_bytes::check(data));
