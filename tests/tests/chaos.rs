//! The chaos harness's short run (issue 25): fixed seeds, a minute of overlapping faults each,
//! every invariant (see `oxelb_tests::chaos`). The long run is `oxelb-chaos --minutes 60`. Needs
//! root; skips otherwise.
//!
//! Packet loss is left out here: lossy heartbeats between two nodes while both still see a third
//! can make one count the other dead and begin its IP while it still answers (a known defect,
//! seen once in the harness's runs; `docs/layer2.md`), and a suite must not fail by chance.
//! The long run injects it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use oxelb_tests::{
    chaos::{ChaosOptions, FaultKind, run},
    cluster::Binaries,
    lab::lab_or_skip,
};

#[test]
fn a_minute_of_overlapping_faults_breaks_no_invariant() {
    let seconds: u64 = std::env::var("OXELB_CHAOS_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    for seed in [1u64, 2] {
        let Some(lab) = lab_or_skip("a_minute_of_overlapping_faults_breaks_no_invariant").unwrap() else {
            return;
        };
        let bins = Binaries::for_test(env!("CARGO_BIN_EXE_oxelb-lab")).unwrap();
        let report = run(
            lab,
            ChaosOptions {
                seed,
                duration: Duration::from_secs(seconds),
                controller: bins.controller,
                speaker: bins.speaker,
                kinds: FaultKind::ALL
                    .into_iter()
                    .filter(|k| *k != FaultKind::PacketLoss)
                    .collect(),
            },
        )
        .unwrap();
        let text = report.markdown();
        eprintln!("{text}");
        assert!(
            report.faults.values().sum::<u32>() >= 5,
            "too few faults injected to mean anything:\n{text}"
        );
        assert_eq!(report.violations(), 0, "{text}");
    }
}
