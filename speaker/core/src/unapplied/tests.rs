//! Exhaustive over the lists: every reportable path is reported when set to a value other than
//! the default, alone, and not when set to the default; applied fields are never reported.

use std::collections::BTreeSet;

use oxelb_crds::v1alpha2::{BgpConfSpec, BgpPeerSpec};
use serde_json::{Value, json};

use super::*;

/// `value` at `path` (`spec.a.b`, `[]` for a one-element list) inside an empty spec.
fn at(path: &str, value: Value) -> Value {
    let rest = path.strip_prefix("spec.").unwrap();
    fn build(parts: &[&str], value: Value) -> Value {
        let Some((first, rest)) = parts.split_first() else {
            return value;
        };
        let inner = build(rest, value);
        match first.strip_suffix("[]") {
            Some(name) => json!({ name: [inner] }),
            None => json!({ *first: inner }),
        }
    }
    let parts: Vec<&str> = rest.split('.').collect();
    build(&parts, value)
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        // Lists element by element: every sample's list has one element.
        (Value::Array(a), Value::Array(b)) => {
            for (i, v) in b.into_iter().enumerate() {
                match a.get_mut(i) {
                    Some(slot) => merge(slot, v),
                    None => a.push(v),
                }
            }
        }
        (a, b) => *a = b,
    }
}

/// A value other than the default for each reportable path, and the default itself.
fn samples(path: &str) -> (Value, Value) {
    match path {
        "spec.families[]" => (json!(65537), Value::Null),
        "spec.policy" => (json!("bgp-policy"), json!("")),
        "spec.useMultiplePaths" => (json!(true), json!(false)),
        "spec.afiSafis[].addPaths.config.receive" => (json!(true), json!(false)),
        "spec.afiSafis[].mpGracefulRestart.config.enabled" => (json!(false), json!(true)),
        "spec.conf.allowOwnAs" => (json!(1), json!(0)),
        "spec.conf.neighborInterface" => (json!("eth1"), json!(" ")),
        "spec.conf.peerGroup" => (json!("routers"), json!("")),
        "spec.conf.peerType" => (json!(1), json!(0)),
        "spec.conf.removePrivateAs" => (json!("ALL"), json!("NONE")),
        "spec.conf.replacePeerAs" => (json!(true), json!(false)),
        "spec.conf.routeFlapDamping" => (json!(true), json!(false)),
        "spec.conf.sendCommunity" => (json!(3), json!(0)),
        "spec.conf.vrf" => (json!("blue"), json!("")),
        "spec.timers.config.minimumAdvertisementInterval" => (json!("30"), json!("0")),
        "spec.transport.remoteAddress" => (json!("192.0.2.9"), json!("")),
        p if p.ends_with("Time") => (json!(30), json!(0)),
        p if p.ends_with(".mode") => (json!("restarting"), json!("")),
        p if p.starts_with("spec.gracefulRestart.") => (json!(true), json!(false)),
        other => panic!("no sample for {other}"),
    }
}

fn conf(spec: Value) -> Vec<&'static str> {
    let spec: BgpConfSpec = serde_json::from_value(spec).unwrap();
    bgp_conf(&spec).into_iter().map(|f| f.path).collect()
}

fn peer(spec: Value) -> Vec<&'static str> {
    let spec: BgpPeerSpec = serde_json::from_value(spec).unwrap();
    bgp_peer(&spec).into_iter().map(|f| f.path).collect()
}

