//! Allocation benchmark for issue 3's figure: 100,000 automatic allocations across an IPv4 /16 and an
//! IPv6 /64 pool, then 100,000 releases. Prints wall time per phase, the cost per operation, and
//! the process's peak resident memory (Linux `VmHWM`). Target: under 1 s CPU for the allocations.
//!
//! Run with `cargo bench -p oxelb-ipam --bench allocate`. Nothing here sends a packet: the pools are
//! numbers. The IPv4 /16 is 198.18.0.0/16 (RFC 2544's benchmarking range; the documentation ranges
//! are only /24s), the IPv6 /64 is inside 2001:db8::/32.

use std::time::Instant;

use oxelb_ipam::{Allocator, IpFamily, PoolSpec, ServiceKey, ServiceRequest};

/// Allocations per pool: 50,000 in each, 100,000 in all.
const PER_POOL: usize = 50_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rss_before = peak_rss_kib();
    let mut v4 = PoolSpec::new("v4-slash16", "198.18.0.0/16".parse()?);
    v4.is_default = true;
    let v6 = PoolSpec::new("v6-slash64", "2001:db8:0:1::/64".parse()?);
    let mut allocator = Allocator::new();
    allocator.set_pools([v4, v6]);

    let requests: Vec<ServiceRequest> = (0..2 * PER_POOL)
        .map(|i| {
            let mut request =
                ServiceRequest::new(ServiceKey::new(format!("ns{}", i % 100), format!("svc{i}")));
            if i % 2 == 1 {
                request.families = [IpFamily::V6].into_iter().collect();
                request.pool = Some("v6-slash64".to_owned());
            }
            request
        })
        .collect();

    // Peak RSS is a high-water mark: read it before and after the allocations to separate the
    // allocator's own memory from the benchmark's 100,000 prepared requests.
    let rss_requests = peak_rss_kib();
    let start = Instant::now();
    for request in &requests {
        allocator.assign(request)?;
    }
    let assign = start.elapsed();
    let rss_assigned = peak_rss_kib();

    let statuses = allocator.pool_statuses();
    let usage: Vec<String> = statuses
        .iter()
        .map(|s| format!("{}={}", s.name, s.usage))
        .collect();

    let start = Instant::now();
    for request in &requests {
        allocator.release(&request.key);
    }
    let release = start.elapsed();

    let n = requests.len() as f64;
    println!("allocations: {} ({})", requests.len(), usage.join(", "));
    println!(
        "assign:  {:>8.1} ms total, {:>6.2} us/op",
        assign.as_secs_f64() * 1e3,
        assign.as_secs_f64() * 1e6 / n
    );
    println!(
        "release: {:>8.1} ms total, {:>6.2} us/op",
        release.as_secs_f64() * 1e3,
        release.as_secs_f64() * 1e6 / n
    );
    match (rss_before, rss_requests, rss_assigned) {
        (Some(before), Some(requests_built), Some(assigned)) => {
            let mib = |kib: u64| kib as f64 / 1024.0;
            let allocator_kib = assigned.saturating_sub(requests_built);
            println!(
                "peak RSS: {:.1} MiB at start, {:.1} MiB with the requests built, {:.1} MiB after assigning",
                mib(before),
                mib(requests_built),
                mib(assigned)
            );
            println!(
                "allocator: {:.1} MiB for {} assignments ({:.0} bytes each)",
                mib(allocator_kib),
                requests.len(),
                allocator_kib as f64 * 1024.0 / n
            );
        }
        _ => println!("peak RSS: unavailable (no /proc/self/status)"),
    }
    Ok(())
}

/// The process's peak resident set size in KiB, from `/proc/self/status` (`VmHWM`).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
