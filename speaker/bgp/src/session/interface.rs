//! What a session takes and gives: its configuration, the [`Input`]s it is fed and the
//! [`Output`]s it answers with, its FSM states and timers, and what it reports (the negotiated
//! parameters, message counts).

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use super::fallback::Fallback;
use crate::wire::{Family, Routes};

/// A session's configuration (resolved by the speaker from BgpConf and BgpPeer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS.
    pub local_as: u32,
    /// The peer's AS; an OPEN from another AS is refused (Bad Peer AS).
    pub peer_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Hold time we offer (0, or >= 3).
    pub hold_time: u16,
    /// Keepalive interval; `None`: a third of the negotiated hold time.
    pub keepalive: Option<u16>,
    /// Seconds between connection attempts (and before an automatic restart).
    pub connect_retry: u16,
    /// Families we offer.
    pub families: BTreeSet<Family>,
    /// Graceful restart time to advertise, if enabled.
    pub graceful_restart: Option<u16>,
    /// Advertise the Restart State bit: this speaker process restarted (RFC 4724 section 3).
    pub restarting: bool,
    /// Offer ADD-PATH send.
    pub add_path_send: bool,
    /// Never connect; wait for the router to.
    pub passive: bool,
    /// Next hop for IPv4 routes when the session itself is not IPv4.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 routes when the session itself is not IPv6.
    pub next_hop_v6: Option<Ipv6Addr>,
}

/// The FSM states (RFC 4271 section 8.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not trying (stopped, or waiting for the automatic restart).
    Idle,
    /// Connecting.
    Connect,
    /// Waiting for the peer to connect (passive).
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the first KEEPALIVE.
    OpenConfirm,
    /// Up.
    Established,
}

impl State {
    /// The name as BgpPeer status writes it (GoBGP's session states).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }
}

/// The session's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Connection retry, and the delay before an automatic restart.
    ConnectRetry,
    /// No message from the peer for this long: the session is dead.
    Hold,
    /// Time to send a KEEPALIVE.
    Keepalive,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Start (ManualStart).
    Start,
    /// Stop (ManualStop): Cease/Administrative Shutdown, no automatic restart.
    Stop,
    /// A TCP connection to the peer is up (ours, or accepted); `local` is our address on it.
    Connected {
        /// Our end's address (the next hop for its family).
        local: IpAddr,
    },
    /// Our connection attempt failed.
    ConnectFailed,
    /// The TCP connection closed or failed.
    Closed,
    /// Bytes arrived.
    Received(Vec<u8>),
    /// A timer armed by [`Output::Arm`] fired.
    Fired(Timer),
    /// The complete set of routes to announce, with their attributes (replaces the previous one).
    Routes(Routes),
    /// The route set is complete (the speaker's watches have synced): the initial table and
    /// End-of-RIB may go out.
    TableReady,
}

/// What the session decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to the peer.
    Connect,
    /// Close the TCP connection.
    Disconnect,
    /// Send these bytes.
    Send(Vec<u8>),
    /// (Re)arm a timer.
    Arm(Timer, Duration),
    /// Cancel a timer.
    Cancel(Timer),
    /// The session came up.
    Established(Negotiated),
    /// The session went down (or could not come up), and why.
    Down(String),
    /// The peer refused our OPEN with Unsupported Capability (NOTIFICATION 2/7, RFC 5492
    /// section 5): what the next OPENs leave out, and what they cannot. Followed by
    /// [`Output::Down`].
    Fallback(Fallback),
}

/// What both sides agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The hold time in use (the smaller offer).
    pub hold_time: u16,
    /// The keepalive interval in use (0 with hold time 0).
    pub keepalive: u16,
    /// Families both offered: the only ones announced.
    pub families: BTreeSet<Family>,
    /// Both have 4-octet AS.
    pub four_octet_as: bool,
    /// Families with ADD-PATH send.
    pub add_path: BTreeSet<Family>,
    /// The peer's BGP identifier.
    pub peer_router_id: Ipv4Addr,
    /// The peer supports graceful restart.
    pub peer_graceful_restart: bool,
    /// Both sides advertised graceful restart (ours configured and not refused by the peer).
    pub graceful_restart: bool,
    /// The peer supports route refresh.
    pub peer_route_refresh: bool,
}

/// Messages per type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// OPEN.
    pub open: u64,
    /// UPDATE.
    pub update: u64,
    /// NOTIFICATION.
    pub notification: u64,
    /// KEEPALIVE.
    pub keepalive: u64,
    /// ROUTE-REFRESH.
    pub refresh: u64,
    /// All.
    pub total: u64,
}

impl MessageCounts {
    pub(super) fn count(&mut self, frame: &[u8]) {
        self.total += 1;
        match frame.get(18) {
            Some(1) => self.open += 1,
            Some(2) => self.update += 1,
            Some(3) => self.notification += 1,
            Some(4) => self.keepalive += 1,
            Some(5) => self.refresh += 1,
            _ => {}
        }
    }
}
