use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};

use super::*;

fn conf(spec: Value) -> BgpConf {
    serde_json::from_value(
        json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpConf",
        "metadata": {"name": "default"}, "spec": spec}),
    )
    .unwrap()
}

fn peer(name: &str, spec: Value) -> BgpPeer {
    serde_json::from_value(
        json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpPeer",
        "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

fn node(labels: Value) -> NodeFacts {
    let n: Node = serde_json::from_value(json!({"metadata": {"name": "n1", "labels": labels},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.11"}, {"type": "InternalIP", "address": "2001:db8::11"}]}}))
    .unwrap();
    NodeFacts::of(&n)
}

fn router(name: &str, address: &str, asn: u32) -> BgpPeer {
    peer(name, json!({"conf": {"peerAs": asn, "neighborAddress": address}}))
}

#[test]
fn resolves_every_value_with_openelb_defaults() {
    let p = plan(
        &[conf(json!({"as": 64512, "listenPort": 17900}))],
        &[router("r1", "198.51.100.1", 65001)],
        &node(json!({})),
    );
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_eq!(
        p.listen,
        Some(Listen {
            port: 17900,
            addresses: vec![]
        })
    );
    let s = &p.sessions["r1"];
    assert_eq!(s.neighbor, "198.51.100.1".parse::<IpAddr>().unwrap());
    assert_eq!((s.remote_port, s.peer_as, s.local_as), (179, 65001, 64512));
    assert_eq!(
        s.router_id,
        "192.0.2.11".parse::<Ipv4Addr>().unwrap(),
        "node InternalIP by default"
    );
    assert_eq!((s.ttl, s.hold_time, s.keepalive, s.connect_retry), (1, 90, 30, 5));
    assert_eq!(s.families, [Family::Ipv4Unicast].into());
    assert_eq!(
        (
            s.passive,
            s.md5_password.clone(),
            s.graceful_restart_time,
            s.admin_down
        ),
        (false, None, None, false)
    );
}

#[test]
fn per_peer_options() {
    let spec = json!({"conf": {"peerAs": 64512, "neighborAddress": "2001:db8::1", "authPassword": "s3cret", "localAs": 64512},
        "timers": {"config": {"holdTime": "9", "keepaliveInterval": "2", "connectRetry": "1"}},
        "transport": {"passiveMode": true, "remotePort": 17900},
        "gracefulRestart": {"enabled": true, "restartTime": 30},
        "afiSafis": [{"config": {"family": {"afi": "ipv4", "safi": "unicast"}, "enabled": true}},
                     {"config": {"family": {"afi": "ipv6", "safi": "unicast"}, "enabled": true}, "addPaths": {"config": {"sendMax": 4}}}]});
    let p = plan(
        &[conf(json!({"as": 64512, "routerId": "198.51.100.9"}))],
        &[peer("ibgp", spec)],
        &node(json!({})),
    );
    let s = &p.sessions["ibgp"];
    assert_eq!(
        (s.ttl, s.hold_time, s.keepalive, s.connect_retry),
        (255, 9, 2, 1),
        "iBGP: TTL 255"
    );
    assert_eq!((s.remote_port, s.passive), (17900, true));
    assert_eq!(s.md5_password.as_deref(), Some("s3cret"));
    assert_eq!(s.router_id, "198.51.100.9".parse::<Ipv4Addr>().unwrap());
    assert_eq!(s.families, [Family::Ipv4Unicast, Family::Ipv6Unicast].into());
    assert_eq!(
        (s.add_path_send_max, s.graceful_restart_time),
        (Some(4), Some(30))
    );
    // sendMax 0 is GoBGP's "no ADD-PATH".
    let zero = peer(
        "zero",
        json!({"conf": {"peerAs": 65001, "neighborAddress": "203.0.113.1"},
            "afiSafis": [{"config": {"family": {"afi": "AFI_IP", "safi": "SAFI_UNICAST"}}, "addPaths": {"config": {"sendMax": 0}}}]}),
    );
    assert_eq!(
        plan(&[conf(json!({"as": 64512}))], &[zero], &node(json!({}))).sessions["zero"].add_path_send_max,
        None
    );
    let multihop = peer(
        "mh",
        json!({"conf": {"peerAs": 65001, "neighborAddress": "203.0.113.1"}, "ebgpMultihop": {"enabled": true, "multihopTtl": 3}}),
    );
    assert_eq!(
        plan(&[conf(json!({"as": 64512}))], &[multihop], &node(json!({}))).sessions["mh"].ttl,
        3
    );
}

#[test]
fn rack_as_node_selector_and_cni_peers() {
    let c = conf(json!({"as": 64512, "routerId": "198.51.100.9", "asPerRack": {"rack-a": 65100}}));
    let peers = [
        peer("zone-b", json!({"conf": {"peerAs": 65001, "neighborAddress": "198.51.100.1"}, "nodeSelector": {"matchLabels": {"zone": "b"}}})),
        router("all", "198.51.100.2", 65001),
        serde_json::from_value(json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpPeer",
            "metadata": {"name": "calico", "labels": {names::CNI_LABEL: "calico"}}, "spec": {"conf": {"peerAs": 1, "neighborAddress": "198.51.100.3"}}})).unwrap(),
    ];
    let p = plan(
        &[c],
        &peers,
        &node(json!({names::RACK_LABEL: "rack-a", "zone": "a"})),
    );
    assert_eq!(p.sessions.keys().collect::<Vec<_>>(), vec!["all"]);
    let s = &p.sessions["all"];
    assert_eq!(s.local_as, 65100, "the rack's AS");
    assert_eq!(
        s.router_id,
        "192.0.2.11".parse::<Ipv4Addr>().unwrap(),
        "with a rack AS the node's own address"
    );
}

#[test]
fn problems_name_the_object_and_field() {
    let bad = [
        peer("noaddr", json!({"conf": {"peerAs": 65001}})),
        peer(
            "badaddr",
            json!({"conf": {"peerAs": 65001, "neighborAddress": "router"}}),
        ),
        peer("noas", json!({"conf": {"neighborAddress": "198.51.100.1"}})),
        peer(
            "hold",
            json!({"conf": {"peerAs": 1, "neighborAddress": "198.51.100.1"}, "timers": {"config": {"holdTime": "2"}}}),
        ),
        peer(
            "text",
            json!({"conf": {"peerAs": 1, "neighborAddress": "198.51.100.1"}, "timers": {"config": {"keepaliveInterval": "x"}}}),
        ),
    ];
    let p = plan(&[conf(json!({"as": 64512}))], &bad, &node(json!({})));
    assert!(p.sessions.is_empty());
    let objects: Vec<&str> = p.problems.iter().map(|p| p.object.as_str()).collect();
    assert_eq!(
        objects,
        vec![
            "BgpPeer/noaddr",
            "BgpPeer/badaddr",
            "BgpPeer/noas",
            "BgpPeer/hold",
            "BgpPeer/text"
        ]
    );
    assert!(p.problems[3].message.contains("spec.timers.config.holdTime"));
    let none = plan(&[], &[router("r1", "198.51.100.1", 1)], &node(json!({})));
    assert_eq!(none.problems[0].object, "BgpConf/default");
    assert_eq!(
        plan(&[conf(json!({"as": 1, "listenPort": -1}))], &[], &node(json!({}))).listen,
        None
    );
}

#[test]
fn a_change_touches_only_the_sessions_whose_resolved_config_changed() {
    let n = node(json!({}));
    let peers = [
        router("r1", "198.51.100.1", 65001),
        router("r2", "198.51.100.2", 65002),
    ];
    let before = plan(&[conf(json!({"as": 64512}))], &peers, &n);

    // Edit one BgpPeer: only its session restarts.
    let edited = [
        router("r1", "198.51.100.1", 65001),
        peer(
            "r2",
            json!({"conf": {"peerAs": 65002, "neighborAddress": "198.51.100.2"}, "timers": {"config": {"holdTime": "30"}}}),
        ),
    ];
    let d = diff(&before, &plan(&[conf(json!({"as": 64512}))], &edited, &n));
    assert_eq!(
        d,
        Changes {
            restart: vec!["r2".into()],
            ..Changes::default()
        }
    );

    // A description alone restarts nothing, and is in the resolved session (for the status).
    let described = [
        router("r1", "198.51.100.1", 65001),
        peer(
            "r2",
            json!({"conf": {"peerAs": 65002, "neighborAddress": "198.51.100.2", "description": "tor-2"}}),
        ),
    ];
    let after = plan(&[conf(json!({"as": 64512}))], &described, &n);
    assert_eq!(diff(&before, &after), Changes::default());
    assert_eq!(after.sessions["r2"].description.as_deref(), Some("tor-2"));

    // BgpConf listenPort: the listener moves, no session restarts.
    let d = diff(
        &before,
        &plan(&[conf(json!({"as": 64512, "listenPort": 17900}))], &peers, &n),
    );
    assert_eq!(
        d,
        Changes {
            listen_changed: true,
            ..Changes::default()
        }
    );

    // BgpConf AS: every session whose local AS it is restarts (a peer with its own localAs not).
    let own = [
        router("r1", "198.51.100.1", 65001),
        peer(
            "r2",
            json!({"conf": {"peerAs": 65002, "neighborAddress": "198.51.100.2", "localAs": 64512}}),
        ),
    ];
    let before_own = plan(&[conf(json!({"as": 64512}))], &own, &n);
    let d = diff(&before_own, &plan(&[conf(json!({"as": 64600}))], &own, &n));
    assert_eq!(d.restart, vec!["r1".to_owned()]);

    // Add and delete.
    let d = diff(
        &before,
        &plan(
            &[conf(json!({"as": 64512}))],
            &[
                router("r1", "198.51.100.1", 65001),
                router("r3", "198.51.100.3", 65003),
            ],
            &n,
        ),
    );
    assert_eq!(
        (d.start, d.stop, d.restart),
        (vec!["r3".to_owned()], vec!["r2".to_owned()], vec![])
    );
}

#[test]
fn bfd_resolves_with_defaults_and_a_bfd_change_never_restarts_bgp() {
    let n = node(json!({}));
    let with_bfd = |bfd: Value| {
        [peer(
            "r1",
            json!({"conf": {"peerAs": 65001, "neighborAddress": "198.51.100.1"}, "bfd": bfd}),
        )]
    };
    let c = [conf(json!({"as": 64512}))];
    let off = plan(&c, &[router("r1", "198.51.100.1", 65001)], &n);
    assert_eq!(off.sessions["r1"].bfd, None);
    assert_eq!(
        plan(&c, &with_bfd(json!({"enabled": false})), &n).sessions["r1"].bfd,
        None
    );
    let on = plan(&c, &with_bfd(json!({"enabled": true})), &n);
    assert_eq!(
        on.sessions["r1"].bfd,
        Some(BfdConfig {
            desired_min_tx_ms: 300,
            required_min_rx_ms: 300,
            detect_mult: 3,
            multihop: false
        })
    );
    // Out of range (no webhook in front of the dir: source): held to the documented range.
    let clamped = plan(
        &c,
        &with_bfd(
            json!({"enabled": true, "desiredMinTxMs": 1, "requiredMinRxMs": 999999, "detectMultiplier": 0}),
        ),
        &n,
    );
    assert_eq!(
        clamped.sessions["r1"]
            .bfd
            .map(|b| (b.desired_min_tx_ms, b.required_min_rx_ms, b.detect_mult)),
        Some((50, 60_000, 2))
    );
    // Enabling, retiming and disabling BFD: only the BFD session follows.
    let fast = plan(
        &c,
        &with_bfd(json!({"enabled": true, "desiredMinTxMs": 100, "requiredMinRxMs": 100})),
        &n,
    );
    for (a, b) in [(&off, &on), (&on, &fast), (&fast, &off)] {
        let d = diff(a, b);
        assert_eq!(
            d,
            Changes {
                bfd: vec!["r1".into()],
                ..Changes::default()
            }
        );
    }
    // A BGP change with a BFD change restarts BGP (once, as any BGP change).
    let mut both = with_bfd(json!({"enabled": true, "desiredMinTxMs": 100}));
    both[0].spec.conf.as_mut().unwrap().peer_as = Some(65009);
    let d = diff(&on, &plan(&c, &both, &n));
    assert_eq!((d.restart, d.bfd), (vec!["r1".to_owned()], vec![]));
    // Multihop follows ebgpMultihop.
    let mh = plan(
        &c,
        &[peer(
            "r1",
            json!({"conf": {"peerAs": 65001, "neighborAddress": "198.51.100.1"}, "bfd": {"enabled": true},
                "ebgpMultihop": {"enabled": true, "multihopTtl": 3}}),
        )],
        &n,
    );
    assert!(mh.sessions["r1"].bfd.unwrap().multihop);
}

#[test]
fn transport_tcp_mss_and_mtu_discovery_resolve_and_restart_only_their_session() {
    let with = |transport: Value| {
        plan(
            &[conf(json!({"as": 64512}))],
            &[
                peer(
                    "r1",
                    json!({"conf": {"peerAs": 65001, "neighborAddress": "198.51.100.1"}, "transport": transport}),
                ),
                router("r2", "198.51.100.9", 65001),
            ],
            &node(json!({})),
        )
    };
    let unset = with(json!({}));
    assert_eq!(
        (unset.sessions["r1"].tcp_mss, unset.sessions["r1"].mtu_discovery),
        (None, None)
    );
    let zero = with(json!({"tcpMss": 0}));
    assert_eq!(zero.sessions["r1"].tcp_mss, None, "0 is GoBGP's unset");
    let set = with(json!({"tcpMss": 1200, "mtuDiscovery": false}));
    assert_eq!(
        (set.sessions["r1"].tcp_mss, set.sessions["r1"].mtu_discovery),
        (Some(1200), Some(false))
    );
    assert_eq!(
        with(json!({"mtuDiscovery": true})).sessions["r1"].mtu_discovery,
        Some(true)
    );
    // Out of what Linux accepts (the webhook refuses these; the dir: source has no webhook).
    assert_eq!(with(json!({"tcpMss": 40})).sessions["r1"].tcp_mss, Some(88));
    assert_eq!(with(json!({"tcpMss": 65495})).sessions["r1"].tcp_mss, Some(32767));
    // Socket options before connect: a change restarts that session only.
    let changes = diff(&unset, &set);
    assert_eq!(changes.restart, vec!["r1".to_owned()]);
    assert!(changes.start.is_empty() && changes.stop.is_empty());
}