/// Every field OpenELB users set that oxelb applies (`docs/openelb-fields.md`, `applied`).
fn applied_peer() -> Value {
    json!({
        "conf": {"neighborAddress": "192.0.2.1", "peerAs": 64513, "localAs": 64512,
            "authPassword": "secret", "adminDown": false, "description": "tor-1"},
        "ebgpMultihop": {"enabled": true, "multihopTtl": 3},
        "timers": {"config": {"holdTime": "90", "keepaliveInterval": "30", "connectRetry": "5"}},
        "transport": {"passiveMode": true, "remotePort": 179, "remoteAddress": "192.0.2.1"},
        "gracefulRestart": {"enabled": true, "restartTime": 120},
        "afiSafis": [{"config": {"family": {"afi": "AFI_IP", "safi": "SAFI_UNICAST"}, "enabled": true},
            "addPaths": {"config": {"sendMax": 10}},
            "mpGracefulRestart": {"config": {"enabled": true}}}],
        "nodeSelector": {"matchLabels": {"rack": "a"},
            "matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]},
    })
}

fn applied_conf() -> Value {
    json!({"as": 64512, "asPerRack": {"a": 64600}, "routerId": "192.0.2.11", "listenPort": 17900,
        "listenAddresses": ["192.0.2.11"], "gracefulRestart": {"enabled": true, "restartTime": 120}})
}

#[test]
fn nothing_is_reported_for_an_empty_spec_or_applied_fields() {
    assert!(conf(json!({})).is_empty());
    assert!(peer(json!({})).is_empty());
    assert_eq!(conf(applied_conf()), Vec::<&str>::new());
    assert_eq!(peer(applied_peer()), Vec::<&str>::new());
}

#[test]
fn every_bgp_conf_field_is_reported_alone_when_set_and_not_at_its_default() {
    for field in BGP_CONF_FIELDS {
        let (set, default) = samples(field.path);
        let mut spec = applied_conf();
        merge(&mut spec, at(field.path, set));
        assert_eq!(conf(spec), [field.path], "{} set", field.path);
        if !default.is_null() {
            let mut spec = applied_conf();
            merge(&mut spec, at(field.path, default));
            assert!(conf(spec).is_empty(), "{} at its default", field.path);
        }
    }
    // An empty list is the default of `families`.
    assert!(conf(json!({"families": []})).is_empty());
}

#[test]
fn every_bgp_peer_field_is_reported_alone_when_set_and_not_at_its_default() {
    for field in BGP_PEER_FIELDS {
        let (set, default) = samples(field.path);
        let mut spec = applied_peer();
        merge(&mut spec, at(field.path, set));
        assert_eq!(peer(spec), [field.path], "{} set", field.path);
        let mut spec = applied_peer();
        merge(&mut spec, at(field.path, default));
        assert!(peer(spec).is_empty(), "{} at its default", field.path);
    }
}

#[test]
fn everything_set_at_once_is_reported_once_each_in_path_order() {
    let mut spec = json!({});
    for field in BGP_PEER_FIELDS {
        merge(&mut spec, at(field.path, samples(field.path).0));
    }
    // A second afiSafis entry setting the same fields names them once.
    let mut twice = spec.clone();
    let first = twice["afiSafis"][0].clone();
    twice["afiSafis"].as_array_mut().unwrap().push(first);
    let all: Vec<&str> = BGP_PEER_FIELDS.iter().map(|f| f.path).collect();
    assert_eq!(peer(spec), all);
    assert_eq!(peer(twice), all);

    let mut spec = json!({});
    for field in BGP_CONF_FIELDS {
        merge(&mut spec, at(field.path, samples(field.path).0));
    }
    let all: Vec<&str> = BGP_CONF_FIELDS.iter().map(|f| f.path).collect();
    assert_eq!(conf(spec), all);
}

#[test]
fn the_lists_are_sorted_unique_and_say_why() {
    for list in [&BGP_CONF_FIELDS[..], &BGP_PEER_FIELDS[..]] {
        let paths: Vec<&str> = list.iter().map(|f| f.path).collect();
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(paths, sorted);
        assert!(
            list.iter()
                .all(|f| f.path.starts_with("spec.") && f.reason.len() > 20)
        );
    }
    // The graceful restart options are the same in both kinds.
    let gr = |list: &[Unapplied]| -> BTreeSet<(String, Behaviour)> {
        list.iter()
            .filter_map(|f| {
                Some((
                    f.path.strip_prefix("spec.gracefulRestart.")?.to_owned(),
                    f.behaviour,
                ))
            })
            .collect()
    };
    assert_eq!(gr(&BGP_CONF_FIELDS), gr(&BGP_PEER_FIELDS));
    assert_eq!(gr(&BGP_CONF_FIELDS).len(), GRACEFUL_RESTART.len());
}

#[test]
fn remote_address_counts_only_when_it_is_another_address() {
    let with = |neighbor: &str, remote: &str| {
        peer(json!({"conf": {"neighborAddress": neighbor}, "transport": {"remoteAddress": remote}}))
    };
    assert!(with("192.0.2.1", "192.0.2.1").is_empty());
    assert!(with("2001:db8::1", "2001:db8:0::1").is_empty());
    assert!(with("192.0.2.1", "  ").is_empty());
    assert_eq!(with("192.0.2.1", "192.0.2.2"), ["spec.transport.remoteAddress"]);
    assert_eq!(
        with("192.0.2.1", "router.example"),
        ["spec.transport.remoteAddress"]
    );
    assert_eq!(
        peer(json!({"transport": {"remoteAddress": "192.0.2.2"}})),
        ["spec.transport.remoteAddress"]
    );
}

#[test]
fn remove_private_as_none_spellings_are_the_default() {
    for none in ["", "none", "NONE", "REMOVE_PRIVATE_AS_OPTION_NONE"] {
        assert!(
            peer(json!({"conf": {"removePrivateAs": none}})).is_empty(),
            "{none}"
        );
    }
    for mode in ["ALL", "REPLACE"] {
        assert_eq!(
            peer(json!({"conf": {"removePrivateAs": mode}})),
            ["spec.conf.removePrivateAs"]
        );
    }
}

#[test]
fn the_message_names_each_path_its_behaviour_and_why() {
    let spec: BgpPeerSpec =
        serde_json::from_value(json!({"conf": {"vrf": "blue"}, "transport": {"remoteAddress": "192.0.2.9"}}))
            .unwrap();
    let text = message(&bgp_peer(&spec));
    assert!(
        text.starts_with("spec.conf.vrf (not yet): sessions in a VRF are not implemented"),
        "{text}"
    );
    assert!(
        text.contains("; spec.transport.remoteAddress (not yet): "),
        "{text}"
    );
    assert_eq!(message(&[]), "");
}

#[test]
fn decide_says_once_per_generation_and_message() {
    let current = |status, observed_generation, message| {
        Some(Current {
            status,
            observed_generation,
            message,
        })
    };
    let both = Report {
        event: true,
        write: true,
    };
    let write_only = Report {
        event: false,
        write: true,
    };
    let nothing = Report::default();
    // Nothing ignored, nothing said.
    assert_eq!(decide(None, Some(1), None, None), nothing);
    // First time: Event and condition.
    assert_eq!(decide(Some("a"), Some(1), None, None), both);
    // The Event went out, the write is pending or failed: only the write again.
    assert_eq!(decide(Some("a"), Some(1), None, Some((Some(1), "a"))), write_only);
    // The status says it already (a restarted speaker, another reporter): nothing.
    assert_eq!(
        decide(Some("a"), Some(1), current("True", Some(1), "a"), None),
        nothing
    );
    // Without generations (a source that sets none), the message alone decides.
    assert_eq!(decide(Some("a"), None, current("True", None, "a"), None), nothing);
    // A new generation: said again, even with the same fields.
    assert_eq!(
        decide(
            Some("a"),
            Some(2),
            current("True", Some(1), "a"),
            Some((Some(1), "a"))
        ),
        both
    );
    // Other fields in the same generation (a speaker upgrade): said again.
    assert_eq!(
        decide(
            Some("b"),
            Some(1),
            current("True", Some(1), "a"),
            Some((Some(1), "a"))
        ),
        both
    );
    // A False condition (fields removed earlier) and fields again.
    assert_eq!(
        decide(Some("a"), Some(3), current("False", Some(2), ""), None),
        both
    );
    // Fields removed: the condition turns False, no Warning.
    assert_eq!(
        decide(None, Some(2), current("True", Some(1), "a"), None),
        write_only
    );
    assert_eq!(
        decide(None, Some(2), current("False", Some(2), ""), None),
        nothing
    );
}

#[test]
fn the_event_note_fits_the_api_limit_and_names_every_path_when_it_can() {
    let one = [BGP_PEER_FIELDS[10]];
    assert_eq!(note(&one), message(&one));
    let all = BGP_PEER_FIELDS;
    assert!(message(&all).len() > NOTE_MAX);
    let text = note(&all);
    assert!(text.len() <= NOTE_MAX, "{}", text.len());
    assert!(text.starts_with("fields not applied: spec.afiSafis[].addPaths.config.receive, "));
    assert!(text.ends_with("; why: the FieldsIgnored condition, docs/openelb-fields.md"));
    for f in all {
        assert!(text.contains(f.path), "{}", f.path);
    }
    // Even a list too long to name in full stays within the limit.
    let many: Vec<Unapplied> = std::iter::repeat_n(BGP_PEER_FIELDS.to_vec(), 4)
        .flatten()
        .collect();
    let text = note(&many);
    assert!(text.len() <= NOTE_MAX && text.contains(", ..."), "{text}");
}
