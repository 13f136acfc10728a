//! Layer2 on an IPv6-only node network: three nodes whose only InternalIPs are IPv6, heartbeats
//! between them over IPv6, an IPv6 Service IP answered by NDP. A speaker answers only with the
//! standing a majority of live peers gives it, so one node answering at all shows that heartbeats
//! cross the IPv6 LAN; then the answering node is lost and exactly one other node answers the
//! client's Neighbor Solicitations. Needs root; skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, time::Duration};

use oxelb_tests::lab::{Lab, LabError, Ns, lab_or_skip, wait_until};

const IP: &str = "2001:db8::42";
const WAIT: Duration = Duration::from_secs(20);

fn write(dir: &Path, rel: &str, body: &str) {
    oxelb_tests::lab::write_file(dir, rel, body).unwrap();
}

fn topology(lab: &mut Lab) -> Result<(Vec<(String, Ns)>, Ns), LabError> {
    let switch = lab.netns("sw")?;
    lab.bridge(&switch, "lan")?;
    let dir = lab.dir().join("objects");
    let mut objects = String::from(
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: l2v6}\nspec: {address: '2001:db8::40/124', protocol: layer2, interface: eth0}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default, annotations: {lb.kubesphere.io/v1alpha1: openelb}}\nspec: {type: LoadBalancer, ipFamilies: [IPv6], ports: [{port: 80}]}\n",
    );
    let key = dir.join("..").join("heartbeat.key");
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let name = format!("n{i}");
        let ns = lab.netns(&name)?;
        let port = format!("lan-{name}");
        lab.veth(&switch, &port, &ns, "eth0")?;
        lab.attach(&switch, &port, "lan")?;
        lab.addr(&ns, "eth0", &format!("2001:db8::1{i}/64"))?;
        // The Service IP is local on every node (kube-proxy's part); only the speaker answers NDP
        // for it on eth0, as the kernel answers NS only for addresses of the receiving interface.
        lab.addr(&ns, "lo", &format!("{IP}/128"))?;
        objects.push_str(&format!(
            "---\napiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n"
        ));
        write(
            &dir,
            &format!("status/nodes.core/{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nstatus: {{conditions: [{{type: Ready, status: 'True'}}], addresses: [{{type: InternalIP, address: '2001:db8::1{i}'}}]}}\n"
            ),
        );
        nodes.push((name, ns));
    }
    let client = lab.netns("client")?;
    lab.veth(&switch, "lan-c", &client, "eth0")?;
    lab.attach(&switch, "lan-c", "lan")?;
    lab.addr(&client, "eth0", "2001:db8::100/64")?;
    write(&dir, "objects.yaml", &objects);
    write(
        &dir,
        "status/services.core/default/web.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default, finalizers: [finalizer.lb.kubesphere.io/v1alpha1]}}\nstatus: {{loadBalancer: {{ingress: [{{ip: '{IP}'}}]}}}}\n"
        ),
    );
    std::fs::write(&key, b"lab-shared-secret").unwrap();
    for (name, ns) in &nodes {
        let mut command = ns.speaker(env!("CARGO_BIN_EXE_oxelb-speaker"), &dir, name, "info");
        command.args(["--heartbeat-key-file", &key.display().to_string()]);
        lab.spawn(&format!("speaker-{name}"), command)?;
    }
    Ok((nodes, client))
}

/// The one node whose MAC answers the client's Neighbor Solicitation for the Service IP.
fn answerer(nodes: &[(String, Ns)], client: &Ns) -> Result<usize, LabError> {
    wait_until(
        "one node answers NDP for the Service IP",
        WAIT,
        Duration::from_millis(200),
        || {
            let text = client
                .output("ndisc6", &["-1", "-r", "2", "-w", "300", IP, "eth0"])
                .map(|o| String::from_utf8_lossy(&o.stdout).to_lowercase())
                .map_err(|e| e.to_string())?;
            let hits: Vec<usize> = (0..nodes.len())
                .filter(|i| {
                    nodes[*i]
                        .1
                        .mac("eth0")
                        .is_ok_and(|mac| text.contains(&mac.to_lowercase()))
                })
                .collect();
            match hits.as_slice() {
                [one] => Ok(*one),
                _ => Err(format!("answers from {hits:?}: {text}")),
            }
        },
    )
}

#[test]
fn ipv6_only_nodes_heartbeat_and_fail_over() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("ipv6_only_nodes_heartbeat_and_fail_over")? else {
        return Ok(());
    };
    let (nodes, client) = topology(&mut lab)?;
    let first = answerer(&nodes, &client)?;
    // Every speaker gained standing: it heard a majority of its peers over IPv6.
    for (name, _) in &nodes {
        let log = lab.log(&format!("speaker-{name}"));
        assert!(
            log.contains("standing gained"),
            "{name} never heard its peers:\n{log}"
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let (name, ns) = &nodes[first];
    lab.kill(&format!("speaker-{name}"));
    ns.ip(&["link", "set", "eth0", "down"])?;
    let second = answerer(&nodes, &client)?;
    assert_ne!(second, first, "the lost node still answers");
    let log = lab.log(&format!("speaker-{}", nodes[second].0));
    assert!(log.contains("announcing from this node"), "{log}");
    Ok(())
}
