//! oxelb speaker binary.

use std::process::ExitCode;

use oxelb_runtime::{cli::parse_with_metrics_default, telemetry};
use oxelb_speaker::{Args, DEFAULT_METRICS_ADDR, run};

/// jemalloc rather than glibc's malloc or mimalloc: after the short-lived allocations of a burst
/// (watch events decoded and viewed, writes in flight) the others kept tens of MiB they did not give
/// back. Its tuning (`.cargo/config.toml`, `JEMALLOC_SYS_WITH_MALLOC_CONF`) returns freed pages
/// within a second from a background thread; `MALLOC_CONF` overrides it at run time (docs/scale.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
