//! The scale benchmark (issue 16): the real controller (leader and standby) and a speaker against
//! an in-memory Kubernetes API serving list and watch faithfully, with N Services (and one
//! EndpointSlice each) created as fast as the API takes them. Prints, per size, the processes' RSS
//! and CPU seconds, the time from the last create to the last IP, and the writes per allocation.
//!
//! Not part of the test command (it takes minutes); run it with
//! `cargo build --release -p oxelb-controller -p oxelb-speaker -p oxelb-tests --bins` then
//! `target/release/oxelb-scale [SIZES...]` (default 1000 10000 50000). `OXELB_BIN_DIR` names another
//! directory of binaries. Traffic stays on loopback; IPs come from 198.18.0.0/15.
//!
//! The in-memory API refuses, as etcd behind kube-apiserver does, any object whose JSON is larger
//! than 1,572,864 bytes (etcd's default `--max-request-bytes`): `OXELB_SCALE_OBJECT_LIMIT=BYTES`
//! sets another limit, `OXELB_SCALE_OBJECT_LIMIT=none` none. The column "Eip status too large"
//! counts the Eip status writes it refused for size (`500 etcdserver: request is too large`).

use std::time::Duration;

use oxelb_tests::apiserver::ETCD_DEFAULT_OBJECT_LIMIT;
use oxelb_tests::cluster::bin_dir_beside;
use oxelb_tests::scale::{ScaleOptions, run};

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 50_000]
    } else {
        sizes
    };
    let object_size_limit = match std::env::var("OXELB_SCALE_OBJECT_LIMIT") {
        Err(_) => Some(ETCD_DEFAULT_OBJECT_LIMIT),
        Ok(v) if v == "none" => None,
        Ok(v) => match v.replace('_', "").parse() {
            Ok(bytes) => Some(bytes),
            Err(_) => {
                eprintln!("OXELB_SCALE_OBJECT_LIMIT: not a byte count or `none`: {v}");
                std::process::exit(2);
            }
        },
    };
    println!(
        "API object size limit: {}",
        object_size_limit.map_or("none".to_owned(), |b| format!("{b} bytes"))
    );
    let bin_dir = bin_dir_beside(&std::env::current_exe().unwrap_or_default());
    println!("binaries: {}", bin_dir.display());
    println!(
        "| Services | create s | last create -> last IP s | leader RSS MiB | leader CPU s | standby RSS MiB | speaker RSS MiB | speaker CPU s | speaker idle CPU s/10 s | Service writes/alloc | Eip status writes | Eip status too large | Eip usage | used listed | all writes/alloc | distinct IPs | API CPU s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for services in sizes {
        let options = ScaleOptions {
            bin_dir: bin_dir.clone(),
            services,
            deadline: Duration::from_secs(600),
            idle: Duration::from_secs(10),
            compact_midway: false,
            object_size_limit,
        };
        match run(&options).await {
            Ok(r) => println!(
                "| {} | {:.1} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {} | {} | {} | {}{} | {:.2} | {} | {:.1} |",
                r.services,
                r.create_seconds,
                r.last_ip_after_last_create,
                r.leader_rss_mib,
                r.leader_cpu_seconds,
                r.standby_rss_mib,
                r.speaker_rss_mib,
                r.speaker_cpu_seconds,
                r.speaker_idle_cpu_seconds,
                r.service_writes_per_allocation,
                r.eip_status_writes,
                r.eip_status_too_large,
                r.eip_usage,
                r.eip_used,
                if r.eip_used_truncated { " (truncated)" } else { "" },
                r.writes_per_allocation,
                r.distinct_ips,
                r.api_cpu_seconds,
            ),
            Err(error) => {
                eprintln!("{services} Services: {error}");
                std::process::exit(1);
            }
        }
    }
}
