//! What a speaker keeps of the objects that grow with the cluster, decided on arrival (see
//! `oxelb_runtime::shape`): every speaker watches every Service, EndpointSlice and Node, so each
//! is cut to what [`crate::desired`] and [`crate::node`] read.
//!
//! The API offers no selector for these choices (Service field selectors cover only
//! `metadata.name`/`metadata.namespace`; no label marks a Service as `externalTrafficPolicy: Local`
//! or as oxelb's), so they are made here, before anything is buffered or indexed. An object that
//! stops qualifying is removed from the index as if deleted.

use std::collections::BTreeSet;

use k8s_openapi::api::{
    core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, Node, NodeCondition, NodeStatus, Service, ServiceSpec,
        ServiceStatus,
    },
    discovery::v1::{Endpoint, EndpointSlice},
};
use oxelb_crds::names;

use crate::desired::SERVICE_NAME_LABEL;

/// Keeps a Service only while it carries the controller's finalizer and is not being deleted (the
/// only Services [`crate::desired::desired`] announces), as its labels, finalizers,
/// `externalTrafficPolicy` and ingress IPs.
pub fn service(service: &mut Service) -> bool {
    let meta = &mut service.metadata;
    let ours = meta
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == names::SERVICE_FINALIZER);
    if !ours || meta.deletion_timestamp.is_some() {
        return false;
    }
    meta.annotations = None;
    meta.owner_references = None;
    let policy = service
        .spec
        .as_mut()
        .and_then(|s| s.external_traffic_policy.take());
    service.spec = Some(ServiceSpec {
        external_traffic_policy: policy,
        ..Default::default()
    });
    let ingress: Vec<LoadBalancerIngress> = service
        .status
        .take()
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .into_iter()
        .flatten()
        .map(|i| LoadBalancerIngress {
            ip: i.ip,
            ..Default::default()
        })
        .collect();
    service.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(ingress),
        }),
        ..Default::default()
    });
    true
}

/// Keeps an EndpointSlice of a Service as the set of nodes hosting a ready endpoint (one endpoint
/// per node, no addresses, ports or hints); a slice with none is not kept.
pub fn endpoint_slice(slice: &mut EndpointSlice) -> bool {
    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .cloned();
    let Some(service) = service else {
        return false;
    };
    // Endpoints whose `ready` is unset count as ready (the EndpointSlice API says so).
    let nodes: BTreeSet<String> = slice
        .endpoints
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter_map(|e| e.node_name.clone())
        .collect();
    if nodes.is_empty() {
        return false;
    }
    slice.endpoints = nodes
        .into_iter()
        .map(|node| Endpoint {
            node_name: Some(node),
            ..Default::default()
        })
        .collect();
    slice.ports = None;
    slice.metadata.annotations = None;
    slice.metadata.owner_references = None;
    slice.metadata.labels = Some([(SERVICE_NAME_LABEL.to_owned(), service)].into());
    true
}

/// Keeps a Node as its labels, addresses and the type and status of its conditions: not its
/// images, volumes, capacity or annotations, nor the heartbeat times, so that a kubelet's status
/// update that changes none of these is no change to the speaker.
pub fn node(node: &mut Node) -> bool {
    node.spec = None;
    node.metadata.annotations = None;
    node.metadata.owner_references = None;
    let status = node.status.take().unwrap_or_default();
    node.status = Some(NodeStatus {
        addresses: status.addresses,
        conditions: status.conditions.map(|conditions| {
            conditions
                .into_iter()
                .map(|c| NodeCondition {
                    type_: c.type_,
                    status: c.status,
                    ..Default::default()
                })
                .collect()
        }),
        ..Default::default()
    });
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{desired::endpoint_nodes, node::NodeFacts};

    fn obj<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn services_are_kept_only_while_ours_and_as_what_is_announced() {
        let mut ours: Service = obj(json!({
            "metadata": {"name": "a", "namespace": "ns", "finalizers": [names::SERVICE_FINALIZER],
                "labels": {names::EIP_POOL_LABEL: "pool"}, "annotations": {"big": "x"}},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}]},
                "conditions": [{"type": "x", "status": "True", "reason": "r", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }));
        assert!(service(&mut ours));
        assert_eq!(
            serde_json::to_value(&ours).unwrap(),
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "a", "namespace": "ns", "finalizers": [names::SERVICE_FINALIZER],
                "labels": {names::EIP_POOL_LABEL: "pool"}},
                "spec": {"externalTrafficPolicy": "Local"},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})
        );
        let mut other: Service = obj(json!({"metadata": {"name": "b"}, "spec": {"type": "LoadBalancer"}}));
        assert!(!service(&mut other));
        let mut deleting: Service = obj(
            json!({"metadata": {"name": "c", "finalizers": [names::SERVICE_FINALIZER],
            "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        assert!(!service(&mut deleting));
    }

    #[test]
    fn endpoint_slices_become_their_ready_nodes() {
        let mut slice: EndpointSlice = obj(json!({
            "metadata": {"name": "web-1", "namespace": "ns", "labels": {SERVICE_NAME_LABEL: "web", "other": "x"}},
            "addressType": "IPv4",
            "ports": [{"port": 80}],
            "endpoints": [
                {"addresses": ["192.0.2.10"], "nodeName": "n1", "conditions": {"ready": true}},
                {"addresses": ["192.0.2.11"], "nodeName": "n1"},
                {"addresses": ["192.0.2.12"], "nodeName": "n2", "conditions": {"ready": false}},
                {"addresses": ["192.0.2.13"], "nodeName": "n3", "conditions": {}},
                {"addresses": ["192.0.2.14"]}
            ]
        }));
        let before = endpoint_nodes("ns", "web", &[std::sync::Arc::new(slice.clone())]);
        assert!(endpoint_slice(&mut slice));
        let after = endpoint_nodes("ns", "web", &[std::sync::Arc::new(slice.clone())]);
        assert_eq!(before, after, "the speaker's answer is unchanged");
        assert_eq!(after.into_iter().collect::<Vec<_>>(), vec!["n1", "n3"]);
        assert_eq!(slice.endpoints.len(), 2);
        assert!(slice.endpoints.iter().all(|e| e.addresses.is_empty()));

        let mut none_ready: EndpointSlice = obj(json!({
            "metadata": {"name": "web-2", "namespace": "ns", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["192.0.2.12"], "nodeName": "n2", "conditions": {"ready": false}}]
        }));
        assert!(!endpoint_slice(&mut none_ready));
        let mut unlabelled: EndpointSlice = obj(json!({"metadata": {"name": "x"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["192.0.2.12"], "nodeName": "n2"}]}));
        assert!(!endpoint_slice(&mut unlabelled));
    }

    #[test]
    fn nodes_keep_their_facts_and_lose_heartbeats() {
        let value = |beat: &str| {
            json!({"metadata": {"name": "n1", "labels": {"a": "b"}, "annotations": {"big": "x"}},
                "spec": {"podCIDR": "10.0.0.0/24"},
                "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}],
                    "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": beat, "reason": "KubeletReady"}],
                    "images": [{"names": ["registry.example/big:1"], "sizeBytes": 1}]}})
        };
        let mut a: Node = obj(value("2026-01-01T00:00:00Z"));
        let mut b: Node = obj(value("2026-01-01T00:01:00Z"));
        let facts = NodeFacts::of(&a);
        assert!(node(&mut a) && node(&mut b));
        assert_eq!(a, b, "a heartbeat alone is no change");
        assert_eq!(NodeFacts::of(&a), facts);
        assert_eq!(a.status.as_ref().unwrap().images, None);
    }
}
