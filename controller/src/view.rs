//! What the controller keeps of each Service and Namespace: compact views, built once per arriving
//! object (see `oxelb_runtime::index::View`), instead of the k8s-openapi structs.
//!
//! A k8s-openapi `Service` carries every field of the API inline and a `BTreeMap` for each of its
//! annotation, label and selector sets (a one-entry map allocates a node of about 540 bytes). At
//! 10,000 Services that was a third of the leader's heap. A [`ServiceView`] holds only what the
//! controller reads, its strings boxed and its sets as slices; [`ServiceView::of`] is the one place
//! a Service becomes a view, so every decision (and every test that builds a k8s `Service`) goes
//! through the same conversion.

use std::{net::IpAddr, sync::Arc};

use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Service};
use oxelb_crds::{names, service::ingress_ips};
use oxelb_ipam::{IpFamily, LabelSet, Protocol, ServiceKey};
use oxelb_runtime::{
    index::{Indexed, View},
    object::ObjectKey,
};

/// A Service as the controller reads it.
///
/// Annotation values and `spec.loadBalancerIP` are kept trimmed and only when not blank: that is
/// how every reader took them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    /// Namespace and name.
    pub key: ServiceKey,
    /// `metadata.uid` (for the Events' `regarding`).
    pub uid: Option<Box<str>>,
    /// `metadata.resourceVersion` (the precondition of metadata patches).
    pub resource_version: Option<Box<str>>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// `metadata.finalizers`, in order.
    pub finalizers: Box<[Box<str>]>,
    /// `lb.kubesphere.io/v1alpha1` (OpenELB's "handle this Service" annotation).
    pub lb_annotation: Option<Box<str>>,
    /// `eip.openelb.kubesphere.io/v1alpha2`: the pool (or one pool per family).
    pub pool_annotation: Option<Box<str>>,
    /// `eip.openelb.kubesphere.io/v1alpha1`: the exact IP (or one per family).
    pub ip_annotation: Option<Box<str>>,
    /// `protocol.openelb.kubesphere.io/v1alpha1` (OpenELB v0.5; the Eip decides).
    pub protocol_annotation: Option<Box<str>>,
    /// The value of the `eip.openelb.kubesphere.io/v1alpha2` label the controller writes, if set.
    pub pool_label: Option<Box<str>>,
    /// `spec.type` is `LoadBalancer`.
    pub load_balancer: bool,
    /// `spec.loadBalancerClass`, when set and not empty.
    pub class: Option<Box<str>>,
    /// `spec.loadBalancerIP`.
    pub load_balancer_ip: Option<Box<str>>,
    /// `spec.ipFamilies`, in order; a value other than `IPv4`/`IPv6` as written.
    pub ip_families: Box<[Parsed<IpFamily>]>,
    /// `spec.externalTrafficPolicy` is `Local`.
    pub local_traffic: bool,
    /// `spec.selector`.
    pub selector: LabelSet,
    /// `spec.ports`, in order, as (protocol, number); a protocol other than TCP, UDP or SCTP as
    /// written (an absent one is TCP, the Kubernetes default).
    pub ports: Box<[ViewPort]>,
    /// The IPs of `status.loadBalancer.ingress`, in order (hostnames and unparsable values
    /// skipped).
    pub ingress: Box<[IpAddr]>,
}

/// A value the controller knows, or the value as written (for the error that names it).
pub type Parsed<T> = Result<T, Box<str>>;

/// One of `spec.ports`: (protocol, number).
pub type ViewPort = (Parsed<Protocol>, i32);

