//! What a speaker keeps of the objects that grow with the cluster: a compact view of each, made on
//! arrival (`oxelb_runtime::index::View`, built in the speaker's start-up from the functions here), instead of the k8s-openapi struct. Every speaker watches
//! every Service, EndpointSlice and Node, so each is cut to what [`crate::desired`],
//! [`crate::node`] and [`crate::policy`] read: at 10,000 Services a k8s-openapi `Service`, even
//! trimmed, costs about a kilobyte (every API field inline, a `BTreeMap` per label set); its view
//! costs about a tenth of that.
//!
//! The API offers no selector for these choices (Service field selectors cover only
//! `metadata.name`/`metadata.namespace`; no label marks a Service as `externalTrafficPolicy: Local`
//! or as oxelb's), so they are made here, before anything is buffered or indexed. An object that
//! stops qualifying is removed from the index as if deleted.
//!
//! The functions [`service`], [`endpoint_slice`] and [`node`] are the one way from an API object to
//! what the speaker decides on; tests go through them too.

use std::{
    collections::HashSet,
    fmt,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use k8s_openapi::api::{
    core::v1::{Node, Service},
    discovery::v1::EndpointSlice,
};
use oxelb_crds::object::{Indexed, ObjectKey};
use oxelb_crds::{names, service::ingress_ips, v1alpha2::Eip};

use crate::node::NodeFacts;

/// The label EndpointSlices carry naming their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service the speaker may announce: it carries the controller's finalizer and is not being
/// deleted (the only Services [`crate::desired::desired`] announces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    /// `namespace/name`: shared by every announcement of the Service, never copied.
    pub id: Arc<str>,
    /// Its IPs (`status.loadBalancer.ingress[].ip`, parsed; hostnames and unparsable ones left out).
    pub ips: Box<[IpAddr]>,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    /// The Eip its `eip.openelb.kubesphere.io/v1alpha2` label names (picks among overlapping pools).
    pub pool: Option<Box<str>>,
}

impl ServiceView {
    /// `metadata.namespace`.
    pub fn namespace(&self) -> &str {
        self.id.split_once('/').map_or("", |(ns, _)| ns)
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.id.split_once('/').map_or(&*self.id, |(_, name)| name)
    }
}

impl Indexed for ServiceView {
    fn index_key(&self) -> ObjectKey {
        ObjectKey::new(Some(self.namespace()), self.name())
    }

    fn same_as(&mut self, old: &Self) -> bool {
        *self == *old
    }
}

/// The view of a Service: `None` unless it carries the controller's finalizer and is not being
/// deleted, or without a namespace and name.
pub fn service(service: Service) -> Option<ServiceView> {
    let meta = &service.metadata;
    let ours = meta
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == names::SERVICE_FINALIZER);
    if !ours || meta.deletion_timestamp.is_some() {
        return None;
    }
    let (namespace, name) = (meta.namespace.as_deref()?, meta.name.as_deref()?);
    let local = service
        .spec
        .as_ref()
        .and_then(|s| s.external_traffic_policy.as_deref())
        == Some("Local");
    Some(ServiceView {
        id: Arc::from(format!("{namespace}/{name}")),
        ips: ingress_ips(&service).into_boxed_slice(),
        local,
        pool: meta
            .labels
            .as_ref()
            .and_then(|l| l.get(names::EIP_POOL_LABEL))
            .map(|p| p.as_str().into()),
    })
}

/// A set of node names, sorted and without repeats; the names are shared ([`Interner`]) and so is
/// the set (cloning it clones an `Arc`): the nodes of one Service's EndpointSlice become its
/// announcement's without a copy.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct NodeNames(Arc<[Arc<str>]>);

impl NodeNames {
    /// The set of `names` (in any order, repeats allowed).
    pub fn new(names: impl IntoIterator<Item = Arc<str>>) -> Self {
        let mut names: Vec<Arc<str>> = names.into_iter().collect();
        names.sort();
        names.dedup();
        Self(names.into())
    }

    /// Whether `name` is in the set.
    pub fn contains(&self, name: &str) -> bool {
        self.0.binary_search_by(|n| (**n).cmp(name)).is_ok()
    }

    /// The names, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|n| &**n)
    }

    /// The number of names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The union of `self` and `other`, sharing `self` when `other` adds nothing.
    pub fn union(&self, other: &NodeNames) -> NodeNames {
        if other.0.iter().all(|n| self.contains(n)) {
            return self.clone();
        }
        Self::new(self.0.iter().chain(other.0.iter()).cloned())
    }
}

impl fmt::Debug for NodeNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<'a> FromIterator<&'a str> for NodeNames {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        Self::new(iter.into_iter().map(Arc::from))
    }
}

