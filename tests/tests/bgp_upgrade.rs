//! Speaker upgrades without traffic loss, and dead nodes still withdrawn, in BGP mode with BFD and
//! graceful restart (issue 12), on the demo topology (`oxelb_tests::cluster`: a router with BFD
//! at 100 ms x 3, three nodes, a routed client), against FRR 8.4 and BIRD 2.0.
//!
//! The mechanism under test (docs/bgp.md, "Speaker upgrades without traffic loss"): on SIGTERM the
//! speaker raises its BFD sessions' Detect Mult so the router's Detection Time covers the restart
//! window (a Poll Sequence), closes its BGP connection without a NOTIFICATION, so the router keeps
//! the node's routes as stale (RFC 4724), and hands its BFD sessions to the next process, which
//! continues them in Up with the same discriminators: the router never sees BFD go down (BIRD would
//! flush the stale routes on any BFD Down) and never withdraws the node, so ECMP is not reshuffled
//! twice. A speaker that does not come back is withdrawn when the window ends; a node that dies (link
//! gone) is withdrawn by BFD within its detection time even though graceful restart is configured.
//!
//! The BgpPeer is `examples/lab/bgppeer-router.yaml` (graceful restart 60 s, hold time 9 s) with
//! `bfd` at 100 ms x 3. Needs root; each test reports that it skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use oxelb_tests::{
    cluster::{Binaries, LabCluster, NODES},
    lab::{LabError, lab_or_skip, wait_until},
    routers::RouterKind,
    workspace_root,
};

const ALL_NODES: [&str; 3] = [NODES[0].1, NODES[1].1, NODES[2].1];

fn binaries() -> Result<Binaries, LabError> {
    Binaries::for_test(env!("CARGO_BIN_EXE_oxelb-lab"))
}

/// Each GET's timeout in the zero-loss restart tests.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The lab's BgpPeer with graceful restart (`restart_time` seconds) and BFD at 100 ms x 3.
fn peer(restart_time: u16) -> String {
    format!(
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata:\n  name: lab-router\nspec:\n  conf: {{peerAs: 64513, neighborAddress: 192.0.2.1}}\n  gracefulRestart: {{enabled: true, restartTime: {restart_time}}}\n  timers:\n    config: {{holdTime: '9', keepaliveInterval: '3', connectRetry: '1'}}\n  bfd: {{enabled: true, desiredMinTxMs: 100, requiredMinRxMs: 100, detectMultiplier: 3}}\n"
    )
}

