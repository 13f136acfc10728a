//! The layer2 metrics (`oxelb_layer2_*`).

use std::{collections::BTreeSet, net::IpAddr};

use oxelb_speaker_core::plan::SpeakerState;
use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

type Labels = Vec<(&'static str, String)>;

/// The layer2 metrics.
#[derive(Clone, Debug, Default)]
pub struct Layer2Metrics {
    pub(super) requests: Family<Labels, Counter>,
    pub(super) replies: Family<Labels, Counter>,
    pub(super) announcements: Counter,
    pub(super) foreign: Counter,
    answered: Gauge,
    pub(super) standing: Gauge,
    answering: Family<Labels, Gauge>,
    takeovers: Family<Labels, Counter>,
    pub(super) view_stale: Gauge,
    pub(super) standing_in: Gauge,
}

impl Layer2Metrics {
    /// Creates and registers the families.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "oxelb_layer2_requests",
            "ARP requests and Neighbor Solicitations received for IPs this node answers, by family",
            m.requests.clone(),
        );
        registry.register(
            "oxelb_layer2_replies",
            "ARP replies and Neighbor Advertisements sent, by family",
            m.replies.clone(),
        );
        registry.register(
            "oxelb_layer2_announcements",
            "Gratuitous ARPs and unsolicited Neighbor Advertisements sent on take-over",
            m.announcements.clone(),
        );
        registry.register(
            "oxelb_layer2_foreign_claims",
            "ARP from another MAC claiming an IP this node answers for (split brain, or kube-proxy IPVS without strictARP)",
            m.foreign.clone(),
        );
        registry.register(
            "oxelb_layer2_ips_answered",
            "IPs this node answers ARP/NDP for",
            m.answered.clone(),
        );
        registry.register(
            "oxelb_layer2_standing",
            "1 while this speaker has standing (sees a majority, or heartbeats are off)",
            m.standing.clone(),
        );
        registry.register(
            "oxelb_layer2_answering",
            "1 for each IP this node answers ARP/NDP for, by ip and eip (summed over nodes: answerers per IP)",
            m.answering.clone(),
        );
        registry.register(
            "oxelb_layer2_takeovers",
            "IPs this node started answering (a failover, a new IP, or a restart), by eip",
            m.takeovers.clone(),
        );
        registry.register(
            "oxelb_layer2_view_stale",
            "1 while this speaker's API view is stale: a live peer has applied a Service change this speaker has not seen for longer than the settle bound (a hung watch)",
            m.view_stale.clone(),
        );
        registry.register(
            "oxelb_layer2_standing_in",
            "IPs this node answers in place of a live peer whose API view provably lacks them (a peer with a hung watch)",
            m.standing_in.clone(),
        );
        m
    }

    /// Records the IPs answered now; those not answered before are take-overs.
    pub(super) fn record_answering(
        &self,
        now: &BTreeSet<IpAddr>,
        before: &BTreeSet<IpAddr>,
        state: &SpeakerState,
    ) {
        let eip = |ip: &IpAddr| {
            state
                .announcements
                .get(ip)
                .map(|a| a.pool.to_string())
                .unwrap_or_default()
        };
        self.answered.set(i64::try_from(now.len()).unwrap_or(i64::MAX));
        self.answering.clear();
        for ip in now {
            self.answering
                .get_or_create(&vec![("ip", ip.to_string()), ("eip", eip(ip))])
                .set(1);
        }
        for ip in now.difference(before) {
            self.takeovers.get_or_create(&vec![("eip", eip(ip))]).inc();
        }
    }

    pub(super) fn family(ip: IpAddr) -> Labels {
        vec![("family", if ip.is_ipv4() { "ipv4" } else { "ipv6" }.to_owned())]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
