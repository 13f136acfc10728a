//! oxelb controller binary.

use std::process::ExitCode;

use oxelb_controller::{Args, DEFAULT_METRICS_ADDR, run};
use oxelb_runtime::{cli::parse_with_metrics_default, telemetry};

/// mimalloc rather than glibc's malloc: after the short-lived allocations of a burst (watch
/// events decoded and trimmed, writes in flight) glibc kept tens of MiB it could not give back
/// (README, Scale, has the measurements).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Args = parse_with_metrics_default(DEFAULT_METRICS_ADDR);
    if let Err(error) = telemetry::init(&args.common) {
        eprintln!("oxelb-controller: {error}");
        return ExitCode::FAILURE;
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "oxelb-controller stopped with an error");
            ExitCode::FAILURE
        }
    }
}