/// The cluster with BFD and graceful restart (`restart_time` seconds) on a router of `kind`,
/// every path and BFD session up, speakers with `env`; the Service IP and the index of the node
/// the routed client's flow goes to.
fn cluster(
    test: &str,
    kind: RouterKind,
    restart_time: u16,
    env: &[(&str, &str)],
) -> Result<Option<(LabCluster, String, usize)>, LabError> {
    let Some(lab) = lab_or_skip(test)? else {
        return Ok(None);
    };
    let mut cluster = LabCluster::build_on(
        lab,
        binaries()?,
        &workspace_root().join("examples/lab"),
        kind,
        Some((100, 3)),
    )?;
    cluster.speaker_env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    cluster.put_object("bgppeer-router.yaml", &peer(restart_time))?;
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

/// A SIGTERM restart of the speaker carrying the client's flow: every request answered, every
/// next hop kept in every sample, the BFD session continued by the new process.
fn restart_without_loss(test: &str, kind: RouterKind) -> Result<(), LabError> {
    let Some((mut cluster, ip, victim)) = cluster(test, kind, 60, &[])? else {
        return Ok(());
    };
    let name = cluster.nodes[victim].name.clone();
    let client = cluster.routed_client.clone();
    let mut samples: Vec<(Duration, Vec<String>)> = Vec::new();
    let mut old_log = String::new();
    let mut stopped_after = Duration::ZERO;
    // 500 ms per GET: a request stalled by a loaded machine is not a lost one, while a dropped
    // SYN (retransmitted only after 1 s) or a missing route still is.
    let log = cluster.probe_while_with_timeout(&client, &ip, 12, PROBE_TIMEOUT, |cluster| {
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
    assert!(
        old_log.contains("BFD sessions handed over to the next speaker process"),
        "the old speaker handed nothing over:\n{old_log}"
    );
    assert!(
        speaker.contains("BFD session continued from the previous speaker process"),
        "the new speaker did not continue the BFD session:\n{speaker}"
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
    // For a failure, when the failed requests went out (ms since the probe started; the old
    // speaker got SIGTERM about 1,000 ms in) and what the new speaker did meanwhile, to tell a
    // routing change from a stalled process on a loaded machine.
    let failed_at: Vec<u64> = log
        .attempts
        .iter()
        .filter(|(_, node)| node.is_none())
        .map(|(ms, _)| *ms)
        .collect();
    assert_eq!(
        log.failed(),
        0,
        "{} of {} requests failed during the restart (longest gap {:?}) at {failed_at:?} ms; paths sampled: {samples:?}; new speaker:\n{}",
        log.failed(),
        log.sent(),
        log.longest_gap(),
        speaker.lines().take(30).collect::<Vec<_>>().join("\n")
    );
    // The router's BFD session never went down: it is the same session, Up.
    let view = cluster
        .router
        .bfd(&cluster.nodes[victim].ip)?
        .expect("the router has the BFD session");
    assert!(view.up, "{view:?}");
    if kind == RouterKind::Frr {
        let bgpd = cluster.log("frr-router-bgpd");
        assert!(!bgpd.contains("BFD down"), "{bgpd}");
    }
    // With BGP Established again, the new speaker polls the raised Detect Mult back to the
    // configured 3: the router's detection time is 3 x 100 ms again.
    let node_ip = cluster.nodes[victim].ip.clone();
    wait_until(
        "the router's BFD detection time back to 3 x 100 ms",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || {
            let view = cluster
                .router
                .bfd(&node_ip)
                .map_err(|e| e.to_string())?
                .ok_or("no BFD session")?;
            let back = view.up
                && (view.remote.is_some_and(|(_, _, mult)| mult == 3)
                    || view.timeout_ms.is_some_and(|ms| ms <= 300));
            if back { Ok(()) } else { Err(format!("{view:?}")) }
        },
    )?;
    println!(
        "SIGTERM restart of {name} against {kind:?}: {} requests, 0 failed, {} path samples all with 3 next hops, old speaker stopped in {stopped_after:?}, longest gap {:?}",
        log.sent(),
        samples.len(),
        log.longest_gap()
    );
    Ok(())
}

#[test]
fn sigterm_restart_keeps_every_path_and_loses_no_request() -> Result<(), LabError> {
    restart_without_loss("sigterm_restart_keeps_every_path", RouterKind::Frr)
}

#[test]
fn sigterm_restart_against_bird_keeps_every_path_and_loses_no_request() -> Result<(), LabError> {
    restart_without_loss("sigterm_restart_bird", RouterKind::Bird)
}

/// A speaker stopped with SIGTERM that never comes back: the router keeps its path through the
/// window (3 s here), then BFD times out at the router. BIRD then flushes the path at once;
/// FRR 8.4 ignores a BFD Down while the BGP session is in graceful restart and keeps it until
/// the restart time (`restart_time` s) ends. Either way the path must be gone `gone_by` after
/// the stop.
fn stopped_for_good_is_withdrawn(
    test: &str,
    kind: RouterKind,
    restart_time: u16,
    gone_by: Duration,
) -> Result<(), LabError> {
    let env = [("OXELB_BFD_RESTART_WINDOW_MS", "3000")];
    let Some((mut cluster, ip, victim)) = cluster(test, kind, restart_time, &env)? else {
        return Ok(());
    };
    let name = cluster.nodes[victim].name.clone();
    let start = Instant::now();
    cluster
        .lab
        .stop(&format!("speaker-{name}"), Duration::from_secs(5));
    let stopped = start.elapsed();
    let mut remaining: Vec<&str> = ALL_NODES.to_vec();
    remaining.remove(victim);
    let mut kept_until = Duration::ZERO;
    let mut gone_at = None;
    while start.elapsed() < Duration::from_secs(20) {
        let hops = cluster.next_hops(&ip)?;
        if hops == remaining {
            gone_at = Some(start.elapsed());
            break;
        }
        if hops == ALL_NODES {
            kept_until = start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = cluster.log(&format!("speaker-{name}"));
    let gone_at = gone_at.unwrap_or_else(|| {
        panic!(
            "{kind:?} still has {name}'s path 20 s after its speaker stopped for good (kept until {kept_until:?}):\n{}\n{log}",
            cluster.router.sessions()
        )
    });
    println!(
        "speaker of {name} stopped for good against {kind:?} (window 3 s, restart time {restart_time} s): stopped in {stopped:?}, path kept until {kept_until:?}, gone at {gone_at:?}"
    );
    // Kept through the window (the hand-over held the router's BFD session), then gone.
    assert!(
        kept_until >= Duration::from_millis(2500),
        "the path went at {gone_at:?}, before the 3 s window ended (kept until {kept_until:?})"
    );
    assert!(
        gone_at < gone_by + stopped,
        "the path went at {gone_at:?}, later than {gone_by:?}"
    );
    Ok(())
}

#[test]
fn a_speaker_stopped_for_good_is_withdrawn_when_the_window_ends_bird() -> Result<(), LabError> {
    // The window (3 s) ends long before the restart time (60 s).
    stopped_for_good_is_withdrawn(
        "stopped_for_good_bird",
        RouterKind::Bird,
        60,
        Duration::from_secs(5),
    )
}

#[test]
fn a_speaker_stopped_for_good_is_withdrawn_by_frr_when_the_restart_time_ends() -> Result<(), LabError> {
    // FRR keeps a gracefully restarting peer's routes through BFD Down: the restart time (6 s)
    // bounds the loss, so it should be close to the window.
    stopped_for_good_is_withdrawn("stopped_for_good_frr", RouterKind::Frr, 6, Duration::from_secs(9))
}

#[test]
fn a_dead_node_is_withdrawn_by_bfd_despite_graceful_restart() -> Result<(), LabError> {
    let Some((mut cluster, ip, victim)) =
        cluster("dead_node_withdrawn_despite_gr", RouterKind::Frr, 60, &[])?
    else {
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
