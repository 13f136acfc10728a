//! BGP messages on the wire.
//!
//! - **Out**: what the speaker sends is built here, byte by byte (RFC 4271 section 4, RFC 4760,
//!   RFC 6793, RFC 7911, RFC 4724), so UPDATE packing stays in our hands: as many host routes per
//!   UPDATE as fit 4096 bytes. Tests check every builder against netgauze's decoder.
//! - **In**: what routers send is framed here and parsed by `netgauze-bgp-pkt` (decodes FRR's and
//!   GoBGP's messages correctly, `LAB-NOTES.md`), then reduced to what a load balancer needs.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use netgauze_bgp_pkt::{
    BgpMessage,
    capabilities::BgpCapability,
    wire::deserializer::{BgpMessageParsingError, BgpParsingContext},
};
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::{reader::SliceReader, traits::ParseFromWithOneInput};

/// The largest BGP message (RFC 4271 section 4.1).
pub const MAX_MESSAGE: usize = 4096;
/// The fixed header: marker, length, type.
pub const HEADER_LEN: usize = 19;
/// `AS_TRANS` (RFC 6793 section 9): the 2-octet stand-in for a 4-octet AS.
pub const AS_TRANS: u16 = 23456;

const OPEN: u8 = 1;
const UPDATE: u8 = 2;
const NOTIFICATION: u8 = 3;
const KEEPALIVE: u8 = 4;
const ROUTE_REFRESH: u8 = 5;

/// A family a session may carry (only unicast: a load balancer announces host routes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// AFI 1, SAFI 1.
    Ipv4Unicast,
    /// AFI 2, SAFI 1.
    Ipv6Unicast,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() {
            Family::Ipv4Unicast
        } else {
            Family::Ipv6Unicast
        }
    }

    fn afi(self) -> u16 {
        match self {
            Family::Ipv4Unicast => 1,
            Family::Ipv6Unicast => 2,
        }
    }

    fn of_address_type(t: AddressType) -> Option<Self> {
        match t {
            AddressType::Ipv4Unicast => Some(Family::Ipv4Unicast),
            AddressType::Ipv6Unicast => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }
}

/// A prefix to announce: a host route (/32, /128) or an aggregate. Host bits are always zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// The prefix `addr/len`, host bits cleared; `None` when `len` exceeds the family's width.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let addr = match addr {
            IpAddr::V4(v4) if len <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) if len <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
            _ => return None,
        };
        Some(Self { addr, len })
    }

    /// The host route of `ip` (/32 or /128).
    pub fn host(ip: IpAddr) -> Self {
        Self {
            addr: ip,
            len: if ip.is_ipv4() { 32 } else { 128 },
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is a /0 (never announced by a load balancer; here for completeness).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The family.
    pub fn family(&self) -> Family {
        Family::of(self.addr)
    }

    /// The NLRI encoding (RFC 4271 section 4.3: length, then the fewest octets holding it),
    /// preceded by path identifier 1 with ADD-PATH (RFC 7911 section 3).
    fn encode(&self, path_id: bool, out: &mut Vec<u8>) {
        if path_id {
            out.extend_from_slice(&1u32.to_be_bytes());
        }
        out.push(self.len);
        let octets = usize::from(self.len).div_ceil(8);
        match self.addr {
            IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()[..octets]),
            IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()[..octets]),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The path attributes a route carries beyond ORIGIN, AS_PATH and the next hop: the per-pool
/// policy (`Eip.spec.advertisement`). Routes with equal attributes share UPDATEs.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attributes {
    /// COMMUNITIES (RFC 1997), sorted, no duplicates.
    pub communities: Vec<u32>,
    /// LARGE_COMMUNITY (RFC 8092): global administrator, local data 1, local data 2; sorted.
    pub large_communities: Vec<[u32; 3]>,
    /// LOCAL_PREF toward iBGP peers (default 100); never sent to eBGP peers (RFC 4271
    /// section 5.1.5).
    pub local_pref: Option<u32>,
}

/// The routes to announce to one peer: prefix to attributes (shared by the routes of a pool).
pub type Routes = BTreeMap<Prefix, Arc<Attributes>>;

/// Host routes of `ips` with no policy attributes (OpenELB's announcement).
pub fn host_routes<'a>(ips: impl IntoIterator<Item = &'a IpAddr>) -> Routes {
    let plain = Arc::new(Attributes::default());
    ips.into_iter()
        .map(|ip| (Prefix::host(*ip), plain.clone()))
        .collect()
}

