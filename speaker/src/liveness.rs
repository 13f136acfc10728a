//! Which speakers are alive, and whether this one may answer ARP/NDP at all: the layer2 failure
//! detector and split-brain rule, in pure code (no socket, no clock: time is a `Duration` on one
//! monotonic timeline, passed in).
//!
//! Speakers send each other a heartbeat every [`LivenessConfig::interval`] (100 ms by default) over
//! UDP, authenticated with HMAC-SHA256 under a key all speakers share (from a Secret). A peer is
//! alive while a valid heartbeat of its current incarnation arrived within
//! [`LivenessConfig::dead_after`] (400 ms by default), so a dead node is noticed in 300-400 ms, where
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
//! of a node failure. With exactly two expected speakers, a lone speaker keeps standing while it
//! can reach the apiserver (the caller reports the last successful contact). The trade-off: a
//! partition *between* the two nodes that leaves both reaching the apiserver cannot be told from a
//! death, and both answer until it heals. With three or more speakers this cannot happen.
//!
//! # Replay
//! A heartbeat carries the sender's incarnation (its start time in ms, growing across restarts) and
//! a sequence number. Only a newer incarnation, or a higher sequence number of the current one, is
//! accepted, so a captured heartbeat replayed later cannot keep a dead speaker alive.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use ring::hmac;

/// The wire tag of a heartbeat, and the format version.
const MAGIC: &[u8; 4] = b"OXHB";
const VERSION: u8 = 1;
/// The HMAC-SHA256 tag length.
const TAG_LEN: usize = 32;

/// Timing of the detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LivenessConfig {
    /// How often every speaker sends its heartbeat.
    pub interval: Duration,
    /// A peer unheard for this long is dead (a few intervals: single lost datagrams do not count).
    pub dead_after: Duration,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            dead_after: Duration::from_millis(400),
        }
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

/// Encodes `heartbeat`: `OXHB`, version, node name (length byte, bytes), incarnation, seq
/// (big-endian u64), the count of serving Eips (u16) and each name, then the HMAC-SHA256 of
/// everything before it.
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
    if body[4] != VERSION {
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
    if reader.at != body.len() {
        return Err(HeartbeatError::Malformed("trailing bytes"));
    }
    Ok(Heartbeat {
        node,
        incarnation,
        seq,
        serving,
        hears,
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
        if heartbeat.node == self.me {
            return false;
        }
        let newer = match self.peers.get(&heartbeat.node) {
            None => true,
            Some(last) => {
                heartbeat.incarnation > last.incarnation
                    || (heartbeat.incarnation == last.incarnation && heartbeat.seq > last.seq)
            }
        };
        if newer {
            self.peers.insert(
                heartbeat.node.clone(),
                Heard {
                    incarnation: heartbeat.incarnation,
                    seq: heartbeat.seq,
                    at: now,
                    serving: heartbeat.serving.clone(),
                    hears: heartbeat.hears.clone(),
                },
            );
        }
        newer
    }

    /// The peers this speaker heard within `dead_after` (whether or not they hear it): what its own
    /// heartbeats list.
    pub fn hearing(&self, now: Duration) -> BTreeSet<String> {
        self.peers
            .iter()
            .filter(|(_, heard)| now.saturating_sub(heard.at) < self.config.dead_after)
            .map(|(name, _)| name.clone())
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
            .filter(|(_, heard)| {
                now.saturating_sub(heard.at) < self.config.dead_after && heard.hears.contains(&me)
            })
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
            .map(|heard| heard.at + self.config.dead_after)
            .filter(|at| *at > now)
            .min()
    }

    /// Whether this speaker may answer at `now`, given the speakers expected to run (`expected`:
    /// the eligible nodes that run a speaker, this one included) and whether the apiserver answered
    /// within `dead_after` (only consulted in the two-node case).
    pub fn standing(
        &self,
        now: Duration,
        expected: &BTreeSet<String>,
        apiserver_reachable: bool,
    ) -> Standing {
        let mut expected = expected.clone();
        expected.insert(self.me.clone());
        let alive: BTreeSet<String> = self.alive(now).intersection(&expected).cloned().collect();
        let needed = expected.len() / 2 + 1;
        if alive.len() >= needed || (expected.len() == 2 && alive.len() == 1 && apiserver_reachable) {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
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
        let mut m = Membership::new("a", LivenessConfig::default());
        let mut b = hb("b", 1, 0);
        b.hears = [name_hash("c")].into();
        m.heard(&b, ms(0));
        m.heard(&hb("c", 1, 0), ms(0));
        assert_eq!(m.hearing(ms(10)), set(&["b", "c"]), "a hears both, and says so");
        assert_eq!(m.alive(ms(10)), set(&["a", "c"]), "only c hears a back");
        // Three expected: a sees a and c, still a majority; with c gone too, a loses standing.
        assert!(matches!(
            m.standing(ms(10), &set(&["a", "b", "c"]), true),
            Standing::Good { .. }
        ));
        let mut c = hb("c", 1, 1);
        c.hears = [name_hash("b")].into();
        m.heard(&c, ms(20));
        assert_eq!(
            m.standing(ms(30), &set(&["a", "b", "c"]), true),
            Standing::Lost { seen: 1, needed: 2 }
        );
        assert_eq!(name_hash("a"), 0xe40c_292c, "FNV-1a 32, pinned");
    }

    #[test]
    fn serving_sets_of_live_peers() {
        let mut m = Membership::new("a", LivenessConfig::default());
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
        let mut m = Membership::new("a", LivenessConfig::default());
        assert!(m.heard(&hb("b", 10, 0), ms(0)));
        assert!(!m.heard(&hb("a", 10, 0), ms(0)), "own heartbeat");
        assert_eq!(m.alive(ms(399)), set(&["a", "b"]));
        assert_eq!(m.alive(ms(400)), set(&["a"]), "400 ms without a heartbeat: dead");
        assert_eq!(m.next_expiry(ms(100)), Some(ms(400)));
        // A replay of the last heartbeat, or an older incarnation, does not revive it.
        assert!(!m.heard(&hb("b", 10, 0), ms(500)));
        assert!(!m.heard(&hb("b", 9, 99), ms(500)));
        assert_eq!(m.alive(ms(500)), set(&["a"]));
        // A restart (new incarnation, seq from 0) does.
        assert!(m.heard(&hb("b", 11, 0), ms(600)));
        assert_eq!(m.alive(ms(600)), set(&["a", "b"]));
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
                        let mut m = Membership::new(names[i].clone(), LivenessConfig::default());
                        for j in (0..n).filter(|j| *j != i && side(*j) == side(i)) {
                            m.heard(&hb(&names[j], 1, 0), ms(0));
                        }
                        matches!(m.standing(ms(10), &expected, true), Standing::Good { .. })
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
        let m = Membership::new("a", LivenessConfig::default());
        assert!(matches!(
            m.standing(ms(0), &expected, true),
            Standing::Good { .. }
        ));
        assert_eq!(
            m.standing(ms(0), &expected, false),
            Standing::Lost { seen: 1, needed: 2 }
        );
        // Alone in a one-node cluster: a majority of one.
        assert!(matches!(
            m.standing(ms(0), &set(&["a"]), false),
            Standing::Good { .. }
        ));
        // Speakers not expected (excluded or NotReady nodes) do not count towards the majority.
        let mut m = Membership::new("a", LivenessConfig::default());
        m.heard(&hb("stranger", 1, 0), ms(0));
        assert_eq!(
            m.standing(ms(1), &set(&["a", "b", "c"]), true),
            Standing::Lost { seen: 1, needed: 2 }
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