/// One `Arc<str>` per distinct name: thousands of EndpointSlices name the same few nodes, so each
/// name is held once. Names no slice holds any more are dropped now and then.
#[derive(Debug, Default)]
pub struct Interner {
    names: Mutex<Interned>,
}

#[derive(Debug, Default)]
struct Interned {
    set: HashSet<Arc<str>>,
    /// Past this many names, those held only here are dropped (then it is twice what is left).
    prune_at: usize,
}

/// The least [`Interned::prune_at`]: a cluster's nodes are rarely more.
const MIN_PRUNE_AT: usize = 1024;

impl Interner {
    /// The shared copy of `name`.
    pub fn intern(&self, name: &str) -> Arc<str> {
        // A poisoned lock means a holder panicked; the set is still valid.
        let mut interned = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = interned.set.get(name) {
            return known.clone();
        }
        let new: Arc<str> = Arc::from(name);
        interned.set.insert(new.clone());
        if interned.set.len() > interned.prune_at.max(MIN_PRUNE_AT) {
            interned.set.retain(|n| Arc::strong_count(n) > 1);
            interned.prune_at = interned.set.len() * 2;
        }
        new
    }

    /// The number of names held.
    pub fn len(&self) -> usize {
        self.names.lock().unwrap_or_else(|e| e.into_inner()).set.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An EndpointSlice of a Service, as the nodes hosting a ready endpoint of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceView {
    /// `namespace/name` of the slice.
    pub id: Box<str>,
    /// The name of its Service (in the slice's namespace).
    pub service: Box<str>,
    /// The nodes hosting a ready endpoint (never empty).
    pub nodes: NodeNames,
}

impl SliceView {
    /// `metadata.namespace`.
    pub fn namespace(&self) -> &str {
        self.id.split_once('/').map_or("", |(ns, _)| ns)
    }
}

impl Indexed for SliceView {
    fn index_key(&self) -> ObjectKey {
        let (namespace, name) = self.id.split_once('/').unwrap_or(("", &self.id));
        ObjectKey::new(Some(namespace), name)
    }

    fn same_as(&mut self, old: &Self) -> bool {
        *self == *old
    }
}

/// The view of an EndpointSlice: the Service its `kubernetes.io/service-name` label names and the
/// nodes hosting a ready endpoint (endpoints whose `ready` is unset count as ready, as the
/// EndpointSlice API says), names shared through `interner`. `None` for a slice with no such node
/// or no such label.
pub fn endpoint_slice(slice: EndpointSlice, interner: &Interner) -> Option<SliceView> {
    let meta = &slice.metadata;
    let service = meta.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    let (namespace, name) = (meta.namespace.as_deref()?, meta.name.as_deref()?);
    let nodes = NodeNames::new(
        slice
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .filter_map(|e| e.node_name.as_deref())
            .map(|n| interner.intern(n)),
    );
    if nodes.is_empty() {
        return None;
    }
    Some(SliceView {
        id: format!("{namespace}/{name}").into(),
        service: service.as_str().into(),
        nodes,
    })
}

impl Indexed for NodeFacts {
    fn index_key(&self) -> ObjectKey {
        ObjectKey::new(None, &self.name)
    }

    fn same_as(&mut self, old: &Self) -> bool {
        *self == *old
    }
}

/// The view of a Node: its facts ([`NodeFacts::of`]: the conditions' status without heartbeat
/// times, so a kubelet's status update that changes none of them is no change). `None` without a
/// name.
pub fn node(node: Node) -> Option<NodeFacts> {
    node.metadata.name.as_ref()?;
    Some(NodeFacts::of(&node))
}

/// An Eip without its status: the speaker reads the spec only, and `status.used` names every IP
/// the pool has given out (10,000 entries for 10,000 Services), which each plan would copy.
pub fn eip(mut eip: Eip) -> Option<Eip> {
    eip.status = None;
    Some(eip)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn services_are_kept_only_while_ours_and_as_what_is_announced() {
        let ours: Service = obj(json!({
            "metadata": {"name": "a", "namespace": "ns", "finalizers": [names::SERVICE_FINALIZER],
                "labels": {names::EIP_POOL_LABEL: "pool"}, "annotations": {"big": "x"}},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"},
                {"hostname": "lb.example"}, {"ip": "2001:db8::1"}]}}
        }));
        let view = service(ours).unwrap();
        assert_eq!(
            view,
            ServiceView {
                id: "ns/a".into(),
                ips: ["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()].into(),
                local: true,
                pool: Some("pool".into()),
            }
        );
        assert_eq!((view.namespace(), view.name()), ("ns", "a"));
        assert_eq!(view.index_key(), ObjectKey::new(Some("ns"), "a"));
        let cluster: Service = obj(json!({"metadata": {"name": "c", "namespace": "ns",
            "finalizers": [names::SERVICE_FINALIZER]}, "spec": {"externalTrafficPolicy": "Cluster"}}));
        let cluster = service(cluster).unwrap();
        assert!(!cluster.local && cluster.ips.is_empty() && cluster.pool.is_none());

        let other: Service =
            obj(json!({"metadata": {"name": "b", "namespace": "ns"}, "spec": {"type": "LoadBalancer"}}));
        assert_eq!(service(other), None, "not the controller's");
        let deleting: Service = obj(json!({"metadata": {"name": "c", "namespace": "ns",
            "finalizers": [names::SERVICE_FINALIZER], "deletionTimestamp": "2026-01-01T00:00:00Z"}}));
        assert_eq!(service(deleting), None, "going away");
    }