impl ServiceView {
    /// The view of `service`, or `None` when it has no namespace or name (only possible for
    /// objects that did not come from an apiserver; nothing can be decided or written for them).
    pub fn of(service: &Service) -> Option<Self> {
        let meta = &service.metadata;
        let key = ServiceKey::new(meta.namespace.as_deref()?, meta.name.as_deref()?);
        let annotation = |name: &str| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(name))
                .and_then(|v| boxed_nonblank(v))
        };
        let spec = service.spec.as_ref();
        Some(ServiceView {
            key,
            uid: meta.uid.as_deref().map(Into::into),
            resource_version: meta.resource_version.as_deref().map(Into::into),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta
                .finalizers
                .iter()
                .flatten()
                .map(|f| f.as_str().into())
                .collect(),
            lb_annotation: annotation(names::LB_ANNOTATION),
            pool_annotation: annotation(names::EIP_POOL_ANNOTATION),
            ip_annotation: annotation(names::EIP_IP_ANNOTATION),
            protocol_annotation: annotation(names::PROTOCOL_ANNOTATION),
            pool_label: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(names::EIP_POOL_LABEL))
                .map(|v| v.as_str().into()),
            load_balancer: spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"),
            class: spec
                .and_then(|s| s.load_balancer_class.as_deref())
                .filter(|c| !c.is_empty())
                .map(Into::into),
            load_balancer_ip: spec
                .and_then(|s| s.load_balancer_ip.as_deref())
                .and_then(boxed_nonblank),
            ip_families: spec
                .and_then(|s| s.ip_families.as_ref())
                .into_iter()
                .flatten()
                .map(|family| match family.as_str() {
                    "IPv4" => Ok(IpFamily::V4),
                    "IPv6" => Ok(IpFamily::V6),
                    other => Err(other.into()),
                })
                .collect(),
            local_traffic: spec.and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local"),
            selector: spec
                .and_then(|s| s.selector.as_ref())
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            ports: spec
                .and_then(|s| s.ports.as_ref())
                .into_iter()
                .flatten()
                .map(|port| {
                    let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
                        "TCP" => Ok(Protocol::Tcp),
                        "UDP" => Ok(Protocol::Udp),
                        "SCTP" => Ok(Protocol::Sctp),
                        other => Err(other.into()),
                    };
                    (protocol, port.port)
                })
                .collect(),
            ingress: ingress_ips(service).into(),
        })
    }

    /// Whether oxelb left its mark on the Service (its finalizer or pool label), so that it must
    /// clean up even when it no longer handles it.
    pub fn marked(&self) -> bool {
        self.has_finalizer(names::SERVICE_FINALIZER) || self.pool_label.is_some()
    }

    /// Whether `metadata.finalizers` holds `finalizer`.
    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| &**f == finalizer)
    }

    /// The reference an Event about this Service carries (`regarding`), as `Resource::object_ref`
    /// builds it from the Service itself.
    pub fn object_ref(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            namespace: Some(self.key.namespace.to_string()),
            name: Some(self.key.name.to_string()),
            uid: self.uid.as_deref().map(Into::into),
            // As `Resource::object_ref`: an Event is about the object, not one version of it.
            resource_version: None,
            field_path: None,
        }
    }
}

fn boxed_nonblank(value: &str) -> Option<Box<str>> {
    Some(value.trim()).filter(|v| !v.is_empty()).map(Into::into)
}

impl Indexed for ServiceView {
    fn index_key(&self) -> ObjectKey {
        ObjectKey::new(Some(&self.key.namespace), &self.key.name)
    }

    /// Equal but for the `resourceVersion`.
    fn same_as(&mut self, old: &Self) -> bool {
        let version = std::mem::replace(&mut self.resource_version, old.resource_version.clone());
        let same = *self == *old;
        self.resource_version = version;
        same
    }
}

/// A Namespace as the controller reads it: its labels (Eips select namespaces by them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceView {
    /// `metadata.name`.
    pub name: Arc<str>,
    /// `metadata.labels`.
    pub labels: LabelSet,
}

impl NamespaceView {
    /// The view of `namespace`, or `None` without a name.
    pub fn of(namespace: &Namespace) -> Option<Self> {
        let meta = &namespace.metadata;
        Some(NamespaceView {
            name: meta.name.as_deref()?.into(),
            labels: meta
                .labels
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        })
    }
}

impl Indexed for NamespaceView {
    fn index_key(&self) -> ObjectKey {
        ObjectKey::new(None, &self.name)
    }

    /// Nothing but the labels and the name is kept, so equal views are the same.
    fn same_as(&mut self, old: &Self) -> bool {
        *self == *old
    }
}