/// What we offer in OPEN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenParams {
    /// Our AS (4-octet; AS_TRANS goes into the 2-octet field when it does not fit).
    pub local_as: u32,
    /// Hold time (0 or >= 3).
    pub hold_time: u16,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Families to offer (multiprotocol capability per family).
    pub families: BTreeSet<Family>,
    /// Graceful restart: restart time, and whether we are restarting (R bit).
    pub graceful_restart: Option<(u16, bool)>,
    /// ADD-PATH: offer to send for every family.
    pub add_path_send: bool,
}

/// The capabilities a peer offered, reduced to what we use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerCapabilities {
    /// Multiprotocol unicast families (RFC 4760). A peer without the capability offers IPv4 only.
    pub families: BTreeSet<Family>,
    /// Its 4-octet AS, when it has the capability (RFC 6793).
    pub four_octet_as: Option<u32>,
    /// Route refresh (RFC 2918).
    pub route_refresh: bool,
    /// Graceful restart (RFC 4724).
    pub graceful_restart: bool,
    /// Families it will receive additional paths for (RFC 7911).
    pub add_path_receive: BTreeSet<Family>,
}

/// A received message, as much as the speaker needs of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// OPEN.
    Open {
        /// BGP version.
        version: u8,
        /// The AS: the 4-octet capability's value, else the 2-octet field.
        peer_as: u32,
        /// Offered hold time.
        hold_time: u16,
        /// BGP identifier.
        router_id: Ipv4Addr,
        /// Capabilities.
        capabilities: PeerCapabilities,
    },
    /// UPDATE: routes the router sends (its own, or ours echoed back) are accepted and ignored.
    Update {
        /// Path-attribute errors that were treated as withdraw (RFC 7606); we keep no routes, so
        /// nothing else follows from them.
        treat_as_withdraw: usize,
    },
    /// NOTIFICATION.
    Notification {
        /// Error code.
        code: u8,
        /// Error subcode.
        subcode: u8,
    },
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH for a family we carry (others are `None`).
    RouteRefresh(Option<Family>),
}

/// Why received bytes are not a message we can accept: the session answers with NOTIFICATION
/// `code`/`subcode` (RFC 4271 section 6) and resets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} (NOTIFICATION {code}/{subcode})")]
pub struct WireError {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// The data field.
    pub data: Vec<u8>,
    /// What was wrong.
    pub what: String,
}

impl WireError {
    fn header(subcode: u8, data: Vec<u8>, what: impl Into<String>) -> Self {
        Self {
            code: 1,
            subcode,
            data,
            what: what.into(),
        }
    }
}

/// Splits whole messages off the front of `buffer`: `Ok(Some(frame))` for a complete message,
/// `Ok(None)` when more bytes are needed, `Err` for a bad header (RFC 4271 section 6.1).
pub fn next_frame(buffer: &mut Vec<u8>) -> Result<Option<Vec<u8>>, WireError> {
    if buffer.len() < HEADER_LEN {
        return Ok(None);
    }
    if buffer[..16].iter().any(|b| *b != 0xff) {
        return Err(WireError::header(
            1,
            Vec::new(),
            "connection not synchronized: bad marker",
        ));
    }
    let length = usize::from(u16::from_be_bytes([buffer[16], buffer[17]]));
    let kind = buffer[18];
    let minimum = match kind {
        OPEN => 29,
        UPDATE => 23,
        NOTIFICATION => 21,
        KEEPALIVE => 19,
        ROUTE_REFRESH => 23,
        _ => {
            return Err(WireError::header(
                3,
                vec![kind],
                format!("bad message type {kind}"),
            ));
        }
    };
    if !(minimum..=MAX_MESSAGE).contains(&length) || (kind == KEEPALIVE && length != 19) {
        return Err(WireError::header(
            2,
            buffer[16..18].to_vec(),
            format!("bad message length {length} for type {kind}"),
        ));
    }
    if buffer.len() < length {
        return Ok(None);
    }
    Ok(Some(buffer.drain(..length).collect()))
}

