//! The webhook's answers: a golden AdmissionReview in and out, every rule valid and invalid, and no
//! panic on any input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use oxelb_controller::webhook::review::{Kind, ReviewError, passes_unvalidated, review};
use oxelb_crds::v1alpha2::Eip;
use proptest::prelude::*;
use serde_json::{Value, json};

fn eip(name: &str, spec: Value, default: bool) -> Value {
    let mut value = json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
        "metadata": {"name": name}, "spec": spec});
    if default {
        value["metadata"]["annotations"] = json!({"eip.openelb.kubesphere.io/is-default-eip": "true"});
    }
    value
}

fn request(operation: &str, object: Value, old: Option<Value>) -> Vec<u8> {
    let mut req = json!({"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "operation": operation,
        "kind": {"group": "network.kubesphere.io", "version": "v1alpha2", "kind": "Eip"},
        "name": object["metadata"]["name"], "object": object});
    if let Some(old) = old {
        req["oldObject"] = old;
    }
    serde_json::to_vec(
        &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}),
    )
    .unwrap()
}

fn existing() -> Vec<Eip> {
    [
        eip("pool-a", json!({"address": "192.0.2.0/28"}), true),
        eip("pool-v6", json!({"address": "2001:db8::/120"}), false),
        eip("broken", json!({"address": "not-an-address"}), false),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect()
}

/// `Ok(())` when allowed, else the message.
fn verdict(kind: Kind, body: &[u8]) -> Result<(), String> {
    let answer = review(kind, body, &existing).unwrap();
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    if answer["response"]["allowed"] == true {
        Ok(())
    } else {
        assert_eq!(answer["response"]["status"]["code"], 422);
        Err(answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .to_owned())
    }
}

#[test]
fn golden_review_in_and_out() {
    let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","kind":{"group":"network.kubesphere.io","version":"v1alpha2","kind":"Eip"},"resource":{"group":"network.kubesphere.io","version":"v1alpha2","resource":"eips"},"name":"eip-l2","operation":"CREATE","userInfo":{"username":"admin"},"object":{"apiVersion":"network.kubesphere.io/v1alpha2","kind":"Eip","metadata":{"name":"eip-l2"},"spec":{"address":"192.0.2.8-192.0.2.20","protocol":"layer2"}},"oldObject":null,"dryRun":false}}"#;
    let answer = review(Kind::Eip, body, &existing).unwrap();
    let golden = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": false,
        "status": {"code": 422, "reason": "Invalid", "message":
            "Eip eip-l2 is invalid: spec.address: 192.0.2.8-192.0.2.20 overlaps Eip pool-a (192.0.2.0/28); pools must not share addresses; spec.interface: is required for protocol layer2: a NIC name (eth0) or can_reach:<IP>"}}});
    assert_eq!(answer, golden);
}

