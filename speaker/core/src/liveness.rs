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
    net::IpAddr,
    time::Duration,
};

use ring::hmac;

use crate::tiebreak::{ApiFacts, alone_grace, alone_may_answer};

/// The wire tag of a heartbeat, and the format version: 2 adds the view digest and the flags;
/// version 1 (no digest: never agrees, so new IPs wait for the settle bound) is still read, for
/// rolling upgrades.
const MAGIC: &[u8; 4] = b"OXHB";
const VERSION: u8 = 2;
const VERSION_1: u8 = 1;
/// Flag bit: the sender is leaving (SIGTERM).
const FLAG_LEAVING: u8 = 1;
/// The HMAC-SHA256 tag length.
const TAG_LEN: usize = 32;

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

/// One heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// The sender's node name.
    pub node: String,
    /// The sender's start time in ms since the Unix epoch (grows across restarts).
    pub incarnation: u64,
    /// Counts up from 0 within an incarnation.
    pub seq: u64,
    /// The layer2/vip Eips the sender can announce (their interface exists on its node): only the
    /// sender knows its NICs, and election needs every candidate's answer (sorted, deduplicated).
    pub serving: BTreeSet<String>,
    /// Whom the sender hears, as [`name_hash`]es: a peer counts as alive only while it hears us too
    /// (mutual), so a one-way partition cannot leave two answerers.
    pub hears: BTreeSet<u32>,
    /// The digest of the sender's applied layer2 view (see the module docs); `None` from a
    /// version 1 sender.
    pub view: Option<u64>,
    /// The sender is stopping on purpose: count it dead now.
    pub leaving: bool,
}

/// The 32-bit FNV-1a hash of a node name, as heartbeats list whom their sender hears (4 bytes a
/// node keeps a heartbeat of 250 listed speakers within one datagram).
pub fn name_hash(name: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in name.as_bytes() {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The largest datagram a heartbeat may be (fits a 1280-byte IPv6 minimum MTU with headers).
pub const MAX_DATAGRAM: usize = 1200;

/// Why a datagram is not a heartbeat we accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    /// Too short, wrong tag or version, or a bad length.
    #[error("not an oxelb heartbeat ({0})")]
    Malformed(&'static str),
    /// The HMAC does not verify: another key (a Secret not shared by every speaker) or tampering.
    #[error(
        "heartbeat from {node:?} fails authentication: the speakers' shared key differs, or the datagram was altered"
    )]
    BadMac {
        /// The claimed sender.
        node: String,
    },
}

/// The shared key.
pub struct HeartbeatKey(hmac::Key);

impl HeartbeatKey {
    /// A key from the Secret's bytes.
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }
}

impl std::fmt::Debug for HeartbeatKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeartbeatKey(..)")
    }
}

/// Why a heartbeat cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The node or an Eip name is longer than 253 bytes (no valid Kubernetes name is).
    #[error("name {0:?} is longer than 253 bytes")]
    NameTooLong(String),
    /// Too many Eips to list in one datagram.
    #[error(
        "{count} layer2 Eips do not fit one {MAX_DATAGRAM}-byte heartbeat; use fewer layer2/vip Eips or shorter names"
    )]
    TooLarge {
        /// How many were listed.
        count: usize,
    },
}

fn push_name(out: &mut Vec<u8>, name: &str) -> Result<(), EncodeError> {
    let bytes = name.as_bytes();
    let len = u8::try_from(bytes.len())
        .ok()
        .filter(|l| *l <= 253)
        .ok_or_else(|| EncodeError::NameTooLong(name.to_owned()))?;
    out.push(len);
    out.extend_from_slice(bytes);
    Ok(())
}

