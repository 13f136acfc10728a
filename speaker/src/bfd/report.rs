//! What the BFD task publishes: the wanted sessions and each session's state, for the BGP
//! drivers (the coupling), status, metrics and Events.

use std::{collections::BTreeMap, net::IpAddr};

use oxelb_bfd::{
    session::{Counters, Negotiated},
    wire::{Diagnostic, State},
};
use oxelb_speaker_core::sessions::BfdConfig;

/// One wanted BFD session: the BgpPeer's neighbour and its resolved timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdPeer {
    /// The neighbour (`conf.neighborAddress`).
    pub neighbor: IpAddr,
    /// Timers and hop mode.
    pub config: BfdConfig,
}

/// A session's state as the BGP driver, status, metrics and Events see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The local state.
    pub state: State,
    /// Why it last changed.
    pub diagnostic: Diagnostic,
    /// The last change to Down came from the peer's AdminDown: a graceful stop, not a failure
    /// (RFC 5882 section 3.2).
    pub peer_admin_down: bool,
    /// The intervals in use once the peer was heard.
    pub negotiated: Option<Negotiated>,
    /// Packet and transition counters.
    pub counters: Counters,
    /// When the state last changed (RFC 3339).
    pub last_change: Option<String>,
}

/// Every session's report, by BgpPeer name. A peer is in the map exactly while BFD is wanted
/// for it.
pub type Reports = BTreeMap<String, Report>;
