//! The heartbeat datagram: what one speaker tells the others every interval, HMAC-SHA256
//! authenticated with the speakers' shared key (see the parent module for what the fields decide).
//! Pure: bytes in, bytes out; [`decode`] never panics on any input.

use std::collections::BTreeSet;

use ring::hmac;

/// The wire tag of a heartbeat, and the format version: 2 adds the view digest and the flags;
/// version 1 (no digest: never agrees, so new IPs wait for the settle bound) is still read, for
/// rolling upgrades.
const MAGIC: &[u8; 4] = b"OXHB";
const VERSION: u8 = 2;
pub(super) const VERSION_1: u8 = 1;
/// Flag bit: the sender is leaving (SIGTERM).
const FLAG_LEAVING: u8 = 1;
/// The HMAC-SHA256 tag length.
pub(super) const TAG_LEN: usize = 32;

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
    /// The digest of the sender's applied layer2 view (see the docs of [`crate::liveness`]); `None` from a
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
pub struct HeartbeatKey(pub(super) hmac::Key);

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

/// The body and the HMAC of a datagram tagged `magic` (heartbeats and claims share the framing):
/// at most [`MAX_DATAGRAM`] bytes, the body at least the tag, a version and a length octet.
/// `untagged` says which tag was missing.
pub(super) fn split_framed<'a>(
    datagram: &'a [u8],
    magic: &[u8; 4],
    untagged: &'static str,
) -> Result<(&'a [u8], &'a [u8]), HeartbeatError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(HeartbeatError::Malformed("too long"));
    }
    let body_len = datagram
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(HeartbeatError::Malformed("too short"))?;
    let (body, tag) = datagram.split_at(body_len);
    if body.len() < 6 || &body[..4] != magic {
        return Err(HeartbeatError::Malformed(untagged));
    }
    Ok((body, tag))
}

/// Decodes and authenticates a datagram (never panics, whatever the bytes). The MAC is checked
/// before anything but the framing is trusted.
pub fn decode(datagram: &[u8], key: &HeartbeatKey) -> Result<Heartbeat, HeartbeatError> {
    let (body, tag) = split_framed(datagram, MAGIC, "no OXHB tag")?;
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
