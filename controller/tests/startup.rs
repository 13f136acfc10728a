//! Runs the controller binary on a directory source and checks readiness, metrics and a clean
//! SIGTERM exit.

use oxelb_runtime::test_util::check_binary_lifecycle;

const MANIFESTS: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  annotations: {lb.kubesphere.io/v1alpha1: openelb}
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
";

#[tokio::test]
async fn controller_starts_on_a_directory_syncs_and_stops_on_sigterm() {
    let expected = [
        "oxelb_source_objects{kind=\"Service\"} 1",
        "oxelb_source_objects{kind=\"Eip\"} 1",
        "oxelb_source_objects{kind=\"Namespace\"} 0",
    ];
    let outcome = check_binary_lifecycle(env!("CARGO_BIN_EXE_oxelb-controller"), MANIFESTS, &expected).await;
    assert_eq!(outcome, Ok(()));
}
