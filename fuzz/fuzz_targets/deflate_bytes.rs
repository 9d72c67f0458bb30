//! Fuzz target `deflate_bytes`: the contract is `tether_core::fuzzing::deflate_bytes::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_core::fuzzing::deflate_bytes::check(data));
