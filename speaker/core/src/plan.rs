//! The speaker's desired state, as one pure function of the objects it reads: what the cluster
//! announces ([`crate::desired`]), this node's facts ([`crate::node`]), the BGP sessions it must hold
//! and the routes it announces ([`crate::sessions`], [`crate::policy`]), and every configuration
//! problem to say. The speaker's planner task feeds [`compute_with`] from its indexes and publishes
//! each new state to the announcers.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::Arc,
    time::Duration,
};

use k8s_openapi::api::core::v1::Secret;
use oxelb_bgp::wire::{Prefix, Routes};
use oxelb_crds::v1alpha2::{BgpConf, BgpPeer, Eip};

use crate::{
    desired::{Announcement, desired},
    node::NodeFacts,
    policy::{self, BgpRoute, PolicyProblem, PoolPolicy},
    sessions::{SessionPlan, plan, resolve_passwords},
    view::{ServiceView, SliceView},
};

/// Changes arriving within this time are computed together.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// The longest wait between a change and the plan that follows it (see [`debounce_after`]).
const MAX_DEBOUNCE: Duration = Duration::from_secs(1);

/// How long to gather changes after a plan that took `spent`: [`DEBOUNCE`], or as long as the
/// plan took, up to [`MAX_DEBOUNCE`]. A plan recomputes the whole desired state, so while a burst
/// of changes arrives (50,000 Services created) replanning every 20 ms kept a core busy; waiting
/// as long as the last plan took holds the planner to about half a core, and in a small cluster
/// (plans of a millisecond) changes nothing.
pub fn debounce_after(spent: Duration) -> Duration {
    spent.clamp(DEBOUNCE, MAX_DEBOUNCE)
}

/// Everything this node should be doing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpeakerState {
    /// This node's facts; `None` while the Node object is unknown (nothing is announced then).
    pub node: Option<NodeFacts>,
    /// Every node's facts (layer2 election candidates).
    pub nodes: Vec<NodeFacts>,
    /// Every IP the cluster announces, with how.
    pub announcements: BTreeMap<IpAddr, Announcement>,
    /// The BGP sessions and listener of this node.
    pub sessions: SessionPlan,
    /// The routes this node announces over BGP (host routes, or a pool's aggregates), with their
    /// pool and attributes.
    pub bgp_routes: BTreeMap<Prefix, BgpRoute>,
    /// The routes each session (by BgpPeer name) gets: `bgp_routes` of the pools whose
    /// `peerSelector` selects the peer.
    pub peer_routes: BTreeMap<String, Arc<Routes>>,
    /// The announcement policy of each Eip that has `spec.advertisement` (`Eip.spec.advertisement`).
    pub policies: BTreeMap<String, PoolPolicy>,
    /// The nodes each layer2/vip pool with a `nodeSelector` may be answered from.
    pub layer2_nodes: BTreeMap<String, BTreeSet<String>>,
    /// Pools whose policy is malformed or cannot apply.
    pub policy_problems: Vec<PolicyProblem>,
}

/// The objects the speaker reads.
#[derive(Clone, Debug, Default)]
pub struct SpeakerSnapshot {
    /// The Services the speaker may announce (views shared with the index).
    pub services: Vec<Arc<ServiceView>>,
    /// All Nodes' facts.
    pub nodes: Vec<NodeFacts>,
    /// The EndpointSlices with a ready endpoint (views shared with the index).
    pub endpoint_slices: Vec<Arc<SliceView>>,
    /// All Eips.
    pub eips: Vec<Eip>,
    /// All BgpConfs.
    pub bgp_confs: Vec<BgpConf>,
    /// All BgpPeers.
    pub bgp_peers: Vec<BgpPeer>,
    /// The Secrets of the speakers' namespace (TCP-MD5 passwords by reference).
    pub secrets: Vec<Secret>,
    /// That namespace (for messages).
    pub namespace: String,
}

impl SpeakerSnapshot {
    /// The Secrets' data: name to key to value.
    fn secret_data(&self) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
        self.secrets
            .iter()
            .filter_map(|s| {
                let data = s
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .chain(
                        s.string_data
                            .iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), v.clone().into_bytes())),
                    )
                    .collect();
                Some((s.metadata.name.clone()?, data))
            })
            .collect()
    }
}

/// The desired state of node `node_name` (pure), with no policy applied before.
pub fn compute(snapshot: &SpeakerSnapshot, node_name: &str) -> SpeakerState {
    compute_with(snapshot, node_name, &BTreeMap::new())
}

