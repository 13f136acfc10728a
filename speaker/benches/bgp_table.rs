//! BGP table benchmark (issue 5's figure): one speaker announces 10,000 /32 host routes to a real
//! FRR router in a network-namespace lab; prints the time from the speaker's start until FRR's
//! table holds all of them, the time until its kernel does, and the speaker's RSS with the routes
//! and its session up. Needs root (network namespaces); prints why it skips otherwise.
//!
//! `cargo bench -p oxelb-speaker --bench bgp_table`. Addresses: 198.51.100.0/24 for the LAN; the
//! 10,000 Service IPs come from 198.18.0.0/16 (RFC 2544's benchmarking range, as the allocator
//! benchmark; the documentation ranges hold only 256 addresses each). No packet leaves the lab's
//! namespaces: the router and the node are the only hosts.

use std::{
    fmt::Write as _,
    path::Path,
    time::{Duration, Instant},
};

use oxelb_tests::{
    lab::{LabError, lab_or_skip, wait_until},
    routers::{Frr, Neighbor, frr_bgpd_conf},
};

const ROUTES: u32 = 10_000;

fn write(dir: &Path, rel: &str, body: &str) -> Result<(), LabError> {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap_or(dir)).map_err(|source| LabError::Io {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&path, body).map_err(|source| LabError::Io { path, source })
}

fn main() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("bgp_table benchmark")? else {
        return Ok(());
    };
    let router = lab.netns("router")?;
    let node = lab.netns("n1")?;
    lab.veth(&router, "eth0", &node, "eth0")?;
    lab.addr(&router, "eth0", "198.51.100.1/24")?;
    lab.addr(&node, "eth0", "198.51.100.2/24")?;
    let frr = Frr::start(
        &mut lab,
        &router,
        "router",
        &frr_bgpd_conf(64513, "198.51.100.1", &[Neighbor::new("198.51.100.2", 64512)], ""),
    )?;

    // 10,000 Services, each holding one IP of a /16 Eip, as the controller would have written them.
    let dir = lab.dir().join("objects");
    let mut objects = String::from(
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: bench}\nspec: {address: 198.18.0.0/16}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpConf\nmetadata: {name: default}\nspec: {as: 64512, listenPort: -1}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: router}\nspec: {conf: {peerAs: 64513, neighborAddress: 198.51.100.1}, timers: {config: {connectRetry: '1'}}}\n",
    );
    let mut statuses = String::new();
    for i in 0..ROUTES {
        let ip = std::net::Ipv4Addr::from(0xc612_0001 + i);
        let _ = write!(
            objects,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: default}}\nspec: {{type: LoadBalancer}}\n"
        );
        let _ = write!(
            statuses,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: default, finalizers: [finalizer.lb.kubesphere.io/v1alpha1]}}\nstatus: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}\n"
        );
    }
    write(&dir, "objects.yaml", &objects)?;
    write(
        &dir,
        "status/nodes.core/n1.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {conditions: [{type: Ready, status: 'True'}], addresses: [{type: InternalIP, address: 198.51.100.2}]}\n",
    )?;
    // The dir source reads one overlay file per object.
    for (i, doc) in statuses.split("---\n").filter(|d| !d.is_empty()).enumerate() {
        write(&dir, &format!("status/services.core/default/s{i}.yaml"), doc)?;
    }

    let binary = env!("CARGO_BIN_EXE_oxelb-speaker");
    let mut command = node.command(binary);
    command.args([
        "--source",
        &format!("dir:{}", dir.display()),
        "--node-name",
        "n1",
        "--metrics-addr",
        "127.0.0.1:9641",
    ]);
    command.env("RUST_LOG", "warn");
    let start = Instant::now();
    let pid = lab.spawn("speaker", command)?;
    let table = wait_until(
        "FRR's table complete",
        Duration::from_secs(120),
        Duration::from_millis(20),
        || {
            let summary = frr
                .json("show bgp ipv4 unicast summary json")
                .map_err(|e| e.to_string())?;
            let received = summary["peers"]["198.51.100.2"]["pfxRcd"].as_u64().unwrap_or(0);
            if received >= u64::from(ROUTES) {
                Ok(start.elapsed())
            } else {
                Err(format!("{received} received"))
            }
        },
    )?;
    let kernel = wait_until(
        "FRR's kernel complete",
        Duration::from_secs(120),
        Duration::from_millis(50),
        || {
            let count = frr
                .ns()
                .ip(&["-4", "route", "show", "proto", "bgp"])
                .map_err(|e| e.to_string())?
                .lines()
                .count();
            if count >= ROUTES as usize {
                Ok(start.elapsed())
            } else {
                Err(format!("{count} in the kernel"))
            }
        },
    )?;
    // The speaker runs under `ip netns exec`, which execs it: the pid is the speaker's.
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .unwrap_or_default();
    println!("routes:                         {ROUTES} /32");
    println!(
        "speaker start -> FRR table full: {:>8.0} ms (includes reading {ROUTES} objects and the session set-up)",
        table.as_secs_f64() * 1e3
    );
    println!(
        "speaker start -> FRR kernel full: {:>7.0} ms",
        kernel.as_secs_f64() * 1e3
    );
    println!("speaker RSS with the routes and 1 session: {rss} KiB");
    Ok(())
}