/// Decodes one framed message. `four_octet_as`: whether both sides negotiated 4-octet AS (AS_PATH
/// widths depend on it).
pub fn decode(frame: &[u8], four_octet_as: bool) -> Result<Received, WireError> {
    let kind = frame.get(18).copied().unwrap_or(0);
    if kind == NOTIFICATION {
        // Read directly: a NOTIFICATION is reported whatever its code, even ones a parser rejects.
        return Ok(Received::Notification {
            code: frame.get(19).copied().unwrap_or(0),
            subcode: frame.get(20).copied().unwrap_or(0),
        });
    }
    // Path-attribute errors are collected, not fatal (RFC 7606 treat-as-withdraw); header, OPEN and
    // NLRI errors still fail.
    let mut ctx = BgpParsingContext::new(
        four_octet_as,
        Default::default(),
        Default::default(),
        false,
        false,
        false,
        false,
    );
    let mut reader = SliceReader::new(frame);
    let message = BgpMessage::parse(&mut reader, &mut ctx).map_err(|e| parse_error(frame, &e))?;
    Ok(match message {
        BgpMessage::Open(open) => {
            let mut capabilities = PeerCapabilities::default();
            let mut saw_mp = false;
            for capability in open.capabilities() {
                match capability {
                    BgpCapability::MultiProtocolExtensions(mp) => {
                        saw_mp = true;
                        if let Some(f) = Family::of_address_type(mp.address_type()) {
                            capabilities.families.insert(f);
                        }
                    }
                    BgpCapability::FourOctetAs(asn) => capabilities.four_octet_as = Some(asn.asn4()),
                    BgpCapability::RouteRefresh
                    | BgpCapability::EnhancedRouteRefresh
                    | BgpCapability::CiscoRouteRefresh => {
                        capabilities.route_refresh = true;
                    }
                    BgpCapability::GracefulRestartCapability(_) => capabilities.graceful_restart = true,
                    BgpCapability::AddPath(add_path) => {
                        for family in add_path.address_families() {
                            if family.receive()
                                && let Some(f) = Family::of_address_type(family.address_type())
                            {
                                capabilities.add_path_receive.insert(f);
                            }
                        }
                    }
                    _ => {}
                }
            }
            // RFC 4760 section 8: no multiprotocol capability means IPv4 unicast only.
            if !saw_mp {
                capabilities.families.insert(Family::Ipv4Unicast);
            }
            Received::Open {
                version: open.version(),
                peer_as: capabilities.four_octet_as.unwrap_or(u32::from(open.my_as())),
                hold_time: open.hold_time(),
                router_id: open.bgp_id(),
                capabilities,
            }
        }
        BgpMessage::Update(_) => Received::Update {
            treat_as_withdraw: ctx.reset_parsing_errors().path_attr_errors().len(),
        },
        BgpMessage::Notification(_) => Received::Notification {
            code: frame.get(19).copied().unwrap_or(0),
            subcode: frame.get(20).copied().unwrap_or(0),
        },
        BgpMessage::KeepAlive => Received::Keepalive,
        BgpMessage::RouteRefresh(refresh) => {
            Received::RouteRefresh(Family::of_address_type(refresh.address_type()))
        }
    })
}

