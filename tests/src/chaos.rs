//! The chaos harness (issue 25, first slice: layer2): the in-memory API ([`crate::apiserver`]),
//! two controller replicas and three speakers in node namespaces, each process reaching the API
//! through a proxy of its own that can stall ([`crate::freeze_proxy`]), a LAN client asking for
//! every pool IP by ARP every 100 ms and `tcpdump` on the bridge. From a seed, so a failure
//! replays, it injects overlapping faults at random while Services come and go, and checks the
//! invariants all along and once quiet:
//!
//! - no IP held by two Services (the API, polled every 100 ms);
//! - no ARP request answered by two MACs (the capture, [`crate::lan_claims`]);
//! - once the faults end, within [`QUIET`]: every Service with an IP answered by exactly one node,
//!   no Service left without an IP while the pool has room, the Eip's `usage` equal to the IPs
//!   held;
//! - no panic in any log; every process's RSS at start and end.
//!
//! Faults: SIGKILL, SIGTERM (then a restart) and SIGSTOP/SIGCONT of a speaker; a speaker's or a
//! controller's API connection stalled without closing; SIGKILL of a controller (then a restart);
//! a node's LAN link down; 20 % packet loss both ways on a node's LAN link (nftables `numgen`). At most
//! [`MAX_OVERLAP`] at once, one per process or node.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

mod checks;
mod report;

use checks::quiet_problems;

pub use report::{ChaosReport, FaultKind};

use crate::{
    apiserver::ApiServer,
    freeze_proxy::FreezeProxy,
    lab::{Lab, LabError, Ns, wait_until},
    lan_claims::{LanClaims, mac_text},
    pcap::arp_frames,
};

/// How long the cluster gets, once the last fault has ended, before the quiet checks must hold.
pub const QUIET: Duration = Duration::from_secs(15);
/// Faults at once, at most.
pub const MAX_OVERLAP: usize = 2;
/// Live Services at most (the pool holds 14: beyond, it runs dry).
const MAX_SERVICES: usize = 16;
const SERVICES: &str = "/api/v1/namespaces/default/services";
const SYSTEM: &str = "oxelb-system";
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

/// How a run goes.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    /// The seed: the same seed injects the same faults and churn in the same order.
    pub seed: u64,
    /// How long faults are injected.
    pub duration: Duration,
    /// `oxelb-controller`.
    pub controller: PathBuf,
    /// `oxelb-speaker`.
    pub speaker: PathBuf,
    /// The kinds of fault to inject ([`FaultKind::ALL`] for all).
    pub kinds: Vec<FaultKind>,
}

/// SplitMix64: small, deterministic, enough for choosing faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn pool_ip(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 49 + k)
}

fn epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// A running process of the cluster: its log name (a new one per start) and pid.
struct Running {
    log: String,
    pid: u32,
    starts: u32,
}

/// A fault in force: what, on which target, until when.
struct Active {
    kind: FaultKind,
    target: usize,
    since: Duration,
    until: Instant,
}

struct Cluster {
    lab: Lab,
    api: ApiServer,
    nodes: Vec<Ns>,
    client: Ns,
    speaker_proxies: Vec<FreezeProxy>,
    controller_proxies: Vec<FreezeProxy>,
    speakers: Vec<Option<Running>>,
    controllers: Vec<Option<Running>>,
    options: ChaosOptions,
    key: PathBuf,
    pcap: PathBuf,
    logs: Vec<String>,
    // Last: the runtime serving the API and the proxies outlives everything above.
    runtime: tokio::runtime::Runtime,
}

impl Cluster {
    fn start_speaker(&mut self, i: usize) -> Result<(), LabError> {
        let starts = self.speakers[i].as_ref().map_or(0, |r| r.starts) + 1;
        let log = format!("speaker-n{}-{starts}", i + 1);
        let kubeconfig = self.lab.write(
            &format!("kubeconfig-n{}", i + 1),
            &self.speaker_proxies[i].kubeconfig(),
        )?;
        let mut command = self.nodes[i].command(&self.options.speaker.display().to_string());
        command
            .args(["--source", "kube", "--node-name", &format!("n{}", i + 1)])
            .args(["--metrics-addr", "127.0.0.1:9641", "--namespace", SYSTEM])
            .arg("--heartbeat-key-file")
            .arg(&self.key)
            .arg("--state-dir")
            .arg(self.lab.dir().join(format!("state-n{}", i + 1)))
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info");
        let pid = self.lab.spawn(&log, command)?;
        self.logs.push(log.clone());
        self.speakers[i] = Some(Running { log, pid, starts });
        Ok(())
    }

