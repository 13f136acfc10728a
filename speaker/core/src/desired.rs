//! What the cluster wants announced, in pure code: every IP the controller assigned, with how to
//! announce it (its Eip's protocol and interface) and, for `externalTrafficPolicy: Local`, which nodes
//! host a ready endpoint. Layer2 election and the BGP route set both start from this.
//!
//! An IP is announced when a Service that is not being deleted holds it in
//! `status.loadBalancer.ingress`, carries the controller's finalizer (so another implementation's IPs
//! are never announced) and the IP lies in a valid Eip. Several Services on one IP (a legal share)
//! give one announcement; for ETP Local its endpoint nodes are the union of theirs (MetalLB's sharing
//! rule makes their selectors equal, so the sets agree anyway).

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use oxelb_crds::{
    address::IpRange,
    interface::{InterfaceError, InterfaceSelector},
    v1alpha2::{Eip, EipProtocol},
};

pub use crate::view::SERVICE_NAME_LABEL;
use crate::view::{NodeNames, ServiceView, SliceView};

/// One IP to announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The IP.
    pub ip: IpAddr,
    /// The Eip it belongs to (one copy of the name per Eip, shared by its announcements).
    pub pool: Arc<str>,
    /// How: `bgp`, `layer2` or `vip` (vip is announced like layer2).
    pub protocol: EipProtocol,
    /// `spec.interface` of the Eip (layer2/vip), parsed; an error is reported, never announced on.
    /// Shared by the Eip's announcements.
    pub interface: Option<Arc<Result<InterfaceSelector, InterfaceError>>>,
    /// The Services holding it, as `namespace/name`, sorted (shared with the Services' views).
    pub services: Vec<Arc<str>>,
    /// `None` when every holder has `externalTrafficPolicy: Cluster` (any node may receive the
    /// traffic); else the nodes hosting a ready endpoint of a Local holder (shared with its
    /// EndpointSlice's view when there is one).
    pub local_nodes: Option<NodeNames>,
}

/// Every IP to announce, by IP. `services` are the views of the Services the speaker may announce
/// ([`crate::view::service`]: the controller's, not being deleted).
pub fn desired(
    services: &[Arc<ServiceView>],
    eips: &[Eip],
    slices: &[Arc<SliceView>],
) -> BTreeMap<IpAddr, Announcement> {
    // Per Eip, once: its range, and its name and interface shared by all its announcements.
    let pools: Vec<Pool<'_>> = eips
        .iter()
        .filter_map(|eip| {
            Some(Pool {
                eip,
                range: eip.spec.parsed_address().ok()?,
                name: Arc::from(eip.metadata.name.as_deref().unwrap_or_default()),
                interface: eip.spec.interface().map(Arc::new),
            })
        })
        .collect();
    // Every (IP, holder, pool), sorted by IP: the holders of an IP are then adjacent, in the order
    // of `services`. A flat list and a map built at once from sorted entries hold less than a map
    // grown by inserts (the announcements live as long as the state, and hold every IP).
    let mut held: Vec<(IpAddr, &ServiceView, &Pool<'_>)> = Vec::with_capacity(services.len());
    for service in services {
        let label = service.pool.as_deref();
        for &ip in &service.ips {
            // The Eip containing the IP; if pools overlap, the one the Service's label names.
            let mut containing = pools.iter().filter(|p| p.range.contains(ip));
            let first = containing.next();
            let pool = match first {
                Some(p) if label.is_some_and(|l| *p.name != *l) => {
                    containing.find(|p| Some(&*p.name) == label).or(first)
                }
                other => other,
            };
            if let Some(pool) = pool {
                held.push((ip, service, pool));
            }
        }
    }
    held.sort_by_key(|(ip, _, _)| *ip);
    // Ready nodes by Service, from one scan of the slices (not one scan per Local Service: that
    // was quadratic with thousands of each), built only when some Service is Local.
    let mut ready: Option<ReadyNodes<'_>> = None;
    let mut out: Vec<(IpAddr, Announcement)> = Vec::with_capacity(held.len());
    for holders in held.chunk_by(|a, b| a.0 == b.0) {
        let (ip, _, pool) = holders[0];
        // Most IPs have one Service; several share it legally.
        let mut ids: Vec<Arc<str>> = holders.iter().map(|(_, s, _)| s.id.clone()).collect();
        ids.sort();
        let mut local_nodes: Option<NodeNames> = None;
        for (_, service, _) in holders.iter().filter(|(_, s, _)| s.local) {
            let nodes = ready
                .get_or_insert_with(|| ReadyNodes::of(slices))
                .of_service(service.namespace(), service.name());
            local_nodes = Some(match &local_nodes {
                Some(known) => known.union(&nodes),
                None => nodes,
            });
        }
        out.push((
            ip,
            Announcement {
                ip,
                pool: pool.name.clone(),
                protocol: pool.eip.spec.protocol(),
                interface: pool.interface.clone(),
                services: ids,
                local_nodes,
            },
        ));
    }
    drop(held);
    out.into_iter().collect()
}

/// An Eip with a valid range, as [`desired`] reads it.
struct Pool<'a> {
    eip: &'a Eip,
    range: IpRange,
    name: Arc<str>,
    interface: Option<Arc<Result<InterfaceSelector, InterfaceError>>>,
}