/// The NOTIFICATION for a message netgauze refused. For OPEN the raw fields give the precise
/// subcode (RFC 4271 section 6.2): version, hold time, identifier; else Unspecific.
fn parse_error(frame: &[u8], error: &BgpMessageParsingError) -> WireError {
    let kind = frame.get(18).copied().unwrap_or(0);
    let what = format!("malformed message of type {kind}: {error}");
    let (code, subcode, data) = match kind {
        OPEN => {
            let version = frame.get(19).copied();
            let hold = frame.get(22..24).map(|b| u16::from_be_bytes([b[0], b[1]]));
            let id = frame.get(24..28);
            if version != Some(4) {
                (2, 1, 4u16.to_be_bytes().to_vec())
            } else if matches!(hold, Some(1 | 2)) {
                (2, 6, Vec::new())
            } else if id == Some(&[0, 0, 0, 0][..]) {
                (2, 3, Vec::new())
            } else {
                (2, 0, Vec::new())
            }
        }
        // UPDATE Message Error / Malformed Attribute List (section 6.3): what still fails after
        // treat-as-withdraw is structural.
        UPDATE => (3, 1, Vec::new()),
        ROUTE_REFRESH => (7, 1, Vec::new()),
        _ => (1, 0, Vec::new()),
    };
    WireError {
        code,
        subcode,
        data,
        what,
    }
}

/// Wraps `body` in the header of message type `kind`.
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    // Callers keep bodies within MAX_MESSAGE - HEADER_LEN.
    out.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// KEEPALIVE (RFC 4271 section 4.4).
pub fn keepalive() -> Vec<u8> {
    message(KEEPALIVE, &[])
}

/// NOTIFICATION (RFC 4271 section 4.5).
pub fn notification(code: u8, subcode: u8, data: &[u8]) -> Vec<u8> {
    let mut body = vec![code, subcode];
    body.extend_from_slice(&data[..data.len().min(MAX_MESSAGE - HEADER_LEN - 2)]);
    message(NOTIFICATION, &body)
}

/// OPEN with our capabilities (RFC 4271 section 4.2, RFC 5492).
pub fn open(params: &OpenParams) -> Vec<u8> {
    let mut caps: Vec<u8> = Vec::new();
    let mut cap = |code: u8, value: &[u8]| {
        caps.push(code);
        caps.push(value.len() as u8);
        caps.extend_from_slice(value);
    };
    for family in &params.families {
        // RFC 4760 section 8: AFI, reserved, SAFI.
        let afi = family.afi().to_be_bytes();
        cap(1, &[afi[0], afi[1], 0, 1]);
    }
    cap(2, &[]); // Route refresh (RFC 2918).
    if let Some((restart_time, restarting)) = params.graceful_restart {
        // RFC 4724 section 3: R bit, 12-bit restart time, then AFI/SAFI with the F bit (we keep
        // forwarding: the node's data plane does not restart with the speaker).
        let mut value = (restart_time.min(0x0fff) | if restarting { 0x8000 } else { 0 })
            .to_be_bytes()
            .to_vec();
        for family in &params.families {
            value.extend_from_slice(&family.afi().to_be_bytes());
            value.extend_from_slice(&[1, 0x80]);
        }
        cap(64, &value);
    }
    cap(65, &params.local_as.to_be_bytes()); // 4-octet AS (RFC 6793).
    if params.add_path_send {
        // RFC 7911 section 4: AFI, SAFI, send/receive = 2 (send).
        let mut value = Vec::new();
        for family in &params.families {
            value.extend_from_slice(&family.afi().to_be_bytes());
            value.extend_from_slice(&[1, 2]);
        }
        cap(69, &value);
    }
    let mut body = vec![4];
    let my_as = u16::try_from(params.local_as).unwrap_or(AS_TRANS);
    body.extend_from_slice(&my_as.to_be_bytes());
    body.extend_from_slice(&params.hold_time.to_be_bytes());
    body.extend_from_slice(&params.router_id.octets());
    // One optional parameter of type 2 (capabilities) holding them all.
    body.push((caps.len() + 2) as u8);
    body.push(2);
    body.push(caps.len() as u8);
    body.extend_from_slice(&caps);
    message(OPEN, &body)
}

/// How routes are encoded toward one peer (from the negotiation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateParams {
    /// Our AS; empty AS_PATH and LOCAL_PREF for iBGP (`ibgp`).
    pub local_as: u32,
    /// The peer is in our AS.
    pub ibgp: bool,
    /// Both sides have 4-octet AS.
    pub four_octet_as: bool,
    /// Next hop for IPv4 routes.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 routes.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Families negotiated with ADD-PATH send (path id 1 precedes each prefix).
    pub add_path: BTreeSet<Family>,
}

