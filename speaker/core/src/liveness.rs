//! Which speakers are alive, and whether this one may answer ARP/NDP at all: the layer2 failure
//! detector and split-brain rule, in pure code (no socket, no clock: time is a `Duration` on one
//! monotonic timeline, passed in).
//!
//! Speakers send each other a heartbeat every [`LivenessConfig::interval`] (50 ms by default) over
//! UDP, authenticated with HMAC-SHA256 under a key all speakers share (from a Secret). A peer is
//! alive while a valid heartbeat of its current incarnation arrived within
//! [`LivenessConfig::dead_after`] (200 ms by default), so a dead node is noticed in 150-200 ms, where
//! node status takes tens of seconds and memberlist gossip (OpenELB, MetalLB) 3-4 s.
//!
//! # The standing rule (split brain)
//! A speaker answers for its IPs only while it has **standing**: it sees (itself included) a strict
//! majority of the expected speakers alive. Two speakers that cannot hear each other cannot both
//! see a majority, so at most one side of a partition answers; the side that lost the majority
//! stops within `dead_after`. Views agree again within one `dead_after` after any change, so two
//! answerers for one IP are possible only during that window (< 1 s).
//!
//! **Two-node clusters**: a majority of two is two, so the majority rule would silence the survivor
//! of a node failure. With exactly two expected speakers (Ready, not excluded), the apiserver
//! breaks the tie ([`crate::tiebreak`]): each speaker renews a Lease of its own, and a lone speaker
//! keeps standing only while its renewals succeed (it reaches the apiserver), and then if its
//! peer's Lease expired (the peer is dead, or cut from the apiserver too), else only if its name is
//! the smaller of the two. So a clean partition between the two nodes leaves exactly one answerer
//! (the smaller name); when the smaller-named node dies, the other takes over once its Lease
//! expired (about the Lease duration, 2 s by default, after its last renewal); when the
//! larger-named node dies, the survivor keeps its own IPs and takes the other's after `dead_after`
//! plus [`crate::tiebreak::alone_grace`]. A node that cannot reach the apiserver never answers
//! alone. A speaker newly alone keeps counting its peer alive for the grace (the peer's IPs stay
//! with it), so the peer, which may notice the silence one heartbeat later, stops first. A peer
//! that left on purpose (SIGTERM, see below) is not expected any more, so the other node of a
//! two-node cluster keeps answering through a rolling update.
//!
//! # Hand-over under skewed views
//! Speakers learn a new Service, Eip or Node at different moments (separate watches: tens of ms
//! apart on a real apiserver). Two speakers whose object views differ can each elect themselves,
//! and both would answer. So every heartbeat carries a digest of the sender's *applied* layer2
//! view ([`Heartbeat::view`]: the IPs, their pools and Local nodes, the Nodes' facts, every node's
//! serving pools; not liveness), published only after the sender has acted on it (stopped
//! answering what it lost). A speaker *begins* answering an IP only while every peer it hears
//! announces the same digest ([`Membership::agreed`]): then each of them has already dropped the IP
//! if it held it, which is the explicit hand-over. A speaker keeps an IP it still wins. Should the
//! views not agree (a peer whose source is stuck), [`Handover`] lets the IP be answered once a
//! bounded settle time has passed since this speaker first won it. Liveness is left out of the
//! digest, so failover (views agree, a peer fell silent) is not delayed.
//!
//! # Leaving
//! A speaker that stops on purpose (SIGTERM: rolling update, drain) first stops answering, then
//! sends heartbeats with [`Heartbeat::leaving`] set: peers count it dead at once and take its IPs
//! over without waiting for `dead_after`.
//!
//! # Replay
//! A heartbeat carries the sender's incarnation (its start time in ms, growing across restarts) and
//! a sequence number. Only a newer incarnation, or a higher sequence number of the current one, is
//! accepted, so a captured heartbeat replayed later cannot keep a dead speaker alive.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

pub(crate) mod claims;
mod heartbeat;

pub use claims::{ClaimFilter, ClaimTag, Claims, MAX_FILTER, decode_claims, encode_claims, is_claims};
pub use heartbeat::{
    EncodeError, Heartbeat, HeartbeatError, HeartbeatKey, MAX_DATAGRAM, decode, encode, name_hash,
};

