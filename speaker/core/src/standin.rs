//! Standing in for a peer whose API view is stuck, and the rule for beginning an IP, in pure code
//! (no socket, no clock: time is a `Duration` passed in).
//!
//! # The problem (issue 24)
//! A speaker's watch can hang without an error (half-open TCP, an overloaded apiserver, a proxy):
//! it keeps sending heartbeats, so the others count it alive, and elect it for the new IPs its
//! rendezvous weight wins. It has never heard of them and answers nothing; the others defer to
//! it; the IPs are black-holed for as long as the watch hangs (minutes).
//!
//! # Standing in
//! Every speaker sends, with each heartbeat, its claims ([`crate::liveness::Claims`]): a Bloom
//! filter of the IPs its applied view holds, those it answers and those it waits to begin, and
//! its **progress**: the highest `resourceVersion` among the Service events it has applied.
//! Speaker `me` stands in for peer `w` on IP `x` ([`stand_in`]) when:
//! 1. `w` **lacks** `x`: a filter of `w`'s current view does not hold `x` (a Bloom filter has no
//!    false negatives, so this is a proof; every filter is salted anew, so a false positive does
//!    not persist), and
//! 2. `w` is **behind**: its progress is lower than `me`'s. On an etcd-backed apiserver a
//!    `resourceVersion` is the etcd revision of the change, one order for the whole cluster, so a
//!    lower progress means `w` has not seen changes `me` has. This is what tells a stuck view from
//!    a fresh one whatever the number of nodes (two included), and which side is stuck: a speaker
//!    that lacks an IP because the Service was *deleted* is ahead, not behind, and nobody stands in
//!    for it.
//!
//! The IP is then elected again without `w` (and without any other live peer that lacks it and is
//! behind). Every speaker with the fresh view computes the same stand-in from the same claims. A
//! progress of 0 (unknown: the `dir:` source, or an apiserver whose versions are not numbers)
//! never stands in for anyone, which is the behaviour before this rule.
//!
//! # Beginning an IP ([`Handover`])
//! A speaker begins answering an IP it won (as winner or stand-in) only when no live peer may
//! answer it, on one of two paths:
//! - **agreed** (fast, failover and hand-over): every live peer announces the same view digest, so
//!   every one elected the same node; and no peer's latest claims may hold the IP as answered or
//!   wanted (a stand-in that has not let go yet, or a node about to stand in).
//! - **bounded** (slow: a peer's view disagrees): once the IP has waited
//!   [`crate::liveness::LivenessConfig::settle_bound`] (2 s) since it was first won, and no live
//!   peer's latest claims may hold it as answered, nor as wanted by a peer with a smaller name.
//!
//! While it waits, the speaker lists the IP as wanted (`Intent`) in its claims. Why two never
//! answer: two speakers that both begin an IP at `t1 <= t2` (say `a` at `t1`) each checked the
//! other's latest claims. `a`'s answer is in every claims datagram `a` sends after `t1`; `b`'s
//! check at `t2` saw a datagram of `a` received within `dead_after` (else `a` is not alive to
//! `b`), so that datagram was sent before `t1`, within `dead_after` plus the transit of `t2`. On
//! the bounded path `b` wanted the IP for the settle bound before `t2`, which is longer than
//! `dead_after` plus three intervals (`LivenessConfig::new` makes it ten detection times), so
//! every claims datagram `b` sent since `t2 - dead_after - 2 intervals` says so, and `a`'s check
//! at `t1` saw one of them: `a` did not begin unless `a`'s name is smaller, in which case `b`,
//! seeing `a` want it, did not begin either. On the agreed path `a` and `b` computed the same
//! winner, so one of them began as a stand-in, on the bounded path, wanting it all along: the
//! other saw that and waited. The IP may move once when a stuck view recovers: the stand-in
//! lets go (the recovered peer no longer lacks it), and the winner begins on the next claims
//! that no longer hold it, one heartbeat interval later.
//!
//! A peer of the previous version sends no claims (`legacy`): for it the rule is the one before,
//! the bounded path alone.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    time::Duration,
};

use crate::{
    election::{Candidate, Contest, Outcome, elect_one},
    liveness::claims::{ClaimFilter, ClaimTag},
};