/// The AS_PATH (and, toward an old peer with a 4-octet AS, AS4_PATH) attributes.
fn as_path_attributes(p: &UpdateParams) -> Vec<u8> {
    let mut out = Vec::new();
    if p.ibgp {
        out.extend_from_slice(&[0x40, 2, 0]); // Well-known mandatory, empty.
        return out;
    }
    if p.four_octet_as {
        out.extend_from_slice(&[0x40, 2, 6, 2, 1]);
        out.extend_from_slice(&p.local_as.to_be_bytes());
    } else {
        let two = u16::try_from(p.local_as).unwrap_or(AS_TRANS);
        out.extend_from_slice(&[0x40, 2, 4, 2, 1]);
        out.extend_from_slice(&two.to_be_bytes());
        if two == AS_TRANS {
            // RFC 6793 section 4.2.2: the real path in AS4_PATH (optional transitive, type 17).
            out.extend_from_slice(&[0xc0, 17, 6, 2, 1]);
            out.extend_from_slice(&p.local_as.to_be_bytes());
        }
    }
    out
}

fn attribute(flags: u8, kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 4);
    if value.len() > 255 {
        out.extend_from_slice(&[flags | 0x10, kind]);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags, kind, value.len() as u8]);
    }
    out.extend_from_slice(value);
    out
}

fn update(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + withdrawn.len() + attributes.len() + nlri.len());
    body.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    body.extend_from_slice(attributes);
    body.extend_from_slice(nlri);
    message(UPDATE, &body)
}

