//! What the cluster wants announced, in pure code: every IP the controller assigned, with how to
//! announce it (its Eip's protocol and interface) and, for `externalTrafficPolicy: Local`, which nodes
//! host a ready endpoint. Layer2 election and the BGP route set both start from this.
//!
//! An IP is announced when a Service that is not being deleted holds it in
//! `status.loadBalancer.ingress`, carries the controller's finalizer (so another implementation's IPs
//! are never announced) and the IP lies in a valid Eip. Several Services on one IP (a legal share)
//! give one announcement; for ETP Local its endpoint nodes are the union of theirs (MetalLB's sharing
//! rule makes their selectors equal, so the sets agree anyway).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::Arc,
};

use k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice};
use oxelb_crds::{
    address::IpRange,
    interface::{InterfaceError, InterfaceSelector},
    names,
    service::ingress_ips,
    v1alpha2::{Eip, EipProtocol},
};

/// The label EndpointSlices carry naming their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One IP to announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The IP.
    pub ip: IpAddr,
    /// The Eip it belongs to.
    pub pool: String,
    /// How: `bgp`, `layer2` or `vip` (vip is announced like layer2).
    pub protocol: EipProtocol,
    /// `spec.interface` of the Eip (layer2/vip), parsed; an error is reported, never announced on.
    pub interface: Option<Result<InterfaceSelector, InterfaceError>>,
    /// The Services holding it, as `namespace/name`, sorted.
    pub services: Vec<String>,
    /// `None` when every holder has `externalTrafficPolicy: Cluster` (any node may receive the
    /// traffic); else the nodes hosting a ready endpoint of a Local holder.
    pub local_nodes: Option<BTreeSet<String>>,
}

/// Every IP to announce, by IP.
pub fn desired(
    services: &[Arc<Service>],
    eips: &[Eip],
    slices: &[Arc<EndpointSlice>],
) -> BTreeMap<IpAddr, Announcement> {
    let pools: Vec<(&Eip, IpRange)> = eips
        .iter()
        .filter_map(|eip| Some((eip, eip.spec.parsed_address().ok()?)))
        .collect();
    let mut out: BTreeMap<IpAddr, Announcement> = BTreeMap::new();
    // Ready nodes by Service, from one scan of the slices (not one scan per Local Service: that
    // was quadratic with thousands of each), built only when some Service is Local.
    let mut by_service: Option<BTreeMap<(&str, &str), BTreeSet<&str>>> = None;
    for service in services {
        let meta = &service.metadata;
        let (Some(namespace), Some(name)) = (&meta.namespace, &meta.name) else {
            continue;
        };
        if meta.deletion_timestamp.is_some() {
            continue; // Going away: stop announcing at once.
        }
        let ours = meta
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == names::SERVICE_FINALIZER);
        if !ours {
            continue;
        }
        let label = meta.labels.as_ref().and_then(|l| l.get(names::EIP_POOL_LABEL));
        let local = service
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref())
            == Some("Local");
        for ip in ingress_ips(service) {
            // The Eip containing the IP; if pools overlap, the one the Service's label names.
            let mut containing = pools.iter().filter(|(_, range)| range.contains(ip));
            let first = containing.next();
            let pool = match first {
                Some((eip, _)) if label.is_some_and(|l| eip.metadata.name.as_ref() != Some(l)) => containing
                    .find(|(e, _)| e.metadata.name.as_ref() == label)
                    .or(first),
                other => other,
            };
            let Some((eip, _)) = pool else { continue };
            let entry = out.entry(ip).or_insert_with(|| Announcement {
                ip,
                pool: eip.metadata.name.clone().unwrap_or_default(),
                protocol: eip.spec.protocol(),
                interface: eip.spec.interface(),
                // Most IPs have one Service.
                services: Vec::with_capacity(1),
                local_nodes: None,
            });
            entry.services.push(format!("{namespace}/{name}"));
            entry.services.sort();
            if local {
                let index = by_service.get_or_insert_with(|| ready_nodes_by_service(slices));
                let nodes = index
                    .get(&(namespace.as_str(), name.as_str()))
                    .into_iter()
                    .flatten();
                entry
                    .local_nodes
                    .get_or_insert_with(BTreeSet::new)
                    .extend(nodes.map(|n| (*n).to_owned()));
            }
        }
    }
    // Rebuilt from its sorted entries, the map's nodes are full: about half the memory of the one
    // grown by inserts above (it is kept for as long as the state, and holds every IP).
    out.into_iter().collect()
}

