//! The BFD metrics (`oxelb_bfd_*`), one series per BgpPeer.

use oxelb_bfd::wire::State;
use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::bfd::report::Report;

/// The BFD metrics.
#[derive(Clone, Debug, Default)]
pub struct BfdMetrics {
    up: Family<Labels, Gauge>,
    transitions: Family<Labels, Gauge>,
    detection: Family<Labels, Gauge>,
    pub(super) invalid: Counter,
}

type Labels = Vec<(&'static str, String)>;

impl BfdMetrics {
    /// Creates and registers the families.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "oxelb_bfd_session_up",
            "1 while the BFD session to the BgpPeer is Up",
            m.up.clone(),
        );
        registry.register(
            "oxelb_bfd_session_down_transitions",
            "Times the BFD session went from Up to Down (flaps) in the current process",
            m.transitions.clone(),
        );
        registry.register(
            "oxelb_bfd_detection_time_milliseconds",
            "Negotiated BFD detection time: silence this long declares the peer down",
            m.detection.clone(),
        );
        registry.register(
            "oxelb_bfd_packets_invalid",
            "Received BFD packets that failed the RFC 5880 section 6.8.6 checks",
            m.invalid.clone(),
        );
        m
    }

    pub(super) fn record(&self, peer: &str, report: &Report) {
        let labels = vec![("peer", peer.to_owned())];
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.up
            .get_or_create(&labels)
            .set(i64::from(report.state == State::Up));
        self.transitions
            .get_or_create(&labels)
            .set(n(report.counters.down));
        self.detection
            .get_or_create(&labels)
            .set(n(report.negotiated.map_or(0, |x| x.detection_time_us / 1000)));
    }

    pub(super) fn forget(&self, peer: &str) {
        let labels = vec![("peer", peer.to_owned())];
        self.up.remove(&labels);
        self.transitions.remove(&labels);
        self.detection.remove(&labels);
    }
}
