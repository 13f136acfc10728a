//! The values BGP messages carry, as the speaker uses them: families, prefixes and their
//! attributes, what we offer in OPEN, what a peer offered, a received message, and why received
//! bytes were refused; and the message types and sizes of RFC 4271 section 4.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use netgauze_iana::address_family::AddressType;

/// The largest BGP message (RFC 4271 section 4.1).
pub const MAX_MESSAGE: usize = 4096;
/// The fixed header: marker, length, type.
pub const HEADER_LEN: usize = 19;
/// `AS_TRANS` (RFC 6793 section 9): the 2-octet stand-in for a 4-octet AS.
pub const AS_TRANS: u16 = 23456;

pub(super) const OPEN: u8 = 1;
pub(super) const UPDATE: u8 = 2;
pub(super) const NOTIFICATION: u8 = 3;
pub(super) const KEEPALIVE: u8 = 4;
pub(super) const ROUTE_REFRESH: u8 = 5;

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

    pub(super) fn afi(self) -> u16 {
        match self {
            Family::Ipv4Unicast => 1,
            Family::Ipv6Unicast => 2,
        }
    }

    pub(super) fn of_address_type(t: AddressType) -> Option<Self> {
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
    pub(super) fn encode(&self, path_id: bool, out: &mut Vec<u8>) {
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
    /// Offer route refresh (RFC 2918); `false` once a peer refused it (RFC 5492 section 5).
    pub route_refresh: bool,
    /// Offer 4-octet AS (RFC 6793); `false` once a peer refused it: the 2-octet field then
    /// carries `AS_TRANS` for a larger AS.
    pub four_octet_as: bool,
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
        /// The data field (RFC 4271 section 4.5); for 2/7 the capabilities concerned (RFC 5492
        /// section 5).
        data: Vec<u8>,
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
    pub(super) fn header(subcode: u8, data: Vec<u8>, what: impl Into<String>) -> Self {
        Self {
            code: 1,
            subcode,
            data,
            what: what.into(),
        }
    }
}