    fn start_controller(&mut self, j: usize) -> Result<(), LabError> {
        let starts = self.controllers[j].as_ref().map_or(0, |r| r.starts) + 1;
        let log = format!("controller-{j}-{starts}");
        let kubeconfig = self.lab.write(
            &format!("kubeconfig-c{j}"),
            &self.controller_proxies[j].kubeconfig(),
        )?;
        // A free port each start: two harnesses may run side by side on one host.
        let port = crate::scale::free_port().map_err(|e| LabError::Skip(e.to_string()))?;
        let mut command = std::process::Command::new(&self.options.controller);
        command
            .args(["--source=kube", "--webhook=false"])
            .args(["--lease-namespace", SYSTEM, "--webhook-namespace", SYSTEM])
            .args(["--identity", &format!("controller-{j}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info");
        let pid = self.lab.spawn(&log, command)?;
        self.logs.push(log.clone());
        self.controllers[j] = Some(Running { log, pid, starts });
        Ok(())
    }

    fn signal(pid: u32, signal: &str) {
        let _ = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
    }

    fn begin(&mut self, kind: FaultKind, target: usize) -> Result<(), LabError> {
        match kind {
            FaultKind::SpeakerKill => {
                if let Some(r) = &self.speakers[target] {
                    let log = r.log.clone();
                    self.lab.kill(&log);
                }
            }
            FaultKind::SpeakerTerm => {
                if let Some(r) = &self.speakers[target] {
                    let log = r.log.clone();
                    self.lab.stop(&log, Duration::from_secs(5));
                }
            }
            FaultKind::SpeakerPause => {
                if let Some(r) = &self.speakers[target] {
                    Self::signal(r.pid, "-STOP");
                }
            }
            FaultKind::SpeakerApiHang => self.speaker_proxies[target].freeze(),
            FaultKind::ControllerApiHang => self.controller_proxies[target].freeze(),
            FaultKind::ControllerKill => {
                if let Some(r) = &self.controllers[target] {
                    let log = r.log.clone();
                    self.lab.kill(&log);
                }
            }
            FaultKind::LinkDown => {
                self.nodes[target].ip(&["link", "set", "eth0", "down"])?;
            }
            FaultKind::PacketLoss => {
                // nftables drops, both ways on the node's LAN link (`tc netem` needs a kernel
                // module these machines lack).
                let ns = &self.nodes[target];
                ns.run("nft", &["add", "table", "netdev", "chaos"])?;
                for (chain, hook) in [("in", "ingress"), ("out", "egress")] {
                    let spec = format!("{{ type filter hook {hook} device \"eth0\" priority 0; }}");
                    ns.run("nft", &["add", "chain", "netdev", "chaos", chain, &spec])?;
                    ns.run(
                        "nft",
                        &[
                            "add", "rule", "netdev", "chaos", chain, "numgen", "random", "mod", "100", "lt",
                            "20", "drop",
                        ],
                    )?;
                }
            }
        }
        Ok(())
    }

    fn end(&mut self, kind: FaultKind, target: usize) -> Result<(), LabError> {
        match kind {
            FaultKind::SpeakerKill | FaultKind::SpeakerTerm => self.start_speaker(target)?,
            FaultKind::SpeakerPause => {
                if let Some(r) = &self.speakers[target] {
                    Self::signal(r.pid, "-CONT");
                }
            }
            FaultKind::SpeakerApiHang => self.speaker_proxies[target].release(),
            FaultKind::ControllerApiHang => self.controller_proxies[target].release(),
            FaultKind::ControllerKill => self.start_controller(target)?,
            FaultKind::LinkDown => {
                self.nodes[target].ip(&["link", "set", "eth0", "up"])?;
            }
            FaultKind::PacketLoss => {
                self.nodes[target].run("nft", &["delete", "table", "netdev", "chaos"])?;
            }
        }
        Ok(())
    }
}

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default",
            "annotations": {"lb.kubesphere.io/v1alpha1": "openelb", "eip.openelb.kubesphere.io/v1alpha2": "chaos"}},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster", "ports": [{"port": 80, "protocol": "TCP"}]},
    })
}