pub use crate::standin::Handover;
use crate::standin::{Evidence, PeerEvidence};

/// How many claims filters of a peer's current view are kept as proofs of what it lacks: each is
/// salted differently, so eight independent filters leave a false "knows" at most `p^8`.
const PROOFS_KEPT: usize = 8;

use crate::tiebreak::{ApiFacts, alone_grace, alone_may_answer};

/// Timing of the detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LivenessConfig {
    /// How often every speaker sends its heartbeat.
    pub interval: Duration,
    /// A peer unheard for this long is dead (a few intervals: single lost datagrams do not count).
    pub dead_after: Duration,
    /// The longest a won IP waits for the peers' views to agree before it is answered anyway
    /// (see [`Handover`]).
    pub settle_bound: Duration,
}

/// The default heartbeat interval: 50 ms, so that with [`DEFAULT_DEAD_AFTER`] a dead node is
/// replaced in 150-200 ms, ahead of keepalived at `advert_int 0.1` (master down after 3 adverts plus
/// skew: about 300 ms measured here).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);
/// The default detection time: four intervals, so up to three lost datagrams in a row are survived.
pub const DEFAULT_DEAD_AFTER: Duration = Duration::from_millis(200);

impl Default for LivenessConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
            dead_after: DEFAULT_DEAD_AFTER,
            settle_bound: Duration::from_secs(2),
        }
    }
}

/// Why a timing is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// The interval is zero.
    #[error("heartbeat interval must be at least 1 ms")]
    ZeroInterval,
    /// The detection time does not leave room for one lost heartbeat.
    #[error(
        "detection time {dead_after_ms} ms must be at least twice the heartbeat interval ({interval_ms} ms), or one lost datagram kills a peer"
    )]
    DeadAfterTooShort {
        /// The detection time asked for.
        dead_after_ms: u128,
        /// The interval asked for.
        interval_ms: u128,
    },
}

impl LivenessConfig {
    /// A timing of `interval` and `dead_after` (detection), checked.
    pub fn new(interval: Duration, dead_after: Duration) -> Result<Self, TimingError> {
        if interval.is_zero() {
            return Err(TimingError::ZeroInterval);
        }
        if dead_after < interval * 2 {
            return Err(TimingError::DeadAfterTooShort {
                dead_after_ms: dead_after.as_millis(),
                interval_ms: interval.as_millis(),
            });
        }
        Ok(Self {
            interval,
            dead_after,
            // Ten detection times, at least 2 s: far beyond watch skew (tens of ms).
            settle_bound: (dead_after * 10).max(Duration::from_secs(2)),
        })
    }

    /// Heartbeat datagrams per second each node sends (and receives) in a cluster of `nodes`
    /// speakers: one to every other node per interval.
    pub fn packets_per_second(&self, nodes: u32) -> f64 {
        f64::from(nodes.saturating_sub(1)) / self.interval.as_secs_f64()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Heard {
    incarnation: u64,
    seq: u64,
    at: Duration,
    serving: BTreeSet<String>,
    hears: BTreeSet<u32>,
    view: Option<u64>,
    leaving: bool,
    /// When a heartbeat of the peer last listed this speaker (the peer counted alive then).
    mutual_at: Option<Duration>,
}

/// The claims a peer last sent (see [`Claims`]).
#[derive(Clone, Debug, PartialEq, Eq)]
struct HeardClaims {
    incarnation: u64,
    seq: u64,
    view: u64,
    progress: u64,
    /// The filters of its current incarnation and view, newest last (at most [`PROOFS_KEPT`]).
    filters: Vec<ClaimFilter>,
}

/// What a heartbeat changed in the membership (the caller re-decides only on `Changed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Our own, a replay or an older one: ignored.
    Ignored,
    /// Newer, but the peer's facts are the same: only its deadline moved.
    Refreshed,
    /// A new or revived peer, or new facts (serving, hears, view, leaving, incarnation).
    Changed,
}

/// What this speaker knows of the others.
#[derive(Clone, Debug)]
pub struct Membership {
    me: String,
    config: LivenessConfig,
    peers: BTreeMap<String, Heard>,
    claims: BTreeMap<String, HeardClaims>,
}

/// Whether this speaker may answer, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It sees a majority (or is the lone survivor of a two-node cluster that reaches the apiserver).
    Good {
        /// The speakers it sees alive, itself included.
        alive: BTreeSet<String>,
    },
    /// It must stay silent.
    Lost {
        /// How many it sees alive, itself included.
        seen: usize,
        /// How many it would need.
        needed: usize,
    },
}

