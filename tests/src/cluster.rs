//! A whole cluster's worth of oxelb in network namespaces, with no Kubernetes: the topology of the
//! demo (`examples/lab/demo.sh`) and of the end-to-end tests (`tests/tests/e2e.rs`), built by this
//! one piece of code so the two cannot drift.
//!
//! ```text
//!            routed client 198.51.100.10 ── router (FRR, AS 64513) 198.51.100.1
//!                                             │ 192.0.2.1, BGP to every node
//!   LAN 192.0.2.0/24 (bridge) ────┬──────┬────┴─┬──────────┐
//!                                n1 .11  n2 .12  n3 .13    LAN client .100
//! ```
//!
//! - Nodes run the real `oxelb-speaker` (AS 64512) and `oxelb-lab proxy`, the kube-proxy stand-in
//!   that keeps the Service IPs on the node's `kube-ipvs0` and answers HTTP with the node's name.
//!   Nodes have `arp_ignore=1`/`arp_announce=2` (kube-proxy IPVS with strictARP), so only the
//!   speaker answers ARP for a Service IP.
//! - The controller runs the real `oxelb-controller` in a namespace of its own. Both binaries run
//!   on a `dir:` source: a copy of `examples/lab/`, plus what the controller writes under
//!   `status/` (how the speakers learn the allocations).
//! - Addresses come only from the documentation ranges; every wait is bounded; the [`Lab`] under
//!   it removes everything on drop.

mod observe;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    images::LabContainers,
    lab::{Lab, LabError, Ns, run, wait_until, write_file},
    routers::{Frr, Neighbor, Router, RouterKind, RouterSetup, frr_bfdd_conf, frr_bgpd_conf},
};

/// The nodes' AS (`examples/lab/bgpconf.yaml`).
pub const NODE_AS: u32 = 64512;
/// The router's AS (`examples/lab/bgppeer-router.yaml`).
pub const ROUTER_AS: u32 = 64513;
/// The router's address on the LAN.
pub const ROUTER_LAN_IP: &str = "192.0.2.1";
/// The LAN client's address.
pub const LAN_CLIENT_IP: &str = "192.0.2.100";
/// The routed client's address, behind the router.
pub const ROUTED_CLIENT_IP: &str = "198.51.100.10";
/// The nodes: name and LAN address (`examples/lab/nodes.yaml`).
pub const NODES: [(&str, &str); 3] = [("n1", "192.0.2.11"), ("n2", "192.0.2.12"), ("n3", "192.0.2.13")];

/// How long an outcome may take to show: the dir source polls every 200 ms, BGP connect retry is
/// 1 s, FRR installs within a second.
pub const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// Where the binaries are.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `oxelb-controller`.
    pub controller: PathBuf,
    /// `oxelb-speaker`.
    pub speaker: PathBuf,
    /// `oxelb-lab` (the kube-proxy stand-in and HTTP probe).
    pub lab_tool: PathBuf,
}

/// Where the workspace's binaries are: `OXELB_BIN_DIR` when set, else the directory of `exe`, a
/// binary cargo built with them (a test's `CARGO_BIN_EXE_...`, or a bench binary's own path).
pub fn bin_dir_beside(exe: &Path) -> PathBuf {
    std::env::var_os("OXELB_BIN_DIR").map_or_else(
        || exe.parent().map(PathBuf::from).unwrap_or_default(),
        PathBuf::from,
    )
}

impl Binaries {
    /// The binaries of a test or benchmark: from `OXELB_BIN_DIR` when set, else from the
    /// directory cargo built `lab_tool` (the test's `CARGO_BIN_EXE_oxelb-lab`) into.
    pub fn for_test(lab_tool: &str) -> Result<Self, LabError> {
        Self::in_dir(&bin_dir_beside(Path::new(lab_tool)))
    }

    /// The three binaries in `dir` (e.g. `target/release`), or an error naming the missing one and
    /// how to build it.
    pub fn in_dir(dir: &Path) -> Result<Self, LabError> {
        let find = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(LabError::Command {
                    command: format!("find {}", path.display()),
                    status: "missing".into(),
                    stderr: format!(
                        "{name} is not built in {}: run `cargo build -p oxelb-controller -p oxelb-speaker -p oxelb-tests --bins` (add --release for release binaries) and pass the directory it built into (cargo's target directory, which CARGO_TARGET_DIR or build.target-dir may move)",
                        dir.display()
                    ),
                })
            }
        };
        Ok(Self {
            controller: find("oxelb-controller")?,
            speaker: find("oxelb-speaker")?,
            lab_tool: find("oxelb-lab")?,
        })
    }
}