/// Every Namespace, as its labels.
pub fn namespace_view() -> View<Namespace, NamespaceView> {
    Arc::new(|namespace: Namespace| NamespaceView::of(&namespace))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use kube::Resource;
    use serde_json::json;

    use super::*;
    use crate::handling::{Handling, service_view};

    fn full() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "5",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "finalizers": ["example.com/keep", names::SERVICE_FINALIZER],
                "labels": {names::EIP_POOL_LABEL: "pool", "app": "web"},
                "annotations": {"lb.kubesphere.io/v1alpha1": " openelb ",
                    "eip.openelb.kubesphere.io/v1alpha2": "pool",
                    "eip.openelb.kubesphere.io/v1alpha1": "  ",
                    "protocol.openelb.kubesphere.io/v1alpha1": "bgp",
                    "other": "x"}},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web", "tier": "front"},
                "externalTrafficPolicy": "Local", "loadBalancerClass": "",
                "loadBalancerIP": " 192.0.2.10 ", "ipFamilies": ["IPv4", "IPv5"], "clusterIP": "10.96.0.1",
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
                    {"port": 53, "protocol": "UDP"}, {"port": 99, "protocol": "QUIC"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"hostname": "x"}]}}
        }))
        .unwrap()
    }

    #[test]
    fn a_view_holds_what_the_controller_reads() {
        let service = full();
        let view = ServiceView::of(&service).unwrap();
        assert_eq!(view.key, ServiceKey::new("shop", "web"));
        assert_eq!(view.resource_version.as_deref(), Some("5"));
        assert!(!view.deleting);
        assert!(view.has_finalizer(names::SERVICE_FINALIZER) && view.marked());
        assert_eq!(view.finalizers.len(), 2);
        assert_eq!(view.lb_annotation.as_deref(), Some("openelb"), "trimmed");
        assert_eq!(view.ip_annotation, None, "blank is absent");
        assert_eq!(view.pool_annotation.as_deref(), Some("pool"));
        assert_eq!(view.protocol_annotation.as_deref(), Some("bgp"));
        assert_eq!(view.pool_label.as_deref(), Some("pool"));
        assert!(view.load_balancer && view.local_traffic);
        assert_eq!(view.class, None, "an empty class is no class");
        assert_eq!(view.load_balancer_ip.as_deref(), Some("192.0.2.10"));
        assert_eq!(&*view.ip_families, [Ok(IpFamily::V4), Err("IPv5".into())]);
        assert_eq!(view.selector.get("tier"), Some("front"));
        assert_eq!(
            &*view.ports,
            [
                (Ok(Protocol::Tcp), 80),
                (Ok(Protocol::Udp), 53),
                (Err("QUIC".into()), 99)
            ]
        );
        assert_eq!(&*view.ingress, ["192.0.2.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            view.object_ref(),
            service.object_ref(&()),
            "Events name the Service as before"
        );
        assert_eq!(ServiceView::of(&Service::default()), None, "no key");
    }

    #[test]
    fn only_a_new_resource_version_is_no_change() {
        let old = ServiceView::of(&full()).unwrap();
        let mut newer = old.clone();
        newer.resource_version = Some("6".into());
        assert!(newer.same_as(&old));
        assert_eq!(newer.resource_version.as_deref(), Some("6"), "left as it was");
        newer.ingress = Box::new([]);
        assert!(!newer.same_as(&old));
    }

    /// The view keeps exactly the Services the controller decides on or must clean up.
    #[test]
    fn the_view_keeps_handled_and_marked_services_only() {
        let view = service_view(Handling::default());
        assert!(view(full()).is_some());
        let other: Service = serde_json::from_value(
            json!({"metadata": {"name": "x", "namespace": "a"}, "spec": {"type": "LoadBalancer"}}),
        )
        .unwrap();
        assert!(view(other.clone()).is_none(), "not ours, never marked");
        let mut finalized = other.clone();
        finalized.metadata.finalizers = Some(vec![names::SERVICE_FINALIZER.into()]);
        assert!(view(finalized).is_some(), "ours to clean up");
        let mut labelled = other.clone();
        labelled.metadata.labels = Some([(names::EIP_POOL_LABEL.to_owned(), String::new())].into());
        assert!(view(labelled).is_some(), "ours to clean up");
        assert!(
            service_view(Handling {
                lb_class: None,
                default_lb: true
            })(other)
            .is_some(),
            "--default-lb"
        );
    }

    #[test]
    fn a_namespace_is_its_labels() {
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": "shop",
            "labels": {"team": "a"}, "annotations": {"x": "y"}}, "spec": {"finalizers": ["kubernetes"]}}))
        .unwrap();
        let view = namespace_view()(namespace).unwrap();
        assert_eq!(&*view.name, "shop");
        assert_eq!(view.labels.get("team"), Some("a"));
        assert_eq!(view.index_key(), ObjectKey::new(None, "shop"));
        assert!(namespace_view()(Namespace::default()).is_none());
    }
}
