//! Layer2 under skewed views: speakers learn every change at different moments, as separate
//! watches of a real apiserver deliver it (measured there: three answerers for ~30 ms on every new
//! Service). Each speaker's `dir:` source delivers changes with its own delay (0, 150, 300 ms); the
//! lab then creates Services and an Eip together, deletes and re-creates Services, changes the Eip,
//! moves endpoints of a Local Service, lets a node join and restarts a speaker. The invariant, not
//! the timing, is asserted: no speaker ever sees another MAC claim an IP it answers for (each
//! answerer sees the others' take-over GARPs, which are broadcast), and at the end every IP has
//! exactly one answerer. Nodes hold the IPs on `lo` with strictARP, so only speakers answer ARP.
//! Needs root; skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, time::Duration};

use oxelb_tests::lab::{Lab, LabError, Ns, lab_or_skip, wait_until};

/// Each node's delivery delay: node n(i+1) learns every change `DELAYS[i]` ms late.
const DELAYS: [u64; 4] = [0, 150, 300, 75];
const IPS: [&str; 6] = [
    "192.0.2.50",
    "192.0.2.51",
    "192.0.2.52",
    "192.0.2.53",
    "192.0.2.54",
    "192.0.2.55",
];

fn write(dir: &Path, rel: &str, body: &str) {
    oxelb_tests::lab::write_file(dir, rel, body).unwrap();
}

fn node_object(i: usize) -> String {
    format!("---\napiVersion: v1\nkind: Node\nmetadata: {{name: n{i}}}\n")
}

fn node_status(dir: &Path, i: usize) {
    write(
        dir,
        &format!("status/nodes.core/n{i}.yaml"),
        &format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: n{i}}}\nstatus: {{conditions: [{{type: Ready, status: 'True'}}], addresses: [{{type: InternalIP, address: 192.0.2.1{i}}}]}}\n"
        ),
    );
}

/// Service `s{k}` holding `ip` (its status as the controller would write it); Local with its
/// endpoint on `local` when given.
fn service(dir: &Path, k: usize, ip: &str, local: Option<&str>) -> String {
    write(
        dir,
        &format!("status/services.core/default/s{k}.yaml"),
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s{k}, namespace: default, finalizers: [finalizer.lb.kubesphere.io/v1alpha1]}}\nstatus: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}\n"
        ),
    );
    let policy = if local.is_some() { "Local" } else { "Cluster" };
    let mut out = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{k}, namespace: default, annotations: {{lb.kubesphere.io/v1alpha1: openelb}}}}\nspec: {{type: LoadBalancer, externalTrafficPolicy: {policy}, ports: [{{port: 80}}]}}\n"
    );
    if let Some(node) = local {
        out.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: s{k}-x, namespace: default, labels: {{kubernetes.io/service-name: s{k}}}}}\naddressType: IPv4\nendpoints: [{{addresses: [198.51.100.7], nodeName: {node}, conditions: {{ready: true}}}}]\n"
        ));
    }
    out
}

const EIP: &str = "---\napiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: l2}\nspec: {address: 192.0.2.48/28, protocol: layer2, interface: eth0}\n";
const EIP_CHANGED: &str = "---\napiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: l2}\nspec: {address: 192.0.2.48/28, protocol: layer2, interface: 'can_reach:192.0.2.100'}\n";

struct Skew {
    lab: Lab,
    nodes: Vec<Ns>,
    client: Ns,
    dir: std::path::PathBuf,
    key: String,
    /// The speaker processes started so far (log names), to read their logs at the end.
    logs: Vec<String>,
}

impl Skew {
    fn start_speaker(&mut self, i: usize, log: &str) -> Result<(), LabError> {
        let mut command = self.nodes[i - 1].speaker(
            env!("CARGO_BIN_EXE_oxelb-speaker"),
            &self.dir,
            &format!("n{i}"),
            "info",
        );
        command.args(["--heartbeat-key-file", &self.key]);
        command.env("OXELB_DIR_DELAY_MS", DELAYS[i - 1].to_string());
        self.lab.spawn(log, command)?;
        self.logs.push(log.to_owned());
        Ok(())
    }

