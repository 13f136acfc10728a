//! The per-pool announcement policy (`Eip.spec.advertisement`, an oxelb extension) as the speaker
//! applies it, in pure code: the Eips, the last policies applied, the BgpPeers and the Nodes in;
//! the policy of each pool, the routes each BGP session gets, the nodes each layer2 pool may be
//! answered from, and the problems to say as Warning Events out.
//!
//! - A pool whose block does not parse (no webhook checked it: the `dir:` source) keeps the policy
//!   this speaker last applied to it (none when it never saw a valid one): a bad edit changes
//!   nothing that is announced, and the errors become a Warning Event naming the field.
//! - `peerSelector` picks the BgpPeers (by label) that receive the pool's routes; the others never
//!   get them. `nodeSelector` picks the nodes (by label) that announce the pool (BGP) or are
//!   layer2 election candidates for it.
//! - `aggregationLength` turns each host route into the covering prefix: one route per block
//!   while this node announces at least one IP in it.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::Arc,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use oxelb_bgp::wire::{Attributes, Prefix, Routes};
use oxelb_crds::{
    names,
    v1alpha2::{AnnouncePolicy, BgpPeer, Eip, EipProtocol},
};

use crate::{
    desired::Announcement,
    node::{NodeFacts, selector_matches},
    sessions::SessionPlan,
};

/// The policy of one pool, resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolPolicy {
    /// The path attributes of every route of the pool (shared by them).
    pub attributes: Arc<Attributes>,
    /// The prefix length routes are aggregated to (`None`: host routes).
    pub aggregation: Option<u8>,
    /// Which BgpPeers receive the routes (`None`: all).
    pub peer_selector: Option<LabelSelector>,
    /// Which nodes announce or answer (`None`: all).
    pub node_selector: Option<LabelSelector>,
}

// `LabelSelector`'s equality is structural (derived), hence reflexive.
impl Eq for PoolPolicy {}

impl PoolPolicy {
    fn of(policy: AnnouncePolicy) -> Self {
        Self {
            attributes: Arc::new(Attributes {
                communities: policy.communities.iter().map(|c| c.0).collect(),
                large_communities: policy.large_communities.iter().map(|l| [l.0, l.1, l.2]).collect(),
                local_pref: policy.local_pref,
            }),
            aggregation: policy.aggregation,
            peer_selector: policy.peer_selector,
            node_selector: policy.node_selector,
        }
    }

    /// Whether the node with `labels` may announce (or answer for) the pool.
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> bool {
        selector_matches(self.node_selector.as_ref(), labels)
    }

    /// Whether a BgpPeer with `labels` receives the pool's routes.
    pub fn selects_peer(&self, labels: &BTreeMap<String, String>) -> bool {
        selector_matches(self.peer_selector.as_ref(), labels)
    }

    /// The prefix `ip` is announced under.
    pub fn prefix(&self, ip: IpAddr) -> Prefix {
        self.aggregation
            .and_then(|len| Prefix::new(ip, len))
            .unwrap_or_else(|| Prefix::host(ip))
    }
}

/// A pool's policy problem, said as a Warning Event on the Eip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyProblem {
    /// The Eip's name.
    pub pool: String,
    /// `InvalidConfig` (a malformed block) or `PolicyNotApplied` (it selects nothing, or
    /// LOCAL_PREF has no iBGP peer).
    pub reason: &'static str,
    /// What is wrong, naming the field.
    pub message: String,
}

