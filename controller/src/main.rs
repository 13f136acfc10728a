//! oxelb controller binary.

use std::process::ExitCode;

use oxelb_controller::{Args, DEFAULT_METRICS_ADDR, run};
use oxelb_runtime::{cli::parse_with_metrics_default, telemetry};

/// jemalloc rather than glibc's malloc or mimalloc: after the short-lived allocations of a burst
/// (watch events decoded and viewed, writes in flight) the others kept tens of MiB they did not give
/// back. Its tuning (`.cargo/config.toml`, `JEMALLOC_SYS_WITH_MALLOC_CONF`) returns freed pages
/// within a second from a background thread; `MALLOC_CONF` overrides it at run time (docs/scale.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