    #[test]
    fn endpoint_slices_become_their_ready_nodes_with_shared_names() {
        let interner = Interner::default();
        let slice: EndpointSlice = obj(json!({
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
        let a = endpoint_slice(slice.clone(), &interner).unwrap();
        assert_eq!((&*a.id, &*a.service, a.namespace()), ("ns/web-1", "web", "ns"));
        assert_eq!(a.nodes.iter().collect::<Vec<_>>(), ["n1", "n3"]);
        assert!(a.nodes.contains("n3") && !a.nodes.contains("n2"));
        assert_eq!(a.index_key(), ObjectKey::new(Some("ns"), "web-1"));
        let b = endpoint_slice(slice, &interner).unwrap();
        assert!(
            Arc::ptr_eq(&a.nodes.0[0], &b.nodes.0[0]),
            "one copy of each node name"
        );
        assert_eq!(interner.len(), 2);

        let none_ready: EndpointSlice = obj(json!({
            "metadata": {"name": "web-2", "namespace": "ns", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["192.0.2.12"], "nodeName": "n2", "conditions": {"ready": false}}]
        }));
        assert_eq!(endpoint_slice(none_ready, &interner), None);
        let unlabelled: EndpointSlice = obj(
            json!({"metadata": {"name": "x", "namespace": "ns"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["192.0.2.12"], "nodeName": "n2"}]}),
        );
        assert_eq!(endpoint_slice(unlabelled, &interner), None);
    }

    #[test]
    fn the_interner_drops_names_nobody_holds() {
        let interner = Interner::default();
        let held: Vec<Arc<str>> = (0..10).map(|i| interner.intern(&format!("held-{i}"))).collect();
        for i in 0..=MIN_PRUNE_AT {
            drop(interner.intern(&format!("gone-{i}")));
        }
        assert!(interner.len() < MIN_PRUNE_AT, "{}", interner.len());
        for name in &held {
            assert!(
                Arc::ptr_eq(name, &interner.intern(name)),
                "held names stay shared"
            );
        }
    }

    #[test]
    fn node_sets_are_sorted_unions() {
        let a: NodeNames = ["n3", "n1", "n1"].into_iter().collect();
        let b: NodeNames = ["n2"].into_iter().collect();
        assert_eq!(a.iter().collect::<Vec<_>>(), ["n1", "n3"]);
        assert_eq!(a.union(&b).iter().collect::<Vec<_>>(), ["n1", "n2", "n3"]);
        let same = a.union(&["n3"].into_iter().collect());
        assert!(Arc::ptr_eq(&same.0, &a.0), "a union adding nothing is shared");
        assert_eq!(format!("{a:?}"), r#"{"n1", "n3"}"#);
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
        let mut a = node(obj(value("2026-01-01T00:00:00Z"))).unwrap();
        let b = node(obj(value("2026-01-01T00:01:00Z"))).unwrap();
        assert!(a.same_as(&b), "a heartbeat alone is no change");
        assert!(a.ready && a.name == "n1");
        assert_eq!(a.index_key(), ObjectKey::new(None, "n1"));
        assert_eq!(node(obj(json!({"metadata": {}}))), None, "no name");
    }

    #[test]
    fn eips_lose_their_status() {
        let pool: Eip = obj(
            json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
            "metadata": {"name": "p"}, "spec": {"address": "192.0.2.0/24", "protocol": "layer2", "interface": "eth0"},
            "status": {"usage": 1, "used": {"192.0.2.1": "ns/a"}}}),
        );
        let viewed = eip(pool.clone()).unwrap();
        assert!(viewed.status.is_none());
        assert_eq!(viewed.spec, pool.spec);
        assert_eq!(viewed.metadata, pool.metadata);
    }
}
