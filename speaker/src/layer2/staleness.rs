//! Saying so when this speaker's own API view is stale (the decision is pure:
//! [`oxelb_speaker_core::stale`]): a log line, the `oxelb_layer2_view_stale` metric, a Warning
//! Event on this speaker's Node, `/readyz` failing, and its watches restarted (at most every
//! [`RESTART_EVERY`]: a restart opens new connections, which ends a half-open one; against an
//! apiserver that is itself stuck, restarting more often would only add load).
//!
//! A stale speaker keeps answering the IPs it already answers. Its peers cannot take them over
//! safely (they see its claims), and those IPs were right when its view stopped: dropping them
//! would turn a control-plane fault into an outage of every Service it answers for. The cost: a
//! Service deleted during the stall keeps its IP answered by this node until the view recovers
//! (an IP given to a new Service meanwhile is answered by this node too, and reaches the new
//! Service's endpoints through kube-proxy, whose own view decides). New IPs it would win are
//! answered by a peer standing in ([`oxelb_speaker_core::standin`]).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use oxelb_runtime::{
    feed::WatchRestarter,
    serve::Health,
    source::{EventRecord, EventType, WatchProgress, Writer},
};
use oxelb_speaker_core::stale::{StaleView, Staleness};
use tracing::{info, warn};

use super::metrics::Layer2Metrics;

/// At most one restart of the watches in this interval while the view stays stale.
pub const RESTART_EVERY: Duration = Duration::from_secs(30);

/// What the announcer needs of the object source: how far its Service watch has got, the
/// readiness flag, and a way to restart the watches.
#[derive(Clone, Debug)]
pub struct SourceView {
    /// The watches' progress.
    pub progress: WatchProgress,
    /// The process's readiness (`/readyz`).
    pub health: Health,
    /// Restarts every watch of the process.
    pub restarter: WatchRestarter,
}

impl SourceView {
    /// The highest Service `resourceVersion` delivered (0: unknown).
    pub fn progress(&self) -> u64 {
        self.progress.highest("Service")
    }
}

/// Turns the pure detector's verdicts into the signals above, once per change.
pub struct StaleReporter {
    detector: StaleView,
    stale: bool,
    last_restart: Option<Instant>,
}

impl StaleReporter {
    /// A reporter that calls a view stale after `after` behind a peer.
    pub fn new(after: Duration) -> Self {
        Self {
            detector: StaleView::new(after),
            stale: false,
            last_restart: None,
        }
    }

    /// When the current lag turns stale if nothing changes (on the liveness timeline).
    pub fn next_deadline(&self, now: Duration) -> Option<Duration> {
        self.detector.next_deadline(now)
    }

    /// Records this speaker's progress and its live peers' highest at `now`, and reports a change.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        now: Duration,
        mine: u64,
        peers: u64,
        source: &SourceView,
        writer: &Writer,
        node: &str,
        metrics: &Layer2Metrics,
    ) {
        match self.detector.observe(now, mine, peers) {
            Staleness::Stale {
                mine,
                peer,
                behind_for,
            } => {
                let behind_ms = u64::try_from(behind_for.as_millis()).unwrap_or(u64::MAX);
                if !self.stale {
                    self.stale = true;
                    metrics.view_stale.set(1);
                    source.health.set_ready(false);
                    warn!(
                        progress = mine,
                        peer_progress = peer,
                        behind_ms,
                        "this speaker's API view is stale (a peer applied a Service change this one has not seen): restarting the watches; it keeps answering the IPs it answers, peers stand in for new ones"
                    );
                    let event = EventRecord {
                        regarding: node_ref(node),
                        type_: EventType::Warning,
                        reason: "ViewStale".into(),
                        action: "Watch".into(),
                        note: Some(format!(
                            "speaker on node {node}: its Service watch is behind its peers' (resourceVersion {mine}, a peer has {peer}) for {behind_ms} ms; watches restarted; peers answer the new layer2 IPs it would win"
                        )),
                    };
                    writer.spawn_event(event);
                }
                let due = self.last_restart.is_none_or(|at| at.elapsed() >= RESTART_EVERY);
                if due {
                    self.last_restart = Some(Instant::now());
                    source.restarter.restart();
                    info!(progress = mine, "watches restarted (view stale)");
                }
            }
            Staleness::Fresh => {
                if self.stale {
                    self.stale = false;
                    metrics.view_stale.set(0);
                    source.health.set_ready(true);
                    info!(
                        progress = mine,
                        "this speaker's API view caught up with its peers'"
                    );
                }
            }
        }
    }
}

fn node_ref(node: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.to_owned()),
        ..Default::default()
    }
}
