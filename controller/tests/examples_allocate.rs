//! The shipped examples, run through the controller's input conversion and the allocator: every
//! example Eip is a valid pool, and every example Service gets one IP per family, from the pool it
//! names and equal to the IP it requests. Keeps `examples/` and the allocation rules from drifting
//! apart.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Service};
use oxelb_controller::{
    inputs::{pool_from_eip, request_from_service},
    view::{NamespaceView, ServiceView},
};
use oxelb_crds::v1alpha2::Eip;
use oxelb_ipam::Allocator;
use oxelb_tests::{load_documents, workspace_root};

#[test]
fn every_example_service_gets_an_ip_from_the_example_pools() {
    let examples = workspace_root().join("examples");
    // The demo lab's own objects (a later addition) are checked by the lab's tests, the kustomize
    // overlay by tests/kustomize.rs.
    let documents = load_documents(&examples, &|dir| {
        dir.ends_with("lab") || dir.ends_with("kustomize")
    })
    .unwrap();

    let mut pools = Vec::new();
    let mut namespaces = BTreeMap::new();
    let mut services = Vec::new();
    for doc in &documents {
        match doc.kind() {
            Some("Eip") => {
                let eip: Eip = serde_json::from_value(doc.value.clone()).unwrap();
                pools.push(pool_from_eip(&eip).unwrap_or_else(|e| panic!("{doc}: {e}")));
            }
            Some("Namespace") => {
                let namespace: Namespace = serde_json::from_value(doc.value.clone()).unwrap();
                let view = NamespaceView::of(&namespace).unwrap();
                namespaces.insert(view.name.to_string(), view.labels);
            }
            Some("Service") => services.push(serde_json::from_value::<Service>(doc.value.clone()).unwrap()),
            _ => {}
        }
    }
    assert!(
        !pools.is_empty() && !services.is_empty(),
        "examples hold no Eip or no Service"
    );

    let mut allocator = Allocator::new();
    assert!(allocator.set_pools(pools).is_empty());
    for service in &services {
        let service = ServiceView::of(service).expect("every example Service names its namespace");
        let labels = namespaces
            .get(&*service.key.namespace)
            .cloned()
            .unwrap_or_default();
        let request = request_from_service(&service, &labels).unwrap();
        let assignment = allocator.assign(&request).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(assignment.ips.len(), request.families.len(), "{}", request.key);
        for assigned in &assignment.ips {
            if let Some(pool) = &request.pool {
                assert_eq!(&assigned.pool, pool, "{}", request.key);
            }
            if !request.requested_ips.is_empty() {
                assert!(
                    request.requested_ips.contains(&assigned.ip),
                    "{}: got {}",
                    request.key,
                    assigned.ip
                );
            }
        }
    }
}
