//! TCP-MD5 from a Secret reference (BgpPeer `spec.conf.authPasswordSecret`, an oxelb extension)
//! against a real FRR that requires the password: without the Secret no session starts and an
//! Event names the field; with a wrong password FRR never establishes; once the Secret holds the
//! right one, the session comes up (only the changed Secret restarted it) and FRR installs the
//! route. Needs root; skips with a reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bgp_support;

use std::time::Duration;

use bgp_support::{POLL, WAIT, lan, objects_dir, start_speaker, tail, write};
use oxelb_tests::{
    lab::{LabError, lab_or_skip, wait_until},
    routers::{Frr, Neighbor, frr_bgpd_conf},
};

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
    let nodes = [("n1", "198.51.100.11")];
    let (router, node) = lan(&mut lab, &["198.51.100.1/24"], &nodes)?;
    let mut neighbor = Neighbor::new("198.51.100.11", 64512);
    neighbor.password = Some("s3cret".into());
    let frr = Frr::start(
        &mut lab,
        &router,
        "router",
        &frr_bgpd_conf(64513, "198.51.100.1", &[neighbor], ""),
    )?;

    let dir = objects_dir(&lab, OBJECTS, &nodes, &["203.0.113.5"]);
    start_speaker(&mut lab, &node[0], "n1", &dir)?;

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
                Err(format!(
                    "events: {events}\nspeaker: {}",
                    tail(&lab.log("speaker-n1"))
                ))
            }
        },
    )?;
    assert_ne!(frr.neighbor_state("198.51.100.11")?, "Established");

    // A wrong password: FRR drops the mis-signed SYNs, the session never comes up.
    write(&dir, "secret.yaml", &secret("wrong"));
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(
        frr.neighbor_state("198.51.100.11")?,
        "Established",
        "FRR accepted a session signed with the wrong password"
    );

    // The right password in the Secret: the session restarts with it and comes up.
    write(&dir, "secret.yaml", &secret("s3cret"));
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
