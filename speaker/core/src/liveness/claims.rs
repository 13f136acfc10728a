//! The claims datagram: what a speaker's layer2 view holds and which IPs it answers or means to
//! begin, sent right after each heartbeat (same sequence number), HMAC-SHA256 authenticated with
//! the same key. Pure: bytes in, bytes out; [`decode_claims`] never panics on any input.
//!
//! # Why a second datagram
//! A heartbeat says *whether* two speakers' views agree (the digest), not what a disagreeing
//! peer lacks. When a peer's API view is stuck (a watch that hangs without an error), the others
//! elect it for IPs it has never heard of and wait for it forever. With the claims a speaker can
//! prove that a peer lacks an IP and does not answer it, and stand in for it
//! ([`crate::standin`]). It is a datagram of its own, with its own tag (`OXCL`), so that speakers of
//! the previous version, which refuse a heartbeat of an unknown version, keep reading the
//! heartbeats of this one during a rolling upgrade (they drop the claims as "not an oxelb
//! heartbeat").
//!
//! # The filter
//! A Bloom filter (Bloom 1970) over tagged items: [`ClaimTag::Known`] for every layer2/vip IP of
//! the sender's applied view, [`ClaimTag::Answering`] for every IP it answers, [`ClaimTag::Intent`]
//! for every IP it won and waits to begin. A Bloom filter has no false negatives: an item it does
//! not contain was not put in, which is the proof the receiver needs. Its false positives only
//! delay a decision, and each datagram salts its hashes with its own sequence number, so a false
//! positive of one datagram is independent of the next: a speaker that lacks an IP is proven to
//! lack it within a few datagrams, whatever the view's size.

use std::{collections::BTreeSet, net::IpAddr};

use ring::hmac;

use super::heartbeat::{EncodeError, HeartbeatError, HeartbeatKey, MAX_DATAGRAM, TAG_LEN, split_framed};

/// The wire tag of a claims datagram and its format version.
const MAGIC: &[u8; 4] = b"OXCL";
const VERSION: u8 = 1;
/// Hash functions per item: with 10 bits an item, about 1 % false positives (Bloom's bound
/// `(1 - e^(-k n / m))^k` at `k = 3`, `m / n = 10` is 1.7 %).
const HASHES: u8 = 3;
/// Bits per item the sender aims for.
const BITS_PER_ITEM: usize = 10;
/// The smallest filter, in bytes: a few items still get well under 1 % false positives.
const MIN_FILTER: usize = 32;
/// The largest filter, in bytes: room in one datagram for the name and the header.
pub const MAX_FILTER: usize = 896;

/// What an item of the filter says about its IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum ClaimTag {
    /// The IP is a layer2/vip IP of the sender's applied view.
    Known = 1,
    /// The sender answers ARP/NDP for the IP.
    Answering = 2,
    /// The sender won the IP and waits to begin answering it.
    Intent = 3,
}

/// A salted Bloom filter of tagged IPs (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimFilter {
    salt: u64,
    hashes: u8,
    bits: Vec<u8>,
}

/// FNV-1a, 64 bits, over `bytes`, from `seed`: the same on every speaker, whatever its version
/// or CPU (never std's `DefaultHasher`, whose algorithm may change between Rust releases).
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    let mut hash = seed;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The bit positions of `(tag, ip)` in a filter of `bits` bits: double hashing
/// (Kirsch & Mitzenmacher 2006), `h1 + i * h2`, from two FNV-1a hashes of salt, tag and address.
fn positions(salt: u64, hashes: u8, tag: ClaimTag, ip: IpAddr, bits: usize) -> impl Iterator<Item = usize> {
    let mut item = Vec::with_capacity(26);
    item.extend_from_slice(&salt.to_be_bytes());
    item.push(tag as u8);
    match ip {
        IpAddr::V4(v4) => item.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => item.extend_from_slice(&v6.octets()),
    }
    let h1 = fnv1a(0xcbf2_9ce4_8422_2325, &item);
    // Odd, so that the positions cycle through the whole filter.
    let h2 = fnv1a(0x84222325_cbf29ce4, &item) | 1;
    let bits = u64::try_from(bits.max(1)).unwrap_or(u64::MAX);
    (0..u64::from(hashes)).map(move |i| {
        let at = h1.wrapping_add(i.wrapping_mul(h2)) % bits;
        usize::try_from(at).unwrap_or(0)
    })
}