impl Membership {
    /// The membership of speaker `me`.
    pub fn new(me: impl Into<String>, config: LivenessConfig) -> Self {
        Self {
            me: me.into(),
            config,
            peers: BTreeMap::new(),
            claims: BTreeMap::new(),
        }
    }

    /// Records a decoded claims datagram: `Changed` when the peer's view or progress moved (or
    /// it is the first), `Refreshed` for a newer filter of the same, `Ignored` for our own, a
    /// replay or an older one. A new incarnation or view forgets the filters of the old one:
    /// they proved what *that* view lacked.
    pub fn record_claims(&mut self, claims: &Claims) -> Recorded {
        if claims.node == self.me {
            return Recorded::Ignored;
        }
        let entry = self.claims.get_mut(&claims.node);
        let Some(heard) = entry else {
            self.claims.insert(
                claims.node.clone(),
                HeardClaims {
                    incarnation: claims.incarnation,
                    seq: claims.seq,
                    view: claims.view,
                    progress: claims.progress,
                    filters: vec![claims.filter.clone()],
                },
            );
            return Recorded::Changed;
        };
        let newer = claims.incarnation > heard.incarnation
            || (claims.incarnation == heard.incarnation && claims.seq > heard.seq);
        if !newer {
            return Recorded::Ignored;
        }
        let same = claims.incarnation == heard.incarnation && claims.view == heard.view;
        let moved = !same || claims.progress != heard.progress;
        if !same {
            heard.filters.clear();
        }
        heard.incarnation = claims.incarnation;
        heard.seq = claims.seq;
        heard.view = claims.view;
        heard.progress = claims.progress;
        heard.filters.push(claims.filter.clone());
        if heard.filters.len() > PROOFS_KEPT {
            heard.filters.remove(0);
        }
        if moved {
            Recorded::Changed
        } else {
            Recorded::Refreshed
        }
    }

    /// What the live peers' claims say, for the stand-in election and the begin rule
    /// ([`crate::standin`]): every peer alive at `now` (as [`Membership::alive`]) whose claims
    /// are of its current incarnation, and the live peers that send none (`legacy`: a previous
    /// version). `progress` is this speaker's own.
    pub fn evidence(&self, now: Duration, progress: u64) -> Evidence {
        let mut evidence = Evidence {
            me: self.me.clone(),
            progress,
            peers: BTreeMap::new(),
            legacy: BTreeSet::new(),
        };
        for name in self.alive(now) {
            if name == self.me {
                continue;
            }
            let incarnation = self.peers.get(&name).map(|heard| heard.incarnation);
            match self.claims.get(&name) {
                Some(claims) if Some(claims.incarnation) == incarnation => {
                    if let Some(latest) = claims.filters.last() {
                        evidence.peers.insert(
                            name,
                            PeerEvidence {
                                view: claims.view,
                                progress: claims.progress,
                                latest: latest.clone(),
                                proofs: claims.filters.clone(),
                            },
                        );
                    }
                }
                _ => {
                    evidence.legacy.insert(name);
                }
            }
        }
        evidence
    }

    /// Records a decoded heartbeat received at `now`. Returns `false` (and changes nothing) for our
    /// own, a replayed or an older one.
    pub fn heard(&mut self, heartbeat: &Heartbeat, now: Duration) -> bool {
        self.record(heartbeat, now) != Recorded::Ignored
    }