/// One node of the lab.
#[derive(Clone, Debug)]
pub struct LabNode {
    /// The Node's name (`n1`...).
    pub name: String,
    /// Its namespace.
    pub ns: Ns,
    /// Its LAN address (InternalIP, BGP next hop).
    pub ip: String,
}

/// What a failover measured.
#[derive(Clone, Debug)]
pub struct Failover {
    /// The node that answered before (killed).
    pub from: String,
    /// The node that answered after.
    pub to: String,
    /// The longest time without an answer, from the last answer before to the first after.
    pub outage: Duration,
    /// Probes sent and probes that failed.
    pub probes: (usize, usize),
}

/// The lab cluster: topology, router, and the oxelb processes.
pub struct LabCluster {
    /// The lab (namespaces, processes, files).
    pub lab: Lab,
    bins: Binaries,
    /// The router (FRR unless built with [`LabCluster::build_on`]).
    pub router: Router,
    /// The three nodes.
    pub nodes: Vec<LabNode>,
    /// The client on the nodes' LAN.
    pub lan_client: Ns,
    /// The client behind the router.
    pub routed_client: Ns,
    control: Ns,
    objects: PathBuf,
    heartbeat_key: PathBuf,
    probes: u32,
    /// Extra environment of every speaker started from now on (e.g.
    /// `OXELB_BFD_RESTART_WINDOW_MS`).
    pub speaker_env: Vec<(String, String)>,
    /// When set, the controller and speakers started from now on run as the release images in
    /// podman containers (`tests/tests/images.rs`), not as the binaries.
    pub containers: Option<LabContainers>,
}

impl LabCluster {
    /// Builds the topology, starts the router and a kube-proxy stand-in per node, and copies the
    /// `*.yaml` of `manifests` into the objects directory. Starts no oxelb process yet:
    /// [`start_all`](Self::start_all).
    pub fn build(lab: Lab, bins: Binaries, manifests: &Path) -> Result<Self, LabError> {
        Self::build_with(lab, bins, manifests, None)
    }

    /// As [`build`](Self::build), with the router running BFD (FRR's bfdd, `neighbor X bfd`) to
    /// every node at `router_bfd` = (interval ms, multiplier) when given. The router's BGP does
    /// not wait for BFD: a BgpPeer without `spec.bfd` peers as before.
    pub fn build_with(
        lab: Lab,
        bins: Binaries,
        manifests: &Path,
        router_bfd: Option<(u32, u8)>,
    ) -> Result<Self, LabError> {
        Self::build_on(lab, bins, manifests, RouterKind::Frr, router_bfd)
    }

    /// As [`build_with`](Self::build_with), with a router of `kind`: FRR as there, or BIRD 2
    /// (a graceful-restart helper by default; `protocol bfd` and `bfd on` per node with
    /// `router_bfd`; its kernel protocol installs the ECMP routes). gobgpd installs no routes
    /// and is refused.
    pub fn build_on(
        lab: Lab,
        bins: Binaries,
        manifests: &Path,
        kind: RouterKind,
        router_bfd: Option<(u32, u8)>,
    ) -> Result<Self, LabError> {
        Self::build_router(lab, bins, manifests, kind, router_bfd, None)
    }