/// The nodes with a ready endpoint, by Service (namespace, name), as [`endpoint_nodes`] finds them.
fn ready_nodes_by_service(slices: &[Arc<EndpointSlice>]) -> BTreeMap<(&str, &str), BTreeSet<&str>> {
    let mut out: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for slice in slices {
        let meta = &slice.metadata;
        let (Some(namespace), Some(service)) = (
            meta.namespace.as_deref(),
            meta.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)),
        ) else {
            continue;
        };
        let nodes = slice
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .filter_map(|e| e.node_name.as_deref());
        out.entry((namespace, service.as_str()))
            .or_default()
            .extend(nodes);
    }
    out
}

/// The nodes with a ready endpoint of Service `namespace/name` (endpoints whose `ready` condition is
/// unset count as ready, as the EndpointSlice API says).
pub fn endpoint_nodes(namespace: &str, name: &str, slices: &[Arc<EndpointSlice>]) -> BTreeSet<String> {
    slices
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .is_some_and(|n| n == name)
        })
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter_map(|e| e.node_name.clone())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn svc(name: &str, ip: &str, local: bool, finalizer: bool) -> Arc<Service> {
        let mut v = json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": if local {"Local"} else {"Cluster"}},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
        if finalizer {
            v["metadata"]["finalizers"] = json!([names::SERVICE_FINALIZER]);
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn eip(name: &str, spec: Value) -> Eip {
        serde_json::from_value(
            json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
            "metadata": {"name": name}, "spec": spec}),
        )
        .unwrap()
    }

    fn slice(service: &str, endpoints: Value) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": format!("{service}-x"), "namespace": "default",
                "labels": {SERVICE_NAME_LABEL: service}}, "addressType": "IPv4", "endpoints": endpoints}),
            )
            .unwrap(),
        )
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
        let d = desired(&services, &eips, &[]);
        assert_eq!(d.len(), 2, "{d:?}");
        let a = &d[&"192.0.2.1".parse().unwrap()];
        assert_eq!((a.pool.as_str(), a.protocol), ("l2", EipProtocol::Layer2));
        assert_eq!(a.interface, Some(Ok(InterfaceSelector::Name("eth0".into()))));
        assert_eq!(a.local_nodes, None);
        let b = &d[&"198.51.100.2".parse().unwrap()];
        assert_eq!(
            (b.pool.as_str(), b.protocol, b.interface.clone()),
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
        let slices = [
            slice(
                "web",
                json!([{"addresses": ["198.51.100.71"], "nodeName": "n1", "conditions": {"ready": true}},
                                {"addresses": ["198.51.100.72"], "nodeName": "n2", "conditions": {"ready": false}}]),
            ),
            slice("dns", json!([{"addresses": ["198.51.100.73"], "nodeName": "n3"}])),
            slice(
                "other",
                json!([{"addresses": ["198.51.100.74"], "nodeName": "n4"}]),
            ),
        ];
        let d = desired(&services, &eips, &slices);
        let ann = &d[&"192.0.2.5".parse().unwrap()];
        assert_eq!(ann.services, vec!["default/dns", "default/web"]);
        assert_eq!(ann.local_nodes, Some(["n1".to_owned(), "n3".to_owned()].into()));
    }

    #[test]
    fn deleting_services_and_invalid_eips_are_not_announced() {
        let eips = [eip("bad", json!({"address": "192.0.2.9-192.0.2.1"}))];
        assert!(desired(&[svc("a", "192.0.2.5", false, true)], &eips, &[]).is_empty());
        let eips = [eip("ok", json!({"address": "192.0.2.0/28"}))];
        let mut s = svc("a", "192.0.2.5", false, true);
        Arc::make_mut(&mut s).metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        );
        assert!(desired(&[s], &eips, &[]).is_empty());
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
            "local",
            json!([{"addresses": ["198.51.100.71"], "nodeName": "n2"}]),
        )];
        let d = desired(&services, &eips, &slices);
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
        let d = desired(&[svc("a", "192.0.2.5", false, true)], &eips, &[]);
        assert!(matches!(d[&"192.0.2.5".parse().unwrap()].interface, Some(Err(_))));
    }
}
