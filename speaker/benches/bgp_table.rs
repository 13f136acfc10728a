//! BGP table benchmark (issue 5's figure): one speaker announces 10,000 /32 host routes to a real
//! FRR router in a network-namespace lab, and in the same run gobgpd announces the same 10,000 into
//! the same FRR. For each it prints the time from the moment FRR sees the session Established until
//! FRR's table holds all of its routes (polled every 10 ms), the ratio, and both processes' RSS; for
//! the speaker also the time from its start. Then both announcers get sessions to two more FRR
//! routers (three each, as a node peering with two top-of-rack routers and a route reflector would),
//! and the RSS printed is with all three tables full. Needs root (network
//! namespaces); prints why it skips.
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
    routers::{Frr, Gobgp, Neighbor, frr_bgpd_conf, gobgp_conf},
};

const ROUTES: u32 = 10_000;

/// The speaker's second and third BgpPeer, added once the first table is timed.
const EXTRA_PEERS: &str = "---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: r2}\nspec: {conf: {peerAs: 64513, neighborAddress: 198.51.100.4}, timers: {config: {connectRetry: '1'}}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: r3}\nspec: {conf: {peerAs: 64513, neighborAddress: 198.51.100.5}, timers: {config: {connectRetry: '1'}}}\n";

fn write(dir: &Path, rel: &str, body: &str) -> Result<(), LabError> {
    oxelb_tests::lab::write_file(dir, rel, body)
}

fn main() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("bgp_table benchmark")? else {
        return Ok(());
    };
    let router = lab.netns("router")?;
    let node = lab.netns("n1")?;
    let other = lab.netns("gobgp")?;
    let extra_a = lab.netns("r2")?;
    let extra_b = lab.netns("r3")?;
    lab.bridge(&router, "lan")?;
    lab.addr(&router, "lan", "198.51.100.1/24")?;
    for (ns, port, ip) in [
        (&node, "lan-n1", "198.51.100.2/24"),
        (&other, "lan-g", "198.51.100.3/24"),
        (&extra_a, "lan-r2", "198.51.100.4/24"),
        (&extra_b, "lan-r3", "198.51.100.5/24"),
    ] {
        lab.veth(&router, port, ns, "eth0")?;
        lab.attach(&router, port, "lan")?;
        lab.addr(ns, "eth0", ip)?;
    }
    let frr = Frr::start(
        &mut lab,
        &router,
        "router",
        &frr_bgpd_conf(
            64513,
            "198.51.100.1",
            &[
                Neighbor::new("198.51.100.2", 64512),
                Neighbor::new("198.51.100.3", 64514),
            ],
            "",
        ),
    )?;
    // The second and third routers: each peers with both announcers.
    let mut extras = Vec::new();
    for (ns, name, ip) in [(&extra_a, "r2", "198.51.100.4"), (&extra_b, "r3", "198.51.100.5")] {
        let conf = frr_bgpd_conf(
            64513,
            ip,
            &[
                Neighbor::new("198.51.100.2", 64512),
                Neighbor::new("198.51.100.3", 64514),
            ],
            "",
        );
        extras.push(Frr::start(&mut lab, ns, name, &conf)?);
    }
    let routers: Vec<Neighbor> = ["198.51.100.1", "198.51.100.4", "198.51.100.5"]
        .iter()
        .map(|ip| Neighbor::new(ip, 64513))
        .collect();
    // gobgpd with its neighbors administratively down until its 10,000 routes are loaded.
    let gobgp_toml = gobgp_conf(64514, "198.51.100.3", &routers, -1).replace(
        "    peer-as = 64513\n",
        "    peer-as = 64513\n    admin-down = true\n",
    );
    let gobgp = Gobgp::start(&mut lab, &other, "g", &gobgp_toml)?;
    let loading = Instant::now();
    let ips: Vec<String> = (0..ROUTES)
        .map(|i| format!("{}/32", std::net::Ipv4Addr::from(0xc612_0001 + i)))
        .collect();
    std::thread::scope(|scope| {
        for chunk in ips.chunks(ips.len().div_ceil(4)) {
            let gobgp = &gobgp;
            scope.spawn(move || {
                for prefix in chunk {
                    let _ = gobgp.announce_from_bench(prefix, "198.51.100.3");
                }
            });
        }
    });
    println!(
        "loaded {ROUTES} routes into gobgpd in {:.1} s (its CLI, one call per route)",
        loading.elapsed().as_secs_f64()
    );

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

    let command = node.speaker(env!("CARGO_BIN_EXE_oxelb-speaker"), &dir, "n1", "warn");
    let start = Instant::now();
    let pid = lab.spawn("speaker", command)?;
    let ours = table_time(&frr, "198.51.100.2")?;
    let from_start = start.elapsed();
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

    gobgp.cli(&["neighbor", "198.51.100.1", "enable"])?;
    let theirs = table_time(&frr, "198.51.100.3")?;

    // Timing is measured over one session each (three FRRs ingesting at once would measure the
    // machine's two cores); then both announcers get their second and third session, and their
    // RSS is read with all three tables full.
    objects.push_str(EXTRA_PEERS);
    write(&dir, "objects.yaml", &objects)?;
    for extra in &extras {
        full_table(extra, "198.51.100.2")?;
    }
    for router in &routers[1..] {
        gobgp.cli(&["neighbor", &router.address, "enable"])?;
    }
    for extra in &extras {
        full_table(extra, "198.51.100.3")?;
    }
    let speaker_rss = rss(pid);

    println!("routes:                                   {ROUTES} /32 from each announcer");
    println!(
        "oxelb speaker: Established -> FRR full:  {:>7.0} ms",
        ours.as_secs_f64() * 1e3
    );
    println!(
        "gobgpd:        Established -> FRR full:  {:>7.0} ms",
        theirs.as_secs_f64() * 1e3
    );
    println!(
        "ratio oxelb / gobgpd:                     {:>7.2}",
        ours.as_secs_f64() / theirs.as_secs_f64().max(1e-9)
    );
    println!(
        "oxelb speaker: process start -> FRR table full {:>6.0} ms, kernel full {:>6.0} ms (includes reading {ROUTES} objects)",
        from_start.as_secs_f64() * 1e3,
        kernel.as_secs_f64() * 1e3
    );
    // `ip netns exec` execs the program: the spawned pid is the speaker's.
    println!(
        "RSS with {ROUTES} routes on 3 sessions: oxelb speaker {speaker_rss} KiB (dir: source with {ROUTES} Service files), gobgpd {} KiB",
        rss_of("gobgpd")
    );
    Ok(())
}