impl ClaimFilter {
    /// The filter size, in bytes, for `items` items: 10 bits each, at least [`MIN_FILTER`], at
    /// most `max` (beyond, false positives grow, and only delay decisions).
    pub fn size_for(items: usize, max: usize) -> usize {
        items
            .saturating_mul(BITS_PER_ITEM)
            .div_ceil(8)
            .clamp(MIN_FILTER, max.max(MIN_FILTER))
    }

    /// A filter of `bytes` bytes salted with `salt`, holding the given items.
    pub fn build<'a>(
        salt: u64,
        bytes: usize,
        items: impl IntoIterator<Item = (ClaimTag, &'a IpAddr)>,
    ) -> Self {
        let mut filter = Self {
            salt,
            hashes: HASHES,
            bits: vec![0; bytes.max(1)],
        };
        for (tag, ip) in items {
            filter.insert(tag, *ip);
        }
        filter
    }

    fn insert(&mut self, tag: ClaimTag, ip: IpAddr) {
        let size = self.bits.len() * 8;
        for at in positions(self.salt, self.hashes, tag, ip, size) {
            if let Some(byte) = self.bits.get_mut(at / 8) {
                *byte |= 1 << (at % 8);
            }
        }
    }

    /// Whether `(tag, ip)` may have been put in; `false` proves it was not.
    pub fn may_contain(&self, tag: ClaimTag, ip: IpAddr) -> bool {
        let size = self.bits.len() * 8;
        positions(self.salt, self.hashes, tag, ip, size).all(|at| {
            self.bits
                .get(at / 8)
                .is_some_and(|byte| byte & (1 << (at % 8)) != 0)
        })
    }

    /// The chance that an item never put in reads as present: the share of bits set, to the
    /// power of the hash count (the standard estimate, exact enough to tell a useful filter
    /// from a saturated one).
    pub fn false_positive_rate(&self) -> f64 {
        let total = self.bits.len() * 8;
        if total == 0 {
            return 1.0;
        }
        let set: u32 = self.bits.iter().map(|b| b.count_ones()).sum();
        let fill = f64::from(set) / total as f64;
        fill.powi(i32::from(self.hashes))
    }

    /// The filter's size in bytes.
    pub fn len(&self) -> usize {
        self.bits.len()
    }

    /// Whether the filter has no bytes (never, once built or decoded).
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }
}

/// One claims datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The sender's node name.
    pub node: String,
    /// The sender's incarnation (as in its heartbeats).
    pub incarnation: u64,
    /// The sequence number of the heartbeat it follows (also the filter's salt).
    pub seq: u64,
    /// The digest of the applied view the filter describes.
    pub view: u64,
    /// How far the sender's Service watch has got: the highest `resourceVersion` among the
    /// Service events it has applied, 0 when unknown (see [`crate::standin`]).
    pub progress: u64,
    /// The tagged IPs.
    pub filter: ClaimFilter,
}

impl Claims {
    /// The claims of a sender whose applied view holds `known`, that answers `answering` and
    /// waits to begin `intents`: the filter sized for them and for the datagram.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: String,
        incarnation: u64,
        seq: u64,
        view: u64,
        progress: u64,
        known: &BTreeSet<IpAddr>,
        answering: &BTreeSet<IpAddr>,
        intents: &BTreeSet<IpAddr>,
    ) -> Self {
        let items = known.len() + answering.len() + intents.len();
        let room = MAX_DATAGRAM
            .saturating_sub(TAG_LEN + HEADER + node.len())
            .min(MAX_FILTER);
        let bytes = ClaimFilter::size_for(items, room);
        let filter = ClaimFilter::build(
            seq,
            bytes,
            known
                .iter()
                .map(|ip| (ClaimTag::Known, ip))
                .chain(answering.iter().map(|ip| (ClaimTag::Answering, ip)))
                .chain(intents.iter().map(|ip| (ClaimTag::Intent, ip))),
        );
        Self {
            node,
            incarnation,
            seq,
            view,
            progress,
            filter,
        }
    }
}

