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
    pub interface: Option<Result<InterfaceSelector, InterfaceError>>,
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
    let pools: Vec<(&Eip, IpRange, Arc<str>)> = eips
        .iter()
        .filter_map(|eip| {
            let name = Arc::from(eip.metadata.name.as_deref().unwrap_or_default());
            Some((eip, eip.spec.parsed_address().ok()?, name))
        })
        .collect();
    let mut out: BTreeMap<IpAddr, Announcement> = BTreeMap::new();
    // Ready nodes by Service, from one scan of the slices (not one scan per Local Service: that
    // was quadratic with thousands of each), built only when some Service is Local.
    let mut by_service: Option<BTreeMap<(&str, &str), NodeNames>> = None;
    let no_nodes = NodeNames::default();
    for service in services {
        let label = service.pool.as_deref();
        for &ip in &service.ips {
            // The Eip containing the IP; if pools overlap, the one the Service's label names.
            let mut containing = pools.iter().filter(|(_, range, _)| range.contains(ip));
            let first = containing.next();
            let pool = match first {
                Some((_, _, name)) if label.is_some_and(|l| **name != *l) => {
                    containing.find(|(_, _, n)| Some(&**n) == label).or(first)
                }
                other => other,
            };
            let Some((eip, _, name)) = pool else { continue };
            let entry = out.entry(ip).or_insert_with(|| Announcement {
                ip,
                pool: name.clone(),
                protocol: eip.spec.protocol(),
                interface: eip.spec.interface(),
                // Most IPs have one Service.
                services: Vec::with_capacity(1),
                local_nodes: None,
            });
            entry.services.push(service.id.clone());
            entry.services.sort();
            if service.local {
                let index = by_service.get_or_insert_with(|| ready_nodes_by_service(slices));
                let nodes = index
                    .get(&(service.namespace(), service.name()))
                    .unwrap_or(&no_nodes);
                entry.local_nodes = Some(match &entry.local_nodes {
                    Some(held) => held.union(nodes),
                    None => nodes.clone(),
                });
            }
        }
    }
    // Rebuilt from its sorted entries, the map's nodes are full: about half the memory of the one
    // grown by inserts above (it is kept for as long as the state, and holds every IP).
    out.into_iter().collect()
}

/// The nodes with a ready endpoint, by Service (namespace, name): the union of its slices' (most
/// Services have one slice, whose set is then shared, not copied).
fn ready_nodes_by_service(slices: &[Arc<SliceView>]) -> BTreeMap<(&str, &str), NodeNames> {
    let mut out: BTreeMap<(&str, &str), NodeNames> = BTreeMap::new();
    for slice in slices {
        out.entry((slice.namespace(), &*slice.service))
            .and_modify(|nodes| *nodes = nodes.union(&slice.nodes))
            .or_insert_with(|| slice.nodes.clone());
    }
    out
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
        let object = serde_json::from_value(
            json!({"metadata": {"name": format!("{service}-x"), "namespace": "default",
            "labels": {SERVICE_NAME_LABEL: service}}, "addressType": "IPv4", "endpoints": endpoints}),
        )
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
        assert_eq!(a.interface, Some(Ok(InterfaceSelector::Name("eth0".into()))));
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
        assert!(matches!(d[&"192.0.2.5".parse().unwrap()].interface, Some(Err(_))));
    }
}
