//! End to end: the demo's topology (`oxelb_tests::cluster`) with the real controller, three real
//! speakers, a real FRR router and clients in network namespaces; every outcome is observed from
//! outside, as a user would: the IPs in Service status, HTTP answers at the clients, ARP replies on
//! the LAN, the router's BGP table. Needs root; each test reports that it skips otherwise.
//!
//! The binaries come from the directory cargo built this test's `oxelb-lab` into (`cargo test
//! --workspace` builds the controller and speaker there too), or from `OXELB_BIN_DIR`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use oxelb_crds::names::EIP_FINALIZER;
use oxelb_tests::{
    cluster::{Binaries, LabCluster, NODES, WAIT},
    lab::{LabError, lab_or_skip, wait_until},
    workspace_root,
};

const POLL: Duration = Duration::from_millis(100);
const ALL_NODES: [&str; 3] = [NODES[0].1, NODES[1].1, NODES[2].1];

fn binaries() -> Result<Binaries, LabError> {
    Binaries::for_test(env!("CARGO_BIN_EXE_oxelb-lab"))
}

/// The lab cluster on `examples/lab/`, with every oxelb process started; `None` when labs cannot
/// run here (reported).
fn cluster(test: &str) -> Result<Option<LabCluster>, LabError> {
    let Some(lab) = lab_or_skip(test)? else {
        return Ok(None);
    };
    let mut cluster = LabCluster::build(lab, binaries()?, &workspace_root().join("examples/lab"))?;
    cluster.start_all()?;
    Ok(Some(cluster))
}

/// Runs `body` on a fresh lab cluster; on failure prints the processes' logs before failing.
fn e2e(test: &str, body: impl FnOnce(&mut LabCluster) -> Result<(), LabError>) -> Result<(), LabError> {
    let Some(mut cluster) = cluster(test)? else {
        return Ok(());
    };
    let result = body(&mut cluster);
    if result.is_err() {
        cluster.dump_logs(40);
    }
    result
}

fn in_range(ip: &str, prefix: &str, low: u8, high: u8) -> bool {
    ip.strip_prefix(prefix)
        .and_then(|last| last.parse::<u8>().ok())
        .is_some_and(|last| (low..=high).contains(&last))
}

fn service(name: &str, pool: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    lb.kubesphere.io/v1alpha1: openelb\n    eip.openelb.kubesphere.io/v1alpha2: {pool}\nspec:\n  type: LoadBalancer\n  ports: [{{name: http, port: 80, protocol: TCP}}]\n"
    )
}

fn wait_event(cluster: &LabCluster, what: &str, needles: &[&str]) -> Result<(), LabError> {
    wait_until(what, WAIT, POLL, || {
        let events = cluster.events();
        let found = events
            .split("\n---")
            .any(|event| needles.iter().all(|n| event.contains(n)));
        if found { Ok(()) } else { Err(events) }
    })
}

#[test]
fn allocation_reaches_both_protocols_and_release_unreaches_them() -> Result<(), LabError> {
    e2e(
        "allocation_reaches_both_protocols_and_release_unreaches_them",
        |cluster| {
            let l2 = cluster.wait_service_ips("default", "web-layer2")?;
            let bgp = cluster.wait_service_ips("default", "web-bgp")?;
            assert_eq!(l2.len(), 1, "one IPv4 for web-layer2: {l2:?}");
            assert_eq!(bgp.len(), 1, "one IPv4 for web-bgp: {bgp:?}");
            let (l2, bgp) = (l2[0].as_str(), bgp[0].as_str());
            assert!(in_range(l2, "192.0.2.", 50, 59), "{l2} is outside lab-layer2");
            assert!(in_range(bgp, "203.0.113.", 65, 78), "{bgp} is outside lab-bgp");

            // Layer2: exactly one node answers ARP, and the LAN client reaches it.
            let answerer = cluster.layer2_answerer(l2)?;
            let node = cluster.wait_reachable(&cluster.lan_client, l2)?;
            assert_eq!(
                node, cluster.nodes[answerer].name,
                "HTTP answered by a node other than the ARP answerer"
            );

            // No second node ever answered (speakers log a foreign claim on their IP loudly).
            for node in &cluster.nodes {
                let log = cluster.log(&format!("speaker-{}", node.name));
                assert!(
                    !log.contains("another MAC claims"),
                    "split brain seen by {}: {log}",
                    node.name
                );
            }

            // BGP: one path per node at the router (ECMP in its kernel too), and the routed client gets in.
            cluster.wait_next_hops(bgp, &ALL_NODES)?;
            let kernel = cluster
                .router
                .kernel_route(&format!("{bgp}/32"))?
                .unwrap_or_default();
            for hop in ALL_NODES {
                assert!(
                    kernel.contains(&format!("via {hop}")),
                    "kernel route lacks {hop}: {kernel}"
                );
            }
            let node = cluster.wait_reachable(&cluster.routed_client, bgp)?;
            assert!(NODES.iter().any(|(name, _)| *name == node), "answered by {node}");
            // The layer2 IP is on the router's LAN, so the routed client reaches it as well.
            cluster.wait_reachable(&cluster.routed_client, l2)?;

            // Release: both Services lose the annotation that hands them to oxelb.
            cluster.put_object(
        "service-bgp.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web-bgp, namespace: default}\nspec:\n  type: LoadBalancer\n  ports: [{name: http, port: 80, protocol: TCP}]\n",
    )?;
            cluster.put_object(
            "service-layer2.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: web-layer2, namespace: default}\nspec:\n  type: LoadBalancer\n  ports: [{name: http, port: 80, protocol: TCP}]\n",
        )?;
            wait_until("web-bgp's ingress cleared", WAIT, POLL, || {
                let ips = cluster.service_ips("default", "web-bgp");
                if ips.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{ips:?}"))
                }
            })?;
            cluster.wait_next_hops(bgp, &[])?;
            cluster.wait_unreachable(&cluster.routed_client, bgp)?;
            wait_until(
                &format!("no node answers ARP for {l2}"),
                WAIT,
                POLL,
                || match cluster.answers_arp(l2) {
                    Ok(false) => Ok(()),
                    Ok(true) => Err("still answered".into()),
                    Err(e) => Err(e.to_string()),
                },
            )?;
            cluster.wait_unreachable(&cluster.lan_client, l2)?;
            Ok(())
        },
    )
}

