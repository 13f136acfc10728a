//! Runs the speaker binary on a directory source and checks readiness, metrics and a clean
//! SIGTERM exit.

use oxelb_runtime::test_util::check_binary_lifecycle;

const MANIFESTS: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  # The speaker keeps only the Services the controller marked as its own.
  finalizers: [finalizer.lb.kubesphere.io/v1alpha1]
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
    let expected = [
        "oxelb_source_objects{kind=\"Service\"} 1",
        "oxelb_source_objects{kind=\"Eip\"} 1",
        "oxelb_source_objects{kind=\"Node\"} 1",
        "oxelb_source_objects{kind=\"BgpConf\"} 1",
        "oxelb_source_objects{kind=\"BgpPeer\"} 1",
    ];
    let outcome = check_binary_lifecycle(env!("CARGO_BIN_EXE_oxelb-speaker"), MANIFESTS, &expected).await;
    assert_eq!(outcome, Ok(()));
}
