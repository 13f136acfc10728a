//! Issue 28: an Eip whose `status.used` would outgrow etcd's object limit. The in-memory API
//! refuses objects over 64 KiB (as etcd behind kube-apiserver does); two controller replicas with
//! `--eip-status-max-bytes 32768` allocate from one IPv4 and one IPv6 Eip, more Services than a full
//! `used` map fits. Asserts every Service gets a distinct IP, `usage` is exact, `used` lists
//! exactly the lowest addresses in use with their holders and `usedTruncated` is set, at most one
//! `EipStatusTruncated` Event and no `StatusRepaired`; then both replicas are replaced and the
//! same holds, with no IP moved and no further truncation Event.
//!
//! Needs `oxelb-controller` beside the test binaries or in `OXELB_BIN_DIR` (e.g.
//! `cargo build --release -p oxelb-controller` then
//! `OXELB_BIN_DIR=$PWD/target/release cargo test -p oxelb-tests --test eip_status_limit`), built
//! with `--eip-status-max-bytes`; a controller without that flag exits and the test times out
//! waiting for the replicas' `/readyz`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::Path,
    time::Duration,
};

use oxelb_tests::apiserver::ApiServer;
use oxelb_tests::cluster::bin_dir_beside;
use oxelb_tests::scale::{Proc, free_port, ready, spawn, wait_for};
use serde_json::{Value, json};

const SYSTEM: &str = "oxelb-system";
const EIPS: &str = "/apis/network.kubesphere.io/v1alpha2/eips";
/// Services per Eip: 1,200 IPv4 entries are ~48 KB and 1,200 IPv6 ones ~70 KB, over 32 KiB.
const PER_EIP: usize = 1200;

fn controller(api_dir: &Path, bin: &Path, identity: &str) -> (Proc, u16) {
    let port = free_port().unwrap();
    let args: Vec<String> = [
        "--source=kube",
        "--webhook=false",
        "--lease-namespace",
        SYSTEM,
        "--webhook-namespace",
        SYSTEM,
        "--identity",
        identity,
        "--eip-status-max-bytes",
        "32768",
        "--metrics-addr",
        &format!("127.0.0.1:{port}"),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let proc = spawn(
        identity,
        bin,
        &args,
        &api_dir.join("kubeconfig"),
        &api_dir.join(format!("{identity}.log")),
    )
    .unwrap();
    (proc, port)
}

fn service(eip: &str, i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("{eip}-{i}"), "namespace": "app",
            "annotations": {"lb.kubesphere.io/v1alpha1": "openelb", "eip.openelb.kubesphere.io/v1alpha2": eip}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}})
}

