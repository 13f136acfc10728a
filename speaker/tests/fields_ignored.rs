//! Issue 26: a BgpConf or BgpPeer field oxelb accepts but does not apply is said, never dropped
//! silently. Two speaker binaries on the in-memory API (`oxelb_tests::apiserver`): one Warning
//! Event `FieldsIgnored` per object and generation, from one speaker only (the first Ready node by
//! name), and a `FieldsIgnored` condition in the object's status naming the paths; nothing for an
//! object that sets only applied fields (its `conf.description` is echoed in its status, as
//! GoBGP does); a new generation with other fields is said again, one without any turns the
//! condition False without a Warning; a restarted speaker says nothing again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use oxelb_runtime::test_util::{free_port, http_get};
use oxelb_tests::apiserver::ApiServer;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const PEERS: &str = "/apis/network.kubesphere.io/v1alpha2/bgppeers";
const CONFS: &str = "/apis/network.kubesphere.io/v1alpha2/bgpconfs";

struct Speaker(Child, u16);

impl Drop for Speaker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn speaker(dir: &Path, node: &str) -> Speaker {
    let port = free_port().unwrap();
    let log = std::fs::File::create(dir.join(format!("{node}.log"))).unwrap();
    Speaker(
        Command::new(env!("CARGO_BIN_EXE_oxelb-speaker"))
            .args([
                "--node-name",
                node,
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--state-dir")
            .arg(dir.join(node))
            .env("KUBECONFIG", dir.join("kubeconfig"))
            .env("RUST_LOG", "info")
            .env_remove("OXELB_HEARTBEAT_KEY_FILE")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
        port,
    )
}

async fn ready(speaker: &Speaker) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], speaker.1));
    let deadline = Instant::now() + WAIT;
    loop {
        if http_get(addr, "/readyz").await.is_ok_and(|r| r.status == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "speaker not ready within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn node(name: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": ip}]}})
}

fn object(api: &ApiServer, collection: &str, name: &str) -> Value {
    api.list(collection)
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap()
}

fn condition(api: &ApiServer, collection: &str, name: &str) -> Option<Value> {
    object(api, collection, name)["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "FieldsIgnored")
        .cloned()
}

/// The FieldsIgnored Warnings about `name`, with the speaker that said each.
fn warnings(api: &ApiServer, name: &str) -> Vec<String> {
    api.list("/apis/events.k8s.io/v1/events")
        .into_iter()
        .filter(|e| e["reason"] == "FieldsIgnored" && e["regarding"]["name"] == name)
        .inspect(|e| assert_eq!(e["type"], "Warning"))
        .map(|e| e["reportingInstance"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn unapplied_fields_are_said_once_per_generation_by_one_speaker() {
    let api = ApiServer::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("kubeconfig"), api.kubeconfig()).unwrap();
    api.create("/api/v1/nodes", node("n1", "192.0.2.11")).unwrap();
    api.create("/api/v1/nodes", node("n2", "192.0.2.12")).unwrap();
    api.create(
        CONFS,
        json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpConf",
            "metadata": {"name": "default"},
            "spec": {"as": 64512, "listenPort": -1, "useMultiplePaths": true}}),
    )
    .unwrap();
    // adminDown: the sessions are configured and never dial (no router here).
    api.create(
        PEERS,
        json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpPeer",
            "metadata": {"name": "odd"},
            "spec": {"conf": {"neighborAddress": "192.0.2.1", "peerAs": 64513, "adminDown": true, "vrf": "blue"},
                "transport": {"remoteAddress": "192.0.2.9"}}}),
    )
    .unwrap();
    api.create(
        PEERS,
        json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpPeer",
            "metadata": {"name": "plain"},
            "spec": {"conf": {"neighborAddress": "192.0.2.2", "peerAs": 64513, "adminDown": true,
                "description": "tor-2"}}}),
    )
    .unwrap();
    let mut n1 = speaker(dir, "n1");
    let _n2 = speaker(dir, "n2");

    until("odd's FieldsIgnored condition", || {
        condition(&api, PEERS, "odd").is_some()
    })
    .await;
    let odd = condition(&api, PEERS, "odd").unwrap();
    assert_eq!(odd["status"], "True");
    assert_eq!(odd["reason"], "FieldsIgnored");
    assert_eq!(odd["observedGeneration"], 1);
    let message = odd["message"].as_str().unwrap();
    assert!(
        message.starts_with("spec.conf.vrf (not yet): ")
            && message.contains("; spec.transport.remoteAddress (not yet): "),
        "{message}"
    );
    until("default's FieldsIgnored condition", || {
        condition(&api, CONFS, "default").is_some()
    })
    .await;
    let conf = condition(&api, CONFS, "default").unwrap();
    assert!(
        conf["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.useMultiplePaths (no effect): "),
        "{conf}"
    );
    // The applied description is in the status, and nothing is said about that BgpPeer.
    until("plain's description in its status", || {
        object(&api, PEERS, "plain")["status"]["nodesPeerStatus"]["n1"]["peerState"]["description"] == "tor-2"
    })
    .await;
    until("one Warning per object", || {
        warnings(&api, "odd").len() == 1 && warnings(&api, "default").len() == 1
    })
    .await;
    assert!(condition(&api, PEERS, "plain").is_none());
    assert!(warnings(&api, "plain").is_empty());

    // More passes (another object's edits, the speakers' status writes): nothing said again.
    api.merge_patch(
        &format!("{PEERS}/plain"),
        &json!({"spec": {"conf": {"description": "tor-2b"}}}),
    )
    .unwrap();
    until("plain's new description", || {
        object(&api, PEERS, "plain")["status"]["nodesPeerStatus"]["n2"]["peerState"]["description"]
            == "tor-2b"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(warnings(&api, "odd").len(), 1);
    assert_eq!(warnings(&api, "default").len(), 1);
    assert!(warnings(&api, "plain").is_empty());

    // A new generation without vrf: said again, naming only remoteAddress.
    api.merge_patch(&format!("{PEERS}/odd"), &json!({"spec": {"conf": {"vrf": null}}}))
        .unwrap();
    until("odd's condition for generation 2", || {
        condition(&api, PEERS, "odd").is_some_and(|c| c["observedGeneration"] == 2)
    })
    .await;
    let odd = condition(&api, PEERS, "odd").unwrap();
    assert!(
        odd["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.transport.remoteAddress (not yet): "),
        "{odd}"
    );
    until("a second Warning for odd", || warnings(&api, "odd").len() == 2).await;

    // Nothing unapplied left: the condition turns False, without a Warning.
    api.merge_patch(
        &format!("{PEERS}/odd"),
        &json!({"spec": {"transport": {"remoteAddress": null}}}),
    )
    .unwrap();
    until("odd's condition False", || {
        condition(&api, PEERS, "odd").is_some_and(|c| c["status"] == "False")
    })
    .await;
    let odd = condition(&api, PEERS, "odd").unwrap();
    assert_eq!(
        (odd["reason"].as_str(), odd["observedGeneration"].as_i64()),
        (Some("AllFieldsApplied"), Some(3))
    );

    // A restarted reporter finds it all said already.
    drop(std::mem::replace(&mut n1, speaker(dir, "n1")));
    ready(&n1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(warnings(&api, "odd").len(), 2);
    assert_eq!(warnings(&api, "default").len(), 1);
}