/// The policy of every Eip whose block is set, by name: parsed, or for a malformed block the one
/// in `last_good` (the policy applied before; absent: the default). Problems name the fields.
pub fn resolve(
    eips: &[Eip],
    last_good: &BTreeMap<String, PoolPolicy>,
) -> (BTreeMap<String, PoolPolicy>, Vec<PolicyProblem>) {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for eip in eips {
        let Some(name) = eip.metadata.name.clone() else {
            continue;
        };
        if eip.spec.advertisement.is_none() {
            continue;
        }
        match eip.spec.announce_policy() {
            Ok(policy) => {
                out.insert(name, PoolPolicy::of(policy));
            }
            Err(errors) => {
                let kept = last_good.get(&name).cloned();
                let said: Vec<String> = errors.iter().map(ToString::to_string).collect();
                problems.push(PolicyProblem {
                    pool: name.clone(),
                    reason: "InvalidConfig",
                    message: format!(
                        "{}; the pool is announced as before ({})",
                        said.join("; "),
                        if kept.is_some() {
                            "with the last valid spec.advertisement"
                        } else {
                            "without spec.advertisement"
                        }
                    ),
                });
                if let Some(kept) = kept {
                    out.insert(name, kept);
                }
            }
        }
    }
    (out, problems)
}

/// A route of this node: its pool and attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpRoute {
    /// The Eip it comes from (shared with the announcement).
    pub pool: Arc<str>,
    /// Its attributes.
    pub attributes: Arc<Attributes>,
}

/// The routes this node announces over BGP (pure): every `bgp` IP, while the node may receive
/// load-balancer traffic, for `externalTrafficPolicy: Local` hosts a ready endpoint, and is
/// selected by the pool's `nodeSelector`; under the pool's aggregate when it has one. Every
/// eligible node announces itself as next hop, so routers spread traffic over them (ECMP).
pub fn bgp_routes(
    desired: &BTreeMap<IpAddr, Announcement>,
    node: &NodeFacts,
    policies: &BTreeMap<String, PoolPolicy>,
) -> BTreeMap<Prefix, BgpRoute> {
    let mut out = BTreeMap::new();
    if !node.eligible() {
        return out;
    }
    let plain = PoolPolicy::default();
    for a in desired.values().filter(|a| a.protocol == EipProtocol::Bgp) {
        let local_ok = a
            .local_nodes
            .as_ref()
            .is_none_or(|nodes| nodes.contains(&node.name));
        let policy = policies.get(&*a.pool).unwrap_or(&plain);
        if !local_ok || !policy.selects_node(&node.labels) {
            continue;
        }
        // Pools do not overlap (webhook), so neither do their aggregates; should two collide
        // anyway (dir: source), the first pool's route stands.
        out.entry(policy.prefix(a.ip)).or_insert_with(|| BgpRoute {
            pool: a.pool.clone(),
            attributes: policy.attributes.clone(),
        });
    }
    out
}

/// The routes each session of `plan` gets (pure): this node's routes of the pools whose
/// `peerSelector` selects the BgpPeer. Sessions receiving the same pools share one route set.
pub fn peer_routes(
    routes: &BTreeMap<Prefix, BgpRoute>,
    plan: &SessionPlan,
    peers: &[BgpPeer],
    policies: &BTreeMap<String, PoolPolicy>,
) -> BTreeMap<String, Arc<Routes>> {
    let pools: BTreeSet<&str> = routes.values().map(|r| &*r.pool).collect();
    let mut shared: BTreeMap<BTreeSet<&str>, Arc<Routes>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for name in plan.sessions.keys() {
        let labels = peer_labels(peers, name);
        let excluded: BTreeSet<&str> = pools
            .iter()
            .copied()
            .filter(|pool| policies.get(*pool).is_some_and(|p| !p.selects_peer(&labels)))
            .collect();
        let set = shared
            .entry(excluded)
            .or_insert_with_key(|excluded| {
                Arc::new(
                    routes
                        .iter()
                        .filter(|(_, r)| !excluded.contains(&*r.pool))
                        .map(|(prefix, r)| (*prefix, r.attributes.clone()))
                        .collect(),
                )
            })
            .clone();
        out.insert(name.clone(), set);
    }
    out
}

fn peer_labels(peers: &[BgpPeer], name: &str) -> BTreeMap<String, String> {
    peers
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .and_then(|p| p.metadata.labels.clone())
        .unwrap_or_default()
}