#[test]
fn eip_rules() {
    let ok = |spec: Value| verdict(Kind::Eip, &request("CREATE", eip("new", spec, false), None));
    let bad = |spec: Value, default: bool, needles: &[&str]| {
        let message = verdict(
            Kind::Eip,
            &request("CREATE", eip("new", spec.clone(), default), None),
        )
        .expect_err(&format!("{spec} must be refused"));
        for needle in needles {
            assert!(message.contains(needle), "{needle:?} not in {message:?}");
        }
    };
    assert_eq!(ok(json!({"address": "198.51.100.0/24"})), Ok(()));
    assert_eq!(
        ok(json!({"address": "192.0.2.16-192.0.2.31", "protocol": "layer2", "interface": "eth0"})),
        Ok(())
    );
    assert_eq!(
        ok(json!({"address": "192.0.2.16/28", "protocol": "vip", "interface": "can_reach:198.51.100.1"})),
        Ok(())
    );
    assert_eq!(
        ok(
            json!({"address": "198.51.100.7", "namespaces": ["team-a"], "namespaceSelector": {"kubernetes.io/metadata.name": "team-b"}})
        ),
        Ok(())
    );

    // spec.advertisement (extension): a full valid block, then every kind of mistake.
    assert_eq!(
        ok(json!({"address": "198.51.100.0/24", "advertisement": {
            "communities": ["65000:100", "no-export", "local-as", "blackhole", "graceful-shutdown", "no-peer", "no-advertise"],
            "largeCommunities": ["4200000000:1:2"], "localPref": 200, "aggregationLength": 24,
            "peerSelector": {"matchLabels": {"vrf": "blue"}},
            "nodeSelector": {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}]}}})),
        Ok(())
    );
    assert_eq!(
        ok(
            json!({"address": "192.0.2.16/28", "protocol": "layer2", "interface": "eth0",
            "advertisement": {"nodeSelector": {"matchLabels": {"vlan": "10"}}}})
        ),
        Ok(())
    );
    for (advertisement, needles) in [
        (
            json!({"communities": ["no-exprot"]}),
            vec![
                "new is invalid",
                "spec.advertisement.communities[0]",
                "\"no-exprot\"",
            ],
        ),
        (
            json!({"communities": ["65536:1"]}),
            vec!["spec.advertisement.communities[0]", "0..=65535"],
        ),
        (
            json!({"largeCommunities": ["1:2"]}),
            vec!["spec.advertisement.largeCommunities[0]", "RFC 8092"],
        ),
        (
            json!({"localPref": -5}),
            vec!["spec.advertisement.localPref", "-5 is not in 0..=4294967295"],
        ),
        (
            json!({"aggregationLength": 40}),
            vec!["spec.advertisement.aggregationLength", "0..=32"],
        ),
        (
            json!({"aggregationLength": 23}),
            vec![
                "spec.advertisement.aggregationLength",
                "outside the pool 198.51.100.0/24",
            ],
        ),
        (
            json!({"aggregationLengthV6": 64}),
            vec!["spec.advertisement.aggregationLengthV6", "the pool is IPv4"],
        ),
        (
            json!({"peerSelector": {"matchExpressions": [{"key": "vrf", "operator": "In"}]}}),
            vec![
                "spec.advertisement.peerSelector.matchExpressions[0].values",
                "at least one value",
            ],
        ),
        (
            json!({"nodeSelector": {"matchExpressions": [{"key": "edge", "operator": "Equals", "values": ["x"]}]}}),
            vec!["spec.advertisement.nodeSelector.matchExpressions[0].operator"],
        ),
        (
            json!({"nodeSelector": {"matchLabels": {"-bad": "x"}}}),
            vec!["spec.advertisement.nodeSelector.matchLabels[\"-bad\"]"],
        ),
        (
            json!({"nodeSelector": {"matchLabels": {"ok": "bad value"}}}),
            vec!["value \"bad value\""],
        ),
    ] {
        bad(
            json!({"address": "198.51.100.0/24", "advertisement": advertisement}),
            false,
            &needles,
        );
    }
    bad(
        json!({"address": "192.0.2.16/28", "protocol": "layer2", "interface": "eth0", "advertisement": {"aggregationLength": 28}}),
        false,
        &["spec.advertisement.aggregationLength", "bgp pools only"],
    );

    bad(json!({"address": "192.0.2.300"}), false, &["spec.address"]);
    bad(
        json!({"address": "192.0.2.20-192.0.2.10"}),
        false,
        &["spec.address", "start is after end"],
    );
    bad(json!({"address": "192.0.2.15"}), false, &["overlaps Eip pool-a"]);
    bad(
        json!({"address": "2001:db8::80/121"}),
        false,
        &["overlaps Eip pool-v6"],
    );
    bad(
        json!({"address": "203.0.113.0/24"}),
        true,
        &["is-default-eip", "Eip pool-a is already the default IPv4 Eip"],
    );
    bad(
        json!({"address": "198.51.100.0/24", "protocol": "vip"}),
        false,
        &["spec.interface: is required for protocol vip"],
    );
    bad(
        json!({"address": "198.51.100.0/24", "protocol": "layer2", "interface": "lo"}),
        false,
        &["spec.interface"],
    );
    bad(
        json!({"address": "198.51.100.0/24", "protocol": "layer2", "interface": "can_reach:not-ip"}),
        false,
        &["spec.interface"],
    );
    bad(
        json!({"address": "198.51.100.0/24", "namespaces": ["Team_A"]}),
        false,
        &["spec.namespaces[0]", "\"Team_A\""],
    );
    bad(
        json!({"address": "198.51.100.0/24", "namespaceSelector": {"-bad": "x"}}),
        false,
        &["spec.namespaceSelector[\"-bad\"]"],
    );
    bad(
        json!({"address": "198.51.100.0/24", "namespaceSelector": {"ok": "bad value"}}),
        false,
        &["value \"bad value\""],
    );

    // A default of the other family is fine: one default per family.
    assert_eq!(
        verdict(
            Kind::Eip,
            &request(
                "CREATE",
                eip("v6-default", json!({"address": "2001:db8:1::/64"}), true),
                None
            )
        ),
        Ok(())
    );
    // The Eip itself is not its own overlap, and the default may stay default on UPDATE.
    let pool_a = eip(
        "pool-a",
        json!({"address": "192.0.2.0/28", "disable": true}),
        true,
    );
    assert_eq!(
        verdict(Kind::Eip, &request("UPDATE", pool_a.clone(), Some(pool_a))),
        Ok(())
    );
}

