//! The speaker binary on a `dir:` source: from the objects (and the controller's writes, as overlay
//! files) to this node's desired BGP routes and sessions, its `BgpConf.status.nodesConfStatus`
//! entry, and a Warning for a broken BgpPeer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use oxelb_runtime::test_util::{free_port, http_get};

const WAIT: Duration = Duration::from_secs(20);

const OBJECTS: &str = "\
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: network.kubesphere.io/v1alpha2
kind: Eip
metadata: {name: bgp}
spec: {address: 198.51.100.0/28}
---
apiVersion: network.kubesphere.io/v1alpha2
kind: BgpConf
metadata: {name: default}
spec: {as: 64512, listenPort: 17900}
---
apiVersion: network.kubesphere.io/v1alpha2
kind: BgpPeer
metadata: {name: router}
spec: {conf: {peerAs: 65001, neighborAddress: 198.51.100.1}}
---
apiVersion: network.kubesphere.io/v1alpha2
kind: BgpPeer
metadata: {name: broken}
spec: {conf: {peerAs: 65001, neighborAddress: router.example}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, annotations: {lb.kubesphere.io/v1alpha1: openelb}}
spec: {type: LoadBalancer, ports: [{port: 80}]}
";

/// What the controller and the kubelet would have written: the Service's IP and finalizer, the
/// Node's readiness and address.
const OVERLAYS: [(&str, &str); 2] = [
    (
        "services.core/default/web.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: default\n  finalizers: [finalizer.lb.kubesphere.io/v1alpha1]\nstatus:\n  loadBalancer:\n    ingress: [{ip: 198.51.100.5}]\n",
    ),
    (
        "nodes.core/n1.yaml",
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\nstatus:\n  conditions: [{type: Ready, status: 'True'}]\n  addresses: [{type: InternalIP, address: 192.0.2.11}]\n",
    ),
];

struct Speaker(Child);

impl Drop for Speaker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn plans_routes_sessions_and_writes_its_node_status() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("objects.yaml"), OBJECTS).unwrap();
    for (path, body) in OVERLAYS {
        let path = dir.join("status").join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let _speaker = Speaker(
        Command::new(env!("CARGO_BIN_EXE_oxelb-speaker"))
            .args([
                "--source",
                &format!("dir:{}", dir.display()),
                "--metrics-addr",
                &addr.to_string(),
                "--node-name",
                "n1",
            ])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        let text = http_get(addr, "/metrics")
            .await
            .map(|r| r.body)
            .unwrap_or_default();
        if text.contains("oxelb_bgp_routes_desired 1") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no desired route within {WAIT:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(metrics.contains("oxelb_bgp_sessions_configured 1"), "{metrics}");
    assert!(metrics.contains("oxelb_speaker_config_problems 1"), "{metrics}");
    assert!(
        metrics.contains("oxelb_speaker_announcements{protocol=\"bgp\"} 1"),
        "{metrics}"
    );

    let conf_status = dir.join("status/bgpconfs.network.kubesphere.io/default.yaml");
    let status: serde_yaml::Value = loop {
        if let Some(value) = std::fs::read_to_string(&conf_status)
            .ok()
            .and_then(|t| serde_yaml::from_str(&t).ok())
        {
            break value;
        }
        assert!(Instant::now() < deadline, "no BgpConf status written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        status["status"]["nodesConfStatus"]["n1"]["routerId"].as_str(),
        Some("192.0.2.11")
    );
    assert_eq!(
        status["status"]["nodesConfStatus"]["n1"]["as"].as_u64(),
        Some(64512)
    );

    let events = std::fs::read_to_string(dir.join("status/events.yaml")).unwrap_or_default();
    assert!(
        events.contains("broken") && events.contains("spec.conf.neighborAddress"),
        "{events}"
    );
}
