//! What a speaker needs to know about a Node, in pure code: may it receive load-balancer traffic
//! (Ready, network available, not excluded), its addresses, and its rack.
//!
//! OpenELB announces from every node; oxelb honours
//! `node.kubernetes.io/exclude-from-external-load-balancers` and skips NotReady and NetworkUnavailable
//! nodes (`openelb-compat.md`, "Node contract").

use std::{collections::BTreeMap, net::IpAddr};

use k8s_openapi::{api::core::v1::Node, apimachinery::pkg::apis::meta::v1::LabelSelector};
use oxelb_crds::names;

/// The facts about one Node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    /// `metadata.name`.
    pub name: String,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// The `NetworkUnavailable` condition is `True`.
    pub network_unavailable: bool,
    /// Labelled `node.kubernetes.io/exclude-from-external-load-balancers`.
    pub excluded: bool,
    /// The first `InternalIP` of each family, IPv4 first.
    pub internal_ips: Vec<IpAddr>,
    /// The `openelb.kubesphere.io/rack` label.
    pub rack: Option<String>,
    /// All labels (for BgpPeer `nodeSelector`).
    pub labels: BTreeMap<String, String>,
}

impl NodeFacts {
    /// Reads the facts of `node`.
    pub fn of(node: &Node) -> Self {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
        let condition = |kind: &str| {
            conditions
                .into_iter()
                .flatten()
                .any(|c| c.type_ == kind && c.status == "True")
        };
        let mut internal_ips: Vec<IpAddr> = Vec::new();
        for address in node.status.iter().flat_map(|s| s.addresses.iter().flatten()) {
            if address.type_ != "InternalIP" {
                continue;
            }
            if let Ok(ip) = address.address.parse::<IpAddr>()
                && !internal_ips.iter().any(|known| known.is_ipv4() == ip.is_ipv4())
            {
                internal_ips.push(ip);
            }
        }
        internal_ips.sort_by_key(|ip| ip.is_ipv6());
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            ready: condition("Ready"),
            network_unavailable: condition("NetworkUnavailable"),
            excluded: labels.contains_key(names::EXCLUDE_FROM_LB_LABEL),
            internal_ips,
            rack: labels.get(names::RACK_LABEL).cloned(),
            labels,
        }
    }

    /// Whether the node may receive load-balancer traffic.
    pub fn eligible(&self) -> bool {
        self.ready && !self.network_unavailable && !self.excluded
    }

    /// The node's InternalIP of the family of `like`.
    pub fn internal_ip_like(&self, like: IpAddr) -> Option<IpAddr> {
        self.internal_ips
            .iter()
            .copied()
            .find(|ip| ip.is_ipv4() == like.is_ipv4())
    }
}

/// Whether `labels` match `selector` (`matchLabels` and `matchExpressions` with `In`, `NotIn`,
/// `Exists`, `DoesNotExist`). An absent selector matches everything; an unknown operator matches
/// nothing (the safe side: no session rather than a surprising one), as the API server would have
/// refused it anyway.
pub fn selector_matches(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(value: serde_json::Value) -> Node {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn eligibility_combinations() {
        for ready in [false, true] {
            for unavailable in [false, true] {
                for excluded in [false, true] {
                    let mut labels = json!({});
                    if excluded {
                        labels[names::EXCLUDE_FROM_LB_LABEL] = "".into();
                    }
                    let n = node(json!({"metadata": {"name": "n1", "labels": labels},
                        "status": {"conditions": [
                            {"type": "Ready", "status": if ready {"True"} else {"False"}},
                            {"type": "NetworkUnavailable", "status": if unavailable {"True"} else {"False"}}]}}));
                    let facts = NodeFacts::of(&n);
                    assert_eq!(facts.eligible(), ready && !unavailable && !excluded, "{facts:?}");
                }
            }
        }
        assert!(
            !NodeFacts::of(&node(json!({"metadata": {"name": "bare"}}))).eligible(),
            "no conditions: not Ready"
        );
    }

    #[test]
    fn addresses_and_rack() {
        let n = node(
            json!({"metadata": {"name": "n1", "labels": {names::RACK_LABEL: "r1"}},
            "status": {"addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "2001:db8::11"},
                {"type": "InternalIP", "address": "192.0.2.11"},
                {"type": "InternalIP", "address": "192.0.2.99"},
                {"type": "ExternalIP", "address": "203.0.113.1"}]}}),
        );
        let facts = NodeFacts::of(&n);
        assert_eq!(
            facts.internal_ips,
            vec![
                "192.0.2.11".parse::<IpAddr>().unwrap(),
                "2001:db8::11".parse().unwrap()
            ]
        );
        assert_eq!(facts.rack.as_deref(), Some("r1"));
        assert_eq!(
            facts.internal_ip_like("198.51.100.1".parse().unwrap()),
            Some("192.0.2.11".parse().unwrap())
        );
    }

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> = [
            ("zone".to_owned(), "a".to_owned()),
            ("role".to_owned(), "edge".to_owned()),
        ]
        .into();
        let sel = |v: serde_json::Value| serde_json::from_value::<LabelSelector>(v).unwrap();
        assert!(selector_matches(None, &labels));
        assert!(selector_matches(Some(&sel(json!({}))), &labels));
        assert!(selector_matches(
            Some(&sel(json!({"matchLabels": {"zone": "a"}}))),
            &labels
        ));
        assert!(!selector_matches(
            Some(&sel(json!({"matchLabels": {"zone": "b"}}))),
            &labels
        ));
        let expr = |op: &str, values: serde_json::Value| {
            sel(json!({"matchExpressions": [{"key": "zone", "operator": op, "values": values}]}))
        };
        assert!(selector_matches(Some(&expr("In", json!(["a", "b"]))), &labels));
        assert!(!selector_matches(Some(&expr("NotIn", json!(["a"]))), &labels));
        assert!(selector_matches(Some(&expr("Exists", json!(null))), &labels));
        assert!(!selector_matches(
            Some(&expr("DoesNotExist", json!(null))),
            &labels
        ));
        assert!(!selector_matches(Some(&expr("Gt", json!(["1"]))), &labels));
    }
}