    /// The speakers that saw another MAC claim one of their IPs, with the line.
    fn foreign_claims(&self) -> Vec<String> {
        self.logs
            .iter()
            .flat_map(|log| {
                self.lab
                    .log(log)
                    .lines()
                    .filter(|l| l.contains("another MAC claims"))
                    .map(|l| format!("{log}: {l}"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Which nodes (1-based) answer ARP for `ip` from the client.
    fn answerers(&self, ip: &str) -> Result<Vec<usize>, LabError> {
        let (_, text) = self.client.arping("eth0", ip)?;
        Ok((0..self.nodes.len())
            .filter(|i| {
                self.nodes[*i]
                    .mac("eth0")
                    .is_ok_and(|mac| text.contains(&mac.to_lowercase()))
            })
            .map(|i| i + 1)
            .collect())
    }
}

fn setup(lab: Lab) -> Result<Skew, LabError> {
    let mut lab = lab;
    let switch = lab.netns("sw")?;
    lab.bridge(&switch, "lan")?;
    let dir = lab.dir().join("objects");
    let mut nodes = Vec::new();
    for i in 1..=4 {
        let ns = lab.netns(&format!("n{i}"))?;
        let port = format!("lan-n{i}");
        lab.veth(&switch, &port, &ns, "eth0")?;
        lab.attach(&switch, &port, "lan")?;
        lab.addr(&ns, "eth0", &format!("192.0.2.1{i}/24"))?;
        ns.strict_arp()?;
        for ip in IPS {
            lab.addr(&ns, "lo", &format!("{ip}/32"))?;
        }
        nodes.push(ns);
    }
    let client = lab.netns("client")?;
    lab.veth(&switch, "lan-c", &client, "eth0")?;
    lab.attach(&switch, "lan-c", "lan")?;
    lab.addr(&client, "eth0", "192.0.2.100/24")?;
    // Three nodes at first; n4 joins later.
    let objects: String = (1..=3).map(node_object).collect();
    write(&dir, "nodes.yaml", &objects);
    for i in 1..=4 {
        node_status(&dir, i);
    }
    let key = dir.join("..").join("heartbeat.key");
    std::fs::write(&key, b"lab-shared-secret").unwrap();
    Ok(Skew {
        lab,
        nodes,
        client,
        dir,
        key: key.display().to_string(),
        logs: Vec::new(),
    })
}

fn settle() {
    // Longer than the largest delay plus the heartbeat detection and settle times.
    std::thread::sleep(Duration::from_millis(2500));
}

#[test]
fn skewed_views_never_leave_two_answerers() -> Result<(), LabError> {
    let Some(lab) = lab_or_skip("skewed_views_never_leave_two_answerers")? else {
        return Ok(());
    };
    let mut skew = setup(lab)?;
    for i in 1..=3 {
        skew.start_speaker(i, &format!("speaker-n{i}"))?;
    }
    settle();
    let dir = skew.dir.clone();
    // 1. An Eip and six Services appear together.
    let services: String = (0..IPS.len()).map(|k| service(&dir, k, IPS[k], None)).collect();
    write(&dir, "services.yaml", &format!("{EIP}{services}"));
    settle();
    // 2. Three Services go, then come back with each other's IPs.
    let kept: String = (0..3).map(|k| service(&dir, k, IPS[k], None)).collect();
    write(&dir, "services.yaml", &format!("{EIP}{kept}"));
    settle();
    let swapped: String = (0..IPS.len())
        .map(|k| {
            let ip = if k < 3 { IPS[k] } else { IPS[8 - k] };
            service(&dir, k, ip, None)
        })
        .collect();
    write(&dir, "services.yaml", &format!("{EIP}{swapped}"));
    settle();
    // 3. The Eip changes (its interface is now found by route), Services turn Local with their
    //    endpoint on one node, then the endpoints move.
    let local = |nodes: [&str; 2]| -> String {
        (0..IPS.len())
            .map(|k| service(&dir, k, IPS[k], Some(nodes[k % 2])))
            .collect()
    };
    write(
        &dir,
        "services.yaml",
        &format!("{EIP_CHANGED}{}", local(["n1", "n2"])),
    );
    settle();
    write(
        &dir,
        "services.yaml",
        &format!("{EIP_CHANGED}{}", local(["n3", "n1"])),
    );
    settle();
    write(&dir, "services.yaml", &format!("{EIP}{services}"));
    settle();
    // 4. A node joins (its Node object and its speaker), then one leaves.
    let four: String = (1..=4).map(node_object).collect();
    write(&dir, "nodes.yaml", &four);
    skew.start_speaker(4, "speaker-n4")?;
    settle();
    let without_two: String = [1, 3, 4].into_iter().map(node_object).collect();
    write(&dir, "nodes.yaml", &without_two);
    settle();
    write(&dir, "nodes.yaml", &four);
    settle();
    // 5. Speakers restart (a crash, then a rolling restart).
    skew.lab.kill("speaker-n1");
    skew.start_speaker(1, "speaker-n1-restarted")?;
    settle();
    skew.lab.stop("speaker-n3", Duration::from_secs(5));
    skew.start_speaker(3, "speaker-n3-restarted")?;
    settle();
    let claims = skew.foreign_claims();
    assert!(
        claims.is_empty(),
        "two speakers answered one IP:\n{}",
        claims.join("\n")
    );
    // Every IP ends with exactly one answerer.
    for ip in IPS {
        wait_until(
            &format!("exactly one answerer for {ip}"),
            Duration::from_secs(10),
            Duration::from_millis(200),
            || match skew.answerers(ip).map_err(|e| e.to_string())?.as_slice() {
                [_] => Ok(()),
                other => Err(format!("answerers {other:?}")),
            },
        )?;
    }
    for log in &skew.logs {
        assert!(!skew.lab.log(log).contains("panicked"), "{log} panicked");
    }
    Ok(())
}