/// Encodes `heartbeat`: `OXHB`, version 2, node name (length byte, bytes), incarnation, seq
/// (big-endian u64), the count of serving Eips (u16) and each name, the count of heard peers (u16)
/// and their name hashes (u32), the view digest (u64, 0 when none), flags (u8, bit 0 leaving),
/// then the HMAC-SHA256 of everything before it.
pub fn encode(heartbeat: &Heartbeat, key: &HeartbeatKey) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    push_name(&mut out, &heartbeat.node)?;
    out.extend_from_slice(&heartbeat.incarnation.to_be_bytes());
    out.extend_from_slice(&heartbeat.seq.to_be_bytes());
    let count = heartbeat.serving.len();
    out.extend_from_slice(
        &u16::try_from(count)
            .map_err(|_| EncodeError::TooLarge { count })?
            .to_be_bytes(),
    );
    for pool in &heartbeat.serving {
        push_name(&mut out, pool)?;
    }
    let heard = heartbeat.hears.len();
    out.extend_from_slice(
        &u16::try_from(heard)
            .map_err(|_| EncodeError::TooLarge { count: heard })?
            .to_be_bytes(),
    );
    for hash in &heartbeat.hears {
        out.extend_from_slice(&hash.to_be_bytes());
    }
    out.extend_from_slice(&heartbeat.view.unwrap_or(0).to_be_bytes());
    out.push(if heartbeat.leaving { FLAG_LEAVING } else { 0 });
    if out.len() + TAG_LEN > MAX_DATAGRAM {
        return Err(EncodeError::TooLarge { count });
    }
    let tag = hmac::sign(&key.0, &out);
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Decodes and authenticates a datagram (never panics, whatever the bytes). The MAC is checked
/// before anything but the framing is trusted.
pub fn decode(datagram: &[u8], key: &HeartbeatKey) -> Result<Heartbeat, HeartbeatError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(HeartbeatError::Malformed("too long"));
    }
    let body_len = datagram
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(HeartbeatError::Malformed("too short"))?;
    let (body, tag) = datagram.split_at(body_len);
    if body.len() < 6 || &body[..4] != MAGIC {
        return Err(HeartbeatError::Malformed("no OXHB tag"));
    }
    let version = body[4];
    if version != VERSION && version != VERSION_1 {
        return Err(HeartbeatError::Malformed("unknown version"));
    }
    let mut reader = Reader { bytes: body, at: 5 };
    let node = reader
        .name()
        .ok_or(HeartbeatError::Malformed("truncated node name"))?;
    // Constant-time verification (ring), before the rest of the body is believed.
    hmac::verify(&key.0, body, tag).map_err(|_| HeartbeatError::BadMac { node: node.clone() })?;
    let incarnation = reader
        .u64()
        .ok_or(HeartbeatError::Malformed("truncated incarnation"))?;
    let seq = reader
        .u64()
        .ok_or(HeartbeatError::Malformed("truncated sequence number"))?;
    let count = reader
        .u16()
        .ok_or(HeartbeatError::Malformed("truncated Eip count"))?;
    let mut serving = BTreeSet::new();
    for _ in 0..count {
        serving.insert(
            reader
                .name()
                .ok_or(HeartbeatError::Malformed("truncated Eip name"))?,
        );
    }
    let heard = reader
        .u16()
        .ok_or(HeartbeatError::Malformed("truncated heard count"))?;
    let mut hears = BTreeSet::new();
    for _ in 0..heard {
        let bytes = reader
            .take(4)
            .ok_or(HeartbeatError::Malformed("truncated heard list"))?;
        hears.insert(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
    }
    let (view, leaving) = if version == VERSION_1 {
        (None, false)
    } else {
        let view = reader
            .u64()
            .ok_or(HeartbeatError::Malformed("truncated view digest"))?;
        let flags = *reader
            .take(1)
            .and_then(<[u8]>::first)
            .ok_or(HeartbeatError::Malformed("truncated flags"))?;
        (Some(view), flags & FLAG_LEAVING != 0)
    };
    if reader.at != body.len() {
        return Err(HeartbeatError::Malformed("trailing bytes"));
    }
    Ok(Heartbeat {
        node,
        incarnation,
        seq,
        serving,
        hears,
        view,
        leaving,
    })
}

