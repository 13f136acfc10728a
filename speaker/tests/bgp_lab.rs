//! Two speakers (the real binary, one per node namespace) announce a Service IP to a real FRR
//! router over BGP: the router installs one ECMP path per node, withdraws when the IP is released,
//! and keeps the other node's path when one speaker stops. Objects come from a `dir:` source with the
//! controller's and kubelet's writes as overlay files. Needs root; skips with a reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, time::Duration};

use oxelb_tests::{
    lab::{Lab, LabError, Ns, lab_or_skip, wait_until},
    routers::{Frr, Neighbor, frr_bgpd_conf},
};

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

const OBJECTS: &str = "\
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
---
apiVersion: network.kubesphere.io/v1alpha2
kind: Eip
metadata: {name: bgp}
spec: {address: 203.0.113.0/28}
---
apiVersion: network.kubesphere.io/v1alpha2
kind: BgpConf
metadata: {name: default}
spec: {as: 64512, listenPort: -1}
---
apiVersion: network.kubesphere.io/v1alpha2
kind: BgpPeer
metadata: {name: router}
spec:
  conf: {peerAs: 64513, neighborAddress: 198.51.100.1}
  timers: {config: {holdTime: '9', keepaliveInterval: '3', connectRetry: '1'}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, annotations: {lb.kubesphere.io/v1alpha1: openelb}}
spec: {type: LoadBalancer, ports: [{port: 80}]}
";

fn node_overlay(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\nstatus:\n  conditions: [{{type: Ready, status: 'True'}}]\n  addresses: [{{type: InternalIP, address: {ip}}}]\n"
    )
}

fn service_overlay(ips: &[&str]) -> String {
    let ingress: Vec<String> = ips.iter().map(|ip| format!("{{ip: {ip}}}")).collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: default\n  finalizers: [finalizer.lb.kubesphere.io/v1alpha1]\nstatus:\n  loadBalancer:\n    ingress: [{}]\n",
        ingress.join(", ")
    )
}

fn write(dir: &Path, rel: &str, body: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Atomically, as the controller's dir store does: readers never see half a file.
    let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

fn start_speaker(lab: &mut Lab, ns: &Ns, node: &str, dir: &Path) -> Result<(), LabError> {
    let mut command = ns.command(env!("CARGO_BIN_EXE_oxelb-speaker"));
    command.args([
        "--source",
        &format!("dir:{}", dir.display()),
        "--node-name",
        node,
        "--metrics-addr",
        "127.0.0.1:9641",
    ]);
    command.env("RUST_LOG", "info");
    lab.spawn(&format!("speaker-{node}"), command).map(drop)
}

fn next_hops(frr: &Frr, lab: &Lab, want: &[&str]) -> Result<(), LabError> {
    wait_until(
        &format!("FRR next hops {want:?} for 203.0.113.5/32"),
        WAIT,
        POLL,
        || {
            let hops = frr.bgp_next_hops("203.0.113.5/32").map_err(|e| e.to_string())?;
            if hops == want {
                Ok(())
            } else {
                Err(format!(
                    "{hops:?}\nspeaker n1:\n{}\nspeaker n2:\n{}",
                    tail(&lab.log("speaker-n1")),
                    tail(&lab.log("speaker-n2"))
                ))
            }
        },
    )
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

#[test]
fn two_speakers_give_frr_ecmp_paths_and_withdraw_on_release() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("two_speakers_give_frr_ecmp_paths_and_withdraw_on_release")? else {
        return Ok(());
    };
    let router = lab.netns("router")?;
    let n1 = lab.netns("n1")?;
    let n2 = lab.netns("n2")?;
    lab.bridge(&router, "lan")?;
    for (ns, port, ip) in [
        (&n1, "lan-n1", "198.51.100.2/24"),
        (&n2, "lan-n2", "198.51.100.3/24"),
    ] {
        lab.veth(&router, port, ns, "eth0")?;
        lab.attach(&router, port, "lan")?;
        lab.addr(ns, "eth0", ip)?;
    }
    lab.addr(&router, "lan", "198.51.100.1/24")?;
    let frr = Frr::start(
        &mut lab,
        &router,
        "router",
        &frr_bgpd_conf(
            64513,
            "198.51.100.1",
            &[
                Neighbor::new("198.51.100.2", 64512),
                Neighbor::new("198.51.100.3", 64512),
            ],
            "",
        ),
    )?;

    let dir = lab.dir().join("objects");
    write(&dir, "objects.yaml", OBJECTS);
    write(
        &dir,
        "status/nodes.core/n1.yaml",
        &node_overlay("n1", "198.51.100.2"),
    );
    write(
        &dir,
        "status/nodes.core/n2.yaml",
        &node_overlay("n2", "198.51.100.3"),
    );
    write(
        &dir,
        "status/services.core/default/web.yaml",
        &service_overlay(&["203.0.113.5"]),
    );
    start_speaker(&mut lab, &n1, "n1", &dir)?;
    start_speaker(&mut lab, &n2, "n2", &dir)?;

    frr.wait_established("198.51.100.2", WAIT)?;
    frr.wait_established("198.51.100.3", WAIT)?;
    // One path per node, both in the kernel: ECMP.
    next_hops(&frr, &lab, &["198.51.100.2", "198.51.100.3"])?;
    wait_until("two kernel next hops", WAIT, POLL, || {
        let route = frr.kernel_route("203.0.113.5/32").map_err(|e| e.to_string())?;
        if route.matches("nexthop via").count() == 2 {
            Ok(())
        } else {
            Err(route)
        }
    })?;

    // Released by the controller: every speaker withdraws.
    write(
        &dir,
        "status/services.core/default/web.yaml",
        &service_overlay(&[]),
    );
    next_hops(&frr, &lab, &[])?;

    // Assigned again, then one speaker stops: the router keeps the other path.
    write(
        &dir,
        "status/services.core/default/web.yaml",
        &service_overlay(&["203.0.113.5"]),
    );
    next_hops(&frr, &lab, &["198.51.100.2", "198.51.100.3"])?;
    lab.stop("speaker-n2", Duration::from_secs(5));
    next_hops(&frr, &lab, &["198.51.100.2"])?;
    assert!(
        lab.log("speaker-n1").contains("BGP session established"),
        "{}",
        lab.log("speaker-n1")
    );
    Ok(())
}
