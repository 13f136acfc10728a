//! BFD for the BGP sessions that ask for it (BgpPeer `spec.bfd`, an oxelb extension): the UDP
//! I/O around the sans-IO sessions of `oxelb-bfd`, one task for all of this node's sessions.
//!
//! - Sockets (RFC 5881 section 4, RFC 5883 section 5): control packets are received on UDP 3784
//!   (single hop) and 4784 (multihop), IPv4 and IPv6, and sent from one socket per family bound
//!   to a source port in 49152..=65535, with TTL (hop limit) 255. Single-hop receive sockets drop
//!   anything that arrives with a TTL below 255 (`IP_MINTTL`, RFC 5881 section 5: GTSM), so a
//!   packet from off-link can never hold a session up.
//! - Demultiplexing (RFC 5880 section 6.8.6): by Your Discriminator when non-zero, else by the
//!   source address and the port it arrived on.
//! - The manager hands the complete set of wanted sessions ([`BfdService::set`]); a change to one
//!   peer's timers reconfigures only its BFD session (a Poll Sequence), never the BGP session.
//! - Each session's state is published ([`Reports`]) for the BGP drivers (the coupling), status,
//!   metrics and Events.
//! - [`BfdService::admin_down`] sends AdminDown on every session (a stopping speaker): RFC 5882
//!   section 3.2 says the peer must not treat it as a failure.
//! - Hand-over across a restart (`oxelb_bfd::handover`): [`BfdService::prepare_handover`]
//!   raises every Up session's Detect Mult so the peer's Detection Time covers the restart
//!   window, [`BfdService::hand_over`] gives their snapshots, which [`store_handover`] writes to
//!   the state directory; the next process reads it ([`load_handover`]), continues the sessions
//!   in Up from [`BfdService::spawn`] on, and [`BfdService::settle`] polls each back to its
//!   configured timers once its BGP session is Established again. Routers that take any BFD
//!   Down during graceful restart for a failure (BIRD 2.0) then keep the routes.
//!
//! Sockets are opened only when the first session is wanted, so a speaker without BFD binds
//! nothing and holds no memory for it.

use std::{collections::BTreeMap, time::Duration};

use oxelb_bfd::handover::Handover;
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
};

mod handover_file;
mod metrics;
mod report;
mod sockets;
mod task;

pub use handover_file::{
    HANDOVER_FILE, HandoverError, HandoverSettings, load_handover, store_handover, unix_ms,
};
pub use metrics::BfdMetrics;
pub use report::{BfdPeer, Report, Reports};
use task::{PREPARE_WAIT, Request, run};

/// The running BFD task.
pub struct BfdService {
    wanted: watch::Sender<BTreeMap<String, BfdPeer>>,
    stopping: watch::Sender<bool>,
    requests: mpsc::UnboundedSender<Request>,
    reports: watch::Receiver<Reports>,
    task: JoinHandle<()>,
}

impl BfdService {
    /// Starts the task. Sessions of `handover` (read by [`load_handover`] from the previous
    /// process) are continued at once, in Up with their discriminators; the others start when
    /// wanted, and the sockets are bound when the first session is.
    pub fn spawn(metrics: BfdMetrics, handover: Option<Handover>) -> Self {
        let (wanted, wanted_rx) = watch::channel(BTreeMap::new());
        let (stopping, stopping_rx) = watch::channel(false);
        let (requests, requests_rx) = mpsc::unbounded_channel();
        let (reports_tx, reports) = watch::channel(Reports::new());
        let task = tokio::spawn(run(
            wanted_rx,
            stopping_rx,
            requests_rx,
            reports_tx,
            metrics,
            handover,
        ));
        Self {
            wanted,
            stopping,
            requests,
            reports,
            task,
        }
    }

    /// Before a hand-over: raises every Up session's Detection Time at its peer to
    /// `detection` (a Poll Sequence, `oxelb_bfd::session::Input::Handover`) and waits for the
    /// Finals, at most half a second.
    pub async fn prepare_handover(&self, detection: Duration) {
        let (done, wait) = oneshot::channel();
        if self.requests.send(Request::Prepare { detection, done }).is_ok() {
            let _ = tokio::time::timeout(PREPARE_WAIT + Duration::from_millis(100), wait).await;
        }
    }

    /// The snapshots of every Up session, to be written for the next process; the sessions
    /// keep running (with the raised Detect Mult) until the task stops, and no AdminDown is
    /// sent. Sessions not Up are sent AdminDown (there is nothing to continue).
    pub async fn hand_over(&self) -> Option<Handover> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(Request::HandOver { reply }).ok()?;
        answer.await.ok()
    }

    /// The BGP session of `peer` is Established: a session continued from the previous
    /// process goes back to its configured timers (a Poll Sequence). Any other call does
    /// nothing.
    pub fn settle(&self, peer: &str) {
        let _ = self.requests.send(Request::Settle(peer.to_owned()));
    }

    /// The complete set of wanted sessions, by BgpPeer name.
    pub fn set(&self, peers: BTreeMap<String, BfdPeer>) {
        self.wanted.send_if_modified(|w| {
            let changed = *w != peers;
            *w = peers;
            changed
        });
    }

    /// The sessions' reports.
    pub fn reports(&self) -> watch::Receiver<Reports> {
        self.reports.clone()
    }

    /// Sends AdminDown on every session and keeps sending it, waiting `linger` for the packets
    /// to leave (a stopping speaker; RFC 5880 section 6.8.16).
    pub async fn admin_down(&self, linger: Duration) {
        let _ = self.stopping.send(true);
        tokio::time::sleep(linger).await;
    }

    /// Ends the task.
    pub fn stop(self) {
        self.task.abort();
    }
}
