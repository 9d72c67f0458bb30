//! Fuzz target `http_upgrade`: the contract is `tether_core::fuzzing::http_upgrade::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_core::fuzzing::http_upgrade::check(data));
