//! The layer2 election as this node sees it (pure): the candidates from the speaker's state and
//! what the heartbeats say of the peers ([`PeerView`]), the outcome for every layer2/vip IP
//! ([`layer2_outcomes`]), the IPs this node answers ([`my_ips`]), and the digest of the view
//! that heartbeats carry so that peers can tell when their views agree ([`view_digest`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use oxelb_crds::v1alpha2::EipProtocol;

use crate::{
    election::{Candidate, Contest, Outcome, announced_by, elect},
    plan::SpeakerState,
    standin::{Evidence, stand_in},
};

/// The digest of this speaker's layer2 view, as heartbeats carry it (pure): every layer2/vip IP
/// with its pool and Local nodes, every Node's facts, every node's serving pools (this node's
/// own, the others' as last heard, dead or alive), and the nodes each pool's `nodeSelector`
/// admits (`spec.advertisement`). Liveness is left out, so a failover does not
/// make views disagree. SHA-256, first 8 bytes, over a canonical text.
pub fn view_digest(
    state: &SpeakerState,
    me: &str,
    my_pools: &BTreeSet<String>,
    serving: &BTreeMap<String, BTreeSet<String>>,
) -> u64 {
    use std::fmt::Write as _;
    let mut text = String::new();
    for a in state
        .announcements
        .values()
        .filter(|a| matches!(a.protocol, EipProtocol::Layer2 | EipProtocol::Vip))
    {
        let _ = write!(text, "ip {} {} ", a.ip, a.pool);
        match &a.local_nodes {
            None => text.push_str("cluster\n"),
            Some(nodes) => {
                text.push_str("local");
                for n in nodes.iter() {
                    let _ = write!(text, " {n}");
                }
                text.push('\n');
            }
        }
    }
    let mut nodes: Vec<&crate::node::NodeFacts> = state.nodes.iter().collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let empty = BTreeSet::new();
    for n in nodes {
        let pools = if n.name == me {
            my_pools
        } else {
            serving.get(&n.name).unwrap_or(&empty)
        };
        let _ = write!(
            text,
            "node {} {} {} {}",
            n.name, n.ready, n.network_unavailable, n.excluded
        );
        for pool in pools {
            let _ = write!(text, " {pool}");
        }
        text.push('\n');
    }
    for (pool, nodes) in &state.layer2_nodes {
        let _ = write!(text, "select {pool}");
        for n in nodes {
            let _ = write!(text, " {n}");
        }
        text.push('\n');
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// What the heartbeats say about the other speakers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerView {
    /// The speakers alive, this one included.
    pub alive: BTreeSet<String>,
    /// The pools each live peer can serve.
    pub serving: BTreeMap<String, BTreeSet<String>>,
}

/// The IPs this node must answer for, with their pool (pure). `my_pools` are the layer2/vip pools
/// whose interface this node has; `view` what heartbeats say (`None`: heartbeats off).
pub fn my_ips(
    state: &SpeakerState,
    me: &str,
    my_pools: &BTreeSet<String>,
    view: Option<&PeerView>,
) -> BTreeMap<IpAddr, String> {
    let outcomes = layer2_outcomes(state, me, my_pools, view);
    announced_by(&outcomes, me)
        .into_iter()
        .filter_map(|ip| Some((ip, state.announcements.get(&ip)?.pool.to_string())))
        .collect()
}

/// The election outcome of every layer2/vip IP, as this node sees it (pure).
pub fn layer2_outcomes(
    state: &SpeakerState,
    me: &str,
    my_pools: &BTreeSet<String>,
    view: Option<&PeerView>,
) -> BTreeMap<IpAddr, Outcome> {
    let (candidates, contests) = layer2_contests(state, me, my_pools, view);
    elect(&candidates, &contests)
}

/// The election outcome of every layer2/vip IP with stand-ins for live peers stuck without it
/// ([`crate::standin`]), and the IPs whose outcome is a stand-in's (pure).
pub fn layer2_outcomes_standing_in(
    state: &SpeakerState,
    me: &str,
    my_pools: &BTreeSet<String>,
    view: Option<&PeerView>,
    evidence: &Evidence,
) -> (BTreeMap<IpAddr, Outcome>, BTreeSet<IpAddr>) {
    let (candidates, contests) = layer2_contests(state, me, my_pools, view);
    let mut outcomes = elect(&candidates, &contests);
    let stood_in = stand_in(&mut outcomes, &candidates, &contests, evidence);
    (outcomes, stood_in)
}

/// The layer2/vip IPs of this node's view (what its claims list as known).
pub fn layer2_ips(state: &SpeakerState) -> BTreeSet<IpAddr> {
    state
        .announcements
        .iter()
        .filter(|(_, a)| matches!(a.protocol, EipProtocol::Layer2 | EipProtocol::Vip))
        .map(|(ip, _)| *ip)
        .collect()
}

/// The candidates and contests of the layer2 election as this node sees it.
fn layer2_contests(
    state: &SpeakerState,
    me: &str,
    my_pools: &BTreeSet<String>,
    view: Option<&PeerView>,
) -> (Vec<Candidate>, Vec<Contest>) {
    let layer2: BTreeMap<IpAddr, &crate::desired::Announcement> = state
        .announcements
        .iter()
        .filter(|(_, a)| matches!(a.protocol, EipProtocol::Layer2 | EipProtocol::Vip))
        .map(|(ip, a)| (*ip, a))
        .collect();
    let all_pools: BTreeSet<String> = layer2.values().map(|a| a.pool.to_string()).collect();
    let candidates: Vec<Candidate> = state
        .nodes
        .iter()
        .map(|n| {
            let mut pools = if n.name == me {
                my_pools.clone()
            } else {
                match view {
                    Some(view) => view.serving.get(&n.name).cloned().unwrap_or_default(),
                    None => all_pools.clone(),
                }
            };
            // A pool's `nodeSelector` (spec.advertisement): a node it does not select is no
            // candidate for the pool, computed from Node labels every speaker sees alike.
            pools.retain(|pool| {
                state
                    .layer2_nodes
                    .get(pool)
                    .is_none_or(|selected| selected.contains(&n.name))
            });
            Candidate {
                name: n.name.clone(),
                alive: match view {
                    Some(view) => n.name == me || view.alive.contains(&n.name),
                    None => n.ready,
                },
                ready: n.ready && !n.network_unavailable,
                excluded: n.excluded,
                pools,
            }
        })
        .collect();
    let contests: Vec<Contest> = layer2
        .values()
        .map(|a| Contest {
            ip: a.ip,
            pool: a.pool.to_string(),
            local_nodes: a
                .local_nodes
                .as_ref()
                .map(|nodes| nodes.iter().map(str::to_owned).collect()),
        })
        .collect();
    (candidates, contests)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
