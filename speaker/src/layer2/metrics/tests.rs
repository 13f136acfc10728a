use std::net::IpAddr;

use oxelb_crds::v1alpha2::EipProtocol;
use oxelb_speaker_core::desired::Announcement;

use super::*;

/// The one fact the metrics read of the state: which Eip an IP belongs to.
fn state_with(ip: IpAddr, pool: &str) -> SpeakerState {
    let announcement = Announcement {
        ip,
        pool: pool.into(),
        protocol: EipProtocol::Layer2,
        interface: None,
        services: vec!["default/web".into()],
        local_nodes: None,
    };
    SpeakerState {
        announcements: [(ip, announcement)].into(),
        ..SpeakerState::default()
    }
}

#[test]
fn answered_ips_and_takeovers_are_counted_per_ip_and_eip() {
    let mut registry = Registry::default();
    let metrics = Layer2Metrics::register(&mut registry);
    let ip: IpAddr = "192.0.2.50".parse().unwrap();
    let s = state_with(ip, "l2");
    let encode = |registry: &Registry| {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    };
    let one: BTreeSet<IpAddr> = [ip].into();
    metrics.record_answering(&one, &BTreeSet::new(), &s);
    metrics.record_answering(&one, &one, &s);
    let text = encode(&registry);
    assert!(
        text.contains("oxelb_layer2_answering{ip=\"192.0.2.50\",eip=\"l2\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("oxelb_layer2_takeovers_total{eip=\"l2\"} 1"),
        "{text}"
    );
    assert!(text.contains("oxelb_layer2_ips_answered 1"), "{text}");
    // Lost: the per-IP series goes (so a sum over nodes counts only answerers).
    metrics.record_answering(&BTreeSet::new(), &one, &s);
    let text = encode(&registry);
    assert!(!text.contains("oxelb_layer2_answering{"), "{text}");
    assert!(text.contains("oxelb_layer2_ips_answered 0"), "{text}");
}