    /// Records a decoded heartbeat received at `now`, and says what it changed.
    pub fn record(&mut self, heartbeat: &Heartbeat, now: Duration) -> Recorded {
        if heartbeat.node == self.me {
            return Recorded::Ignored;
        }
        let last = self.peers.get(&heartbeat.node);
        // A lower incarnation is a replay, or a restart after the sender's wall clock jumped back:
        // taken only once the last incarnation is dead (silent for two detection times), so a
        // restarted peer is not shut out for as long as its clock lags.
        let newer = last.is_none_or(|last| {
            heartbeat.incarnation > last.incarnation
                || (heartbeat.incarnation == last.incarnation && heartbeat.seq > last.seq)
                || (heartbeat.incarnation < last.incarnation
                    && now.saturating_sub(last.at) >= self.config.dead_after * 2)
        });
        if !newer {
            return Recorded::Ignored;
        }
        let mutual_at = if !heartbeat.leaving && heartbeat.hears.contains(&name_hash(&self.me)) {
            Some(now)
        } else {
            last.and_then(|last| last.mutual_at)
        };
        let same = last.is_some_and(|last| {
            self.fresh(last, now)
                && last.incarnation == heartbeat.incarnation
                && last.serving == heartbeat.serving
                && last.hears == heartbeat.hears
                && last.view == heartbeat.view
                && last.leaving == heartbeat.leaving
        });
        self.peers.insert(
            heartbeat.node.clone(),
            Heard {
                incarnation: heartbeat.incarnation,
                seq: heartbeat.seq,
                at: now,
                serving: heartbeat.serving.clone(),
                hears: heartbeat.hears.clone(),
                view: heartbeat.view,
                leaving: heartbeat.leaving,
                mutual_at,
            },
        );
        if same {
            Recorded::Refreshed
        } else {
            Recorded::Changed
        }
    }

    /// Heard within `dead_after` and not leaving.
    fn fresh(&self, heard: &Heard, now: Duration) -> bool {
        !heard.leaving && now.saturating_sub(heard.at) < self.config.dead_after
    }

