use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use std::net::IpAddr;

use oxelb_crds::v1alpha2::EipProtocol;
use oxelb_speaker_core::{desired::Announcement, node::NodeFacts};

use super::*;

fn node(name: &str, ready: bool) -> NodeFacts {
    let n: Node = serde_json::from_value(json!({"metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}))
    .unwrap();
    NodeFacts::of(&n)
}

fn state(nodes: Vec<NodeFacts>, protocol: EipProtocol) -> SpeakerState {
    let ip: IpAddr = "192.0.2.50".parse().unwrap();
    SpeakerState {
        nodes,
        announcements: [(
            ip,
            Announcement {
                ip,
                pool: "l2".into(),
                protocol,
                interface: None,
                services: vec!["default/web".into()],
                local_nodes: None,
            },
        )]
        .into(),
        ..SpeakerState::default()
    }
}

#[test]
fn answered_ips_and_takeovers_are_counted_per_ip_and_eip() {
    let mut registry = Registry::default();
    let metrics = Layer2Metrics::register(&mut registry);
    let s = state(vec![node("n1", true)], EipProtocol::Layer2);
    let ip: IpAddr = "192.0.2.50".parse().unwrap();
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