#[test]
fn controller_restart_moves_no_ip() -> Result<(), LabError> {
    e2e("controller_restart_moves_no_ip", |cluster| {
        let l2 = cluster.wait_service_ips("default", "web-layer2")?;
        let bgp = cluster.wait_service_ips("default", "web-bgp")?;
        cluster.wait_next_hops(&bgp[0], &ALL_NODES)?;

        // The controller crashes; while it is down a new Service arrives in the same pool.
        assert!(cluster.kill_controller());
        cluster.put_object("service-new.yaml", &service("web-new", "lab-bgp"))?;
        std::thread::sleep(Duration::from_millis(500));
        cluster.start_controller()?;

        let new = cluster.wait_service_ips("default", "web-new")?;
        assert!(!new.contains(&bgp[0]), "web-new got web-bgp's IP {new:?}");
        assert_eq!(
            cluster.service_ips("default", "web-layer2"),
            l2,
            "web-layer2 moved"
        );
        assert_eq!(cluster.service_ips("default", "web-bgp"), bgp, "web-bgp moved");
        // Nothing needed repair: the restart re-registered what status held.
        let events = cluster.events();
        assert!(
            !events.contains("StatusRepaired") && !events.contains("IPConflict"),
            "{events}"
        );
        cluster.wait_next_hops(&bgp[0], &ALL_NODES)?;
        cluster.wait_next_hops(&new[0], &ALL_NODES)?;
        cluster.wait_reachable(&cluster.routed_client, &new[0])?;
        Ok(())
    })
}

#[test]
fn speaker_restart_loses_no_bgp_route() -> Result<(), LabError> {
    e2e("speaker_restart_loses_no_bgp_route", |cluster| {
        let bgp = cluster.wait_service_ips("default", "web-bgp")?.remove(0);
        cluster.wait_next_hops(&bgp, &ALL_NODES)?;
        cluster.wait_reachable(&cluster.routed_client, &bgp)?;
        let n1 = NODES[0].1;

        // Crash every speaker's session one after the other is not needed: one is enough to show the
        // router keeps the stale path (graceful restart) and the client never notices.
        let routed = cluster.routed_client.clone();
        let mut lost = Vec::new();
        // 500 ms per GET, as in `bgp_upgrade`: a request stalled by the loaded machine is not a
        // lost one, while a dropped SYN (retransmitted after 1 s) or a missing route still is.
        let probe = cluster.probe_while_with_timeout(&routed, &bgp, 8, Duration::from_millis(500), |c| {
            c.kill_speaker(0)?;
            // While the speaker is down and restarting, sample the router's paths.
            for round in 0..40 {
                if round == 10 {
                    c.start_speaker(0)?;
                }
                let hops = c.next_hops(&bgp)?;
                if !hops.iter().any(|h| h == n1) {
                    lost.push(hops);
                }
                std::thread::sleep(POLL);
            }
            Ok(())
        })?;
        assert!(
            lost.is_empty(),
            "the router lost n1's path during the restart: {lost:?}"
        );
        assert_eq!(
            probe.failed(),
            0,
            "requests failed across the speaker restart: {probe:?}"
        );
        assert!(probe.sent() >= 700, "the probe ran: {} requests", probe.sent());
        // After the restart the path is fresh again (End-of-RIB cleared the stale flag).
        wait_until("n1's path no longer stale", WAIT, POLL, || {
            let route = cluster
                .router
                .frr()
                .ok_or("the e2e router is FRR")?
                .vtysh(&format!("show ip bgp {bgp}/32"))
                .map_err(|e| e.to_string())?;
            if route.contains(n1) && !route.to_lowercase().contains("stale") {
                Ok(())
            } else {
                Err(route)
            }
        })?;
        Ok(())
    })
}