    /// As [`build_on`](Self::build_on), with TCP-MD5 on every BGP session when `password` is
    /// given: the router requires it from each node (the objects' BgpPeer must give it).
    pub fn build_router(
        mut lab: Lab,
        bins: Binaries,
        manifests: &Path,
        kind: RouterKind,
        router_bfd: Option<(u32, u8)>,
        password: Option<&str>,
    ) -> Result<Self, LabError> {
        let objects = lab.dir().join("objects");
        copy_manifests(manifests, &objects)?;
        let heartbeat_key = lab.write("heartbeat.key", "oxelb-lab-heartbeat-secret")?;

        let switch = lab.netns("sw")?;
        lab.bridge(&switch, "lan")?;

        let router_ns = lab.netns("router")?;
        lab.veth(&switch, "lan-r", &router_ns, "eth0")?;
        lab.attach(&switch, "lan-r", "lan")?;
        lab.addr(&router_ns, "eth0", &format!("{ROUTER_LAN_IP}/24"))?;
        router_ns.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;

        let routed_client = lab.netns("rclient")?;
        lab.veth(&router_ns, "eth1", &routed_client, "eth0")?;
        lab.addr(&router_ns, "eth1", "198.51.100.1/24")?;
        lab.addr(&routed_client, "eth0", &format!("{ROUTED_CLIENT_IP}/24"))?;
        routed_client.ip(&["route", "add", "default", "via", "198.51.100.1"])?;

        let lan_client = lab.netns("lclient")?;
        lab.veth(&switch, "lan-c", &lan_client, "eth0")?;
        lab.attach(&switch, "lan-c", "lan")?;
        lab.addr(&lan_client, "eth0", &format!("{LAN_CLIENT_IP}/24"))?;

        let mut nodes = Vec::new();
        for (name, ip) in NODES {
            let ns = lab.netns(name)?;
            let port = format!("lan-{name}");
            lab.veth(&switch, &port, &ns, "eth0")?;
            lab.attach(&switch, &port, "lan")?;
            lab.addr(&ns, "eth0", &format!("{ip}/24"))?;
            ns.ip(&["route", "add", "default", "via", ROUTER_LAN_IP])?;
            // kube-proxy IPVS with strictARP: the Service IPs on kube-ipvs0 are never answered by
            // the kernel's ARP, only by the speaker.
            ns.strict_arp()?;
            // The kubelet's part: the Node is Ready and has its InternalIP (a `dir:` source takes
            // status only from overlay files, as a cluster takes it only from the kubelet).
            write_file(
                &objects,
                &format!("status/nodes.core/{name}.yaml"),
                &format!(
                    "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nstatus:\n  conditions: [{{type: Ready, status: 'True'}}]\n  addresses: [{{type: InternalIP, address: '{ip}'}}]\n"
                ),
            )?;
            let mut proxy = ns.command(&bins.lab_tool.display().to_string());
            proxy.args([
                "proxy",
                "--node",
                name,
                "--objects",
                &objects.display().to_string(),
            ]);
            lab.spawn(&format!("proxy-{name}"), proxy)?;
            nodes.push(LabNode {
                name: name.to_owned(),
                ns,
                ip: ip.to_owned(),
            });
        }

        let neighbors: Vec<Neighbor> = NODES
            .iter()
            .map(|(_, ip)| Neighbor {
                bfd: router_bfd,
                local_address: router_bfd.map(|_| ROUTER_LAN_IP.to_owned()),
                password: password.map(str::to_owned),
                ..Neighbor::new(ip, NODE_AS)
            })
            .collect();
        let router = match kind {
            RouterKind::Frr => {
                let conf = frr_bgpd_conf(ROUTER_AS, ROUTER_LAN_IP, &neighbors, " bgp graceful-restart\n");
                let bfdd = router_bfd.map(|_| frr_bfdd_conf(&neighbors));
                Router::Frr(Frr::start_daemons(
                    &mut lab,
                    &router_ns,
                    "router",
                    &conf,
                    179,
                    bfdd.as_deref(),
                )?)
            }
            RouterKind::Bird => {
                let setup = RouterSetup {
                    asn: ROUTER_AS,
                    router_id: ROUTER_LAN_IP.to_owned(),
                    ipv6: None,
                    neighbors,
                    listen_port: None,
                };
                Router::start(RouterKind::Bird, &mut lab, &router_ns, &setup)?
            }
            RouterKind::Gobgp => {
                return Err(LabError::Unexpected(
                    "the lab cluster needs a router that installs kernel routes (FRR or BIRD)".into(),
                ));
            }
        };
        let control = lab.netns("cp")?;
        Ok(Self {
            lab,
            bins,
            router,
            nodes,
            lan_client,
            routed_client,
            control,
            objects,
            heartbeat_key,
            probes: 0,
            speaker_env: Vec::new(),
            containers: None,
        })
    }

    /// The objects directory (the `dir:` source of every oxelb process).
    pub fn objects(&self) -> &Path {
        &self.objects
    }

    /// Starts the controller and every speaker.
    pub fn start_all(&mut self) -> Result<(), LabError> {
        self.start_controller()?;
        for i in 0..self.nodes.len() {
            self.start_speaker(i)?;
        }
        Ok(())
    }

    /// Starts the controller (log `controller`).
    pub fn start_controller(&mut self) -> Result<(), LabError> {
        let mut command = self.control.command(&self.bins.controller.display().to_string());
        command
            .args(["--source", &format!("dir:{}", self.objects.display())])
            .args(["--metrics-addr", "127.0.0.1:9640"])
            .env("RUST_LOG", "info");
        if let Some(containers) = &self.containers {
            let name = format!("{}-controller", self.control.name());
            command = containers.podman.run_in_netns(
                &name,
                self.control.name(),
                &containers.controller,
                &[self.lab.dir()],
                &command,
            );
        }
        self.lab.spawn("controller", command).map(drop)
    }

