//! Who announces which layer2 IP, in pure code (no kube client, no socket, no clock).
//!
//! Every speaker runs the same function over the same facts and so computes the same winner per
//! IP, without talking to the others: the facts come from the watches (Nodes, EndpointSlices, Eips)
//! and from the liveness detector ([`crate::liveness`]), whose views agree within `dead_after`.
//!
//! # Eligibility
//! A candidate node may announce an IP when, in this order:
//! 1. its speaker is alive (per the liveness detector),
//! 2. the Node is Ready (and not `NetworkUnavailable`) and not labelled
//!    `node.kubernetes.io/exclude-from-external-load-balancers`,
//! 3. it has the interface of the IP's pool (only the node itself knows its NICs; it says which
//!    pools it can serve in its heartbeat),
//! 4. for `externalTrafficPolicy: Local`, it hosts a ready endpoint of the IP's Service(s).
//!
//! When nobody is left, the [`NoEligibleReason`] names the *first* of these steps after which no
//! candidate remained, so the Warning Event points at the most fundamental problem ("no speaker is
//! alive" rather than "no endpoint", when both are true).
//!
//! # Winner: rendezvous hashing
//! Among the eligible candidates the winner is the one with the highest [`weight`] of
//! (node name, IP): highest-random-weight (rendezvous) hashing, Thaler & Ravishankar 1998. Each IP
//! ranks the nodes independently, so when a node leaves only the IPs it won move (each to the next
//! node of its own ranking) and when a node joins it takes only the IPs it now ranks first for; the
//! others keep their winner and clients see no take-over for them. Ties (a 64-bit collision) go to
//! the lexicographically smaller name, so the order is total.
//!
//! The weight must be the same in every speaker, whatever its version, process or CPU: it is the
//! first 8 bytes, big-endian, of SHA-256 over `node name` `0x00` `IP text` (the IP in its
//! [`std::fmt::Display`] form: dotted quad, or the RFC 5952 canonical text for IPv6). It is never
//! std's `DefaultHasher`, whose algorithm is unspecified and may change between Rust releases.
//! Changing this function moves IPs during a rolling upgrade: it is pinned by a golden test.
//!
//! # Shared IPs
//! Several Services may share one IP; the election is per IP, never per Service, or two nodes could
//! answer ARP for one address. For `externalTrafficPolicy: Local` the eligible endpoint nodes are the
//! **union** of the endpoint nodes of the IP's Local Services. The sharing rule (as MetalLB's) only
//! lets Local Services share an IP when they select the same pods, so the sets agree in practice;
//! should they not, the union keeps at least one Service served rather than none (an intersection
//! could be empty). A Cluster Service sharing the IP with a Local one adds no restriction: any node
//! can serve it, so the Local Services' nodes decide. This matches [`crate::desired`], which already
//! merges the holders of one IP; [`elect`] merges again when it is handed one [`Contest`] per
//! Service, so either form gives the same result.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

/// The facts about one candidate node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidate {
    /// The Node's name.
    pub name: String,
    /// Its speaker is alive per the liveness detector.
    pub alive: bool,
    /// The Node is Ready (and not `NetworkUnavailable`).
    pub ready: bool,
    /// The Node is labelled `node.kubernetes.io/exclude-from-external-load-balancers`.
    pub excluded: bool,
    /// The layer2/vip pools (Eip names) whose interface this node has.
    pub pools: BTreeSet<String>,
}

impl Candidate {
    /// A live, Ready, not excluded candidate serving `pools`: the common case, for callers and tests.
    pub fn healthy<I, S>(name: impl Into<String>, pools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.into(),
            alive: true,
            ready: true,
            excluded: false,
            pools: pools.into_iter().map(Into::into).collect(),
        }
    }
}

/// One IP to elect a winner for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contest {
    /// The IP.
    pub ip: IpAddr,
    /// The Eip (pool) it belongs to: the candidate needs that pool's interface.
    pub pool: String,
    /// `None` for `externalTrafficPolicy: Cluster`; for Local, the nodes hosting a ready endpoint.
    pub local_nodes: Option<BTreeSet<String>>,
}

/// Why no node may announce an IP (for a Warning Event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
pub enum NoEligibleReason {
    /// No candidate's speaker is alive.
    #[error("no live speaker")]
    NoLiveSpeaker,
    /// Every node with a live speaker is NotReady, NetworkUnavailable or excluded from load balancers.
    #[error("every node with a live speaker is not Ready or is excluded from external load balancers")]
    AllExcludedOrNotReady,
    /// No live, Ready, not excluded node has the interface of the IP's pool.
    #[error("no live, Ready, not excluded node has the pool's interface")]
    NoNodeHasInterface,
    /// `externalTrafficPolicy: Local` and none of the remaining nodes hosts a ready endpoint.
    #[error("externalTrafficPolicy Local and no eligible node hosts a ready endpoint")]
    NoReadyEndpoint,
}

/// The result of the election of one IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// This node announces the IP.
    Winner(String),
    /// Nobody may announce it.
    NoEligibleNode(NoEligibleReason),
}

impl Outcome {
    /// The winner's name, if any.
    pub fn winner(&self) -> Option<&str> {
        match self {
            Outcome::Winner(node) => Some(node),
            Outcome::NoEligibleNode(_) => None,
        }
    }
}

