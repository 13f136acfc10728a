//! What the BGP lab tests share: the LAN of a router and node namespaces, the `dir:` objects with
//! the controller's and kubelet's writes as overlay files, and the speaker processes.
// Each test binary that includes this module uses a part of it.
#![allow(dead_code, clippy::unwrap_used)]

use std::{path::Path, time::Duration};

use oxelb_tests::lab::{Lab, LabError, Ns};

/// How long a lab waits for a router or speaker to get somewhere.
pub const WAIT: Duration = Duration::from_secs(30);
/// How often it looks.
pub const POLL: Duration = Duration::from_millis(100);

/// The kubelet's status of Node `name` (Ready, InternalIPs `ip` comma-separated).
pub fn node_overlay(name: &str, ip: &str) -> String {
    let addresses: Vec<String> = ip
        .split(',')
        .map(|a| format!("{{type: InternalIP, address: '{a}'}}"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\nstatus:\n  conditions: [{{type: Ready, status: 'True'}}]\n  addresses: [{}]\n",
        addresses.join(", ")
    )
}

/// The controller's status of Service default/web holding `ips`.
pub fn service_overlay(ips: &[&str]) -> String {
    let ingress: Vec<String> = ips.iter().map(|ip| format!("{{ip: '{ip}'}}")).collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: default\n  finalizers: [finalizer.lb.kubesphere.io/v1alpha1]\nstatus:\n  loadBalancer:\n    ingress: [{}]\n",
        ingress.join(", ")
    )
}

/// Writes `rel` under `dir`.
pub fn write(dir: &Path, rel: &str, body: &str) {
    oxelb_tests::lab::write_file(dir, rel, body).unwrap();
}

/// Starts the speaker of `node` in `ns` on the `dir:` source `dir`, logging to `speaker-<node>`.
pub fn start_speaker(lab: &mut Lab, ns: &Ns, node: &str, dir: &Path) -> Result<(), LabError> {
    let command = ns.speaker(env!("CARGO_BIN_EXE_oxelb-speaker"), dir, node, "info");
    lab.spawn(&format!("speaker-{node}"), command).map(drop)
}

/// The last lines of `log`, for failure messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// A lab with one router namespace (`router`, LAN bridge with `router_ips`) and node namespaces
/// (`(name, "v4[,v6]")`), each on the LAN.
pub fn lan(lab: &mut Lab, router_ips: &[&str], nodes: &[(&str, &str)]) -> Result<(Ns, Vec<Ns>), LabError> {
    let router = lab.netns("router")?;
    lab.bridge(&router, "lan")?;
    for ip in router_ips {
        lab.addr(&router, "lan", ip)?;
    }
    let mut out = Vec::new();
    for (name, ips) in nodes {
        let ns = lab.netns(name)?;
        let port = format!("lan-{name}");
        lab.veth(&router, &port, &ns, "eth0")?;
        lab.attach(&router, &port, "lan")?;
        for ip in ips.split(',') {
            let prefix = if ip.contains(':') { 64 } else { 24 };
            lab.addr(&ns, "eth0", &format!("{ip}/{prefix}"))?;
        }
        out.push(ns);
    }
    Ok((router, out))
}

/// The objects directory: `objects` plus the Node overlays and the Service's ingress.
pub fn objects_dir(lab: &Lab, objects: &str, nodes: &[(&str, &str)], ingress: &[&str]) -> std::path::PathBuf {
    let dir = lab.dir().join("objects");
    write(&dir, "objects.yaml", objects);
    for (name, ips) in nodes {
        write(
            &dir,
            &format!("status/nodes.core/{name}.yaml"),
            &node_overlay(name, ips),
        );
    }
    write(
        &dir,
        "status/services.core/default/web.yaml",
        &service_overlay(ingress),
    );
    dir
}

/// `log` without terminal colours (the speaker's log fields are `key=value` once stripped).
pub fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, up to the final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