#[test]
fn eip_address_is_immutable() {
    let old = eip("pool-b", json!({"address": "198.51.100.0/25"}), false);
    let new = eip("pool-b", json!({"address": "198.51.100.0/24"}), false);
    let message = verdict(Kind::Eip, &request("UPDATE", new, Some(old.clone()))).unwrap_err();
    assert!(
        message.contains("spec.address: is immutable (was \"198.51.100.0/25\")"),
        "{message}"
    );
    assert_eq!(
        verdict(Kind::Eip, &request("UPDATE", old.clone(), Some(old))),
        Ok(())
    );
}

#[test]
fn bgp_conf_rules() {
    let conf = |name: &str, spec: Value| json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpConf", "metadata": {"name": name}, "spec": spec});
    let check = |name: &str, spec: Value| verdict(Kind::BgpConf, &request("CREATE", conf(name, spec), None));
    assert_eq!(
        check(
            "default",
            json!({"as": 64512, "listenPort": 17900, "routerId": "198.51.100.1"})
        ),
        Ok(())
    );
    assert_eq!(
        check(
            "default",
            json!({"as": 4200000000u32, "listenPort": -1, "asPerRack": {"r1": 65001}})
        ),
        Ok(())
    );
    let cases: [(&str, Value, &str); 7] = [
        ("other", json!({"as": 64512}), "metadata.name: \"other\""),
        ("default", json!({}), "spec.as"),
        ("default", json!({"as": 0}), "spec.as"),
        (
            "default",
            json!({"as": 1, "routerId": "2001:db8::1"}),
            "spec.routerId",
        ),
        (
            "default",
            json!({"as": 1, "listenPort": 70000}),
            "spec.listenPort: 70000",
        ),
        ("default", json!({"as": 1, "listenPort": 0}), "spec.listenPort: 0"),
        (
            "default",
            json!({"as": 1, "asPerRack": {"r1": 0}}),
            "spec.asPerRack[\"r1\"]",
        ),
    ];
    for (name, spec, needle) in cases {
        let message = check(name, spec.clone()).expect_err(&spec.to_string());
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    // A field of the wrong type is refused with the path, not a panic.
    let message = check("default", json!({"as": "64512"})).unwrap_err();
    assert!(message.contains("cannot read request.object"), "{message}");
}

#[test]
fn bgp_peer_rules() {
    let peer = |spec: Value| json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpPeer", "metadata": {"name": "router"}, "spec": spec});
    let check = |spec: Value| verdict(Kind::BgpPeer, &request("CREATE", peer(spec), None));
    let good = json!({"conf": {"peerAs": 65001, "neighborAddress": "198.51.100.1"},
        "timers": {"config": {"holdTime": "90", "keepaliveInterval": "30", "connectRetry": "10"}},
        "transport": {"remotePort": 179, "passiveMode": false}, "ebgpMultihop": {"enabled": true, "multihopTtl": 3},
        "bfd": {"enabled": true}});
    assert_eq!(check(good.clone()), Ok(()));
    assert_eq!(
        check(
            json!({"conf": {"peerAs": 65001, "neighborAddress": "2001:db8::1"}, "timers": {"config": {"holdTime": "0"}}})
        ),
        Ok(())
    );
    assert_eq!(
        check(
            json!({"conf": {"peerAs": 65001, "neighborAddress": "198.51.100.1",
            "authPasswordSecret": {"name": "bgp-auth", "key": "md5"}}})
        ),
        Ok(())
    );
    // The BFD extension: defaults, the documented floor and ceiling.
    for bfd in [
        json!({"enabled": true}),
        json!({"enabled": true, "desiredMinTxMs": 50, "requiredMinRxMs": 60000, "detectMultiplier": 2}),
        json!({"enabled": false, "desiredMinTxMs": 100, "requiredMinRxMs": 100, "detectMultiplier": 255}),
    ] {
        let mut spec = good.clone();
        spec["bfd"] = bfd;
        assert_eq!(check(spec), Ok(()));
    }
    // transport.tcpMss: unset or 0 (the kernel's), or what Linux accepts for TCP_MAXSEG; and
    // mtuDiscovery either way.
    for mss in [0, 88, 1400, 32767] {
        let mut spec = good.clone();
        spec["transport"]["tcpMss"] = json!(mss);
        spec["transport"]["mtuDiscovery"] = json!(mss % 2 == 0);
        assert_eq!(check(spec), Ok(()), "tcpMss {mss}");
    }
    let with = |pointer: &str, value: Value| {
        let mut spec = good.clone();
        *spec.pointer_mut(pointer).unwrap() = value;
        spec
    };
    let cases = [
        (
            with("/conf/neighborAddress", json!("router.example")),
            "spec.conf.neighborAddress: \"router.example\" is not an IP",
        ),
        (
            json!({"conf": {"peerAs": 65001}}),
            "spec.conf.neighborAddress: is required",
        ),
        (with("/conf/peerAs", json!(0)), "spec.conf.peerAs"),
        (
            json!({"conf": {"neighborAddress": "198.51.100.1"}}),
            "spec.conf.peerAs",
        ),
        (
            with("/timers/config/holdTime", json!("2")),
            "spec.timers.config.holdTime: 2 must be 0 or 3..=65535",
        ),
        (
            with("/timers/config/holdTime", json!("ninety")),
            "spec.timers.config.holdTime: \"ninety\" is not a whole number",
        ),
        (
            with("/timers/config/keepaliveInterval", json!("90")),
            "spec.timers.config.keepaliveInterval: 90 must be below the hold time 90",
        ),
        (
            with("/timers/config/connectRetry", json!("-1")),
            "spec.timers.config.connectRetry",
        ),
        (
            with("/transport/remotePort", json!(70000)),
            "spec.transport.remotePort: 70000",
        ),
        (
            with("/transport", json!({"tcpMss": 87})),
            "spec.transport.tcpMss: 87 is not in 88..=32767",
        ),
        (
            with("/transport", json!({"tcpMss": 65495})),
            "spec.transport.tcpMss: 65495 is not in 88..=32767",
        ),
        (
            with("/ebgpMultihop/multihopTtl", json!(256)),
            "spec.ebgpMultihop.multihopTtl: 256",
        ),
        (
            json!({"conf": {"peerAs": 65001, "neighborAddress": "198.51.100.1", "authPassword": "a",
                "authPasswordSecret": {"name": "bgp-auth"}}}),
            "spec.conf.authPasswordSecret: and spec.conf.authPassword are both set",
        ),
        (
            json!({"conf": {"peerAs": 65001, "neighborAddress": "198.51.100.1",
                "authPasswordSecret": {"name": "Bgp_Auth"}}}),
            "spec.conf.authPasswordSecret.name: \"Bgp_Auth\" is not a Secret name",
        ),
        (
            with("/bfd", json!({"enabled": true, "desiredMinTxMs": 10})),
            "spec.bfd.desiredMinTxMs: 10 ms is not in 50..=60000 ms",
        ),
        (
            with("/bfd", json!({"enabled": true, "requiredMinRxMs": 0})),
            "spec.bfd.requiredMinRxMs: 0 ms is not in 50..=60000 ms",
        ),
        (
            with("/bfd", json!({"enabled": true, "detectMultiplier": 1})),
            "spec.bfd.detectMultiplier: 1 is not in 2..=255",
        ),
    ];
    for (spec, needle) in cases {
        let message = check(spec.clone()).expect_err(&spec.to_string());
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
}

#[test]
fn delete_is_allowed_and_bad_bodies_are_errors() {
    let body = request("DELETE", eip("x", json!({"address": "192.0.2.1"}), false), None);
    assert_eq!(verdict(Kind::Eip, &body), Ok(()));
    assert!(matches!(
        review(Kind::Eip, b"{not json", &existing),
        Err(ReviewError::NotJson(_))
    ));
    assert_eq!(review(Kind::Eip, b"{}", &existing), Err(ReviewError::NotAReview));
    assert_eq!(
        review(Kind::Eip, br#"{"request": {"uid": 5}}"#, &existing),
        Err(ReviewError::NotAReview)
    );
    // A missing object is a refusal that says so.
    let body = br#"{"request": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "operation": "CREATE"}}"#;
    assert!(
        verdict(Kind::Eip, body)
            .unwrap_err()
            .contains("request.object is missing")
    );
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z0-9:./_ -]{0,12}".prop_map(Value::String),
        Just(json!("192.0.2.0/24")),
        Just(json!("2001:db8::/64")),
        Just(json!("CREATE")),
        Just(json!("UPDATE")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("request".to_owned()),
                    Just("uid".to_owned()),
                    Just("operation".to_owned()),
                    Just("object".to_owned()),
                    Just("oldObject".to_owned()),
                    Just("spec".to_owned()),
                    Just("metadata".to_owned()),
                    Just("address".to_owned()),
                    Just("name".to_owned()),
                    Just("conf".to_owned()),
                    Just("timers".to_owned()),
                    "[a-zA-Z]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for kind in [Kind::Eip, Kind::BgpConf, Kind::BgpPeer] {
            let _ = review(kind, &bytes, &existing);
        }
    }

    #[test]
    fn never_panics_on_json_and_always_echoes_the_uid(object in json_value(), old in json_value(), op in prop_oneof![Just("CREATE"), Just("UPDATE"), Just("DELETE")]) {
        let body = serde_json::to_vec(&json!({"request": {"uid": "u-1", "operation": op, "object": object, "oldObject": old}})).unwrap();
        for kind in [Kind::Eip, Kind::BgpConf, Kind::BgpPeer] {
            let answer = review(kind, &body, &existing).unwrap();
            prop_assert_eq!(&answer["response"]["uid"], "u-1");
            prop_assert!(answer["response"]["allowed"].is_boolean());
        }
    }
}

#[test]
fn metadata_only_updates_are_never_refused() {
    // An invalid Eip (it overlaps pool-a): a spec change is refused, as is a create.
    let bad = || eip("overlapping", json!({"address": "192.0.2.4/30"}), false);
    let mut edited = bad();
    edited["spec"]["disable"] = json!(true);
    assert!(verdict(Kind::Eip, &request("UPDATE", edited, Some(bad()))).is_err());

    // Removing its finalizer, adding a label or another annotation: allowed.
    let mut old = bad();
    old["metadata"]["finalizers"] = json!(["finalizer.ipam.kubesphere.io/v1alpha1"]);
    old["metadata"]["resourceVersion"] = json!("41");
    let mut new = bad();
    new["metadata"]["resourceVersion"] = json!("42");
    assert_eq!(
        verdict(Kind::Eip, &request("UPDATE", new.clone(), Some(old.clone()))),
        Ok(())
    );
    new["metadata"]["labels"] = json!({"team": "a"});
    new["metadata"]["annotations"] = json!({"note": "draining"});
    assert_eq!(
        verdict(Kind::Eip, &request("UPDATE", new.clone(), Some(old.clone()))),
        Ok(())
    );

    // The default-pool annotation is validated: it is a rule (one default per family).
    new["metadata"]["annotations"]["eip.openelb.kubesphere.io/is-default-eip"] = json!("true");
    let message = verdict(Kind::Eip, &request("UPDATE", new, Some(old))).unwrap_err();
    assert!(message.contains("is-default-eip"), "{message}");

    // An object already being deleted: anything goes (it is on its way out).
    let mut deleting = bad();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let mut changed = deleting.clone();
    changed["spec"]["disable"] = json!(true);
    assert_eq!(
        verdict(Kind::Eip, &request("UPDATE", changed, Some(deleting))),
        Ok(())
    );

    // The same for BgpConf and BgpPeer: a finalizer removal on an invalid object goes through.
    for (kind, spec) in [
        (Kind::BgpConf, json!({"as": 0})),
        (
            Kind::BgpPeer,
            json!({"conf": {"peerAs": 0, "neighborAddress": "x"}}),
        ),
    ] {
        let object = json!({"apiVersion": "network.kubesphere.io/v1alpha2", "metadata": {"name": "default"},
            "spec": spec});
        let mut old = object.clone();
        old["metadata"]["finalizers"] = json!(["example.com/hold"]);
        assert!(verdict(kind, &request("CREATE", object.clone(), None)).is_err());
        assert_eq!(
            verdict(kind, &request("UPDATE", object, Some(old))),
            Ok(()),
            "{kind:?}"
        );
    }
}

#[test]
fn an_update_without_old_object_or_spec_is_validated() {
    let object = eip("overlapping", json!({"address": "192.0.2.4/30"}), false);
    assert!(!passes_unvalidated(Kind::Eip, &json!({"object": object})));
    let no_spec = json!({"metadata": {"name": "x"}});
    assert!(!passes_unvalidated(
        Kind::Eip,
        &json!({"object": no_spec, "oldObject": no_spec})
    ));
    assert!(passes_unvalidated(
        Kind::Eip,
        &json!({"object": object, "oldObject": object})
    ));
}