/// The rendezvous weight of `node` for `ip`: the first 8 bytes (big-endian) of
/// SHA-256(`node` `0x00` `ip.to_string()`). Specified exactly so that it never changes across
/// processes, versions and architectures (see the module docs).
pub fn weight(node: &str, ip: IpAddr) -> u64 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(node.as_bytes());
    // The separator keeps ("ab", "1…") and ("a", "b1…") apart; node names never contain NUL.
    ctx.update(&[0]);
    ctx.update(ip.to_string().as_bytes());
    let digest = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// One node's merged facts (duplicates of a name are merged conservatively, see [`elect`]).
#[derive(Debug)]
struct Facts<'a> {
    alive: bool,
    ready: bool,
    excluded: bool,
    pools: BTreeSet<&'a str>,
}

/// One IP's merged contest.
#[derive(Debug)]
struct Merged<'a> {
    pools: BTreeSet<&'a str>,
    /// `None`: every contest was Cluster.
    local_nodes: Option<BTreeSet<&'a str>>,
}

fn merge_candidates(candidates: &[Candidate]) -> BTreeMap<&str, Facts<'_>> {
    let mut out: BTreeMap<&str, Facts<'_>> = BTreeMap::new();
    for c in candidates {
        let pools: BTreeSet<&str> = c.pools.iter().map(String::as_str).collect();
        out.entry(c.name.as_str())
            .and_modify(|f| {
                // A name given twice with different facts: trust the worse, whatever the order.
                f.alive &= c.alive;
                f.ready &= c.ready;
                f.excluded |= c.excluded;
                f.pools = f.pools.intersection(&pools).copied().collect();
            })
            .or_insert(Facts {
                alive: c.alive,
                ready: c.ready,
                excluded: c.excluded,
                pools,
            });
    }
    out
}

fn merge_contest<'a>(into: &mut Merged<'a>, contest: &'a Contest) {
    into.pools.insert(contest.pool.as_str());
    if let Some(nodes) = &contest.local_nodes {
        into.local_nodes
            .get_or_insert_with(BTreeSet::new)
            .extend(nodes.iter().map(String::as_str));
    }
}

fn decide(facts: &BTreeMap<&str, Facts<'_>>, ip: IpAddr, contest: &Merged<'_>) -> Outcome {
    // The steps of the module docs, in order; the reason is the first step that leaves nobody.
    let alive: Vec<(&str, &Facts<'_>)> = facts
        .iter()
        .filter(|(_, f)| f.alive)
        .map(|(n, f)| (*n, f))
        .collect();
    if alive.is_empty() {
        return Outcome::NoEligibleNode(NoEligibleReason::NoLiveSpeaker);
    }
    let usable: Vec<_> = alive
        .into_iter()
        .filter(|(_, f)| f.ready && !f.excluded)
        .collect();
    if usable.is_empty() {
        return Outcome::NoEligibleNode(NoEligibleReason::AllExcludedOrNotReady);
    }
    // An IP merged from several pools (should not happen: an IP lies in one Eip) needs all of them.
    let wired: Vec<_> = usable
        .into_iter()
        .filter(|(_, f)| contest.pools.is_subset(&f.pools))
        .collect();
    if wired.is_empty() {
        return Outcome::NoEligibleNode(NoEligibleReason::NoNodeHasInterface);
    }
    let eligible = wired.into_iter().filter(|(name, _)| match &contest.local_nodes {
        None => true,
        Some(nodes) => nodes.contains(name),
    });
    // Highest weight; on a tie the smaller name (max_by_key keeps the last maximum, and the names
    // come sorted, so compare on (weight, Reverse(name)) to make the smaller name the maximum).
    eligible
        .map(|(name, _)| (weight(name, ip), std::cmp::Reverse(name)))
        .max()
        .map_or(
            Outcome::NoEligibleNode(NoEligibleReason::NoReadyEndpoint),
            |(_, std::cmp::Reverse(name))| Outcome::Winner(name.to_owned()),
        )
}

/// Elects the winner of every IP of `contests` among `candidates`.
///
/// The result depends only on the *sets* given, not on their order. Contests naming the same IP
/// (one per sharing Service) are merged: Local endpoint nodes are unioned, a Cluster contest adds no
/// restriction, and a candidate must serve every pool named (see the module docs). A candidate name
/// given twice is merged conservatively (alive and Ready only if every entry says so, excluded if
/// any does, the intersection of the pools).
pub fn elect(candidates: &[Candidate], contests: &[Contest]) -> BTreeMap<IpAddr, Outcome> {
    let facts = merge_candidates(candidates);
    let mut merged: BTreeMap<IpAddr, Merged<'_>> = BTreeMap::new();
    for contest in contests {
        let entry = merged.entry(contest.ip).or_insert_with(|| Merged {
            pools: BTreeSet::new(),
            local_nodes: None,
        });
        merge_contest(entry, contest);
    }
    merged
        .into_iter()
        .map(|(ip, contest)| (ip, decide(&facts, ip, &contest)))
        .collect()
}

/// Elects the winner of one IP (a single contest; see [`elect`] for shared IPs).
pub fn elect_one(candidates: &[Candidate], contest: &Contest) -> Outcome {
    let facts = merge_candidates(candidates);
    let mut merged = Merged {
        pools: BTreeSet::new(),
        local_nodes: None,
    };
    merge_contest(&mut merged, contest);
    decide(&facts, contest.ip, &merged)
}

/// The IPs `node` must announce: those it won.
///
/// The caller must also hold standing (see [`crate::liveness`]): a speaker that lost its majority
/// view announces nothing, whatever this returns.
pub fn announced_by(outcomes: &BTreeMap<IpAddr, Outcome>, node: &str) -> BTreeSet<IpAddr> {
    outcomes
        .iter()
        .filter(|(_, outcome)| outcome.winner() == Some(node))
        .map(|(ip, _)| *ip)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
