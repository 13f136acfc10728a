//! oxelb speaker binary.

use std::process::ExitCode;

use oxelb_runtime::{cli::parse_with_metrics_default, telemetry};
use oxelb_speaker::{Args, DEFAULT_METRICS_ADDR, run};

/// mimalloc rather than glibc's malloc: after the short-lived allocations of a burst (watch
/// events decoded and trimmed, writes in flight) glibc kept tens of MiB it could not give back
/// (README, Scale, has the measurements).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Args = parse_with_metrics_default(DEFAULT_METRICS_ADDR);
    if let Err(error) = args.timing() {
        eprintln!("oxelb-speaker: --heartbeat-interval-ms/--heartbeat-dead-after-ms: {error}");
        return ExitCode::FAILURE;
    }
    if let Err(error) = telemetry::init(&args.common) {
        eprintln!("oxelb-speaker: {error}");
        return ExitCode::FAILURE;
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "oxelb-speaker stopped with an error");
            ExitCode::FAILURE
        }
    }
}
