//! Layer2 failover benchmark, oxelb against keepalived on the same topology, in alternating rounds
//! (issue 13's figures). The network is the failover lab's: three nodes and a client on one switch,
//! the Service IP 192.0.2.50 on every node's `lo` under strictARP; the client pings it every 10 ms
//! and the outage is the longest pause between its replies that ends after the loss and starts
//! within 1 s of it (each round also prints the longest pause of the second before: the jitter
//! floor of the loaded machine, which neither anchor causes).
//!
//! - **kill**: the answering node is lost (its speaker or keepalived SIGKILLed, its link downed).
//!   20 rounds; each round runs oxelb (default timing: heartbeats every 50 ms, dead after 200 ms)
//!   and keepalived (VRRPv3, `advert_int 0.1`, `state BACKUP`, `nopreempt`, equal priorities: the
//!   OpenELB vip-mode settings, tuned), alternating which goes first. Target: oxelb p50 <= 250 ms,
//!   max <= 500 ms, p50 below keepalived's in the same run.
//! - **graceful**: the answering node's speaker or keepalived gets SIGTERM (a rolling update),
//!   then its link goes down once the process has exited. 10 rounds each. Target: oxelb <= 50 ms.
//! - **heartbeat traffic**: 8 nodes with speakers; each node's UDP datagrams sent per second over
//!   5 s (the namespace's own `/proc/net/snmp` counter), against the computed (nodes - 1) / interval.
//! - **RSS**: the speaker idle (no IP) and answering 1,000 layer2 IPs (target: idle under 15 MiB).
//!   Those 1,000 IPs come from 198.18.0.0/22 (RFC 2544's benchmarking range); no frame leaves the lab.
//!
//! `cargo bench -p oxelb-speaker --bench failover` (root; Debian `keepalived` for the anchor, skipped
//! with a note when missing). `OXELB_BENCH_ROUNDS=N` changes the number of kill rounds.
//! Addresses: 192.0.2.0/24 and 198.18.0.0/22 only, inside the lab.

use std::{path::Path, time::Duration};

#[path = "../tests/layer2_failover_lab.rs"]
#[allow(dead_code, unused_imports)]
mod failover_lab;

use oxelb_tests::lab::{Lab, LabError, Ns, lab_or_skip, wait_until};

const RUNS: usize = 20;
const GRACEFUL_RUNS: usize = 10;

/// Who answers for the IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Anchor {
    Oxelb,
    Keepalived,
}

/// How the answering node goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loss {
    /// SIGKILL and link down at once.
    Kill,
    /// SIGTERM, wait for the exit, then link down.
    Graceful,
}

/// keepalived's configuration for node `name`: what OpenELB's vip mode writes, with
/// `advert_int 0.1` (VRRPv3 takes centiseconds).
fn keepalived_conf(name: &str) -> String {
    format!(
        "global_defs {{\n  router_id {name}\n  vrrp_version 3\n  script_user root\n}}\n\
         vrrp_instance lab {{\n  state BACKUP\n  nopreempt\n  interface eth0\n  track_interface {{\n    eth0\n  }}\n  \
         virtual_router_id 50\n  priority 100\n  advert_int 0.1\n  \
         virtual_ipaddress {{\n    192.0.2.50/32 dev eth0\n  }}\n}}\n"
    )
}

/// Starts keepalived on every node, in the foreground with its own pid files (LAB-NOTES.md).
fn start_keepalived(lab: &mut Lab, nodes: &[(String, Ns)]) -> Result<(), LabError> {
    for (name, ns) in nodes {
        let conf = lab.write(&format!("keepalived-{name}.conf"), &keepalived_conf(name))?;
        let pid = |kind: &str| lab.dir().join(format!("keepalived-{name}-{kind}.pid"));
        let (main, vrrp, check, bfd) = (pid("main"), pid("vrrp"), pid("check"), pid("bfd"));
        let mut command = ns.command("keepalived");
        command
            .args([
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--vrrp",
                "--release-vips",
                "-f",
            ])
            .arg(&conf)
            .arg("-p")
            .arg(&main)
            .arg("-r")
            .arg(&vrrp)
            .arg("-c")
            .arg(&check)
            .arg("-b")
            .arg(&bfd);
        lab.spawn(&format!("keepalived-{name}"), command)?;
        // Its VRRP child must die with the lab too.
        lab.track_pidfile(vrrp);
    }
    Ok(())
}

/// SIGKILLs node `name`'s keepalived, the VRRP child first (a lost node sends no goodbye).
fn kill_keepalived(lab: &mut Lab, name: &str) {
    let vrrp = lab.dir().join(format!("keepalived-{name}-vrrp.pid"));
    if let Some(pid) = std::fs::read_to_string(vrrp)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    lab.kill(&format!("keepalived-{name}"));
}