/// A bounds-checked cursor over a datagram.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn name(&mut self) -> Option<String> {
        let len = usize::from(*self.take(1)?.first()?);
        Some(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
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
        }
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

    /// When the next peer may die if nothing more is heard (for the caller's timer): the earliest
    /// `heard + dead_after` still in the future.
    pub fn next_expiry(&self, now: Duration) -> Option<Duration> {
        self.peers
            .values()
            .filter(|heard| !heard.leaving)
            .map(|heard| heard.at + self.config.dead_after)
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

/// Which won IPs a speaker may answer, under skewed views (see the module docs): an IP it already
/// answers and still wins is kept; a newly won IP is begun only while the peers' views agree with
/// this speaker's, or once `bound` has passed since it was first won.
#[derive(Clone, Debug)]
pub struct Handover {
    bound: Duration,
    /// Won but not answered yet, since when.
    pending: BTreeMap<IpAddr, Duration>,
    /// The IPs the last [`Handover::decide`] began only because their bound passed.
    forced: BTreeSet<IpAddr>,
}

impl Handover {
    /// A hand-over rule whose fallback opens `bound` after an IP is first won.
    pub fn new(bound: Duration) -> Self {
        Self {
            bound,
            pending: BTreeMap::new(),
            forced: BTreeSet::new(),
        }
    }

    /// The IPs the last decision began without agreement, because their bound passed (for a
    /// warning: a peer's view is stuck).
    pub fn forced(&self) -> &BTreeSet<IpAddr> {
        &self.forced
    }

    /// The IPs to answer at `now`: of `won` (what this speaker's view elects it for), those in
    /// `answering` (already answered), and the others if `agreed` or their bound has passed.
    pub fn decide(
        &mut self,
        now: Duration,
        won: &BTreeSet<IpAddr>,
        answering: &BTreeSet<IpAddr>,
        agreed: bool,
    ) -> BTreeSet<IpAddr> {
        self.pending
            .retain(|ip, _| won.contains(ip) && !answering.contains(ip));
        let mut out = BTreeSet::new();
        self.forced.clear();
        for ip in won {
            if answering.contains(ip) {
                out.insert(*ip);
                continue;
            }
            let since = *self.pending.entry(*ip).or_insert(now);
            if agreed || now.saturating_sub(since) >= self.bound {
                if !agreed {
                    self.forced.insert(*ip);
                }
                self.pending.remove(ip);
                out.insert(*ip);
            }
        }
        out
    }

    /// When the earliest waiting IP reaches its bound (for the caller's timer).
    pub fn next_deadline(&self) -> Option<Duration> {
        self.pending.values().min().map(|since| *since + self.bound)
    }

    /// How many won IPs wait for the peers' views to agree.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Reaches the apiserver; the peer's Lease is fresh.
    const REACH: ApiFacts = ApiFacts {
        reachable: true,
        peer_expired: false,
    };
    /// Cut from the apiserver.
    const NO_API: ApiFacts = ApiFacts {
        reachable: false,
        peer_expired: false,
    };

    /// The timing these tests were written for: 100 ms heartbeats, dead after 400 ms.
    fn cfg() -> LivenessConfig {
        LivenessConfig::new(ms(100), ms(400)).unwrap()
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn timings_are_checked_and_traffic_is_computed() {
        assert_eq!(
            LivenessConfig::new(Duration::ZERO, ms(100)),
            Err(TimingError::ZeroInterval)
        );
        assert!(matches!(
            LivenessConfig::new(ms(100), ms(150)),
            Err(TimingError::DeadAfterTooShort { .. })
        ));
        let default = LivenessConfig::default();
        assert_eq!(
            LivenessConfig::new(DEFAULT_INTERVAL, DEFAULT_DEAD_AFTER),
            Ok(default)
        );
        // The table in docs/layer2.md: datagrams per second each node sends (and receives) at 50 ms.
        let pps: Vec<f64> = [3, 10, 50, 100]
            .iter()
            .map(|n| default.packets_per_second(*n))
            .collect();
        assert_eq!(pps, vec![40.0, 180.0, 980.0, 1980.0]);
    }

    #[test]
    fn version_1_heartbeats_are_read_without_a_view() {
        let key = HeartbeatKey::new(b"k");
        let beat = hb("n1", 5, 6);
        let mut v2 = encode(&beat, &key).unwrap();
        // Rebuild the body as version 1 wrote it: no digest, no flags.
        let body_len = v2.len() - TAG_LEN - 9;
        v2.truncate(body_len);
        v2[4] = VERSION_1;
        let tag = hmac::sign(&key.0, &v2);
        v2.extend_from_slice(tag.as_ref());
        let old = decode(&v2, &key).unwrap();
        assert_eq!(old.view, None);
        assert!(!old.leaving);
        assert_eq!(old.node, "n1");
        // A peer without a view never agrees: new IPs wait for the bound.
        let mut m = Membership::new("a", cfg());
        m.heard(&old, ms(0));
        assert!(!m.agreed(ms(1), 7));
    }

    #[test]
    fn a_leaving_peer_is_dead_at_once_and_needs_no_agreement() {
        let key = HeartbeatKey::new(b"k");
        let mut m = Membership::new("a", cfg());
        m.heard(&hb("b", 1, 0), ms(0));
        m.heard(&hb("c", 1, 0), ms(0));
        assert_eq!(m.alive(ms(10)), set(&["a", "b", "c"]));
        let mut bye = hb("b", 1, 1);
        bye.leaving = true;
        let bye = decode(&encode(&bye, &key).unwrap(), &key).unwrap();
        assert!(bye.leaving, "the flag survives the wire");
        assert_eq!(m.record(&bye, ms(20)), Recorded::Changed);
        assert_eq!(m.alive(ms(20)), set(&["a", "c"]), "no wait for dead_after");
        assert_eq!(m.hearing(ms(20)), set(&["c"]));
        assert!(m.agreed(ms(20), 7), "c agrees; b is leaving");
        assert_eq!(m.next_expiry(ms(20)), Some(ms(400)), "only c's deadline");
        // Two nodes, the other leaving on purpose: no longer expected, so a stays standing
        // (the tie-break is only for silence, which may be a partition).
        let mut pair = Membership::new("b", cfg());
        pair.heard(&hb("a", 1, 0), ms(0));
        let mut going = hb("a", 1, 1);
        going.leaving = true;
        pair.heard(&going, ms(10));
        assert!(matches!(
            pair.standing(ms(500), &set(&["a", "b"]), REACH),
            Standing::Good { .. }
        ));
        // Back from a restart (new incarnation, not leaving): alive again.
        assert_eq!(m.record(&hb("b", 2, 0), ms(500)), Recorded::Changed);
        assert_eq!(m.alive(ms(500)), set(&["a", "b"]));
    }

    #[test]
    fn record_tells_refreshes_from_changes() {
        let mut m = Membership::new("a", cfg());
        assert_eq!(m.record(&hb("b", 1, 0), ms(0)), Recorded::Changed, "new peer");
        assert_eq!(m.record(&hb("b", 1, 1), ms(100)), Recorded::Refreshed);
        assert_eq!(m.record(&hb("b", 1, 1), ms(150)), Recorded::Ignored, "replay");
        let mut moved = hb("b", 1, 2);
        moved.view = Some(8);
        assert_eq!(m.record(&moved, ms(200)), Recorded::Changed, "new view");
        let mut again = hb("b", 1, 3);
        again.view = Some(8);
        assert_eq!(
            m.record(&again, ms(2000)),
            Recorded::Changed,
            "revived after death"
        );
        assert_eq!(m.record(&hb("a", 9, 9), ms(2000)), Recorded::Ignored, "own");
    }

    #[test]
    fn agreement_needs_every_heard_peer_on_the_same_view() {
        let mut m = Membership::new("a", cfg());
        assert!(m.agreed(ms(0), 7), "alone: agreed");
        m.heard(&hb("b", 1, 0), ms(0));
        let mut c = hb("c", 1, 0);
        c.view = Some(9);
        m.heard(&c, ms(0));
        assert!(!m.agreed(ms(10), 7));
        assert_eq!(m.disagreeing(ms(10), 7), set(&["c"]));
        // c falls silent: only b counts, and it agrees.
        m.heard(&hb("b", 1, 1), ms(300));
        assert!(m.agreed(ms(450), 7));
        assert_eq!(
            m.last_serving().len(),
            2,
            "the digest covers dead peers' pools too"
        );
    }

    #[test]
    fn handover_keeps_what_it_answers_and_begins_only_on_agreement_or_bound() {
        let mut h = Handover::new(ms(2000));
        let won: BTreeSet<IpAddr> = [ip(50), ip(51)].into();
        let answering: BTreeSet<IpAddr> = [ip(50)].into();
        // Views differ: keep .50, hold .51 back.
        assert_eq!(h.decide(ms(0), &won, &answering, false), answering);
        assert_eq!(h.waiting(), 1);
        assert_eq!(h.next_deadline(), Some(ms(2000)));
        assert_eq!(h.decide(ms(1999), &won, &answering, false), answering);
        // Views agree: begin at once.
        assert_eq!(h.decide(ms(1000), &won, &answering, true), won);
        assert_eq!(h.waiting(), 0);
        // Never agreeing: the bound opens it.
        let mut h = Handover::new(ms(2000));
        h.decide(ms(0), &won, &BTreeSet::new(), false);
        assert!(h.forced().is_empty());
        assert_eq!(h.decide(ms(2000), &won, &BTreeSet::new(), false), won);
        assert_eq!(h.forced(), &won, "begun by the bound, not by agreement");
        // An IP lost meanwhile is forgotten: won again later, it waits from then.
        let mut h = Handover::new(ms(2000));
        h.decide(ms(0), &won, &BTreeSet::new(), false);
        h.decide(ms(100), &BTreeSet::new(), &BTreeSet::new(), false);
        assert_eq!(h.waiting(), 0);
        assert!(h.decide(ms(2000), &won, &BTreeSet::new(), false).is_empty());
        assert_eq!(h.next_deadline(), Some(ms(4000)));
    }

    /// Two speakers whose object views are skewed, driven step by step in every interleaving of
    /// "learn the change" and "exchange heartbeats": the IP is never begun by one while the other
    /// still answers it (the invariant of the skew lab, in pure code).
    #[test]
    fn skewed_views_never_give_two_answerers() {
        // The IP's winner moves from x to y with the change (view 1 -> view 2).
        struct Speaker {
            name: &'static str,
            view: u64,
            m: Membership,
            h: Handover,
            answering: BTreeSet<IpAddr>,
        }
        let winner = |view: u64| if view == 1 { "x" } else { "y" };
        let target = ip(50);
        // Steps: 0 = x learns, 1 = y learns, 2 = x -> y heartbeat, 3 = y -> x heartbeat. Every
        // order of a sequence of 8 steps over {0,1,2,3}, learning at most once each.
        for order in 0u32..4u32.pow(8) {
            let mut s = [
                Speaker {
                    name: "x",
                    view: 1,
                    m: Membership::new("x", cfg()),
                    h: Handover::new(ms(10_000)),
                    answering: [target].into(),
                },
                Speaker {
                    name: "y",
                    view: 1,
                    m: Membership::new("y", cfg()),
                    h: Handover::new(ms(10_000)),
                    answering: BTreeSet::new(),
                },
            ];
            let mut seq = [0u64; 2];
            // Both heard each other on the old view before the change.
            for (from, to) in [(0, 1), (1, 0)] {
                seq[from] += 1;
                let beat = hb(s[from].name, 1, seq[from]);
                let mut beat = beat;
                beat.view = Some(1);
                s[to].m.heard(&beat, ms(0));
            }
            for step in 0u32..8 {
                let now = ms(u64::from(step) * 10);
                let action = (order >> (2 * step)) & 3;
                match action {
                    0 | 1 => s[action as usize].view = 2,
                    _ => {
                        let (from, to) = if action == 2 { (0, 1) } else { (1, 0) };
                        seq[from] += 1;
                        let mut beat = hb(s[from].name, 1, seq[from]);
                        beat.view = Some(s[from].view);
                        s[to].m.heard(&beat, now);
                    }
                }
                // Each decides on what it knows; its next heartbeat carries the view it applied.
                for sp in &mut s {
                    let won: BTreeSet<IpAddr> = if winner(sp.view) == sp.name {
                        [target].into()
                    } else {
                        BTreeSet::new()
                    };
                    let agreed = sp.m.agreed(now, sp.view);
                    sp.answering = sp.h.decide(now, &won, &sp.answering, agreed);
                }
                assert!(
                    !(s[0].answering.contains(&target) && s[1].answering.contains(&target)),
                    "order {order:#x} step {step}: two answerers"
                );
            }
        }
    }

    /// A heartbeat whose sender hears every name the tests use.
    fn hb(node: &str, incarnation: u64, seq: u64) -> Heartbeat {
        Heartbeat {
            node: node.into(),
            incarnation,
            seq,
            serving: BTreeSet::new(),
            hears: ["a", "b", "c", "n0", "n1", "n2", "n3", "n4"]
                .iter()
                .map(|n| name_hash(n))
                .collect(),
            view: Some(7),
            leaving: false,
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_gate_opens_one_settle_after_standing_and_closes_at_once_without_it() {
        let mut gate = SettleGate::new(ms(400));
        assert!(!gate.open(ms(0), false), "no standing, no answer");
        assert!(!gate.open(ms(100), true), "standing just gained: settling");
        assert!(!gate.open(ms(499), true), "still settling");
        assert!(gate.open(ms(500), true), "settled");
        assert!(gate.open(ms(5000), true), "stays open while standing holds");
        assert!(!gate.open(ms(5001), false), "closed the moment standing is lost");
        assert!(!gate.open(ms(5002), true), "regained: settles again");
        assert!(gate.open(ms(5402), true));
        let mut zero = SettleGate::new(Duration::ZERO);
        assert!(zero.open(ms(0), true), "a zero settle opens at once");
    }

    #[test]
    fn codec_round_trips_and_authenticates() {
        let key = HeartbeatKey::new(b"shared secret");
        let mut beat = hb("node-a", 1_800_000_000_000, 42);
        beat.serving = set(&["eip-l2", "eip-vip"]);
        let bytes = encode(&beat, &key).unwrap();
        assert_eq!(decode(&bytes, &key).unwrap(), beat);
        assert_eq!(
            decode(&bytes, &HeartbeatKey::new(b"other secret")),
            Err(HeartbeatError::BadMac {
                node: "node-a".into()
            })
        );
        // Every single-bit flip is refused.
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad, &key).is_err(), "flip at {i} accepted");
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], &key).is_err());
        }
    }

    #[test]
    fn oversized_heartbeats_are_refused_not_cut() {
        let key = HeartbeatKey::new(b"k");
        let mut beat = hb("n", 1, 1);
        beat.serving = (0..100)
            .map(|i| format!("eip-with-a-rather-long-name-{i:03}"))
            .collect();
        assert_eq!(encode(&beat, &key), Err(EncodeError::TooLarge { count: 100 }));
        let long = hb(&"x".repeat(254), 1, 1);
        assert!(matches!(encode(&long, &key), Err(EncodeError::NameTooLong(_))));
    }

    #[test]
    fn a_peer_that_does_not_hear_us_is_not_alive() {
        // One-way partition: b's heartbeats reach a, but b does not hear a.
        let mut m = Membership::new("a", cfg());
        let mut b = hb("b", 1, 0);
        b.hears = [name_hash("c")].into();
        m.heard(&b, ms(0));
        m.heard(&hb("c", 1, 0), ms(0));
        assert_eq!(m.hearing(ms(10)), set(&["b", "c"]), "a hears both, and says so");
        assert_eq!(m.alive(ms(10)), set(&["a", "c"]), "only c hears a back");
        // Three expected: a sees a and c, still a majority; with c gone too, a loses standing.
        assert!(matches!(
            m.standing(ms(10), &set(&["a", "b", "c"]), REACH),
            Standing::Good { .. }
        ));
        let mut c = hb("c", 1, 1);
        c.hears = [name_hash("b")].into();
        m.heard(&c, ms(20));
        assert_eq!(
            m.standing(ms(30), &set(&["a", "b", "c"]), REACH),
            Standing::Lost { seen: 1, needed: 2 }
        );
        assert_eq!(name_hash("a"), 0xe40c_292c, "FNV-1a 32, pinned");
    }

    #[test]
    fn serving_sets_of_live_peers() {
        let mut m = Membership::new("a", cfg());
        let mut b = hb("b", 1, 0);
        b.serving = set(&["l2"]);
        m.heard(&b, ms(0));
        m.heard(&hb("c", 1, 0), ms(300));
        let serving = m.serving(ms(450));
        assert_eq!(serving.keys().collect::<Vec<_>>(), vec!["c"], "b is dead by then");
        assert_eq!(m.serving(ms(10))["b"], set(&["l2"]));
    }

    #[test]
    fn dead_after_missed_heartbeats_and_replays_are_ignored() {
        let mut m = Membership::new("a", cfg());
        assert!(m.heard(&hb("b", 10, 0), ms(0)));
        assert!(!m.heard(&hb("a", 10, 0), ms(0)), "own heartbeat");
        assert_eq!(m.alive(ms(399)), set(&["a", "b"]));
        assert_eq!(m.alive(ms(400)), set(&["a"]), "400 ms without a heartbeat: dead");
        assert_eq!(m.next_expiry(ms(100)), Some(ms(400)));
        // A replay of the last heartbeat, or an older incarnation, does not revive it.
        assert!(!m.heard(&hb("b", 10, 0), ms(500)));
        assert!(!m.heard(&hb("b", 9, 99), ms(500)));
        assert_eq!(m.alive(ms(500)), set(&["a"]));
        // A restart whose wall clock jumped back (a lower incarnation) is taken once the last
        // incarnation has been silent for two detection times, and not before.
        let mut jumped = Membership::new("a", cfg());
        assert!(jumped.heard(&hb("b", 10, 5), ms(0)));
        assert!(
            !jumped.heard(&hb("b", 3, 0), ms(100)),
            "while 10 is alive: a replay"
        );
        assert!(!jumped.heard(&hb("b", 3, 0), ms(799)));
        assert!(jumped.heard(&hb("b", 3, 0), ms(800)));
        assert!(jumped.heard(&hb("b", 3, 1), ms(850)));
        assert_eq!(jumped.alive(ms(850)), set(&["a", "b"]));
        // A restart (new incarnation, seq from 0) does.
        assert!(m.heard(&hb("b", 11, 0), ms(600)));
        assert_eq!(m.alive(ms(600)), set(&["a", "b"]));
    }

    /// A peer heard and lost every 50 ms (a flapping link) for 10 s: liveness follows it, no
    /// panic, and the majority rule never gives both sides of the flap standing at once.
    #[test]
    fn a_peer_flapping_every_50_ms_never_gives_two_sides_standing() {
        let expected = set(&["a", "b", "c"]);
        let mut a = Membership::new("a", cfg());
        let mut c = Membership::new("c", cfg());
        let mut seq = 0;
        for step in 0..200u64 {
            let now = ms(step * 50);
            // b always hears everyone; c's link to a flaps: up on even steps.
            seq += 1;
            a.heard(&hb("b", 1, seq), now);
            c.heard(&hb("b", 1, seq), now);
            if step % 2 == 0 {
                a.heard(&hb("c", 1, seq), now);
                c.heard(&hb("a", 1, seq), now);
            }
            // Whatever the flap, a and c both hear b: both keep a majority; the election (same
            // views) then gives one winner per IP. Standing never depends on the flapping link.
            assert!(matches!(a.standing(now, &expected, REACH), Standing::Good { .. }));
            assert!(matches!(c.standing(now, &expected, REACH), Standing::Good { .. }));
        }
        // Now the flapping node is cut from both others: it loses standing within dead_after.
        let mut lone = Membership::new("c", cfg());
        for step in 0..200u64 {
            let now = ms(step * 50);
            if step % 2 == 0 && step < 100 {
                lone.heard(&hb("a", 1, step + 1), now);
            }
            let good = matches!(lone.standing(now, &expected, REACH), Standing::Good { .. });
            if step >= 100 + 8 {
                assert!(!good, "step {step}: alone for 400 ms and still standing");
            }
        }
    }

    #[test]
    fn majority_rule_every_partition_of_three_and_five() {
        for n in [3usize, 5] {
            let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
            let expected: BTreeSet<String> = names.iter().cloned().collect();
            // Every split of the nodes into two sides that cannot hear each other.
            for mask in 0u32..(1 << n) {
                let side = |i: usize| mask & (1 << i) != 0;
                let standing: Vec<bool> = (0..n)
                    .map(|i| {
                        let mut m = Membership::new(names[i].clone(), cfg());
                        for j in (0..n).filter(|j| *j != i && side(*j) == side(i)) {
                            m.heard(&hb(&names[j], 1, 0), ms(0));
                        }
                        matches!(m.standing(ms(10), &expected, REACH), Standing::Good { .. })
                    })
                    .collect();
                let sides_answering: BTreeSet<bool> = (0..n).filter(|i| standing[*i]).map(side).collect();
                assert!(
                    sides_answering.len() <= 1,
                    "n={n} mask={mask:b}: both sides have standing"
                );
                let larger = (0..n).filter(|i| side(*i)).count() * 2 > n
                    || (0..n).filter(|i| !side(*i)).count() * 2 > n;
                assert_eq!(!sides_answering.is_empty(), larger, "n={n} mask={mask:b}");
            }
        }
    }

    #[test]
    fn two_node_survivor_keeps_standing_only_with_the_apiserver() {
        let expected = set(&["a", "b"]);
        let m = Membership::new("a", cfg());
        assert!(matches!(
            m.standing(ms(0), &expected, REACH),
            Standing::Good { .. }
        ));
        assert_eq!(
            m.standing(ms(0), &expected, NO_API),
            Standing::Lost { seen: 1, needed: 2 }
        );
        // A clean partition: both alone, both reach the apiserver; only the smaller name answers.
        let b = Membership::new("b", cfg());
        assert_eq!(
            b.standing(ms(0), &expected, REACH),
            Standing::Lost { seen: 1, needed: 2 }
        );
        // a is dead and the apiserver says so (its Node not Ready): b alone is expected, b answers.
        assert!(matches!(
            b.standing(ms(0), &set(&["b"]), REACH),
            Standing::Good { .. }
        ));
        // a's Lease expired (a dead, or cut from the apiserver): b answers alone, but not without
        // the apiserver itself.
        let expired = ApiFacts {
            reachable: true,
            peer_expired: true,
        };
        assert!(matches!(
            b.standing(ms(0), &expected, expired),
            Standing::Good { .. }
        ));
        let cut = ApiFacts {
            reachable: false,
            peer_expired: true,
        };
        assert_eq!(
            b.standing(ms(0), &expected, cut),
            Standing::Lost { seen: 1, needed: 2 }
        );
        // Every combination of two speakers, hearing or not, reaching the apiserver or not, each
        // judging the other's Lease expired or not: never two with standing across a partition.
        // (A Lease is judged expired only while its holder cannot renew, so reaches no apiserver:
        // `crate::tiebreak` proves it; combinations contradicting it are skipped.)
        for bits in 0u8..64 {
            let hears = bits & 1 != 0;
            let reach = [bits & 2 != 0, bits & 4 != 0];
            let heard_back = bits & 8 != 0;
            let expired = [bits & 16 != 0, bits & 32 != 0];
            if (expired[0] && reach[1]) || (expired[1] && reach[0]) {
                continue;
            }
            let mut ms_ = [Membership::new("a", cfg()), Membership::new("b", cfg())];
            // Each heartbeat lists its sender's peer only if the sender hears it, as real ones do.
            let beat = |from: &str, to: &str, hears_to: bool| {
                let mut beat = hb(from, 1, 0);
                beat.hears = if hears_to {
                    [name_hash(to)].into()
                } else {
                    BTreeSet::new()
                };
                beat
            };
            if hears {
                ms_[0].heard(&beat("b", "a", heard_back), ms(0));
            }
            if heard_back {
                ms_[1].heard(&beat("a", "b", hears), ms(0));
            }
            let good: Vec<bool> = (0..2)
                .map(|i| {
                    let facts = ApiFacts {
                        reachable: reach[i],
                        peer_expired: expired[i],
                    };
                    // At 1 ms and long after the grace.
                    let now = if bits & 1 == 0 && bits & 8 == 0 {
                        ms(1)
                    } else {
                        ms(10_000)
                    };
                    matches!(ms_[i].standing(now, &expected, facts), Standing::Good { .. })
                })
                .collect();
            // Both may have standing only when they hear each other (no partition).
            if good[0] && good[1] {
                assert!(
                    hears && heard_back,
                    "bits {bits:06b}: two answer across a partition"
                );
            }
        }
        // Alone in a one-node cluster: a majority of one.
        assert!(matches!(
            m.standing(ms(0), &set(&["a"]), NO_API),
            Standing::Good { .. }
        ));
        // Speakers not expected (excluded or NotReady nodes) do not count towards the majority.
        let mut m = Membership::new("a", cfg());
        m.heard(&hb("stranger", 1, 0), ms(0));
        assert_eq!(
            m.standing(ms(1), &set(&["a", "b", "c"]), REACH),
            Standing::Lost { seen: 1, needed: 2 }
        );
    }

    /// Newly alone, a speaker keeps its peer in its alive set for the grace past the detection
    /// time (its IPs stay with it, which may not have noticed yet), then takes them.
    #[test]
    fn a_lone_speaker_holds_the_peer_alive_for_the_grace() {
        let expected = set(&["a", "b"]);
        let mut a = Membership::new("a", cfg());
        a.heard(&hb("b", 1, 0), ms(0));
        // Heard and hearing: a majority of two.
        assert_eq!(
            a.standing(ms(100), &expected, NO_API),
            Standing::Good {
                alive: set(&["a", "b"])
            }
        );
        // Silent since 0: dead at 400 (cfg: 100 ms interval); held until 400 + 200.
        for (at, alive) in [(400, &["a", "b"][..]), (599, &["a", "b"]), (600, &["a"])] {
            assert_eq!(
                a.standing(ms(at), &expected, REACH),
                Standing::Good { alive: set(alive) },
                "at {at}"
            );
        }
        // The larger name alone, Lease fresh: silent at once (stopping early is always safe).
        let mut b = Membership::new("b", cfg());
        b.heard(&hb("a", 1, 0), ms(0));
        assert_eq!(
            b.standing(ms(400), &expected, REACH),
            Standing::Lost { seen: 1, needed: 2 }
        );
        // A heartbeat that does not list us is no mutual contact: the grace runs from the last one
        // that did.
        let mut deaf = hb("b", 1, 1);
        deaf.hears = BTreeSet::new();
        a.heard(&deaf, ms(300));
        assert_eq!(
            a.standing(ms(600), &expected, REACH),
            Standing::Good { alive: set(&["a"]) }
        );
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
            let key = HeartbeatKey::new(b"k");
            let _ = decode(&bytes, &key);
            // A valid prefix with random tails neither.
            let mut valid = encode(&hb("n", 1, 2), &key).unwrap();
            valid.extend_from_slice(&bytes);
            let _ = decode(&valid, &key);
        }
    }
}
