//! Structured programs through the differential oracle (see
//! `differential_tests::fuzz::diff`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    differential_tests::fuzz::diff(data);
});
