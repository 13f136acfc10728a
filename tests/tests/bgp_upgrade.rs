//! Speaker upgrades without traffic loss, and dead nodes still withdrawn, in BGP mode with BFD and
//! graceful restart (issue 12), on the demo topology (`oxelb_tests::cluster`: FRR router with
//! bfdd at 100 ms x 3, three nodes, a routed client).
//!
//! The mechanism under test (README, "Speaker upgrades"): on SIGTERM the speaker sends BFD
//! AdminDown (RFC 5882 section 3.2: not a failure), then closes its BGP connection without a
//! NOTIFICATION, so the router keeps the node's routes as stale (RFC 4724) until the next speaker
//! process has sent its table and End-of-RIB: the router never withdraws the node, so ECMP is not
//! reshuffled twice. A node that dies (link gone) is withdrawn by BFD even though graceful
//! restart is configured: FRR takes BFD Down as a failure and ends the session with a
//! NOTIFICATION (no graceful restart follows).
//!
//! The BgpPeer is `examples/lab/bgppeer-router.yaml` (graceful restart 60 s, hold time 9 s) with
//! `bfd` at 100 ms x 3. Needs root; each test reports that it skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use oxelb_tests::{
    cluster::{Binaries, LabCluster, NODES},
    lab::{LabError, lab_or_skip},
    workspace_root,
};

const ALL_NODES: [&str; 3] = [NODES[0].1, NODES[1].1, NODES[2].1];

fn binaries() -> Result<Binaries, LabError> {
    Binaries::for_test(env!("CARGO_BIN_EXE_oxelb-lab"))
}

const PEER: &str = "apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata:\n  name: lab-router\nspec:\n  conf: {peerAs: 64513, neighborAddress: 192.0.2.1}\n  gracefulRestart: {enabled: true, restartTime: 60}\n  timers:\n    config: {holdTime: '9', keepaliveInterval: '3', connectRetry: '1'}\n  bfd: {enabled: true, desiredMinTxMs: 100, requiredMinRxMs: 100, detectMultiplier: 3}\n";

/// The cluster with BFD and graceful restart, every path and BFD session up; the Service IP and
/// the index of the node the routed client's flow goes to.
fn cluster(test: &str) -> Result<Option<(LabCluster, String, usize)>, LabError> {
    let Some(lab) = lab_or_skip(test)? else {
        return Ok(None);
    };
    let mut cluster = LabCluster::build_with(
        lab,
        binaries()?,
        &workspace_root().join("examples/lab"),
        Some((100, 3)),
    )?;
    cluster.put_object("bgppeer-router.yaml", PEER)?;
    cluster.start_all()?;
    let ip = cluster.wait_service_ips("default", "web-bgp")?[0].clone();
    cluster.wait_next_hops(&ip, &ALL_NODES)?;
    cluster.wait_kernel_paths(&ip, 3)?;
    cluster.wait_bfd_up(3)?;
    let client = cluster.routed_client.clone();
    let name = cluster.wait_reachable(&client, &ip)?;
    let victim = cluster.nodes.iter().position(|n| n.name == name).unwrap();
    Ok(Some((cluster, ip, victim)))
}

#[test]
fn sigterm_restart_keeps_every_path_and_loses_no_request() -> Result<(), LabError> {
    let Some((mut cluster, ip, victim)) = cluster("sigterm_restart_keeps_every_path")? else {
        return Ok(());
    };
    let name = cluster.nodes[victim].name.clone();
    let client = cluster.routed_client.clone();
    let mut samples: Vec<(Duration, Vec<String>)> = Vec::new();
    let mut old_log = String::new();
    let mut stopped_after = Duration::ZERO;
    let log = cluster.probe_while(&client, &ip, 12, |cluster| {
        let start = Instant::now();
        // A rolling update: SIGTERM (the speaker has 5 s), then the new process at once.
        cluster
            .lab
            .stop(&format!("speaker-{name}"), Duration::from_secs(5));
        stopped_after = start.elapsed();
        old_log = cluster.log(&format!("speaker-{name}"));
        cluster.start_speaker(victim)?;
        // The router's paths, sampled until the new process has re-established and a while
        // after (its End-of-RIB turns the stale routes fresh).
        let mut established_at = None;
        while start.elapsed() < Duration::from_secs(9) {
            samples.push((start.elapsed(), cluster.next_hops(&ip).unwrap_or_default()));
            if established_at.is_none()
                && cluster
                    .log(&format!("speaker-{name}"))
                    .contains("BGP session established")
            {
                established_at = Some(start.elapsed());
            }
            if established_at.is_some_and(|at| start.elapsed() > at + Duration::from_secs(2)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    })?;
    let speaker = cluster.log(&format!("speaker-{name}"));
    assert!(
        speaker.contains("BGP session established"),
        "the new speaker did not re-establish:\n{speaker}"
    );
    let lost: Vec<(Duration, Vec<String>)> = samples
        .iter()
        .filter(|(_, hops)| hops != &ALL_NODES)
        .cloned()
        .collect();
    assert!(
        lost.is_empty(),
        "the router dropped a path during the restart ({} of {} samples): {lost:?}; the old speaker stopped after {stopped_after:?}:\n{}",
        lost.len(),
        samples.len(),
        old_log.lines().rev().take(25).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(
        log.failed(),
        0,
        "{} of {} requests failed during the restart (longest gap {:?})",
        log.failed(),
        log.sent(),
        log.longest_gap()
    );
    // The router saw BFD AdminDown, not a failure, and kept the BGP routes.
    let bgpd = cluster.log("frr-router-bgpd");
    assert!(!bgpd.contains("BFD down"), "{bgpd}");
    println!(
        "SIGTERM restart of {name}: {} requests, 0 failed, {} path samples all with 3 next hops",
        log.sent(),
        samples.len()
    );
    Ok(())
}

#[test]
fn a_dead_node_is_withdrawn_by_bfd_despite_graceful_restart() -> Result<(), LabError> {
    let Some((mut cluster, ip, victim)) = cluster("dead_node_withdrawn_despite_gr")? else {
        return Ok(());
    };
    let client = cluster.routed_client.clone();
    let log = cluster.probe_while(&client, &ip, 5, |cluster| {
        cluster.nodes[victim].ns.ip(&["link", "set", "eth0", "down"])?;
        cluster.kill_speaker(victim).map(drop)
    })?;
    let mut remaining: Vec<&str> = ALL_NODES.to_vec();
    remaining.remove(victim);
    cluster.wait_next_hops(&ip, &remaining)?;
    println!("dead node with graceful restart: outage {:?}", log.longest_gap());
    // The detection time is 300 ms; the graceful-restart time 60 s and the hold time 9 s.
    assert!(
        log.longest_gap() < Duration::from_secs(2),
        "outage {:?}: not withdrawn by BFD",
        log.longest_gap()
    );
    Ok(())
}
