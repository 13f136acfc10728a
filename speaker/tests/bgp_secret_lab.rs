//! TCP-MD5 from a Secret reference (BgpPeer `spec.conf.authPasswordSecret`, an oxelb extension)
//! against a real FRR that requires the password: without the Secret no session starts and an
//! Event names the field; with a wrong password FRR never establishes; once the Secret holds the
//! right one, the session comes up (only the changed Secret restarted it) and FRR installs the
//! route. Needs root; skips with a reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use oxelb_tests::{
    lab::{LabError, lab_or_skip, wait_until, write_file},
    routers::{Frr, Neighbor, frr_bgpd_conf},
};

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

const OBJECTS: &str = "\
apiVersion: v1
kind: Node
metadata: {name: n1}
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
  conf: {peerAs: 64513, neighborAddress: 198.51.100.1, authPasswordSecret: {name: bgp-auth}}
  timers: {config: {connectRetry: '1'}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, annotations: {lb.kubesphere.io/v1alpha1: openelb}}
spec: {type: LoadBalancer, ports: [{port: 80}]}
";

fn secret(password: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: bgp-auth, namespace: oxelb-system}}\nstringData: {{password: {password}}}\n"
    )
}

#[test]
fn md5_password_from_a_secret_reference() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("md5_password_from_a_secret_reference")? else {
        return Ok(());
    };
    let router = lab.netns("router")?;
    let node = lab.netns("n1")?;
    lab.veth(&router, "eth0", &node, "eth0")?;
    lab.addr(&router, "eth0", "198.51.100.1/24")?;
    lab.addr(&node, "eth0", "198.51.100.11/24")?;
    let mut neighbor = Neighbor::new("198.51.100.11", 64512);
    neighbor.password = Some("s3cret".into());
    let frr = Frr::start(
        &mut lab,
        &router,
        "router",
        &frr_bgpd_conf(64513, "198.51.100.1", &[neighbor], ""),
    )?;

    let dir = lab.dir().join("objects");
    write_file(&dir, "objects.yaml", OBJECTS)?;
    write_file(
        &dir,
        "status/nodes.core/n1.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {conditions: [{type: Ready, status: 'True'}], addresses: [{type: InternalIP, address: 198.51.100.11}]}\n",
    )?;
    write_file(
        &dir,
        "status/services.core/default/web.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default, finalizers: [finalizer.lb.kubesphere.io/v1alpha1]}\nstatus: {loadBalancer: {ingress: [{ip: 203.0.113.5}]}}\n",
    )?;
    let command = node.speaker(env!("CARGO_BIN_EXE_oxelb-speaker"), &dir, "n1", "info");
    lab.spawn("speaker", command)?;

    // No Secret yet: no session, and an Event that names the field and the Secret.
    wait_until(
        "an InvalidConfig event naming the missing Secret",
        WAIT,
        POLL,
        || {
            let events = std::fs::read_to_string(dir.join("status/events.yaml")).unwrap_or_default();
            if events.contains("spec.conf.authPasswordSecret: Secret oxelb-system/bgp-auth does not exist") {
                Ok(())
            } else {
                Err(format!("events: {events}\nspeaker: {}", lab.log("speaker")))
            }
        },
    )?;
    assert_ne!(frr.neighbor_state("198.51.100.11")?, "Established");

    // A wrong password: FRR drops the mis-signed SYNs, the session never comes up.
    write_file(&dir, "secret.yaml", &secret("wrong"))?;
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(
        frr.neighbor_state("198.51.100.11")?,
        "Established",
        "FRR accepted a session signed with the wrong password"
    );

    // The right password in the Secret: the session restarts with it and comes up.
    write_file(&dir, "secret.yaml", &secret("s3cret"))?;
    frr.wait_established("198.51.100.11", WAIT)?;
    wait_until("FRR's route to 203.0.113.5/32", WAIT, POLL, || {
        let hops = frr.bgp_next_hops("203.0.113.5/32").map_err(|e| e.to_string())?;
        if hops == ["198.51.100.11"] {
            Ok(())
        } else {
            Err(format!("{hops:?}"))
        }
    })?;
    Ok(())
}
