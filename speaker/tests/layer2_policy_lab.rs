//! A layer2 pool's `nodeSelector` (`Eip.spec.advertisement`, issue 14) with the real kernel ARP of
//! a client: three nodes with speakers and heartbeats on one switch; only nodes the selector picks
//! ever answer for the pool's IP, whichever node the election would pick otherwise, and when the
//! Node labels change the answer moves to a selected node. Needs root; skips with a reason
//! otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, time::Duration};

use oxelb_tests::lab::{Lab, LabError, Ns, lab_or_skip, wait_until};

const WAIT: Duration = Duration::from_secs(20);
const IP: &str = "192.0.2.50";

fn write(dir: &Path, rel: &str, body: &str) {
    oxelb_tests::lab::write_file(dir, rel, body).unwrap();
}

/// The objects: Nodes n1..n3 with `vlan` labels `vlans[i]`, the layer2 Eip selecting `vlan: "10"`
/// nodes, and the Service.
fn objects(vlans: [&str; 3]) -> String {
    let mut out = String::from(
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: l2}\nspec: {address: 192.0.2.48/28, protocol: layer2, interface: eth0, advertisement: {nodeSelector: {matchLabels: {vlan: '10'}}}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default, annotations: {lb.kubesphere.io/v1alpha1: openelb}}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n",
    );
    for (i, vlan) in vlans.iter().enumerate() {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Node\nmetadata: {{name: n{}, labels: {{vlan: '{vlan}'}}}}\n",
            i + 1
        ));
    }
    out
}

/// Which nodes (indexes) the client's ARP for the IP hears from, over a few probes.
fn answering(nodes: &[Ns], client: &Ns) -> Result<Vec<usize>, LabError> {
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (_, text) = client.arping("eth0", IP)?;
        let text = text.to_lowercase();
        for (i, ns) in nodes.iter().enumerate() {
            if ns.mac("eth0").is_ok_and(|mac| text.contains(&mac.to_lowercase())) && !seen.contains(&i) {
                seen.push(i);
            }
        }
    }
    seen.sort_unstable();
    Ok(seen)
}

fn network(lab: &mut Lab) -> Result<(Vec<Ns>, Ns, std::path::PathBuf), LabError> {
    let switch = lab.netns("sw")?;
    lab.bridge(&switch, "lan")?;
    let dir = lab.dir().join("objects");
    std::fs::write(lab.dir().join("heartbeat.key"), b"lab-shared-secret").unwrap();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let name = format!("n{i}");
        let ns = lab.netns(&name)?;
        let port = format!("lan-{name}");
        lab.veth(&switch, &port, &ns, "eth0")?;
        lab.attach(&switch, &port, "lan")?;
        lab.addr(&ns, "eth0", &format!("192.0.2.1{i}/24"))?;
        write(
            &dir,
            &format!("status/nodes.core/{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nstatus: {{conditions: [{{type: Ready, status: 'True'}}], addresses: [{{type: InternalIP, address: '192.0.2.1{i}'}}]}}\n"
            ),
        );
        nodes.push(ns);
    }
    let client = lab.netns("client")?;
    lab.veth(&switch, "lan-c", &client, "eth0")?;
    lab.attach(&switch, "lan-c", "lan")?;
    lab.addr(&client, "eth0", "192.0.2.100/24")?;
    write(
        &dir,
        "status/services.core/default/web.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default, finalizers: [finalizer.lb.kubesphere.io/v1alpha1]}}\nstatus: {{loadBalancer: {{ingress: [{{ip: '{IP}'}}]}}}}\n"
        ),
    );
    Ok((nodes, client, dir))
}

#[test]
fn only_nodes_the_pools_node_selector_picks_answer_arp() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("only_nodes_the_pools_node_selector_picks_answer_arp")? else {
        return Ok(());
    };
    let (nodes, client, dir) = network(&mut lab)?;
    // Each node alone selected in turn: the client's kernel hears that node and no other.
    write(&dir, "objects.yaml", &objects(["10", "20", "20"]));
    for (i, ns) in nodes.iter().enumerate() {
        let name = format!("n{}", i + 1);
        let mut command = ns.speaker(env!("CARGO_BIN_EXE_oxelb-speaker"), &dir, &name, "info");
        command.args([
            "--heartbeat-key-file",
            &lab.dir().join("heartbeat.key").display().to_string(),
        ]);
        lab.spawn(&format!("speaker-{name}"), command)?;
    }
    for selected in 0..3 {
        let mut vlans = ["20"; 3];
        vlans[selected] = "10";
        write(&dir, "objects.yaml", &objects(vlans));
        wait_until(
            &format!("only n{} answers", selected + 1),
            WAIT,
            Duration::from_millis(200),
            || match answering(&nodes, &client).map_err(|e| e.to_string())? {
                hits if hits == [selected] => Ok(()),
                hits => Err(format!("answers from {hits:?}")),
            },
        )?;
        // And stays the only one (three more probes).
        assert_eq!(answering(&nodes, &client)?, [selected], "vlans {vlans:?}");
    }
    // Two selected: exactly one of them answers, never the third.
    write(&dir, "objects.yaml", &objects(["10", "10", "20"]));
    let one = wait_until(
        "one of n1, n2 answers",
        WAIT,
        Duration::from_millis(200),
        || match answering(&nodes, &client).map_err(|e| e.to_string())?.as_slice() {
            [one] if *one < 2 => Ok(*one),
            hits => Err(format!("answers from {hits:?}")),
        },
    )?;
    assert_eq!(answering(&nodes, &client)?, [one]);
    // None selected: nobody answers, and the speakers say why on the Eip.
    write(&dir, "objects.yaml", &objects(["20", "20", "20"]));
    wait_until(
        "nobody answers",
        WAIT,
        Duration::from_millis(200),
        || match answering(&nodes, &client).map_err(|e| e.to_string())?.as_slice() {
            [] => Ok(()),
            hits => Err(format!("answers from {hits:?}")),
        },
    )?;
    wait_until(
        "PolicyNotApplied in n1's log",
        WAIT,
        Duration::from_millis(200),
        || {
            let log = lab.log("speaker-n1");
            if log.contains("PolicyNotApplied") && log.contains("nodeSelector selects no Node") {
                Ok(())
            } else {
                Err("not yet".into())
            }
        },
    )?;
    Ok(())
}
