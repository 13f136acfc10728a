//! Fuzzes what routers send: arbitrary bytes are framed and decoded (both AS widths) and fed to
//! sessions in Established and OpenSent. See `../src/lib.rs` for the checks and `../README.md`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oxelb_bgp_fuzz::check(data);
});