/// Time from the session with `neighbor` coming up until FRR received all ROUTES, as an upper
/// bound: measured from the last poll that saw the session not yet Established (each poll is one
/// vtysh call, so the true figure lies below by up to one poll).
fn table_time(frr: &Frr, neighbor: &str) -> Result<Duration, LabError> {
    let mut not_yet = Instant::now();
    wait_until(
        &format!("FRR's table full from {neighbor}"),
        Duration::from_secs(180),
        Duration::from_millis(5),
        || {
            let polled = Instant::now();
            let summary = frr
                .json("show bgp ipv4 unicast summary json")
                .map_err(|e| e.to_string())?;
            let peer = &summary["peers"][neighbor];
            if peer["state"].as_str() != Some("Established") {
                not_yet = polled;
            }
            let received = peer["pfxRcd"].as_u64().unwrap_or(0);
            if peer["state"].as_str() == Some("Established") && received >= u64::from(ROUTES) {
                Ok(not_yet.elapsed())
            } else {
                Err(format!("{received} received, state {:?}", peer["state"]))
            }
        },
    )
}

/// Waits until `frr` holds all ROUTES from `neighbor`.
fn full_table(frr: &Frr, neighbor: &str) -> Result<(), LabError> {
    wait_until(
        &format!("{} full from {neighbor}", frr.name()),
        Duration::from_secs(180),
        Duration::from_millis(100),
        || {
            let value = frr
                .json(&format!("show bgp neighbors {neighbor} json"))
                .map_err(|e| e.to_string())?;
            let received = value[neighbor]["addressFamilyInfo"]["ipv4Unicast"]["acceptedPrefixCounter"]
                .as_u64()
                .unwrap_or(0);
            if received >= u64::from(ROUTES) {
                Ok(())
            } else {
                Err(format!("{received} accepted"))
            }
        },
    )
}

fn rss(pid: u32) -> String {
    oxelb_tests::lab::rss_kib(pid).map_or_else(|| "?".into(), |k| k.to_string())
}

fn rss_of(name: &str) -> String {
    let pid = std::process::Command::new("pgrep")
        .args(["-n", "-x", name])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().ok());
    pid.map_or_else(|| "?".into(), rss)
}
