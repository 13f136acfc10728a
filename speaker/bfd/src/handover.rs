//! Handing BFD sessions over from a stopping speaker process to the next one (a DaemonSet
//! rolling update), so that the peer never sees them go down.
//!
//! Why: a router that takes BFD Down (even AdminDown, though RFC 5882 section 3.2 says it must
//! not) for a failure flushes the routes that graceful restart (RFC 4724) was keeping while the
//! speaker restarts: BIRD 2.0 does. RFC 5880 has no hand-over; this uses only what it allows:
//!
//! 1. the stopping process raises the Detect Mult it sends (section 6.8.1: it may change at any
//!    time), and its Desired Min TX when 255 intervals are not enough, in a Poll Sequence
//!    (section 6.5), so that the peer's Detection Time covers the restart window
//!    ([`crate::session::Input::Handover`]);
//! 2. it writes every Up session's [`Snapshot`] into a [`Handover`] and stops without AdminDown;
//! 3. the next process checks the hand-over ([`Handover::check`]), continues each session the
//!    BgpPeers still want ([`Handover::take`], [`crate::session::Session::resume`]) in Up with
//!    the same discriminators before the peer's Detection Time runs out, and later brings the
//!    configured timers back with a Poll Sequence.
//!
//! The trade-off: a node that dies within the window after its speaker stopped is detected only
//! when the window ends. Values only: the file, its path and the clock are the driver's.

use std::{collections::BTreeMap, net::IpAddr};

use serde::{Deserialize, Serialize};

use crate::values::Config;
pub use crate::values::Snapshot;

/// The format of [`Handover`] this crate writes and reads.
pub const FORMAT: u32 = 1;

/// One handed-over session: whom it is with, its configured timers, its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionHandover {
    /// The peer's address.
    pub neighbor: IpAddr,
    /// Multihop (RFC 5883) rather than single hop (RFC 5881).
    pub multihop: bool,
    /// The timers configured for it when it was handed over.
    pub config: Config,
    /// Its state.
    pub snapshot: Snapshot,
}

/// Everything a stopping process hands to the next, by session name (the BgpPeer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    /// [`FORMAT`] when written.
    pub format: u32,
    /// The node whose speaker wrote it (a hand-over is never for another node).
    pub node: String,
    /// When it was written, milliseconds since the Unix epoch.
    pub written_unix_ms: u64,
    /// The Detection Time the peers were given, milliseconds: after that they have declared
    /// the sessions down and there is nothing to continue.
    pub window_ms: u64,
    /// The UDP source ports the sessions used (RFC 5881 section 4: the same for the whole
    /// session), IPv4 and IPv6.
    pub source_port_v4: Option<u16>,
    /// See `source_port_v4`.
    pub source_port_v6: Option<u16>,
    /// The sessions.
    pub sessions: BTreeMap<String, SessionHandover>,
}

/// Why a hand-over is not used (the next process then starts its sessions afresh).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Written in a format this speaker does not read.
    #[error("format {found}, this speaker reads format {FORMAT}")]
    Format {
        /// The file's format.
        found: u32,
    },
    /// Written by the speaker of another node (a copied or shared directory).
    #[error("written by the speaker of node {written}, this is node {ours}")]
    ForeignNode {
        /// The node that wrote it.
        written: String,
        /// This node.
        ours: String,
    },
    /// Older than the window: the peers have declared the sessions down by now.
    #[error(
        "written {age_ms} ms ago, beyond its {window_ms} ms window: the peers have timed the sessions out"
    )]
    Stale {
        /// Its age.
        age_ms: u64,
        /// Its window.
        window_ms: u64,
    },
    /// Written in the future by this node's clock (the clock was set back): its age is unknown.
    #[error("written {ahead_ms} ms in the future by this node's clock: its age is unknown")]
    Future {
        /// How far ahead.
        ahead_ms: u64,
    },
}

impl Handover {
    /// Whether node `node` may use this hand-over at `now_unix_ms`.
    pub fn check(&self, node: &str, now_unix_ms: u64) -> Result<(), Refusal> {
        if self.format != FORMAT {
            return Err(Refusal::Format { found: self.format });
        }
        if self.node != node {
            return Err(Refusal::ForeignNode {
                written: self.node.clone(),
                ours: node.to_owned(),
            });
        }
        // A second of skew between the stopping and the starting process's clock readings is
        // tolerated; more means the clock jumped.
        let ahead_ms = self.written_unix_ms.saturating_sub(now_unix_ms);
        if ahead_ms > 1000 {
            return Err(Refusal::Future { ahead_ms });
        }
        let age_ms = now_unix_ms.saturating_sub(self.written_unix_ms);
        if age_ms >= self.window_ms {
            return Err(Refusal::Stale {
                age_ms,
                window_ms: self.window_ms,
            });
        }
        Ok(())
    }

    /// The snapshot of session `name` when it is still wanted with the same peer and hop mode
    /// (the timers may differ: the resumed session then polls to the new ones); removed from
    /// the hand-over, so a session is continued at most once.
    pub fn take(&mut self, name: &str, neighbor: IpAddr, multihop: bool) -> Option<SessionHandover> {
        let entry = self.sessions.get(name)?;
        if entry.neighbor != neighbor || entry.multihop != multihop {
            return None;
        }
        self.sessions.remove(name)
    }
}