fn setup(mut lab: Lab, options: ChaosOptions) -> Result<Cluster, LabError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| LabError::Skip(format!("no tokio runtime: {e}")))?;
    let api = runtime
        .block_on(ApiServer::start())
        .map_err(|e| LabError::Skip(format!("in-memory API: {e}")))?;
    let switch = lab.netns("sw")?;
    lab.bridge(&switch, "lan")?;
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let ns = lab.netns(&format!("n{i}"))?;
        let port = format!("lan-n{i}");
        lab.veth(&switch, &port, &ns, "eth0")?;
        lab.attach(&switch, &port, "lan")?;
        lab.addr(&ns, "eth0", &format!("192.0.2.1{i}/24"))?;
        ns.strict_arp()?;
        for k in 0..14 {
            lab.addr(&ns, "lo", &format!("{}/32", pool_ip(k)))?;
        }
        nodes.push(ns);
    }
    let client = lab.netns("client")?;
    lab.veth(&switch, "lan-c", &client, "eth0")?;
    lab.attach(&switch, "lan-c", "lan")?;
    lab.addr(&client, "eth0", &format!("{CLIENT}/24"))?;
    let pcap = lab.capture("arp", &switch, "lan", "arp")?;
    let create = |path: &str, object: Value| api.create(path, object).map(drop).map_err(LabError::Skip);
    for ns in ["default", SYSTEM] {
        create(
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )?;
    }
    for i in 1..=3 {
        create(
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("n{i}")},
                "status": {"conditions": [{"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "InternalIP", "address": format!("192.0.2.1{i}")}]}}),
        )?;
    }
    create(
        "/apis/network.kubesphere.io/v1alpha2/eips",
        json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip", "metadata": {"name": "chaos"},
            "spec": {"address": "192.0.2.49-192.0.2.62", "protocol": "layer2", "interface": "eth0"}}),
    )?;
    let key = lab.write("heartbeat.key", "chaos-shared-secret")?;
    let (speaker_proxies, controller_proxies) = {
        let _entered = runtime.enter();
        let speakers = nodes
            .iter()
            .map(|ns| FreezeProxy::start_in_netns(ns.name(), ([127, 0, 0, 1], 6443).into(), api.addr()))
            .collect::<std::io::Result<Vec<_>>>();
        let controllers = (0..2)
            .map(|_| FreezeProxy::start_here(api.addr()))
            .collect::<std::io::Result<Vec<_>>>();
        (speakers, controllers)
    };
    let speaker_proxies = speaker_proxies.map_err(|e| LabError::Skip(format!("proxy: {e}")))?;
    let controller_proxies = controller_proxies.map_err(|e| LabError::Skip(format!("proxy: {e}")))?;
    for k in 0..14 {
        let mut probe = client.command("arping");
        probe
            .args(["-q", "-i", "eth0", "-W", "0.1", "-c", "1000000"])
            .arg(pool_ip(k).to_string());
        lab.spawn(&format!("probe-{k}"), probe)?;
    }
    let mut cluster = Cluster {
        lab,
        api,
        nodes,
        client,
        speaker_proxies,
        controller_proxies,
        speakers: vec![None, None, None],
        controllers: vec![None, None],
        options,
        key,
        pcap,
        logs: Vec::new(),
        runtime,
    };
    for j in 0..2 {
        cluster.start_controller(j)?;
    }
    for i in 0..3 {
        cluster.start_speaker(i)?;
    }
    Ok(cluster)
}