/// The desired state of node `node_name` (pure); `last_good` are the pool policies applied
/// before, kept for a pool whose `spec.advertisement` is now malformed.
pub fn compute_with(
    snapshot: &SpeakerSnapshot,
    node_name: &str,
    last_good: &BTreeMap<String, PoolPolicy>,
) -> SpeakerState {
    let node = snapshot.nodes.iter().find(|n| n.name == node_name).cloned();
    let nodes: Vec<NodeFacts> = snapshot.nodes.clone();
    let announcements = desired(&snapshot.services, &snapshot.eips, &snapshot.endpoint_slices);
    let (policies, mut policy_problems) = policy::resolve(&snapshot.eips, last_good);
    let (sessions, bgp_routes, peer_routes) = match &node {
        Some(facts) => {
            let (peers, problems) =
                resolve_passwords(&snapshot.bgp_peers, &snapshot.secret_data(), &snapshot.namespace);
            let mut plan = plan(&snapshot.bgp_confs, &peers, facts);
            plan.problems.extend(problems);
            let routes = policy::bgp_routes(&announcements, facts, &policies);
            let per_peer = policy::peer_routes(&routes, &plan, &snapshot.bgp_peers, &policies);
            (plan, routes, per_peer)
        }
        None => (SessionPlan::default(), BTreeMap::new(), BTreeMap::new()),
    };
    policy_problems.extend(policy::not_applied(
        &snapshot.eips,
        &policies,
        &nodes,
        &snapshot.bgp_peers,
        &sessions,
    ));
    let layer2_nodes = policy::layer2_nodes(&snapshot.eips, &policies, &nodes);
    SpeakerState {
        node,
        nodes,
        announcements,
        sessions,
        bgp_routes,
        peer_routes,
        policies,
        layer2_nodes,
        policy_problems,
    }
}

/// A problem to say: (object, Event reason, message).
pub type Said = (String, &'static str, String);

/// Every problem of the state as (object, reason, message), one per object and reason (messages
/// joined): BgpConf/BgpPeer problems, unusable layer2 interfaces and pool policies that are
/// malformed (`InvalidConfig`) or cannot apply (`PolicyNotApplied`).
pub fn problems(state: &SpeakerState) -> Vec<Said> {
    let mut merged: BTreeMap<(String, &'static str), Vec<String>> = BTreeMap::new();
    let mut add = |object: String, reason: &'static str, message: String| {
        merged.entry((object, reason)).or_default().push(message);
    };
    for p in &state.sessions.problems {
        add(p.object.clone(), "InvalidConfig", p.message.clone());
    }
    for p in &state.policy_problems {
        add(format!("Eip/{}", p.pool), p.reason, p.message.clone());
    }
    let mut seen = BTreeSet::new();
    for a in state.announcements.values() {
        if let Some(Err(error)) = a.interface.as_deref()
            && seen.insert(a.pool.clone())
        {
            add(
                format!("Eip/{}", a.pool),
                "InvalidConfig",
                format!("spec.interface: {error}; its IPs are not announced"),
            );
        }
    }
    merged
        .into_iter()
        .map(|((object, reason), messages)| (object, reason, messages.join("; ")))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use oxelb_crds::names;
    use serde_json::{Value, json};

    use super::*;

    fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn changes_are_gathered_as_long_as_the_last_plan_took_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(debounce_after(ms(0)), DEBOUNCE);
        assert_eq!(debounce_after(ms(3)), DEBOUNCE);
        assert_eq!(debounce_after(ms(150)), ms(150));
        assert_eq!(debounce_after(Duration::from_secs(7)), MAX_DEBOUNCE);
    }

    #[test]
    fn computes_routes_sessions_and_problems_for_this_node() {
        let snapshot = SpeakerSnapshot {
            secrets: Vec::new(),
            namespace: "oxelb-system".into(),
            services: vec![Arc::new(
                crate::view::service(obj(
                    json!({"metadata": {"name": "web", "namespace": "default", "finalizers": [names::SERVICE_FINALIZER]},
                "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.5"}, {"ip": "192.0.2.5"}]}}}),
                ))
                .unwrap(),
            )],
            nodes: vec![
                crate::view::node(obj(
                    json!({"metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.0.2.11"}]}}),
                ))
                .unwrap(),
            ],
            eips: vec![
                obj(
                    json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip", "metadata": {"name": "bgp"}, "spec": {"address": "198.51.100.0/28"}}),
                ),
                obj(
                    json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip", "metadata": {"name": "l2"}, "spec": {"address": "192.0.2.0/28", "protocol": "layer2", "interface": "lo"}}),
                ),
            ],
            bgp_confs: vec![obj(
                json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpConf", "metadata": {"name": "default"}, "spec": {"as": 64512}}),
            )],
            bgp_peers: vec![
                obj(
                    json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpPeer", "metadata": {"name": "r1"}, "spec": {"conf": {"peerAs": 65001, "neighborAddress": "198.51.100.1"}}}),
                ),
                obj(
                    json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpPeer", "metadata": {"name": "bad"}, "spec": {"conf": {"peerAs": 65001}}}),
                ),
            ],
            ..SpeakerSnapshot::default()
        };
        let state = compute(&snapshot, "n1");
        assert_eq!(
            state.bgp_routes.keys().copied().collect::<Vec<_>>(),
            [Prefix::host("198.51.100.5".parse::<IpAddr>().unwrap())]
        );
        assert_eq!(state.sessions.sessions.keys().collect::<Vec<_>>(), vec!["r1"]);
        let found = problems(&state);
        assert!(
            found
                .iter()
                .any(|(o, _, m)| o == "BgpPeer/bad" && m.contains("neighborAddress")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(o, _, m)| o == "Eip/l2" && m.contains("spec.interface")),
            "{found:?}"
        );

        // Another node name: not this node, nothing to do.
        let other = compute(&snapshot, "n9");
        assert!(other.node.is_none() && other.bgp_routes.is_empty() && other.sessions.sessions.is_empty());
    }
}
