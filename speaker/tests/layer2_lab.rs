//! The layer2 responder in the real speaker binary: a client namespace on the node's LAN resolves
//! the Service's IPv4 and IPv6 addresses through its own kernel (ARP with `arping`, NDP with
//! `ndisc6`) to the node's MAC, and gets no answer once the IP is released. Needs root; skips with a
//! reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, time::Duration};

use oxelb_tests::lab::{LabError, lab_or_skip, wait_until};

const WAIT: Duration = Duration::from_secs(20);

fn write(dir: &Path, rel: &str, body: &str) {
    oxelb_tests::lab::write_file(dir, rel, body).unwrap();
}

const OBJECTS: &str = "\
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: network.kubesphere.io/v1alpha2
kind: Eip
metadata: {name: l2}
spec: {address: 192.0.2.48/28, protocol: layer2, interface: eth0}
---
apiVersion: network.kubesphere.io/v1alpha2
kind: Eip
metadata: {name: l2v6}
spec: {address: '2001:db8::40/124', protocol: layer2, interface: 'can_reach:2001:db8::100'}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, annotations: {lb.kubesphere.io/v1alpha1: openelb}}
spec: {type: LoadBalancer, ports: [{port: 80}]}
";

fn service(ips: &[&str]) -> String {
    let ingress: Vec<String> = ips.iter().map(|ip| format!("{{ip: '{ip}'}}")).collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: default\n  finalizers: [finalizer.lb.kubesphere.io/v1alpha1]\nstatus:\n  loadBalancer:\n    ingress: [{}]\n",
        ingress.join(", ")
    )
}

#[test]
fn a_client_resolves_the_service_ip_to_the_node_and_not_after_release() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("a_client_resolves_the_service_ip_to_the_node_and_not_after_release")?
    else {
        return Ok(());
    };
    let node = lab.netns("n1")?;
    let client = lab.netns("client")?;
    lab.veth(&node, "eth0", &client, "eth0")?;
    lab.addr(&node, "eth0", "192.0.2.11/24")?;
    lab.addr(&node, "eth0", "2001:db8::11/64")?;
    lab.addr(&client, "eth0", "192.0.2.100/24")?;
    lab.addr(&client, "eth0", "2001:db8::100/64")?;
    let node_mac = node.mac("eth0")?;

    let dir = lab.dir().join("objects");
    write(&dir, "objects.yaml", OBJECTS);
    write(
        &dir,
        "status/nodes.core/n1.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {conditions: [{type: Ready, status: 'True'}], addresses: [{type: InternalIP, address: 192.0.2.11}]}\n",
    );
    write(
        &dir,
        "status/services.core/default/web.yaml",
        &service(&["192.0.2.50", "2001:db8::42"]),
    );
    lab.spawn(
        "speaker",
        node.speaker(env!("CARGO_BIN_EXE_oxelb-speaker"), &dir, "n1", "info"),
    )?;

    // IPv4: the client's kernel resolves the IP to the node's MAC.
    wait_until(
        "ARP reply for 192.0.2.50",
        WAIT,
        Duration::from_millis(200),
        || {
            let (_, text) = client.arping("eth0", "192.0.2.50").map_err(|e| e.to_string())?;
            if text.contains(&node_mac.to_lowercase()) {
                Ok(())
            } else {
                Err(format!("{text}\n{}", lab.log("speaker")))
            }
        },
    )?;
    client.run("ping", &["-c", "1", "-W", "1", "192.0.2.50"]).ok(); // fills the neighbour table
    let (mac, _) = client.neighbor("192.0.2.50")?.expect("an ARP entry");
    assert_eq!(mac, node_mac);
    // IPv6: NDP (a Neighbor Solicitation answered with our NA).
    let ndp = client.run("ndisc6", &["-1", "-r", "3", "2001:db8::42", "eth0"])?;
    assert!(ndp.to_lowercase().contains(&node_mac.to_lowercase()), "{ndp}");
    // An IP nobody holds gets no answer.
    let (answered, _) = client.arping("eth0", "192.0.2.51")?;
    assert!(!answered, "an unassigned IP was answered");

    // Released: the node stops answering at once.
    write(&dir, "status/services.core/default/web.yaml", &service(&[]));
    wait_until(
        "no ARP reply after release",
        WAIT,
        Duration::from_millis(200),
        || {
            let (answered, _) = client.arping("eth0", "192.0.2.50").map_err(|e| e.to_string())?;
            if answered {
                Err("still answered".into())
            } else {
                Ok(())
            }
        },
    )?;
    let log = lab.log("speaker");
    assert!(
        log.contains("announcing from this node") && log.contains("stopped answering"),
        "{log}"
    );
    Ok(())
}