/// Runs the harness once in `lab` (which it tears down when done).
pub fn run(lab: Lab, options: ChaosOptions) -> Result<ChaosReport, LabError> {
    let seed = options.seed;
    let duration = options.duration;
    let mut cluster = setup(lab, options)?;
    let mut rng = Rng(seed);
    let mut report = ChaosReport {
        seed,
        ..ChaosReport::default()
    };
    // Settle: every speaker answering, a few Services with IPs.
    for log in cluster.logs.clone().iter().filter(|l| l.starts_with("speaker")) {
        wait_until(
            &format!("{log} to settle"),
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                if cluster.lab.log(log).contains("view of the peers settled") {
                    Ok(())
                } else {
                    Err("not yet".to_owned())
                }
            },
        )?;
    }
    let mut live: BTreeSet<String> = BTreeSet::new();
    let mut next_name = 0u32;
    for _ in 0..6 {
        let name = format!("svc-{next_name}");
        next_name += 1;
        cluster
            .api
            .create(SERVICES, service(&name))
            .map_err(LabError::Skip)?;
        live.insert(name);
        report.created += 1;
    }
    std::thread::sleep(Duration::from_secs(3));
    let rss_start = cluster.rss_all();
    let started_at = epoch();
    let started = Instant::now();
    let mut active: Vec<Active> = Vec::new();
    let mut seen_duplicates: BTreeSet<String> = BTreeSet::new();
    // Which IPs were held when (for the availability of the probes).
    let mut held_timeline: Vec<(Duration, BTreeSet<Ipv4Addr>)> = Vec::new();
    while started.elapsed() < duration {
        let now = Instant::now();
        // Faults that end.
        let (ending, staying): (Vec<Active>, Vec<Active>) = active.drain(..).partition(|a| a.until <= now);
        active = staying;
        for a in ending {
            cluster.end(a.kind, a.target)?;
            report
                .timeline
                .push((a.kind, a.target, a.since, started.elapsed()));
        }
        // A new fault now and then (about one every 4 s), on a target no fault holds.
        if active.len() < MAX_OVERLAP && rng.chance(3) {
            let kinds = &cluster.options.kinds;
            let Some(kind) = kinds
                .get(usize::try_from(rng.below(kinds.len() as u64)).unwrap_or(0))
                .copied()
            else {
                break;
            };
            let targets = match kind {
                FaultKind::ControllerApiHang | FaultKind::ControllerKill => 2,
                _ => 3,
            };
            let target = usize::try_from(rng.below(targets)).unwrap_or(0);
            let is_controller =
                |k: FaultKind| matches!(k, FaultKind::ControllerApiHang | FaultKind::ControllerKill);
            let busy = active
                .iter()
                .any(|a| a.target == target && is_controller(a.kind) == is_controller(kind));
            if !busy {
                let hold = Duration::from_millis(500 + rng.below(5_500));
                cluster.begin(kind, target)?;
                *report.faults.entry(kind).or_default() += 1;
                active.push(Active {
                    kind,
                    target,
                    since: started.elapsed(),
                    until: now + hold,
                });
            }
        }
        // Churn: about two changes a second.
        if rng.chance(20) {
            if live.len() < MAX_SERVICES && (live.len() < 4 || rng.chance(50)) {
                let name = format!("svc-{next_name}");
                next_name += 1;
                if cluster.api.create(SERVICES, service(&name)).is_ok() {
                    live.insert(name);
                    report.created += 1;
                }
            } else if let Some(name) = live
                .iter()
                .nth(usize::try_from(rng.below(live.len() as u64)).unwrap_or(0))
                .cloned()
            {
                cluster.api.remove(&format!("{SERVICES}/{name}"));
                live.remove(&name);
                report.deleted += 1;
            }
        }
        let holders = cluster.holders();
        held_timeline.push((epoch(), holders.keys().filter_map(|ip| ip.parse().ok()).collect()));
        for (ip, holders) in holders {
            if holders.len() > 1 {
                let line = format!("{ip} held by {}", holders.join(", "));
                if seen_duplicates.insert(line.clone()) {
                    report
                        .duplicate_holds
                        .push(format!("{:?} in: {line}", started.elapsed()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for a in std::mem::take(&mut active) {
        cluster.end(a.kind, a.target)?;
        report
            .timeline
            .push((a.kind, a.target, a.since, started.elapsed()));
    }
    let quiet_from = epoch();
    // Once quiet: one answerer per held IP, no Service without an IP while the pool has room,
    // the Eip's usage right.
    let converged = wait_until(
        "the cluster to converge",
        QUIET,
        Duration::from_millis(500),
        || {
            let problems = quiet_problems(&cluster, &live);
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        },
    );
    if converged.is_err() {
        report.not_converged = quiet_problems(&cluster, &live);
    }
    let rss_end = cluster.rss_all();
    for (name, start) in rss_start {
        report
            .rss
            .insert(name.clone(), (start, rss_end.get(&name).copied().unwrap_or(0.0)));
    }
    let claims = LanClaims::new(arp_frames(&cluster.pcap).map_err(|e| LabError::Skip(e.to_string()))?);
    let macs: BTreeMap<String, String> = cluster
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| Some((n.mac("eth0").ok()?.to_lowercase(), format!("n{}", i + 1))))
        .collect();
    report.double_answers = claims
        .double_answers(CLIENT)
        .into_iter()
        .filter(|d| d.at >= started_at)
        .map(|d| {
            let at = d.at.saturating_sub(started_at);
            format!(
                "{} answered by {} at +{at:?} ({})",
                d.ip,
                d.macs
                    .iter()
                    .map(|m| macs.get(&mac_text(m)).cloned().unwrap_or_else(|| mac_text(m)))
                    .collect::<Vec<_>>()
                    .join(" and "),
                report.faults_at(at)
            )
        })
        .collect();
    // A request counts when its IP was held at the poll before it and still at the poll after.
    let held_at = |ip: Ipv4Addr, at: Duration| {
        let after = held_timeline.partition_point(|(t, _)| *t < at);
        after > 0
            && held_timeline.get(after).is_some_and(|(_, set)| set.contains(&ip))
            && held_timeline[after - 1].1.contains(&ip)
    };
    report.probes = claims.answered(CLIENT, started_at, quiet_from, held_at);
    for log in &cluster.logs {
        if cluster.lab.log(log).contains("panicked") {
            report.panics.push(format!("{log} panicked"));
        }
    }
    if report.violations() > 0 {
        for log in &cluster.logs {
            let text = cluster.lab.log(log);
            let _ = std::fs::write(
                std::env::temp_dir().join(format!("oxelb-chaos-{seed}-{log}.log")),
                text,
            );
        }
        let _ = std::fs::copy(
            &cluster.pcap,
            std::env::temp_dir().join(format!("oxelb-chaos-{seed}.pcap")),
        );
    }
    drop(cluster.runtime);
    Ok(report)
}