    /// Kills the controller at once (SIGKILL: a crash, or a node lost with it).
    pub fn kill_controller(&mut self) -> bool {
        self.lab.kill("controller")
    }

    /// Starts the speaker of node `i` (log `speaker-<name>`).
    pub fn start_speaker(&mut self, i: usize) -> Result<(), LabError> {
        let node = self.node(i)?.clone();
        let mut command = node.ns.speaker(
            &self.bins.speaker.display().to_string(),
            &self.objects,
            &node.name,
            "info",
        );
        command.args(["--heartbeat-key-file", &self.heartbeat_key.display().to_string()]);
        command.envs(self.speaker_env.iter().map(|(k, v)| (k, v)));
        if let Some(containers) = &self.containers {
            let name = format!("{}-speaker", node.ns.name());
            command = containers.podman.run_in_netns(
                &name,
                node.ns.name(),
                &containers.speaker,
                &[self.lab.dir()],
                &command,
            );
        }
        self.lab
            .spawn(&format!("speaker-{}", node.name), command)
            .map(drop)
    }

    /// The controller's `/metrics` page (it listens on 127.0.0.1:9640 in the control namespace).
    pub fn controller_metrics(&self) -> Result<String, LabError> {
        self.control.run(
            "curl",
            &["-sS", "--max-time", "5", "http://127.0.0.1:9640/metrics"],
        )
    }

    /// The `/metrics` page of node `i`'s speaker (127.0.0.1:9641 in its namespace).
    pub fn speaker_metrics(&self, i: usize) -> Result<String, LabError> {
        self.node(i)?.ns.run(
            "curl",
            &["-sS", "--max-time", "5", "http://127.0.0.1:9641/metrics"],
        )
    }

    /// Stops the speaker of node `i` as a rolling update does: SIGTERM (its BGP sessions send Cease,
    /// it stops answering), SIGKILL after 10 s. Returns whether it was running.
    pub fn stop_speaker(&mut self, i: usize) -> Result<bool, LabError> {
        let name = self.node(i)?.name.clone();
        Ok(self.lab.stop(&format!("speaker-{name}"), Duration::from_secs(10)))
    }

    /// Stops the controller as a rolling update does: SIGTERM, SIGKILL after 10 s.
    pub fn stop_controller(&mut self) -> bool {
        self.lab.stop("controller", Duration::from_secs(10))
    }

    /// Kills the speaker of node `i` at once (SIGKILL: no Cease, no goodbye).
    pub fn kill_speaker(&mut self, i: usize) -> Result<bool, LabError> {
        let name = self.node(i)?.name.clone();
        Ok(self.lab.kill(&format!("speaker-{name}")))
    }

    fn node(&self, i: usize) -> Result<&LabNode, LabError> {
        self.nodes.get(i).ok_or_else(|| LabError::Command {
            command: format!("node {i}"),
            status: "no such node".into(),
            stderr: format!("the lab has {} nodes", self.nodes.len()),
        })
    }

    /// Writes an object file `rel` (relative to the objects directory), atomically.
    pub fn put_object(&self, rel: &str, yaml: &str) -> Result<(), LabError> {
        write_file(&self.objects, rel, yaml)
    }

    /// Removes the object file `rel` (the objects in it are deleted).
    pub fn remove_object(&self, rel: &str) -> Result<(), LabError> {
        let path = self.objects.join(rel);
        std::fs::remove_file(&path).map_err(|source| LabError::Io { path, source })
    }

    /// The IPs the controller wrote into the Service's `status.loadBalancer.ingress`.
    pub fn service_ips(&self, namespace: &str, name: &str) -> Vec<String> {
        let doc = self.status_doc(&format!("services.core/{namespace}/{name}.yaml"));
        doc["status"]["loadBalancer"]["ingress"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry["ip"].as_str().map(str::to_owned))
            .collect()
    }

