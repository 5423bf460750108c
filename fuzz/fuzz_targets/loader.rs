//! Arbitrary bytes into every program loader (see `differential_tests::fuzz::loader`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    differential_tests::fuzz::loader(data);
});