/// The EndpointSlices by Service (namespace, service name), sorted, for lookups.
struct ReadyNodes<'a>(Vec<(&'a str, &'a str, &'a NodeNames)>);

impl<'a> ReadyNodes<'a> {
    fn of(slices: &'a [Arc<SliceView>]) -> Self {
        let mut by_service: Vec<_> = slices
            .iter()
            .map(|s| (s.namespace(), &*s.service, &s.nodes))
            .collect();
        by_service.sort_unstable_by_key(|(ns, service, _)| (*ns, *service));
        Self(by_service)
    }

    /// The nodes with a ready endpoint of Service `namespace/name`: the union of its slices' (most
    /// Services have one slice, whose set is then shared, not copied).
    fn of_service(&self, namespace: &str, name: &str) -> NodeNames {
        let start = self.0.partition_point(|(ns, s, _)| (*ns, *s) < (namespace, name));
        self.0[start..]
            .iter()
            .take_while(|(ns, s, _)| (*ns, *s) == (namespace, name))
            .fold(None, |acc: Option<NodeNames>, (_, _, nodes)| {
                Some(match acc {
                    Some(known) => known.union(nodes),
                    None => (*nodes).clone(),
                })
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use oxelb_crds::names;
    use serde_json::{Value, json};

    use super::*;
    use crate::view::{self, Interner};

    /// A Service as the API has it, through the speaker's view (`None`: not announced).
    fn svc(name: &str, ip: &str, local: bool, finalizer: bool) -> Option<Arc<ServiceView>> {
        let mut v = json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": if local {"Local"} else {"Cluster"}},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
        if finalizer {
            v["metadata"]["finalizers"] = json!([names::SERVICE_FINALIZER]);
        }
        view::service(serde_json::from_value(v).unwrap()).map(Arc::new)
    }

    fn views(services: &[Option<Arc<ServiceView>>]) -> Vec<Arc<ServiceView>> {
        services.iter().flatten().cloned().collect()
    }

    fn eip(name: &str, spec: Value) -> Eip {
        serde_json::from_value(
            json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
            "metadata": {"name": name}, "spec": spec}),
        )
        .unwrap()
    }

    fn slice(interner: &Interner, service: &str, endpoints: Value) -> Arc<SliceView> {
        named_slice(interner, &format!("{service}-x"), service, endpoints)
    }

    fn named_slice(interner: &Interner, name: &str, service: &str, endpoints: Value) -> Arc<SliceView> {
        let object = serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default",
            "labels": {SERVICE_NAME_LABEL: service}}, "addressType": "IPv4", "endpoints": endpoints}))
        .unwrap();
        Arc::new(view::endpoint_slice(object, interner).unwrap())
    }

    #[test]
    fn announces_held_ips_with_their_eips_protocol_and_interface() {
        let eips = [
            eip(
                "l2",
                json!({"address": "192.0.2.0/28", "protocol": "layer2", "interface": "eth0"}),
            ),
            eip("bgp", json!({"address": "198.51.100.0/28"})),
        ];
        let services = [
            svc("a", "192.0.2.1", false, true),
            svc("b", "198.51.100.2", false, true),
            svc("foreign", "198.51.100.3", false, false),
            svc("outside", "203.0.113.9", false, true),
        ];
        assert!(
            services[2].is_none(),
            "another implementation's Service is not kept"
        );
        let d = desired(&views(&services), &eips, &[]);
        assert_eq!(d.len(), 2, "{d:?}");
        let a = &d[&"192.0.2.1".parse().unwrap()];
        assert_eq!((&*a.pool, a.protocol), ("l2", EipProtocol::Layer2));
        assert_eq!(
            a.interface.as_deref(),
            Some(&Ok(InterfaceSelector::Name("eth0".into())))
        );
        assert_eq!(a.local_nodes, None);
        let b = &d[&"198.51.100.2".parse().unwrap()];
        assert_eq!(
            (&*b.pool, b.protocol, b.interface.clone()),
            ("bgp", EipProtocol::Bgp, None)
        );
    }

    #[test]
    fn shared_ip_is_one_announcement_and_local_takes_ready_endpoint_nodes() {
        let eips = [eip(
            "l2",
            json!({"address": "192.0.2.0/28", "protocol": "layer2", "interface": "eth0"}),
        )];
        let services = [
            svc("web", "192.0.2.5", true, true),
            svc("dns", "192.0.2.5", true, true),
        ];
        let interner = Interner::default();
        let slices = [
            slice(
                &interner,
                "web",
                json!([{"addresses": ["198.51.100.71"], "nodeName": "n1", "conditions": {"ready": true}},
                                {"addresses": ["198.51.100.72"], "nodeName": "n2", "conditions": {"ready": false}}]),
            ),
            slice(
                &interner,
                "dns",
                json!([{"addresses": ["198.51.100.73"], "nodeName": "n3"}]),
            ),
            slice(
                &interner,
                "other",
                json!([{"addresses": ["198.51.100.74"], "nodeName": "n4"}]),
            ),
        ];
        let d = desired(&views(&services), &eips, &slices);
        let ann = &d[&"192.0.2.5".parse().unwrap()];
        assert_eq!(
            ann.services,
            vec![Arc::from("default/dns"), Arc::from("default/web")]
        );
        assert_eq!(ann.local_nodes, Some(["n1", "n3"].into_iter().collect()));
        // One Local holder: its slice's set, shared.
        let d = desired(&views(&services[..1]), &eips, &slices);
        let ann = &d[&"192.0.2.5".parse().unwrap()];
        assert_eq!(ann.local_nodes.as_ref(), Some(&slices[0].nodes));
        // A Local Service without ready endpoints: announced from no node.
        let d = desired(&views(&[svc("lonely", "192.0.2.6", true, true)]), &eips, &slices);
        assert_eq!(
            d[&"192.0.2.6".parse().unwrap()].local_nodes,
            Some(NodeNames::default())
        );
    }

    #[test]
    fn overlapping_pools_follow_the_label_and_local_unites_a_services_slices() {
        let eips = [
            eip("narrow", json!({"address": "192.0.2.0/28"})),
            eip("wide", json!({"address": "192.0.2.0/24"})),
        ];
        let labelled = |name: &str, ip: &str, pool: &str| {
            let v = json!({"metadata": {"name": name, "namespace": "default",
                "finalizers": [names::SERVICE_FINALIZER], "labels": {names::EIP_POOL_LABEL: pool}},
                "spec": {"externalTrafficPolicy": "Local"},
                "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
            view::service(serde_json::from_value(v).unwrap()).map(Arc::new)
        };
        let services = [
            labelled("w", "192.0.2.1", "wide"),
            labelled("n", "192.0.2.2", "narrow"),
            labelled("x", "192.0.2.3", "elsewhere"),
            svc("plain", "192.0.2.4", false, true),
        ];
        let interner = Interner::default();
        let slices = [
            slice(
                &interner,
                "w",
                json!([{"addresses": ["198.51.100.71"], "nodeName": "n1"}]),
            ),
            named_slice(
                &interner,
                "w-y",
                "w",
                json!([{"addresses": ["198.51.100.72"], "nodeName": "n2"}]),
            ),
        ];
        let d = desired(&views(&services), &eips, &slices);
        let pool = |ip: &str| d[&ip.parse().unwrap()].pool.to_string();
        assert_eq!(
            pool("192.0.2.1"),
            "wide",
            "the label picks among overlapping pools"
        );
        assert_eq!(pool("192.0.2.2"), "narrow");
        assert_eq!(
            pool("192.0.2.3"),
            "narrow",
            "a label naming no containing pool: the first"
        );
        assert_eq!(pool("192.0.2.4"), "narrow");
        assert_eq!(
            d[&"192.0.2.1".parse().unwrap()].local_nodes,
            Some(["n1", "n2"].into_iter().collect()),
            "the union of the Service's slices"
        );
    }

    #[test]
    fn deleting_services_and_invalid_eips_are_not_announced() {
        let eips = [eip("bad", json!({"address": "192.0.2.9-192.0.2.1"}))];
        assert!(desired(&views(&[svc("a", "192.0.2.5", false, true)]), &eips, &[]).is_empty());
        let eips = [eip("ok", json!({"address": "192.0.2.0/28"}))];
        let deleting = view::service(
            serde_json::from_value(json!({"metadata": {"name": "a", "namespace": "default",
                "finalizers": [names::SERVICE_FINALIZER], "deletionTimestamp": "2026-01-01T00:00:00Z"},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.5"}]}}}))
            .unwrap(),
        );
        assert_eq!(deleting, None, "going away: not announced");
        assert_eq!(
            desired(&views(&[svc("a", "192.0.2.5", false, true)]), &eips, &[]).len(),
            1
        );
    }

    #[test]
    fn bgp_routes_follow_protocol_eligibility_and_local_endpoints() {
        use k8s_openapi::api::core::v1::Node;
        let eips = [
            eip("bgp", json!({"address": "198.51.100.0/28"})),
            eip(
                "l2",
                json!({"address": "192.0.2.0/28", "protocol": "layer2", "interface": "eth0"}),
            ),
        ];
        let services = [
            svc("cluster", "198.51.100.1", false, true),
            svc("local", "198.51.100.2", true, true),
            svc("l2", "192.0.2.1", false, true),
        ];
        let slices = [slice(
            &Interner::default(),
            "local",
            json!([{"addresses": ["198.51.100.71"], "nodeName": "n2"}]),
        )];
        let d = desired(&views(&services), &eips, &slices);
        let facts = |name: &str, ready: bool| {
            let n: Node = serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}))
            .unwrap();
            crate::node::NodeFacts::of(&n)
        };
        let ips = |v: &[&str]| {
            v.iter()
                .map(|s| oxelb_bgp::wire::Prefix::host(s.parse::<IpAddr>().unwrap()))
                .collect::<BTreeSet<_>>()
        };
        let none = BTreeMap::new();
        let bgp_routes = |d: &BTreeMap<IpAddr, Announcement>, node: &crate::node::NodeFacts| {
            crate::policy::bgp_routes(d, node, &none)
                .into_keys()
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(bgp_routes(&d, &facts("n1", true)), ips(&["198.51.100.1"]));
        assert_eq!(
            bgp_routes(&d, &facts("n2", true)),
            ips(&["198.51.100.1", "198.51.100.2"])
        );
        assert!(
            bgp_routes(&d, &facts("n2", false)).is_empty(),
            "a NotReady node withdraws everything"
        );
    }

    #[test]
    fn bad_interface_is_carried_as_an_error() {
        let eips = [eip(
            "l2",
            json!({"address": "192.0.2.0/28", "protocol": "layer2", "interface": "lo"}),
        )];
        let d = desired(&views(&[svc("a", "192.0.2.5", false, true)]), &eips, &[]);
        assert!(matches!(
            d[&"192.0.2.5".parse().unwrap()].interface.as_deref(),
            Some(Err(_))
        ));
    }
}