fn ingress(s: &Value) -> Option<IpAddr> {
    s["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
}

fn events(api: &ApiServer, reason: &str, name: &str) -> usize {
    ["/api/v1/events", "/apis/events.k8s.io/v1/events"]
        .iter()
        .flat_map(|path| api.list(path))
        .filter(|e| e["reason"] == reason)
        .filter(|e| e["involvedObject"]["name"] == name || e["regarding"]["name"] == name || name.is_empty())
        .map(|e| e["count"].as_u64().unwrap_or(1).max(1) as usize)
        .sum()
}

/// Every assertion of the contract, answering each Service's IP.
fn check(api: &ApiServer) -> BTreeMap<String, IpAddr> {
    let services = api.list("/api/v1/services");
    let held: BTreeMap<String, IpAddr> = services
        .iter()
        .filter_map(|s| Some((s["metadata"]["name"].as_str()?.to_owned(), ingress(s)?)))
        .collect();
    assert_eq!(held.len(), 2 * PER_EIP);
    let distinct: BTreeSet<&IpAddr> = held.values().collect();
    assert_eq!(distinct.len(), held.len(), "no IP held by two Services");
    for eip in ["v4", "v6"] {
        let object = api
            .list(EIPS)
            .into_iter()
            .find(|e| e["metadata"]["name"] == eip)
            .unwrap();
        let status = &object["status"];
        assert_eq!(status["usage"].as_u64(), Some(PER_EIP as u64), "{eip}");
        assert_eq!(status["usedTruncated"], true, "{eip}");
        let used = status["used"].as_object().unwrap();
        assert!(used.len() < PER_EIP && !used.is_empty(), "{eip}: {}", used.len());
        let mine: BTreeMap<IpAddr, String> = held
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("{eip}-")))
            .map(|(name, ip)| (*ip, format!("app/{name}")))
            .collect();
        let lowest: Vec<(IpAddr, String)> = mine.into_iter().take(used.len()).collect();
        let mut listed: Vec<(IpAddr, String)> = used
            .iter()
            .map(|(ip, holder)| (ip.parse().unwrap(), holder.as_str().unwrap().to_owned()))
            .collect();
        listed.sort();
        assert_eq!(
            listed, lowest,
            "{eip}: used is the lowest addresses with their holders"
        );
        assert!(events(api, "EipStatusTruncated", eip) <= 1, "{eip}");
    }
    assert_eq!(events(api, "StatusRepaired", ""), 0);
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_eip_status_stays_exact_and_quiet_across_a_restart_of_both_replicas() {
    let bin = bin_dir_beside(Path::new(env!("CARGO_BIN_EXE_oxelb-scale"))).join("oxelb-controller");
    let api = ApiServer::start().await.unwrap();
    api.set_object_size_limit(Some(64 * 1024));
    for ns in [SYSTEM, "app"] {
        api.create("/api/v1/namespaces", json!({"metadata": {"name": ns}}))
            .unwrap();
    }
    for (name, address) in [("v4", "198.18.0.0/16"), ("v6", "2001:db8:28::/112")] {
        api.create(
            EIPS,
            json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
            "metadata": {"name": name}, "spec": {"address": address, "protocol": "bgp"}}),
        )
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), api.kubeconfig()).unwrap();
    let wait = Duration::from_secs(60);
    let start = |a: &'static str, b: &'static str| {
        let first = controller(dir.path(), &bin, a);
        let second = controller(dir.path(), &bin, b);
        (first, second)
    };
    let ((a, a_port), (b, b_port)) = start("a", "b");
    wait_for("both replicas ready", wait, async || {
        ready(a_port).await && ready(b_port).await
    })
    .await
    .unwrap();
    for eip in ["v4", "v6"] {
        for i in 0..PER_EIP {
            api.insert("/api/v1/namespaces/app/services", service(eip, i))
                .unwrap();
        }
    }
    let all_held = async || api.tally("/api/v1/services", |s| ingress(s).is_some()).1 == 2 * PER_EIP;
    wait_for("every Service holds an IP", wait, all_held)
        .await
        .unwrap();
    let truncated = async || {
        api.list(EIPS).iter().all(|e| {
            e["status"]["usedTruncated"] == true && e["status"]["usage"].as_u64() == Some(PER_EIP as u64)
        })
    };
    wait_for("both Eips' status truncated", wait, truncated)
        .await
        .unwrap();
    let before = check(&api);

    drop((a, b));
    let ((c, c_port), (d, d_port)) = start("c", "d");
    wait_for("both new replicas ready", wait, async || {
        ready(c_port).await && ready(d_port).await
    })
    .await
    .unwrap();
    let leases = format!("/apis/coordination.k8s.io/v1/namespaces/{SYSTEM}/leases");
    wait_for("a new replica holds the Lease", wait, async || {
        api.list(&leases)
            .first()
            .is_some_and(|l| l["spec"]["holderIdentity"] == "c" || l["spec"]["holderIdentity"] == "d")
    })
    .await
    .unwrap();
    // Let the new leader pass at least once (its pass after sync is immediate).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = check(&api);
    let moved = before
        .iter()
        .filter(|(name, ip)| after.get(*name) != Some(ip))
        .count();
    assert_eq!(moved, 0, "no Service's IP moved across the restart");
    drop((c, d));
}
