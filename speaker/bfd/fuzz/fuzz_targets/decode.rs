//! Fuzzes what BFD peers send: arbitrary bytes are decoded and fed to sessions in every state.
//! See `../src/lib.rs` for the checks and `../README.md`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oxelb_bfd_fuzz::check(data);
});