    /// The peers this speaker heard within `dead_after` (whether or not they hear it), leaving
    /// ones excepted: what its own heartbeats list.
    pub fn hearing(&self, now: Duration) -> BTreeSet<String> {
        self.peers
            .iter()
            .filter(|(_, heard)| self.fresh(heard, now))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Whether every peer this speaker hears (leaving ones excepted) announces `view` as its
    /// applied view: then none of them answers an IP that `view` gives this speaker, and this
    /// speaker may begin answering it (see the module docs).
    pub fn agreed(&self, now: Duration, view: u64) -> bool {
        self.peers
            .values()
            .filter(|heard| self.fresh(heard, now))
            .all(|heard| heard.view == Some(view))
    }

    /// The peers heard within `dead_after` whose view differs from `view` (for logs).
    pub fn disagreeing(&self, now: Duration, view: u64) -> BTreeSet<String> {
        self.peers
            .iter()
            .filter(|(_, heard)| self.fresh(heard, now) && heard.view != Some(view))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The serving pools every peer last announced, dead or alive (what the view digest covers:
    /// it must not change with liveness).
    pub fn last_serving(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.peers
            .iter()
            .map(|(name, heard)| (name.clone(), heard.serving.clone()))
            .collect()
    }

    /// The speakers alive at `now`, this one included: heard within `dead_after` **and** hearing this
    /// speaker (their last heartbeat lists it). Requiring both directions is what keeps a one-way
    /// partition from leaving two answerers: the side that is not heard loses its majority.
    pub fn alive(&self, now: Duration) -> BTreeSet<String> {
        let me = name_hash(&self.me);
        let mut alive: BTreeSet<String> = self
            .peers
            .iter()
            .filter(|(_, heard)| self.fresh(heard, now) && heard.hears.contains(&me))
            .map(|(name, _)| name.clone())
            .collect();
        alive.insert(self.me.clone());
        alive
    }

    /// The Eips each live (mutually heard) peer can serve, as its last heartbeat said.
    pub fn serving(&self, now: Duration) -> BTreeMap<String, BTreeSet<String>> {
        let alive = self.alive(now);
        self.peers
            .iter()
            .filter(|(name, _)| alive.contains(*name))
            .map(|(name, heard)| (name.clone(), heard.serving.clone()))
            .collect()
    }

    /// When the next peer may die if nothing more is heard, or stop being held alive by the
    /// two-node grace (for the caller's timer): the earliest `heard + dead_after`, or
    /// `mutual + dead_after + alone_grace`, still in the future.
    pub fn next_expiry(&self, now: Duration) -> Option<Duration> {
        let grace = alone_grace(self.config.interval);
        self.peers
            .values()
            .filter(|heard| !heard.leaving)
            .flat_map(|heard| {
                // Its detection, and the end of the two-node grace that holds it alive past it
                // (`standing`): both change the decision with no heartbeat arriving.
                let held_until = heard.mutual_at.map(|at| at + self.config.dead_after + grace);
                [Some(heard.at + self.config.dead_after), held_until]
            })
            .flatten()
            .filter(|at| *at > now)
            .min()
    }

    /// Whether this speaker may answer at `now`, given the speakers expected to run (`expected`:
    /// the eligible nodes that run a speaker, this one included) and what the apiserver tells
    /// (only consulted in the two-node case: see [`crate::tiebreak`]). In that case the lone
    /// speaker's `alive` set keeps the peer for [`alone_grace`] past its detection, so that the
    /// caller's election leaves the peer's IPs to it until it has surely stopped answering.
    pub fn standing(&self, now: Duration, expected: &BTreeSet<String>, api: ApiFacts) -> Standing {
        let mut expected = expected.clone();
        // A peer that said it is leaving (and has not come back since) is not expected: it
        // stopped answering before it said so, so the rest need no majority against it (in a
        // two-node cluster the other keeps answering through a rolling update).
        expected.retain(|name| self.peers.get(name).is_none_or(|heard| !heard.leaving));
        expected.insert(self.me.clone());
        let alive: BTreeSet<String> = self.alive(now).intersection(&expected).cloned().collect();
        let needed = expected.len() / 2 + 1;
        if alive.len() >= needed {
            return Standing::Good { alive };
        }
        // Two expected, one alive: the tie-break of the module docs.
        let peer = expected.iter().find(|name| **name != self.me);
        if let (2, 1, Some(peer)) = (expected.len(), alive.len(), peer)
            && alone_may_answer(&self.me, peer, api)
        {
            let mut alive = alive;
            // Counted alive until the grace after its detection has passed.
            let held = self
                .peers
                .get(peer)
                .and_then(|heard| heard.mutual_at)
                .is_some_and(|at| now < at + self.config.dead_after + alone_grace(self.config.interval));
            if held {
                alive.insert(peer.clone());
            }
            Standing::Good { alive }
        } else {
            Standing::Lost {
                seen: alive.len(),
                needed,
            }
        }
    }
}

/// Holds a speaker silent for a while after it gains standing (at start, or when a partition
/// heals), so it never answers on a half-learnt view of its peers.
///
/// Why: speakers that start together each gain standing as soon as they hear a majority, but not
/// all in the same 100 ms; two whose views still differ elect different winners for the same IP,
/// and both answer until the views agree (seen in the end-to-end lab: three answerers for ~60 ms
/// at cluster start). After `settle` (one `dead_after`), every live peer has been heard several
/// times and has heard us: the views agree, so the election agrees. A speaker that keeps standing
/// is never held back, so failover (the survivors keep standing) is not slowed.
#[derive(Clone, Debug)]
pub struct SettleGate {
    settle: Duration,
    good_since: Option<Duration>,
}

impl SettleGate {
    /// A gate that opens `settle` after standing is gained.
    pub fn new(settle: Duration) -> Self {
        Self {
            settle,
            good_since: None,
        }
    }

    /// Whether the speaker may answer at `now`, given whether it has standing now.
    pub fn open(&mut self, now: Duration, standing: bool) -> bool {
        if !standing {
            self.good_since = None;
            return false;
        }
        let since = *self.good_since.get_or_insert(now);
        now.saturating_sub(since) >= self.settle
    }
}

impl SettleGate {
    /// When a closed gate opens if standing holds (for the caller's timer).
    pub fn opens_at(&self) -> Option<Duration> {
        self.good_since.map(|since| since + self.settle)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