/// The false-positive rate above which a peer's claims are too full to hold IPs back.
pub const SATURATED: f64 = 0.05;

/// What a live peer's claims say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerEvidence {
    /// The digest of the view its claims describe.
    pub view: u64,
    /// Its progress (the highest Service `resourceVersion` it applied; 0: unknown).
    pub progress: u64,
    /// Its latest filter: what it answers and wants now.
    pub latest: ClaimFilter,
    /// Its recent filters of the same view: what that view lacks.
    pub proofs: Vec<ClaimFilter>,
}

impl PeerEvidence {
    /// Proven: its current view does not hold `ip`.
    pub fn lacks(&self, ip: IpAddr) -> bool {
        self.proofs
            .iter()
            .any(|filter| !filter.may_contain(ClaimTag::Known, ip))
    }

    /// It may answer `ip` (its latest claims hold it as answered; `false` is a proof).
    pub fn may_answer(&self, ip: IpAddr) -> bool {
        self.latest.may_contain(ClaimTag::Answering, ip)
    }

    /// It may want to begin `ip`.
    pub fn may_want(&self, ip: IpAddr) -> bool {
        self.latest.may_contain(ClaimTag::Intent, ip)
    }

    /// Its latest filter holds too many items for its size (more than [`SATURATED`] false
    /// positives): its "may answer" and "may want" would hold back nearly every IP, forever. A
    /// saturated peer's claims still prove what its view lacks (a Bloom filter has no false
    /// negatives), but the begin checks leave them out and fall back to the rule before claims
    /// (agreement, or the bound). One datagram's filter holds about 700 tagged IPs at 1 %.
    pub fn saturated(&self) -> bool {
        self.latest.false_positive_rate() > SATURATED
    }
}

/// What this speaker knows of its live peers' claims.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// This speaker.
    pub me: String,
    /// This speaker's progress.
    pub progress: u64,
    /// The live peers that send claims.
    pub peers: BTreeMap<String, PeerEvidence>,
    /// The live peers that send none (a previous version).
    pub legacy: BTreeSet<String>,
}

impl Evidence {
    /// Whether `peer` provably lacks `ip` and is behind this speaker (see the module docs).
    pub fn stuck_without(&self, peer: &str, ip: IpAddr) -> bool {
        self.progress > 0
            && self
                .peers
                .get(peer)
                .is_some_and(|p| p.progress < self.progress && p.lacks(ip))
    }

    /// The agreed path's check: no live peer may answer or want `ip`. Saturated claims are
    /// left out ([`PeerEvidence::saturated`]): for those peers agreement alone decides, as it
    /// did before claims existed.
    pub fn clear_when_agreed(&self, ip: IpAddr) -> bool {
        self.peers
            .values()
            .filter(|p| !p.saturated())
            .all(|p| !p.may_answer(ip) && !p.may_want(ip))
    }

    /// The bounded path's check: no live peer may answer `ip`, none with a smaller name wants it
    /// (saturated claims left out, as in [`clear_when_agreed`](Self::clear_when_agreed)).
    pub fn clear_when_bounded(&self, ip: IpAddr) -> bool {
        self.peers
            .iter()
            .filter(|(_, p)| !p.saturated())
            .all(|(name, p)| !(p.may_answer(ip) || (p.may_want(ip) && name.as_str() < self.me.as_str())))
    }