/// Bytes of a claims datagram besides the node name, the filter and the MAC: tag, version, name
/// length, incarnation, seq, view, progress, hash count, filter length.
const HEADER: usize = 4 + 1 + 1 + 8 + 8 + 8 + 8 + 1 + 2;

/// Encodes `claims`: `OXCL`, version 1, node name (length byte, bytes), incarnation, seq, view,
/// progress (big-endian u64), the hash count (u8), the filter's length (u16) and bytes, then the
/// HMAC-SHA256 of everything before it.
pub fn encode_claims(claims: &Claims, key: &HeartbeatKey) -> Result<Vec<u8>, EncodeError> {
    let name = claims.node.as_bytes();
    let name_len = u8::try_from(name.len())
        .ok()
        .filter(|l| *l <= 253)
        .ok_or_else(|| EncodeError::NameTooLong(claims.node.clone()))?;
    let filter_len = u16::try_from(claims.filter.bits.len()).map_err(|_| EncodeError::TooLarge {
        count: claims.filter.bits.len(),
    })?;
    let mut out = Vec::with_capacity(HEADER + name.len() + claims.filter.bits.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(name_len);
    out.extend_from_slice(name);
    for value in [claims.incarnation, claims.seq, claims.view, claims.progress] {
        out.extend_from_slice(&value.to_be_bytes());
    }
    out.push(claims.filter.hashes);
    out.extend_from_slice(&filter_len.to_be_bytes());
    out.extend_from_slice(&claims.filter.bits);
    if out.len() + TAG_LEN > MAX_DATAGRAM {
        return Err(EncodeError::TooLarge {
            count: claims.filter.bits.len(),
        });
    }
    let tag = hmac::sign(&key.0, &out);
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Whether a datagram is a claims datagram (by its tag), before it is decoded.
pub fn is_claims(datagram: &[u8]) -> bool {
    datagram.get(..4) == Some(MAGIC.as_slice())
}

/// Decodes and authenticates a claims datagram (never panics, whatever the bytes).
pub fn decode_claims(datagram: &[u8], key: &HeartbeatKey) -> Result<Claims, HeartbeatError> {
    let (body, tag) = split_framed(datagram, MAGIC, "no OXCL tag")?;
    if body[4] != VERSION {
        return Err(HeartbeatError::Malformed("unknown claims version"));
    }
    let name_len = usize::from(body[5]);
    let node = body
        .get(6..6 + name_len)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .ok_or(HeartbeatError::Malformed("truncated node name"))?;
    hmac::verify(&key.0, body, tag).map_err(|_| HeartbeatError::BadMac { node: node.clone() })?;
    let mut at = 6 + name_len;
    let u64_at = |at: &mut usize| -> Option<u64> {
        let bytes = body.get(*at..*at + 8)?;
        *at += 8;
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    };
    let truncated = HeartbeatError::Malformed("truncated claims header");
    let incarnation = u64_at(&mut at).ok_or(truncated.clone())?;
    let seq = u64_at(&mut at).ok_or(truncated.clone())?;
    let view = u64_at(&mut at).ok_or(truncated.clone())?;
    let progress = u64_at(&mut at).ok_or(truncated.clone())?;
    let hashes = *body.get(at).ok_or(truncated.clone())?;
    let len = body
        .get(at + 1..at + 3)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        .ok_or(truncated)?;
    at += 3;
    let bits = body
        .get(at..at + len)
        .ok_or(HeartbeatError::Malformed("truncated filter"))?
        .to_vec();
    if at + len != body.len() {
        return Err(HeartbeatError::Malformed("trailing bytes"));
    }
    if bits.is_empty() || hashes == 0 || hashes > 16 {
        return Err(HeartbeatError::Malformed("empty filter or bad hash count"));
    }
    Ok(Claims {
        node,
        incarnation,
        seq,
        view,
        progress,
        filter: ClaimFilter {
            salt: seq,
            hashes,
            bits,
        },
    })
}
