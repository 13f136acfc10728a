//! The chaos harness (issue 25): overlapping faults injected at random into a cluster of two
//! controllers and three layer2 speakers in network namespaces, with the invariants checked all
//! along (see `oxelb_tests::chaos`). Prints a Markdown report and exits 1 on any violation.
//!
//! `oxelb-chaos [--seed N] [--minutes M | --seconds S]` (root; defaults: seed 1, 60 minutes). The
//! same seed injects the same faults and churn in the same order; a failing run keeps its logs
//! and capture in the temporary directory (`oxelb-chaos-<seed>-*`). Binaries come from
//! `OXELB_BIN_DIR` or the directory of this one (build them with
//! `cargo build -p oxelb-controller -p oxelb-speaker -p oxelb-tests --bins`).

use std::time::Duration;

use oxelb_tests::{
    chaos::{ChaosOptions, FaultKind, run},
    cluster::bin_dir_beside,
    lab::{LabError, lab_or_skip},
};

fn main() {
    let mut seed = 1u64;
    let mut duration = Duration::from_secs(3600);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (arg.as_str(), value) {
            ("--seed", Some(v)) => seed = v,
            ("--minutes", Some(v)) => duration = Duration::from_secs(v * 60),
            ("--seconds", Some(v)) => duration = Duration::from_secs(v),
            _ => {
                eprintln!("usage: oxelb-chaos [--seed N] [--minutes M | --seconds S]");
                std::process::exit(2);
            }
        }
    }
    let dir = bin_dir_beside(&std::env::current_exe().unwrap_or_default());
    let options = ChaosOptions {
        seed,
        duration,
        controller: dir.join("oxelb-controller"),
        speaker: dir.join("oxelb-speaker"),
        kinds: FaultKind::ALL.to_vec(),
    };
    let lab = match lab_or_skip("oxelb-chaos") {
        Ok(Some(lab)) => lab,
        Ok(None) => std::process::exit(0),
        Err(error) => {
            eprintln!("oxelb-chaos: {error}");
            std::process::exit(1);
        }
    };
    match run(lab, options) {
        Ok(report) => {
            println!("{}", report.markdown());
            if report.violations() > 0 {
                std::process::exit(1);
            }
        }
        Err(LabError::Skip(why)) => {
            eprintln!("oxelb-chaos: {why}");
            std::process::exit(1);
        }
        Err(error) => {
            eprintln!("oxelb-chaos: {error}");
            std::process::exit(1);
        }
    }
}
