//! Runs the speaker binary on a directory source and checks readiness, metrics and a clean
//! SIGTERM exit.

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use oxelb_runtime::test_util::{free_port, http_get};

const WAIT: Duration = Duration::from_secs(20);

const MANIFESTS: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: LoadBalancer
  ports: [{port: 80}]
---
apiVersion: network.kubesphere.io/v1alpha2
kind: Eip
metadata:
  name: pool
spec:
  address: 192.0.2.0/28
---
apiVersion: v1
kind: Node
metadata:
  name: node-1
---
apiVersion: network.kubesphere.io/v1alpha2
kind: BgpConf
metadata:
  name: default
spec:
  as: 64512
  listenPort: 17900
  routerId: 192.0.2.1
---
apiVersion: network.kubesphere.io/v1alpha2
kind: BgpPeer
metadata:
  name: router
spec:
  conf:
    peerAs: 64513
    neighborAddress: 192.0.2.254
";

#[tokio::test]
async fn speaker_starts_on_a_directory_syncs_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("objects.yaml"), MANIFESTS).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap()).parse().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxelb-speaker"))
        .arg("--source")
        .arg(format!("dir:{}", dir.path().display()))
        .arg("--metrics-addr")
        .arg(addr.to_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        assert!(Instant::now() < deadline, "speaker not ready in time");
        assert!(child.try_wait().unwrap().is_none(), "speaker exited early");
        if let Ok(ready) = http_get(addr, "/readyz").await
            && ready.status == 200
        {
            break http_get(addr, "/metrics").await.unwrap().body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for line in [
        "oxelb_source_objects{kind=\"Service\"} 1",
        "oxelb_source_objects{kind=\"Eip\"} 1",
        "oxelb_source_objects{kind=\"Node\"} 1",
        "oxelb_source_objects{kind=\"BgpConf\"} 1",
        "oxelb_source_objects{kind=\"BgpPeer\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
    assert_eq!(http_get(addr, "/healthz").await.unwrap().status, 200);

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + WAIT;
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("speaker did not exit after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit}");
}