/// The nodes each layer2/vip pool with a `nodeSelector` may be answered from (pure; pools without
/// one are absent: every node). Computed from the Nodes' labels every speaker sees, so every
/// speaker elects among the same candidates.
pub fn layer2_nodes(
    eips: &[Eip],
    policies: &BTreeMap<String, PoolPolicy>,
    nodes: &[NodeFacts],
) -> BTreeMap<String, BTreeSet<String>> {
    eips.iter()
        .filter(|e| e.spec.protocol().needs_interface())
        .filter_map(|e| {
            let name = e.metadata.name.clone()?;
            let policy = policies.get(&name)?;
            policy.node_selector.as_ref()?;
            let selected = nodes
                .iter()
                .filter(|n| policy.selects_node(&n.labels))
                .map(|n| n.name.clone())
                .collect();
            Some((name, selected))
        })
        .collect()
}

/// Where a policy cannot apply (pure): a `nodeSelector` that selects no Node, a `peerSelector`
/// that selects no BgpPeer (of a bgp pool), and a `localPref` when this node sends the pool to
/// no iBGP peer (LOCAL_PREF is never sent over eBGP, RFC 4271 section 5.1.5).
pub fn not_applied(
    eips: &[Eip],
    policies: &BTreeMap<String, PoolPolicy>,
    nodes: &[NodeFacts],
    peers: &[BgpPeer],
    plan: &SessionPlan,
) -> Vec<PolicyProblem> {
    let mut out = Vec::new();
    let usable_peers: Vec<&BgpPeer> = peers
        .iter()
        .filter(|p| {
            !p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(names::CNI_LABEL))
        })
        .collect();
    for eip in eips {
        let Some(name) = eip.metadata.name.as_deref() else {
            continue;
        };
        let Some(policy) = policies.get(name) else {
            continue;
        };
        let mut say = |message: String| {
            out.push(PolicyProblem {
                pool: name.to_owned(),
                reason: "PolicyNotApplied",
                message,
            })
        };
        if policy.node_selector.is_some() && !nodes.iter().any(|n| policy.selects_node(&n.labels)) {
            say(
                "spec.advertisement.nodeSelector selects no Node: no node announces or answers for the pool"
                    .into(),
            );
        }
        if eip.spec.protocol() != EipProtocol::Bgp {
            continue;
        }
        let empty = BTreeMap::new();
        if policy.peer_selector.is_some()
            && !usable_peers
                .iter()
                .any(|p| policy.selects_peer(p.metadata.labels.as_ref().unwrap_or(&empty)))
        {
            say(
                "spec.advertisement.peerSelector selects no BgpPeer: the pool's routes go to no router"
                    .into(),
            );
        }
        if policy.attributes.local_pref.is_some() {
            let sent_to: Vec<bool> = plan
                .sessions
                .iter()
                .filter(|(peer, _)| policy.selects_peer(&peer_labels(peers, peer)))
                .map(|(_, s)| s.local_as == s.peer_as)
                .collect();
            if !sent_to.is_empty() && !sent_to.contains(&true) {
                say("spec.advertisement.localPref: every BgpPeer this node sends the pool to is eBGP; LOCAL_PREF is sent to iBGP peers only (RFC 4271 section 5.1.5)".into());
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::sessions::plan;

    fn eip(name: &str, spec: Value) -> Eip {
        serde_json::from_value(
            json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
            "metadata": {"name": name}, "spec": spec}),
        )
        .unwrap()
    }

    fn node(name: &str, labels: Value) -> NodeFacts {
        let n: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.0.2.11"}]}}))
        .unwrap();
        NodeFacts::of(&n)
    }

    fn peer(name: &str, asn: u32, labels: Value) -> BgpPeer {
        serde_json::from_value(
            json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpPeer",
            "metadata": {"name": name, "labels": labels},
            "spec": {"conf": {"peerAs": asn, "neighborAddress": "198.51.100.1"}}}),
        )
        .unwrap()
    }

    fn announcement(ip: &str, pool: &str) -> (IpAddr, Announcement) {
        let ip: IpAddr = ip.parse().unwrap();
        (
            ip,
            Announcement {
                ip,
                pool: pool.into(),
                protocol: EipProtocol::Bgp,
                interface: None,
                services: vec!["default/web".into()],
                local_nodes: None,
            },
        )
    }

    #[test]
    fn a_malformed_block_keeps_the_last_valid_policy() {
        let good = eip(
            "blue",
            json!({"address": "198.51.100.0/24", "advertisement": {"communities": ["no-export"]}}),
        );
        let (first, problems) = resolve(std::slice::from_ref(&good), &BTreeMap::new());
        assert!(problems.is_empty());
        assert_eq!(first["blue"].attributes.communities, vec![0xFFFF_FF01]);
        let bad = eip(
            "blue",
            json!({"address": "198.51.100.0/24", "advertisement": {"communities": ["no-exprot"], "aggregationLength": 16}}),
        );
        let (kept, problems) = resolve(std::slice::from_ref(&bad), &first);
        assert_eq!(kept, first, "nothing announced changes");
        assert_eq!(problems.len(), 1);
        assert_eq!(
            (problems[0].pool.as_str(), problems[0].reason),
            ("blue", "InvalidConfig")
        );
        let m = &problems[0].message;
        assert!(
            m.contains("spec.advertisement.communities[0]")
                && m.contains("spec.advertisement.aggregationLength")
                && m.contains("last valid"),
            "{m}"
        );
        let (fresh, problems) = resolve(&[bad], &BTreeMap::new());
        assert!(fresh.is_empty(), "never valid: the default policy");
        assert!(problems[0].message.contains("without spec.advertisement"));
        let (none, _) = resolve(
            &[eip("plain", json!({"address": "192.0.2.0/24"}))],
            &BTreeMap::new(),
        );
        assert!(none.is_empty());
    }

    #[test]
    fn routes_follow_node_selector_aggregation_and_peer_selector() {
        let eips = [
            eip(
                "agg",
                json!({"address": "198.51.100.0/24", "advertisement": {
                "aggregationLength": 28, "communities": ["65000:1"],
                "peerSelector": {"matchLabels": {"vrf": "blue"}}}}),
            ),
            eip(
                "edge",
                json!({"address": "203.0.113.0/24", "advertisement": {
                "nodeSelector": {"matchLabels": {"edge": "true"}}}}),
            ),
            eip("plain", json!({"address": "192.0.2.0/24"})),
        ];
        let (policies, _) = resolve(&eips, &BTreeMap::new());
        let desired: BTreeMap<IpAddr, Announcement> = [
            announcement("198.51.100.1", "agg"),
            announcement("198.51.100.2", "agg"),
            announcement("198.51.100.17", "agg"),
            announcement("203.0.113.5", "edge"),
            announcement("192.0.2.5", "plain"),
        ]
        .into();
        let edge = node("n1", json!({"edge": "true"}));
        let core = node("n2", json!({}));
        let on_edge = bgp_routes(&desired, &edge, &policies);
        let names = |r: &BTreeMap<Prefix, BgpRoute>| r.keys().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            names(&on_edge),
            [
                "192.0.2.5/32",
                "198.51.100.0/28",
                "198.51.100.16/28",
                "203.0.113.5/32"
            ],
            "two /28 aggregates for three IPs"
        );
        assert_eq!(
            names(&bgp_routes(&desired, &core, &policies)),
            ["192.0.2.5/32", "198.51.100.0/28", "198.51.100.16/28"],
            "a node outside the nodeSelector never announces the pool"
        );
        assert_eq!(
            on_edge[&Prefix::new("198.51.100.0".parse().unwrap(), 28).unwrap()]
                .attributes
                .communities,
            vec![0xFDE8_0001]
        );

        let conf: oxelb_crds::v1alpha2::BgpConf =
            serde_json::from_value(json!({"apiVersion": "network.kubesphere.io/v1alpha2",
            "kind": "BgpConf", "metadata": {"name": "default"}, "spec": {"as": 64512}}))
            .unwrap();
        let peers = [
            peer("blue", 65001, json!({"vrf": "blue"})),
            peer("red", 65002, json!({"vrf": "red"})),
            peer("red2", 65003, json!({"vrf": "red"})),
        ];
        let plan = plan(&[conf], &peers, &edge);
        let per_peer = peer_routes(&on_edge, &plan, &peers, &policies);
        let keys = |r: &Routes| r.keys().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(keys(&per_peer["blue"]), names(&on_edge));
        assert_eq!(
            keys(&per_peer["red"]),
            ["192.0.2.5/32", "203.0.113.5/32"],
            "a peer outside the peerSelector never gets the pool"
        );
        assert!(
            Arc::ptr_eq(&per_peer["red"], &per_peer["red2"]),
            "equal sets are shared"
        );

        // IPv6: aggregationLengthV6.
        let v6 = [eip(
            "v6",
            json!({"address": "2001:db8:1::/64", "advertisement": {"aggregationLengthV6": 64}}),
        )];
        let (policies, problems) = resolve(&v6, &BTreeMap::new());
        assert!(problems.is_empty(), "{problems:?}");
        let desired: BTreeMap<IpAddr, Announcement> = [
            announcement("2001:db8:1::5", "v6"),
            announcement("2001:db8:1::6", "v6"),
        ]
        .into();
        assert_eq!(
            names(&bgp_routes(&desired, &core, &policies)),
            ["2001:db8:1::/64"]
        );
    }

    #[test]
    fn layer2_candidates_and_policies_that_cannot_apply() {
        let eips = [
            eip(
                "l2",
                json!({"address": "192.0.2.0/28", "protocol": "layer2", "interface": "eth0",
                "advertisement": {"nodeSelector": {"matchLabels": {"vlan": "10"}}}}),
            ),
            eip(
                "nobody",
                json!({"address": "198.51.100.0/24", "advertisement": {
                "nodeSelector": {"matchLabels": {"zone": "mars"}},
                "peerSelector": {"matchLabels": {"vrf": "none"}}, "localPref": 300}}),
            ),
            eip(
                "pref",
                json!({"address": "203.0.113.0/24", "advertisement": {"localPref": 300}}),
            ),
        ];
        let (policies, _) = resolve(&eips, &BTreeMap::new());
        let nodes = [node("a", json!({"vlan": "10"})), node("b", json!({"vlan": "20"}))];
        assert_eq!(
            layer2_nodes(&eips, &policies, &nodes),
            [("l2".to_owned(), ["a".to_owned()].into())].into()
        );
        let conf: oxelb_crds::v1alpha2::BgpConf =
            serde_json::from_value(json!({"apiVersion": "network.kubesphere.io/v1alpha2",
            "kind": "BgpConf", "metadata": {"name": "default"}, "spec": {"as": 64512}}))
            .unwrap();
        let ebgp = [peer("r1", 65001, json!({}))];
        let p = plan(std::slice::from_ref(&conf), &ebgp, &nodes[0]);
        let problems = not_applied(&eips, &policies, &nodes, &ebgp, &p);
        let said: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.pool.as_str(), p.message.split(' ').next().unwrap_or_default()))
            .collect();
        assert_eq!(
            said,
            [
                ("nobody", "spec.advertisement.nodeSelector"),
                ("nobody", "spec.advertisement.peerSelector"),
                ("pref", "spec.advertisement.localPref:"),
            ]
        );
        let ibgp = [peer("r1", 64512, json!({}))];
        let p = plan(&[conf], &ibgp, &nodes[0]);
        assert!(
            !not_applied(&eips, &policies, &nodes, &ibgp, &p)
                .iter()
                .any(|p| p.pool == "pref"),
            "an iBGP peer takes LOCAL_PREF"
        );
    }
}