#[test]
fn layer2_failover_moves_the_ip_to_a_live_node() -> Result<(), LabError> {
    e2e("layer2_failover_moves_the_ip_to_a_live_node", |cluster| {
        let l2 = cluster.wait_service_ips("default", "web-layer2")?.remove(0);
        let failover = cluster.fail_layer2_winner(&l2)?;
        eprintln!(
            "layer2 failover {} -> {}: outage {} ms ({} of {} requests failed)",
            failover.from,
            failover.to,
            failover.outage.as_millis(),
            failover.probes.1,
            failover.probes.0
        );
        assert_ne!(failover.to, failover.from, "the lost node still answers");
        assert!(!failover.to.is_empty(), "no node answered after the failover");
        // A functional bound (the IP moved at all within the probe window), not a benchmark: the
        // figure is measured by `speaker/benches/failover.rs` and printed by the demo.
        assert!(failover.outage < Duration::from_secs(5), "{failover:?}");
        let answerer = cluster.layer2_answerer(&l2)?;
        assert_eq!(cluster.nodes[answerer].name, failover.to);
        Ok(())
    })
}

#[test]
fn eip_disable_then_delete_with_services_on_it() -> Result<(), LabError> {
    e2e("eip_disable_then_delete_with_services_on_it", |cluster| {
        let bgp = cluster.wait_service_ips("default", "web-bgp")?;
        cluster.wait_next_hops(&bgp[0], &ALL_NODES)?;

        // Disable: nothing new from the pool, what it gave stays (and stays announced).
        cluster.put_object(
        "eip-bgp.yaml",
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: lab-bgp}\nspec: {address: 203.0.113.64/28, protocol: bgp, disable: true}\n",
    )?;
        std::thread::sleep(Duration::from_millis(600));
        cluster.put_object("service-second.yaml", &service("web-second", "lab-bgp"))?;
        wait_event(
            cluster,
            "an EipDisabled event for web-second",
            &["EipDisabled", "web-second"],
        )?;
        assert!(cluster.service_ips("default", "web-second").is_empty());
        assert_eq!(
            cluster.service_ips("default", "web-bgp"),
            bgp,
            "disable moved web-bgp"
        );
        cluster.wait_next_hops(&bgp[0], &ALL_NODES)?;

        // Delete while web-bgp holds an IP: the apiserver would set deletionTimestamp and keep the
        // object for its finalizer; the controller warns, naming the Service, and holds it.
        let deleting = format!(
            "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata:\n  name: lab-bgp\n  deletionTimestamp: '2026-01-01T00:00:00Z'\n  finalizers: ['{EIP_FINALIZER}']\nspec: {{address: 203.0.113.64/28, protocol: bgp, disable: true}}\n"
        );
        cluster.put_object("eip-bgp.yaml", &deleting)?;
        wait_event(
            cluster,
            "an EipInUse warning naming default/web-bgp",
            &["EipInUse", "web-bgp"],
        )?;
        std::thread::sleep(Duration::from_millis(600));
        let eip_overlay = "eips.network.kubesphere.io/lab-bgp.yaml";
        let held = cluster.overlay_finalizers(eip_overlay);
        assert!(
            held.iter().any(|f| f == EIP_FINALIZER),
            "the finalizer was dropped while web-bgp holds an IP: {:?}",
            cluster.status_doc(eip_overlay)
        );
        assert_eq!(
            cluster.service_ips("default", "web-bgp"),
            bgp,
            "deleting the Eip moved web-bgp"
        );
        cluster.wait_next_hops(&bgp[0], &ALL_NODES)?;

        // The last Service goes: the route is withdrawn and the finalizer released.
        cluster.remove_object("service-bgp.yaml")?;
        cluster.wait_next_hops(&bgp[0], &[])?;
        wait_until("the Eip's finalizer released", WAIT, POLL, || {
            let finalizers = cluster.overlay_finalizers(eip_overlay);
            let doc = cluster.status_doc(eip_overlay);
            if !doc["metadata"]["finalizers"].is_null() && !finalizers.iter().any(|f| f == EIP_FINALIZER) {
                Ok(())
            } else {
                Err(format!("{doc:?}"))
            }
        })?;
        Ok(())
    })
}