/// Chunks of encoded prefixes that each fit `room` bytes.
fn chunks(prefixes: &[Vec<u8>], room: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for p in prefixes {
        if !current.is_empty() && current.len() + p.len() > room {
            out.push(std::mem::take(&mut current));
        }
        current.extend_from_slice(p);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The NLRI encodings of the `family` prefixes of `prefixes` (with path identifier 1 when
/// ADD-PATH is negotiated for the family).
fn family_prefixes<'a>(
    prefixes: impl IntoIterator<Item = &'a Prefix>,
    family: Family,
    p: &UpdateParams,
) -> Vec<Vec<u8>> {
    let path_id = p.add_path.contains(&family);
    prefixes
        .into_iter()
        .filter(|prefix| prefix.family() == family)
        .map(|prefix| {
            let mut out = Vec::with_capacity(21);
            prefix.encode(path_id, &mut out);
            out
        })
        .collect()
}

/// The attributes of a group of routes in type-code order (RFC 4271 section 5 leaves the order
/// open; GoBGP and FRR send ascending codes): ORIGIN (1), AS_PATH (2) (AS4_PATH (17) right after it
/// toward an old peer, as before), NEXT_HOP (3, IPv4 only), LOCAL_PREF (5, iBGP only: RFC 4271
/// section 5.1.5), COMMUNITIES (8, RFC 1997: optional transitive) are the first part; the second
/// is LARGE_COMMUNITY (32, RFC 8092 section 3: optional transitive). MP_REACH_NLRI (14) goes
/// between the two for IPv6.
fn group_attributes(a: &Attributes, p: &UpdateParams, v4_next_hop: Option<Ipv4Addr>) -> (Vec<u8>, Vec<u8>) {
    let mut low = attribute(0x40, 1, &[0]); // ORIGIN IGP.
    low.extend_from_slice(&as_path_attributes(p));
    if let Some(hop) = v4_next_hop {
        low.extend_from_slice(&attribute(0x40, 3, &hop.octets()));
    }
    if p.ibgp {
        let pref = a.local_pref.unwrap_or(100);
        low.extend_from_slice(&attribute(0x40, 5, &pref.to_be_bytes()));
    }
    if !a.communities.is_empty() {
        let value: Vec<u8> = a.communities.iter().flat_map(|c| c.to_be_bytes()).collect();
        low.extend_from_slice(&attribute(0xc0, 8, &value));
    }
    let mut high = Vec::new();
    if !a.large_communities.is_empty() {
        let value: Vec<u8> = a
            .large_communities
            .iter()
            .flat_map(|l| l.iter().flat_map(|part| part.to_be_bytes()))
            .collect();
        high.extend_from_slice(&attribute(0xc0, 32, &value));
    }
    (low, high)
}

/// UPDATEs announcing the `family` routes of `routes`: one group of UPDATEs per distinct set of
/// attributes (routes with equal attributes share UPDATEs), each UPDATE holding as many prefixes
/// as fit 4096 bytes. Empty when the family has no next hop.
pub fn announce(routes: &Routes, family: Family, p: &UpdateParams) -> Vec<Vec<u8>> {
    let mut groups: BTreeMap<&Attributes, Vec<&Prefix>> = BTreeMap::new();
    for (prefix, attributes) in routes.iter().filter(|(prefix, _)| prefix.family() == family) {
        groups.entry(attributes.as_ref()).or_default().push(prefix);
    }
    let mut out = Vec::new();
    for (attributes, prefixes) in groups {
        let prefixes = family_prefixes(prefixes, family, p);
        match family {
            Family::Ipv4Unicast => {
                let Some(next_hop) = p.next_hop_v4 else {
                    return Vec::new();
                };
                let (mut attrs, high) = group_attributes(attributes, p, Some(next_hop));
                attrs.extend_from_slice(&high);
                let room = MAX_MESSAGE - HEADER_LEN - 4 - attrs.len();
                out.extend(
                    chunks(&prefixes, room)
                        .iter()
                        .map(|nlri| update(&[], &attrs, nlri)),
                );
            }
            Family::Ipv6Unicast => {
                let Some(next_hop) = p.next_hop_v6 else {
                    return Vec::new();
                };
                let (common, high) = group_attributes(attributes, p, None);
                // MP_REACH_NLRI (RFC 4760 section 3), extended length: AFI, SAFI, next hop,
                // reserved; in type-code order between COMMUNITIES and LARGE_COMMUNITY, as GoBGP.
                let fixed = 5 + 16;
                let room = MAX_MESSAGE - HEADER_LEN - 4 - common.len() - high.len() - 4 - fixed;
                out.extend(chunks(&prefixes, room).iter().map(|nlri| {
                    let mut value = vec![0, 2, 1, 16];
                    value.extend_from_slice(&next_hop.octets());
                    value.push(0);
                    value.extend_from_slice(nlri);
                    let mut attrs = common.clone();
                    attrs.extend_from_slice(&attribute_extended(0x80, 14, &value));
                    attrs.extend_from_slice(&high);
                    update(&[], &attrs, &[])
                }));
            }
        }
    }
    out
}

/// An attribute always written with the extended length (stable sizes for packing).
fn attribute_extended(flags: u8, kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![flags | 0x10, kind];
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// UPDATEs withdrawing the `family` prefixes of `prefixes`.
pub fn withdraw<'a>(
    prefixes: impl IntoIterator<Item = &'a Prefix>,
    family: Family,
    p: &UpdateParams,
) -> Vec<Vec<u8>> {
    let prefixes = family_prefixes(prefixes, family, p);
    match family {
        Family::Ipv4Unicast => chunks(&prefixes, MAX_MESSAGE - HEADER_LEN - 4)
            .iter()
            .map(|w| update(w, &[], &[]))
            .collect(),
        Family::Ipv6Unicast => chunks(&prefixes, MAX_MESSAGE - HEADER_LEN - 4 - 4 - 3)
            .iter()
            .map(|w| {
                let mut value = vec![0, 2, 1];
                value.extend_from_slice(w);
                update(&[], &attribute_extended(0x80, 15, &value), &[])
            })
            .collect(),
    }
}

/// End-of-RIB for `family` (RFC 4724 section 2): an empty UPDATE for IPv4 unicast, an
/// MP_UNREACH_NLRI with only AFI/SAFI otherwise.
pub fn end_of_rib(family: Family) -> Vec<u8> {
    match family {
        Family::Ipv4Unicast => update(&[], &[], &[]),
        Family::Ipv6Unicast => update(&[], &attribute(0x80, 15, &[0, 2, 1]), &[]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
