//! What the allocator is given: pools and Service requests, already parsed by the controller.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use oxelb_crds::address::{IpFamily, IpRange};

/// Identifies a Service: `(namespace, name)`. Ordered by namespace, then name.
///
/// Both parts are shared strings: the controller's index, its allocator (the Service's record and
/// the holders of its IP) and each pass hold the same key many times, and a clone costs a counter,
/// not two allocations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// The Service's namespace.
    pub namespace: Arc<str>,
    /// The Service's name.
    pub name: Arc<str>,
}

impl ServiceKey {
    /// The key of Service `namespace/name`.
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    /// `namespace/name`, as kubectl prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Transport protocol of a Service port (`spec.ports[].protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (the Kubernetes default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// `spec.externalTrafficPolicy` of a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrafficPolicy {
    /// `Cluster` (the Kubernetes default): any node may receive the traffic.
    #[default]
    Cluster,
    /// `Local`: only nodes with a ready endpoint receive traffic, so services sharing an IP must select
    /// the same pods (MetalLB's rule).
    Local,
}

/// One IP pool (an Eip), as the allocator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// The Eip's name; unique among pools.
    pub name: String,
    /// `spec.address`, parsed.
    pub range: IpRange,
    /// `spec.disable`: no new assignments from this pool; existing ones stay.
    pub disabled: bool,
    /// `spec.priority`: among pools bound to a namespace, lower is preferred. `None` sorts after every
    /// set value (a pool without a priority is the least preferred).
    pub priority: Option<i64>,
    /// `spec.namespaces`: the pool is bound to these namespaces.
    pub namespaces: Vec<String>,
    /// `spec.namespaceSelector`: the pool is bound to every namespace whose labels contain all these
    /// pairs. An empty selector binds no namespace (it would otherwise bind all of them).
    pub namespace_selector: BTreeMap<String, String>,
    /// The Eip carries `eip.openelb.kubesphere.io/is-default-eip: "true"`.
    pub is_default: bool,
}

impl PoolSpec {
    /// A pool with only a name and a range: enabled, no priority, bound to no namespace, not default.
    pub fn new(name: impl Into<String>, range: IpRange) -> Self {
        PoolSpec {
            name: name.into(),
            range,
            disabled: false,
            priority: None,
            namespaces: Vec::new(),
            namespace_selector: BTreeMap::new(),
            is_default: false,
        }
    }

    /// Whether the pool is bound to a namespace called `namespace` with these labels.
    pub fn binds(&self, namespace: &str, labels: &LabelSet) -> bool {
        self.namespaces.iter().any(|n| n == namespace)
            || (!self.namespace_selector.is_empty()
                && self
                    .namespace_selector
                    .iter()
                    .all(|(key, value)| labels.get(key) == Some(value.as_str())))
    }
}

/// A Service asking for IPs: what the controller read from the Service and its Namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRequest {
    /// The Service.
    pub key: ServiceKey,
    /// The labels of the Service's Namespace (for `namespaceSelector`), shared by every request
    /// of that Namespace.
    pub namespace_labels: LabelSet,
    /// Exact IPs asked for, at most one per family: the `eip.openelb.kubesphere.io/v1alpha1`
    /// annotation, else `spec.loadBalancerIP` (the controller resolves which one applies).
    pub requested_ips: Vec<IpAddr>,
    /// The pool named by `eip.openelb.kubesphere.io/v1alpha2`, if any: every family comes from it.
    pub pool: Option<String>,
    /// Pools named one per family (the annotation holding `v4pool,v6pool`, for dual-stack): each
    /// family comes from the named pool of that family. Ignored when [`Self::pool`] is set.
    pub family_pools: Vec<String>,
    /// `spec.ports[]` as `(protocol, port)`.
    pub ports: BTreeSet<(Protocol, u16)>,
    /// The families wanted: one IP is assigned per family (both for dual-stack).
    pub families: BTreeSet<IpFamily>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// `spec.selector` (the pods behind the Service), shared with the controller's view of the
    /// Service and kept by the allocator for its sharing rule.
    pub selector: LabelSet,
}

impl ServiceRequest {
    /// An IPv4, Cluster-policy request with no ports, no requested IP and no named pool.
    pub fn new(key: ServiceKey) -> Self {
        ServiceRequest {
            key,
            namespace_labels: LabelSet::default(),
            requested_ips: Vec::new(),
            pool: None,
            family_pools: Vec::new(),
            ports: BTreeSet::new(),
            families: BTreeSet::from([IpFamily::V4]),
            traffic_policy: TrafficPolicy::Cluster,
            selector: LabelSet::default(),
        }
    }
}

/// A set of `key: value` labels (a Namespace's labels, a Service's pod selector), sorted by key,
/// shared and immutable.
///
/// The controller holds one per Service (its selector) and one per Namespace, and the allocator
/// keeps each holder's selector for the sharing rule: a `BTreeMap<String, String>` allocates a node
/// of eleven slots (about 540 bytes) even for the usual single label, this holds the pairs in one
/// allocation beside their strings, and a clone is a counter increment.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSet(Option<Arc<[Label]>>);

/// One `key: value` pair of a [`LabelSet`].
type Label = (Box<str>, Box<str>);

impl LabelSet {
    /// The value of label `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        let pairs = self.0.as_deref()?;
        let at = pairs.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok()?;
        pairs.get(at).map(|(_, v)| v.as_ref())
    }

    /// The pairs, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .flat_map(|pairs| pairs.iter())
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Whether there is no label.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.0.as_deref().map_or(0, <[_]>::len)
    }
}

impl<K: Into<Box<str>>, V: Into<Box<str>>> FromIterator<(K, V)> for LabelSet {
    /// Later pairs win over earlier ones with the same key, as when collecting into a map.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let map: BTreeMap<Box<str>, Box<str>> =
            pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        if map.is_empty() {
            return LabelSet(None);
        }
        LabelSet(Some(map.into_iter().collect()))
    }
}

impl From<BTreeMap<String, String>> for LabelSet {
    fn from(map: BTreeMap<String, String>) -> Self {
        map.into_iter().collect()
    }
}

impl fmt::Debug for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_answer_as_the_map_they_replace() {
        let map = BTreeMap::from([
            ("tier".to_owned(), "web".to_owned()),
            ("app".to_owned(), "shop".to_owned()),
        ]);
        let set = LabelSet::from(map.clone());
        assert_eq!(set.len(), 2);
        for (k, v) in &map {
            assert_eq!(set.get(k), Some(v.as_str()));
        }
        assert_eq!(set.get("other"), None);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [("app", "shop"), ("tier", "web")],
            "by key"
        );
        assert_eq!(set, [("tier", "web"), ("app", "shop")].into_iter().collect());
        assert_ne!(set, [("app", "shop")].into_iter().collect());
        assert_eq!(
            [("a", "1"), ("a", "2")]
                .into_iter()
                .collect::<LabelSet>()
                .get("a"),
            Some("2"),
            "the later pair wins"
        );
        let empty = LabelSet::from(BTreeMap::new());
        assert!(empty.is_empty() && empty.get("app").is_none());
        assert_eq!(empty, LabelSet::default());
        assert_eq!(format!("{set:?}"), r#"{"app": "shop", "tier": "web"}"#);
    }
}
