//! What the allocator is given: pools and Service requests, already parsed by the controller.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use oxelb_crds::address::{IpFamily, IpRange};

/// Identifies a Service: `(namespace, name)`. Ordered by namespace, then name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
}

impl ServiceKey {
    /// The key of Service `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
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
    pub fn binds(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespaces.iter().any(|n| n == namespace)
            || (!self.namespace_selector.is_empty()
                && self
                    .namespace_selector
                    .iter()
                    .all(|(key, value)| labels.get(key) == Some(value)))
    }
}

/// A Service asking for IPs: what the controller read from the Service and its Namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRequest {
    /// The Service.
    pub key: ServiceKey,
    /// The labels of the Service's Namespace (for `namespaceSelector`).
    pub namespace_labels: BTreeMap<String, String>,
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
    /// `spec.selector` (the pods behind the Service).
    pub selector: BTreeMap<String, String>,
}

impl ServiceRequest {
    /// An IPv4, Cluster-policy request with no ports, no requested IP and no named pool.
    pub fn new(key: ServiceKey) -> Self {
        ServiceRequest {
            key,
            namespace_labels: BTreeMap::new(),
            requested_ips: Vec::new(),
            pool: None,
            family_pools: Vec::new(),
            ports: BTreeSet::new(),
            families: BTreeSet::from([IpFamily::V4]),
            traffic_policy: TrafficPolicy::Cluster,
            selector: BTreeMap::new(),
        }
    }
}
