//! Fuzz target `envelope`: the contract is `tether_core::fuzzing::envelope::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_core::fuzzing::envelope::check(data));
