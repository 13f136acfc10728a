use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use super::*;
use crate::{desired::Announcement, node::NodeFacts};

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
fn exactly_one_node_answers_and_only_for_layer2_ips() {
    let pools: BTreeSet<String> = ["l2".to_owned()].into();
    let s = state(
        vec![node("n1", true), node("n2", true), node("n3", true)],
        EipProtocol::Layer2,
    );
    let winners: Vec<&str> = ["n1", "n2", "n3"]
        .into_iter()
        .filter(|me| !my_ips(&s, me, &pools, None).is_empty())
        .collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    // The winner going NotReady moves the IP to exactly one other node.
    let down: Vec<NodeFacts> = ["n1", "n2", "n3"]
        .into_iter()
        .map(|n| node(n, n != winners[0]))
        .collect();
    let s2 = state(down, EipProtocol::Layer2);
    let next: Vec<&str> = ["n1", "n2", "n3"]
        .into_iter()
        .filter(|me| !my_ips(&s2, me, &pools, None).is_empty())
        .collect();
    assert_eq!(next.len(), 1);
    assert_ne!(next[0], winners[0]);
    // A node without the pool's interface never answers; BGP IPs are not layer2's.
    assert!(my_ips(&s, winners[0], &BTreeSet::new(), None).is_empty());
    assert!(
        my_ips(
            &state(vec![node("n1", true)], EipProtocol::Bgp),
            "n1",
            &pools,
            None
        )
        .is_empty()
    );
    assert_eq!(
        my_ips(
            &state(vec![node("n1", true)], EipProtocol::Vip),
            "n1",
            &pools,
            None
        )
        .len(),
        1,
        "vip is announced like layer2"
    );
}

#[test]
fn a_node_outside_the_pools_node_selector_is_no_candidate_and_the_digest_says_so() {
    let pools: BTreeSet<String> = ["l2".to_owned()].into();
    let mut s = state(
        vec![node("n1", true), node("n2", true), node("n3", true)],
        EipProtocol::Layer2,
    );
    let before = view_digest(&s, "n1", &pools, &BTreeMap::new());
    for allowed in ["n1", "n2", "n3"] {
        s.layer2_nodes = [("l2".to_owned(), [allowed.to_owned()].into())].into();
        // Every speaker, with or without heartbeats, elects the selected node only.
        for me in ["n1", "n2", "n3"] {
            let answers = !my_ips(&s, me, &pools, None).is_empty();
            assert_eq!(answers, me == allowed, "{me} with only {allowed} selected");
            let view = PeerView {
                alive: ["n1", "n2", "n3"].map(str::to_owned).into(),
                serving: ["n1", "n2", "n3"].map(|n| (n.to_owned(), pools.clone())).into(),
            };
            let outcome = layer2_outcomes(&s, me, &pools, Some(&view));
            assert_eq!(outcome.values().next().and_then(|o| o.winner()), Some(allowed));
        }
        assert_ne!(
            view_digest(&s, "n1", &pools, &BTreeMap::new()),
            before,
            "the selection is part of the view speakers compare"
        );
    }
    s.layer2_nodes = [("l2".to_owned(), BTreeSet::new())].into();
    assert!(
        ["n1", "n2", "n3"]
            .iter()
            .all(|me| my_ips(&s, me, &pools, None).is_empty())
    );
}

#[test]
fn with_heartbeats_only_live_speakers_with_the_pool_win() {
    let pools: BTreeSet<String> = ["l2".to_owned()].into();
    let s = state(
        vec![node("n1", true), node("n2", true), node("n3", true)],
        EipProtocol::Layer2,
    );
    // n1's view: n2 alive and serving l2, n3 silent. Exactly one of n1, n2 wins, never n3.
    let view = PeerView {
        alive: ["n1".to_owned(), "n2".to_owned()].into(),
        serving: [("n2".to_owned(), pools.clone())].into(),
    };
    let outcome = layer2_outcomes(&s, "n1", &pools, Some(&view));
    let winner = outcome
        .values()
        .next()
        .and_then(|o| o.winner())
        .unwrap()
        .to_owned();
    assert!(winner == "n1" || winner == "n2", "{winner}");
    // n2 alive but without the pool: only n1 may win.
    let no_pool = PeerView {
        serving: [("n2".to_owned(), BTreeSet::new())].into(),
        ..view
    };
    assert_eq!(my_ips(&s, "n1", &pools, Some(&no_pool)).len(), 1);
}