    /// The finalizers the controller's overlay gives an object (`rel` under `status/`, e.g.
    /// `eips.network.kubesphere.io/lab-bgp.yaml`).
    pub fn overlay_finalizers(&self, rel: &str) -> Vec<String> {
        let doc = self.status_doc(rel);
        doc["metadata"]["finalizers"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect()
    }

    /// An overlay file under `status/`, parsed (`Null` when missing or unreadable).
    pub fn status_doc(&self, rel: &str) -> serde_yaml::Value {
        std::fs::read_to_string(self.objects.join("status").join(rel))
            .ok()
            .and_then(|text| serde_yaml::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Waits until the Service has ingress IPs, and returns them.
    pub fn wait_service_ips(&self, namespace: &str, name: &str) -> Result<Vec<String>, LabError> {
        wait_until(
            &format!("an IP for Service {namespace}/{name}"),
            WAIT,
            POLL,
            || {
                let ips = self.service_ips(namespace, name);
                if ips.is_empty() {
                    Err(format!(
                        "no ingress yet; controller log tail: {}",
                        tail(&self.lab.log("controller"))
                    ))
                } else {
                    Ok(ips)
                }
            },
        )
    }

    /// The Events the controller published (`status/events.yaml`).
    pub fn events(&self) -> String {
        std::fs::read_to_string(self.objects.join("status/events.yaml")).unwrap_or_default()
    }

    /// Prints the last `lines` lines of every oxelb process's log to stderr (for a failed test).
    pub fn dump_logs(&self, lines: usize) {
        let mut names = vec!["controller".to_owned()];
        for node in &self.nodes {
            names.push(format!("speaker-{}", node.name));
            names.push(format!("proxy-{}", node.name));
        }
        for name in names {
            let log = self.lab.log(&name);
            let all: Vec<&str> = log.lines().collect();
            eprintln!("----- {name} (last {lines} of {} lines) -----", all.len());
            for line in &all[all.len().saturating_sub(lines)..] {
                eprintln!("{line}");
            }
        }
    }

    /// The process log `name` (controller, speaker-n1, proxy-n1, frr-router-bgpd...).
    pub fn log(&self, name: &str) -> String {
        self.lab.log(name)
    }
}

/// What `oxelb-lab probe` printed: `(ms, Some(node))` per answer, `(ms, None)` per failure.
#[derive(Clone, Debug, Default)]
pub struct ProbeLog {
    /// The attempts in order.
    pub attempts: Vec<(u64, Option<String>)>,
}

impl ProbeLog {
    /// Parses the probe's output (lines `<ms> ok <node>` / `<ms> fail <error>`).
    pub fn parse(text: &str) -> Self {
        let attempts = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let ms = words.next()?.parse().ok()?;
                match words.next()? {
                    "ok" => Some((ms, Some(words.next().unwrap_or_default().to_owned()))),
                    "fail" => Some((ms, None)),
                    _ => None,
                }
            })
            .collect();
        Self { attempts }
    }

    /// Attempts made.
    pub fn sent(&self) -> usize {
        self.attempts.len()
    }

    /// Attempts that got no answer.
    pub fn failed(&self) -> usize {
        self.attempts.iter().filter(|(_, node)| node.is_none()).count()
    }

    /// The node of the last answer.
    pub fn last_answer(&self) -> Option<String> {
        self.attempts.iter().rev().find_map(|(_, node)| node.clone())
    }

    /// The longest time between two successive answers (zero with fewer than two).
    pub fn longest_gap(&self) -> Duration {
        let times: Vec<u64> = self
            .attempts
            .iter()
            .filter(|(_, node)| node.is_some())
            .map(|(ms, _)| *ms)
            .collect();
        let longest = times
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]))
            .max()
            .unwrap_or(0);
        Duration::from_millis(longest)
    }
}

/// `ip/32` or `ip/128`.
pub fn host_prefix(ip: &str) -> String {
    if ip.contains(':') {
        format!("{ip}/128")
    } else {
        format!("{ip}/32")
    }
}

/// Copies the `*.yaml` files of `from` (not recursively) into `to`.
fn copy_manifests(from: &Path, to: &Path) -> Result<(), LabError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LabError::Io { path, source }
    };
    std::fs::create_dir_all(to).map_err(io(to))?;
    let mut copied = 0;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let path = entry.map_err(io(from))?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            write_file(to, &name, &text)?;
            copied += 1;
        }
    }
    if copied == 0 {
        return Err(LabError::Io {
            path: from.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no *.yaml manifests here"),
        });
    }
    // FRR runs as user frr and must traverse the lab directory (see `Frr::start`).
    run("chmod", &["0755", &to.display().to_string()]).map(drop)
}

/// The last lines of a log, for error messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

#[cfg(test)]
mod tests;