/// One outage: build the lab, let `anchor` elect, ping, lose the answering node, measure. Returns
/// the outage and the jitter floor of the second before (see `outage_at`).
fn one_run(anchor: Anchor, loss: Loss) -> Result<Option<(Duration, Duration)>, LabError> {
    let Some(mut lab) = lab_or_skip("failover benchmark")? else {
        return Ok(None);
    };
    let (nodes, client, dir) = failover_lab::network(&mut lab, 3)?;
    let process = match anchor {
        Anchor::Oxelb => {
            for (name, ns) in &nodes {
                lab.spawn(&format!("speaker-{name}"), failover_lab::speaker(ns, &dir, name))?;
            }
            "speaker"
        }
        Anchor::Keepalived => {
            start_keepalived(&mut lab, &nodes)?;
            "keepalived"
        }
    };
    let first = failover_lab::winner(&nodes, &client)?;
    std::thread::sleep(Duration::from_secs(1));
    failover_lab::ping(&mut lab, &client, 250, "ping")?;
    std::thread::sleep(Duration::from_secs(1));
    let (name, ns) = &nodes[first];
    let at = failover_lab::unix_now();
    match (loss, anchor) {
        (Loss::Kill, Anchor::Oxelb) => {
            lab.kill(&format!("speaker-{name}"));
        }
        (Loss::Kill, Anchor::Keepalived) => kill_keepalived(&mut lab, name),
        (Loss::Graceful, _) => {
            lab.stop(&format!("{process}-{name}"), Duration::from_secs(5));
        }
    }
    ns.ip(&["link", "set", "eth0", "down"])?;
    failover_lab::ping_gap(&lab, "ping")?;
    let log = lab.log("ping");
    failover_lab::outage_at(&log, at)
        .map(Some)
        .ok_or_else(|| LabError::Unexpected(format!("no ping replies around the loss:\n{log}")))
}

fn pick(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn summary(what: &str, mut outages: Vec<Duration>) -> Option<Duration> {
    if outages.is_empty() {
        return None;
    }
    outages.sort();
    let p50 = pick(&outages, 0.5);
    println!(
        "{what:<28} n={:>2}  p50 {:>4} ms  p90 {:>4} ms  max {:>4} ms  min {:>4} ms",
        outages.len(),
        p50.as_millis(),
        pick(&outages, 0.9).as_millis(),
        outages.last().map_or(0, Duration::as_millis),
        outages.first().map_or(0, Duration::as_millis),
    );
    Some(p50)
}

/// The outages of oxelb and of keepalived.
type Outages = (Vec<Duration>, Vec<Duration>);

/// Alternating rounds of oxelb and keepalived; `None` when the lab cannot run here.
fn rounds(loss: Loss, runs: usize, keepalived: bool) -> Result<Option<Outages>, LabError> {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 1..=runs {
        // Alternate who goes first, so neither always runs on a machine just warmed by the other.
        let order = if round % 2 == 1 {
            [Anchor::Oxelb, Anchor::Keepalived]
        } else {
            [Anchor::Keepalived, Anchor::Oxelb]
        };
        let mut line = format!("{loss:?} round {round:>2}:");
        for anchor in order {
            if anchor == Anchor::Keepalived && !keepalived {
                continue;
            }
            let Some((gap, floor)) = one_run(anchor, loss)? else {
                return Ok(None);
            };
            line.push_str(&format!(
                "  {anchor:?} {:>4} ms (jitter before {:>3} ms)",
                gap.as_millis(),
                floor.as_millis()
            ));
            match anchor {
                Anchor::Oxelb => ours.push(gap),
                Anchor::Keepalived => theirs.push(gap),
            }
        }
        println!("{line}");
    }
    Ok(Some((ours, theirs)))
}

/// UDP datagrams per second each of `count` speakers sends, over `window`.
fn heartbeat_traffic(count: usize, window: Duration) -> Result<Option<Vec<f64>>, LabError> {
    let Some(mut lab) = lab_or_skip("failover benchmark (heartbeat traffic)")? else {
        return Ok(None);
    };
    let (nodes, _client, dir) = failover_lab::network(&mut lab, count)?;
    for (name, ns) in &nodes {
        lab.spawn(&format!("speaker-{name}"), failover_lab::speaker(ns, &dir, name))?;
    }
    // Let every speaker hear every other (start, sync, settle) before counting.
    std::thread::sleep(Duration::from_secs(4));
    let sent = |ns: &Ns| -> Result<u64, LabError> { udp_out(&ns.run("cat", &["/proc/net/snmp"])?) };
    let before: Vec<u64> = nodes.iter().map(|(_, ns)| sent(ns)).collect::<Result<_, _>>()?;
    std::thread::sleep(window);
    let after: Vec<u64> = nodes.iter().map(|(_, ns)| sent(ns)).collect::<Result<_, _>>()?;
    Ok(Some(
        before
            .iter()
            .zip(&after)
            .map(|(b, a)| a.saturating_sub(*b) as f64 / window.as_secs_f64())
            .collect(),
    ))
}

/// `Udp: OutDatagrams` of `/proc/net/snmp`: the lab's heartbeats go to IPv4 nodes (IPv4-mapped on
/// the dual-stack socket), which the kernel counts as IPv4.
fn udp_out(snmp: &str) -> Result<u64, LabError> {
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(header), Some(values)) = (lines.next(), lines.next()) else {
        return Err(LabError::Unexpected(format!(
            "no Udp lines in /proc/net/snmp: {snmp}"
        )));
    };
    header
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "OutDatagrams")
        .and_then(|(_, value)| value.parse().ok())
        .ok_or_else(|| LabError::Unexpected(format!("no OutDatagrams: {header}")))
}