    /// The live peers whose claims keep `ip` from being begun (for logs).
    pub fn blocking(&self, ip: IpAddr) -> BTreeSet<String> {
        self.peers
            .iter()
            .filter(|(_, p)| p.may_answer(ip) || p.may_want(ip))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// The outcomes with stand-ins: every IP whose winner is a live peer stuck without it
/// ([`Evidence::stuck_without`]) is elected again without that peer, as often as the new winner
/// is stuck too (at most once per candidate). Returns the IPs elected again.
pub fn stand_in(
    outcomes: &mut BTreeMap<IpAddr, Outcome>,
    candidates: &[Candidate],
    contests: &[Contest],
    evidence: &Evidence,
) -> BTreeSet<IpAddr> {
    let mut stood_in = BTreeSet::new();
    if evidence.progress == 0 {
        return stood_in;
    }
    for contest in contests {
        let Some(outcome) = outcomes.get(&contest.ip) else {
            continue;
        };
        let mut excluded: BTreeSet<String> = BTreeSet::new();
        let mut current = outcome.clone();
        while let Some(winner) = current.winner() {
            if !evidence.stuck_without(winner, contest.ip) || excluded.len() >= candidates.len() {
                break;
            }
            excluded.insert(winner.to_owned());
            let without: Vec<Candidate> = candidates
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    if excluded.contains(&c.name) {
                        c.alive = false;
                    }
                    c
                })
                .collect();
            current = elect_one(&without, contest);
        }
        if !excluded.is_empty() {
            stood_in.insert(contest.ip);
            outcomes.insert(contest.ip, current);
        }
    }
    stood_in
}

/// Which won IPs a speaker may answer (see the module docs): an IP it already answers and still
/// wins is kept; a newly won IP is begun on the agreed path, or on the bounded path once `bound`
/// has passed since it was first won.
#[derive(Clone, Debug)]
pub struct Handover {
    bound: Duration,
    /// Won but not answered yet, since when.
    pending: BTreeMap<IpAddr, Duration>,
    /// The IPs the last decision began on the bounded path, without agreement.
    forced: BTreeSet<IpAddr>,
    /// The IPs past their bound the last decision still held back for a peer's claims.
    blocked: BTreeSet<IpAddr>,
}

impl Handover {
    /// A hand-over rule whose bounded path opens `bound` after an IP is first won. `bound` must
    /// exceed the detection time plus three heartbeat intervals (see the module docs);
    /// [`crate::liveness::LivenessConfig`]'s settle bound does.
    pub fn new(bound: Duration) -> Self {
        Self {
            bound,
            pending: BTreeMap::new(),
            forced: BTreeSet::new(),
            blocked: BTreeSet::new(),
        }
    }

    /// The IPs the last decision began without agreement (for a warning: a peer's view differs).
    pub fn forced(&self) -> &BTreeSet<IpAddr> {
        &self.forced
    }

    /// The IPs past their bound that a peer's claims still hold back.
    pub fn blocked(&self) -> &BTreeSet<IpAddr> {
        &self.blocked
    }

    /// The IPs won and waiting to begin: what the claims list as wanted.
    pub fn wanted(&self) -> BTreeSet<IpAddr> {
        self.pending.keys().copied().collect()
    }

    /// The IPs to answer at `now`: of `won`, those in `answering` (already answered), and the
    /// others on the agreed or the bounded path. `evidence`: the live peers' claims (`None`:
    /// heartbeats off or no claims; then agreement, or the bound alone, decides, as before
    /// claims existed).
    pub fn decide(
        &mut self,
        now: Duration,
        won: &BTreeSet<IpAddr>,
        answering: &BTreeSet<IpAddr>,
        agreed: bool,
        evidence: Option<&Evidence>,
    ) -> BTreeSet<IpAddr> {
        self.pending
            .retain(|ip, _| won.contains(ip) && !answering.contains(ip));
        let mut out = BTreeSet::new();
        self.forced.clear();
        self.blocked.clear();
        for ip in won {
            if answering.contains(ip) {
                out.insert(*ip);
                continue;
            }
            let since = *self.pending.entry(*ip).or_insert(now);
            let waited = now.saturating_sub(since) >= self.bound;
            let agreed_path = agreed && evidence.is_none_or(|e| e.clear_when_agreed(*ip));
            let bounded_path = waited && evidence.is_none_or(|e| e.clear_when_bounded(*ip));
            if agreed_path || bounded_path {
                if !agreed_path {
                    self.forced.insert(*ip);
                }
                self.pending.remove(ip);
                out.insert(*ip);
            } else if waited {
                self.blocked.insert(*ip);
            }
        }
        out
    }

    /// When the earliest waiting IP reaches its bound (for the caller's timer).
    pub fn next_deadline(&self) -> Option<Duration> {
        self.pending.values().min().map(|since| *since + self.bound)
    }

    /// How many won IPs wait to begin.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
