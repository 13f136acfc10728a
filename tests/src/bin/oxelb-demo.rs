//! `oxelb-demo`: the demo of the README's first command (`sudo ./examples/lab/demo.sh`, which
//! builds this and calls it). It builds the lab cluster of `oxelb_tests::cluster` (the same code
//! the end-to-end tests run), starts the controller and three speakers on `examples/lab/`, and
//! prints, step by step, what a user would check: the IPs assigned, the LAN client reaching the
//! layer2 IP, the routed client reaching the BGP IP over one path per node, and the outage when the
//! layer2 node is lost. Everything it made is removed when it ends; `demo.sh` also removes what a
//! killed run left (namespaces `<prefix>-*`, the work directory).
//!
//! Flags: `--bin-dir DIR` (the built binaries), `--manifests DIR` (examples/lab), `--work DIR`
//! (files and logs), `--prefix NAME` (namespace names).

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use oxelb_tests::{
    cluster::{Binaries, LAN_CLIENT_IP, LabCluster, NODES, ROUTED_CLIENT_IP, ROUTER_LAN_IP},
    lab::{Lab, LabError},
};

struct Options {
    bin_dir: PathBuf,
    manifests: PathBuf,
    work: PathBuf,
    prefix: String,
}

fn options() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Ok(Options {
        bin_dir: get("--bin-dir")
            .map(PathBuf::from)
            .ok_or("--bin-dir is missing")?,
        manifests: get("--manifests")
            .map(PathBuf::from)
            .ok_or("--manifests is missing")?,
        work: get("--work").map(PathBuf::from).ok_or("--work is missing")?,
        prefix: get("--prefix").unwrap_or_else(|| "oxdemo".to_owned()),
    })
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("oxelb-demo: {error}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let mut cluster = None;
    let result = demo(&options, &mut cluster);
    match result {
        Ok(()) => {
            println!(
                "\nDone in {:.1} s. Removing the lab (namespaces, processes, files).",
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("\nThe demo failed: {error}");
            if let Some(cluster) = &cluster {
                eprintln!("The last lines each oxelb process logged:");
                cluster.dump_logs(25);
            }
            ExitCode::FAILURE
        }
    }
}

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

fn demo(options: &Options, slot: &mut Option<LabCluster>) -> Result<(), LabError> {
    let bins = Binaries::in_dir(&options.bin_dir)?;
    let lab = Lab::named(&options.prefix, options.work.clone())?;

    step(
        1,
        "Building the lab: network namespaces, one Linux machine, no Kubernetes",
    );
    let t = Instant::now();
    let built = LabCluster::build(lab, bins, &options.manifests)?;
    let cluster = slot.insert(built);
    let row = |what: &str, ip: &str, note: &str| println!("    {what:<14}{ip:<16}{note}");
    row(
        "router",
        ROUTER_LAN_IP,
        "FRR, AS 64513; 198.51.100.1 towards the routed client",
    );
    row("routed client", ROUTED_CLIENT_IP, "behind the router");
    row("LAN client", LAN_CLIENT_IP, "on the nodes' LAN (a bridge)");
    for (name, ip) in NODES {
        row(
            &format!("node {name}"),
            ip,
            "speaker, and a kube-proxy stand-in answering HTTP on :80",
        );
    }
    row("controller", "-", "in a namespace of its own");
    println!("    objects       {}", cluster.objects().display());
    println!("    ({:.1} s)", t.elapsed().as_secs_f64());

    step(
        2,
        "Starting oxelb-controller and one oxelb-speaker per node (standalone mode, --source dir:)",
    );
    cluster.start_all()?;
    let l2 = cluster.wait_service_ips("default", "web-layer2")?;
    let bgp = cluster.wait_service_ips("default", "web-bgp")?;
    let (l2, bgp) = (first(&l2), first(&bgp));
    println!("    Service default/web-layer2  ->  {l2}   (Eip lab-layer2, layer2)");
    println!("    Service default/web-bgp     ->  {bgp}   (Eip lab-bgp, BGP)");

    step(
        3,
        &format!("Layer2: the LAN client resolves {l2} by ARP and connects"),
    );
    let answerer = cluster.layer2_answerer(&l2)?;
    let node = &cluster.nodes[answerer];
    let mac = node.ns.mac("eth0")?;
    println!(
        "    ARP: {l2} is-at {mac}  (node {}; the other nodes stay silent)",
        node.name
    );
    let reply = cluster.wait_reachable(&cluster.lan_client, &l2)?;
    println!("    GET http://{l2}/  ->  {reply}");

    step(
        4,
        &format!("BGP: the router learns {bgp}/32 from every node; the routed client connects"),
    );
    let hops: Vec<&str> = NODES.iter().map(|(_, ip)| *ip).collect();
    cluster.wait_next_hops(&bgp, &hops)?;
    let kernel = cluster
        .router
        .kernel_route(&format!("{bgp}/32"))?
        .unwrap_or_default();
    println!("    router's BGP paths for {bgp}/32: {}", hops.join(", "));
    println!("    router's kernel route (ECMP):");
    for line in kernel.lines() {
        println!("      {}", line.trim());
    }
    let reply = cluster.wait_reachable(&cluster.routed_client, &bgp)?;
    println!("    GET http://{bgp}/ from {ROUTED_CLIENT_IP}  ->  {reply}");

    step(
        5,
        &format!(
            "Failover: node {} (answering for {l2}) is lost: speaker killed, link down",
            node.name
        ),
    );
    println!("    the LAN client sends a GET every 10 ms meanwhile");
    let failover = cluster.fail_layer2_winner(&l2)?;
    println!(
        "    {} -> {}: outage {} ms ({} of {} requests failed)",
        failover.from,
        failover.to,
        failover.outage.as_millis(),
        failover.probes.1,
        failover.probes.0
    );
    let reply = cluster.wait_reachable(&cluster.lan_client, &l2)?;
    println!("    GET http://{l2}/  ->  {reply}");
    if failover.outage > Duration::from_secs(2) {
        println!("    (slower than usual: this machine may be loaded)");
    }
    Ok(())
}

fn first(ips: &[String]) -> String {
    ips.first().cloned().unwrap_or_default()
}