/// The speaker's RSS (KiB) on one node with `ips` layer2 IPs, once it answers for all of them.
fn rss_with(ips: u32) -> Result<Option<u64>, LabError> {
    use std::fmt::Write as _;
    let Some(mut lab) = lab_or_skip("failover benchmark (RSS)")? else {
        return Ok(None);
    };
    let node = lab.netns("n1")?;
    let peer = lab.netns("peer")?;
    lab.veth(&node, "eth0", &peer, "eth0")?;
    lab.addr(&node, "eth0", "192.0.2.11/24")?;
    let dir = lab.dir().join("objects");
    let mut objects = String::from(
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: l2}\nspec: {address: 198.18.0.0/22, protocol: layer2, interface: eth0}\n",
    );
    let write = |rel: &str, body: &str| oxelb_tests::lab::write_file(&dir, rel, body);
    for i in 0..ips {
        let ip = std::net::Ipv4Addr::from(0xc612_0001 + i);
        let _ = write!(
            objects,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: default}}\nspec: {{type: LoadBalancer}}\n"
        );
        write(
            &format!("status/services.core/default/s{i}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: default, finalizers: [finalizer.lb.kubesphere.io/v1alpha1]}}\nstatus: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}\n"
            ),
        )?;
    }
    write("objects.yaml", &objects)?;
    write(
        "status/nodes.core/n1.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {conditions: [{type: Ready, status: 'True'}], addresses: [{type: InternalIP, address: 192.0.2.11}]}\n",
    )?;
    let pid = lab.spawn(
        "speaker",
        node.speaker(env!("CARGO_BIN_EXE_oxelb-speaker"), &dir, "n1", "info"),
    )?;
    let expected = "answering ARP/NDP";
    wait_until(
        "the speaker settled",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let log = lab.log("speaker");
            let announced = log.matches("announcing from this node").count() as u32;
            if (ips == 0 && log.contains("all watches synced"))
                || (announced >= ips && log.contains(expected))
            {
                Ok(())
            } else {
                Err(format!("{announced} announced"))
            }
        },
    )?;
    std::thread::sleep(Duration::from_secs(2));
    let rss = oxelb_tests::lab::rss_kib(pid);
    Ok(rss)
}

fn main() -> Result<(), LabError> {
    let runs = std::env::var("OXELB_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(RUNS);
    let keepalived = Path::new("/usr/sbin/keepalived").exists();
    if !keepalived {
        println!("keepalived is not installed (Debian package `keepalived`): oxelb runs alone");
    }
    if let (Some(idle), Some(loaded)) = (rss_with(0)?, rss_with(1000)?) {
        println!(
            "speaker RSS: idle {} KiB, answering 1000 layer2 IPs {} KiB (dir: source, 1000 Service files)",
            idle, loaded
        );
    }
    let timing = oxelb_speaker_core::liveness::LivenessConfig::default();
    if let Some(pps) = heartbeat_traffic(8, Duration::from_secs(5))? {
        let mean = pps.iter().sum::<f64>() / pps.len() as f64;
        println!(
            "heartbeat traffic, 8 nodes: {:.1} datagrams/s sent per node measured (min {:.1}, max {:.1}), {:.1} computed",
            mean,
            pps.iter().copied().fold(f64::INFINITY, f64::min),
            pps.iter().copied().fold(0.0, f64::max),
            timing.packets_per_second(8)
        );
    }
    for n in [3, 10, 50, 100] {
        println!(
            "heartbeat traffic, {n:>3} nodes: {:>6.0} datagrams/s sent and received per node (computed)",
            timing.packets_per_second(n)
        );
    }
    let Some((ours, theirs)) = rounds(Loss::Kill, runs, keepalived)? else {
        return Ok(());
    };
    let Some((ours_graceful, theirs_graceful)) = rounds(Loss::Graceful, GRACEFUL_RUNS, keepalived)? else {
        return Ok(());
    };
    println!();
    let ours_p50 = summary("kill: oxelb", ours);
    let theirs_p50 = summary("kill: keepalived 0.1 s", theirs);
    summary("graceful: oxelb", ours_graceful);
    summary("graceful: keepalived 0.1 s", theirs_graceful);
    if let (Some(a), Some(b)) = (ours_p50, theirs_p50) {
        println!(
            "kill p50: oxelb {} ms vs keepalived {} ms (targets: oxelb p50 <= 250, max <= 500, below keepalived)",
            a.as_millis(),
            b.as_millis()
        );
    }
    Ok(())
}
