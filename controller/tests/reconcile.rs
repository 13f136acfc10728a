//! The reconciler's decisions, pass by pass, against a fake API that applies its actions as the
//! apiserver would (merge patches, `resourceVersion` preconditions, finalizers that hold deletion).
//!
//! Long because it holds twenty independent scenarios (the fake API is in `support/`); one file
//! keeps them in one test binary, which links once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use oxelb_controller::{
    handling::Handling,
    reconcile::{Action, PassReport, Reconciler, Target},
};
use oxelb_crds::names;
use oxelb_ipam::ServiceKey;
use serde_json::{Value, json};

mod support;

use support::{Api, default_eip, handled, lb, settle};

#[test]
fn allocation_writes_service_then_eip_and_settles() {
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/29");
    api.put_service(&lb("web", "", "[{port: 80}]"));
    let mut r = handled();
    let report = r.pass(&api.snapshot());
    api.apply(&report);
    assert_eq!(api.ingress("web"), vec!["192.0.2.1"]);
    let svc = &api.services[&("default".into(), "web".into())];
    assert_eq!(svc["metadata"]["labels"][names::EIP_POOL_LABEL], "pool");
    assert_eq!(svc["metadata"]["finalizers"], json!([names::SERVICE_FINALIZER]));
    let status = api.eip_status("pool");
    assert_eq!(status["used"], json!({"192.0.2.1": "default/web"}));
    assert_eq!(status["usage"], 1);
    assert_eq!(status["poolSize"], 6);
    assert_eq!(status["firstIP"], "192.0.2.0");
    assert_eq!(status["lastIP"], "192.0.2.7");
    assert_eq!(status["occupied"], false);
    assert_eq!(status["v4"], true);
    assert_eq!(status["ready"], true);
    assert_eq!(
        api.eips["pool"]["metadata"]["finalizers"],
        json!([names::EIP_FINALIZER])
    );
    assert!(
        api.events
            .iter()
            .any(|e| e.1 == "AssignedIP" && e.3.contains("192.0.2.1"))
    );
    // Our own writes come back: nothing more to do.
    assert_eq!(settle(&mut r, &mut api), 0);
}

#[test]
fn two_service_writes_per_allocation_and_one_eip_status_per_pass() {
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/24");
    let mut r = handled();
    settle(&mut r, &mut api); // Eip finalizer and status first.
    api.writes.clear();
    for i in 0..20 {
        api.put_service(&lb(&format!("s{i:02}"), "", "[{port: 80}]"));
    }
    let report = r.pass(&api.snapshot());
    assert_eq!(api.apply(&report), 0, "no conflicts");
    let service_writes = api.writes.iter().filter(|w| w.1.starts_with("Service")).count();
    let eip_writes = api.writes.iter().filter(|w| w.1.starts_with("Eip")).count();
    assert_eq!(service_writes, 40, "{:?}", api.writes);
    assert_eq!(eip_writes, 1, "{:?}", api.writes);
    assert_eq!(api.eip_status("pool")["usage"], 20);
}

#[test]
fn restart_changes_no_ip_and_writes_nothing() {
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/28");
    for name in ["a", "b", "c", "d"] {
        api.put_service(&lb(name, "", "[{port: 80}]"));
    }
    let mut first = handled();
    settle(&mut first, &mut api);
    // Release b, so a restarted allocator that ignored status would hand c's or d's IP to e.
    api.delete_service("b");
    settle(&mut first, &mut api);
    let before: Vec<_> = ["a", "c", "d"].iter().map(|n| api.ingress(n)).collect();

    let mut restarted = handled();
    let report = restarted.pass(&api.snapshot());
    assert!(report.actions.is_empty(), "{:?}", report.actions);
    api.put_service(&lb("e", "", "[{port: 80}]"));
    settle(&mut restarted, &mut api);
    let after: Vec<_> = ["a", "c", "d"].iter().map(|n| api.ingress(n)).collect();
    assert_eq!(before, after);
    assert_eq!(
        api.ingress("e"),
        vec!["192.0.2.2"],
        "b's released IP, nobody else's"
    );
}

#[test]
fn openelb_allocations_are_adopted_unchanged() {
    // As OpenELB v0.6 leaves a cluster: ingress, label, finalizer, Eip status.used.
    let mut api = Api::default();
    api.put_eip(
        "metadata:\n  name: eip-sample\n  finalizers: [finalizer.ipam.kubesphere.io/v1alpha1]\n  annotations: {eip.openelb.kubesphere.io/is-default-eip: \"true\"}\nspec:\n  address: 192.0.2.100-192.0.2.110\n  protocol: layer2\n  interface: eth0\n",
    );
    let eip = api.eips.get_mut("eip-sample").unwrap();
    eip["status"] = json!({"used": {"192.0.2.107": "default/web;other/api"}, "usage": 1, "poolSize": 11,
        "firstIP": "192.0.2.100", "lastIP": "192.0.2.110", "occupied": false, "v4": true});
    api.put_service(&format!(
        "{}status:\n  loadBalancer:\n    ingress: [{{ip: 192.0.2.107}}]\n",
        lb(
            "web",
            "    eip.openelb.kubesphere.io/v1alpha2: eip-sample\n",
            "[{port: 80}]"
        )
    ));
    let mut api_svc = lb(
        "api",
        "    eip.openelb.kubesphere.io/v1alpha1: 192.0.2.107\n",
        "[{port: 443}]",
    );
    api_svc = api_svc.replace("metadata:\n", "metadata:\n  namespace: other\n");
    api_svc.push_str("status:\n  loadBalancer:\n    ingress: [{ip: 192.0.2.107}]\n");
    api.put_service(&api_svc);
    for svc in api.services.values_mut() {
        svc["metadata"]["finalizers"] = json!([names::SERVICE_FINALIZER]);
        svc["metadata"]["labels"] = json!({names::EIP_POOL_LABEL: "eip-sample"});
    }
    let mut r = handled();
    let report = r.pass(&api.snapshot());
    let service_writes: Vec<_> = report
        .actions
        .iter()
        .filter(|a| !matches!(a, Action::Event(_)))
        .filter(|a| {
            matches!(
                a,
                Action::Status {
                    target: Target::Service(_),
                    ..
                } | Action::Metadata {
                    target: Target::Service(_),
                    ..
                }
            )
        })
        .collect();
    assert!(service_writes.is_empty(), "{service_writes:?}");
    api.apply(&report);
    assert_eq!(api.eip_status("eip-sample")["ready"], true, "ready is really set");
    assert_eq!(
        api.eip_status("eip-sample")["used"]["192.0.2.107"],
        "default/web;other/api"
    );
    assert!(api.warnings().is_empty(), "{:?}", api.warnings());
}

#[test]
fn disagreements_are_repaired_without_moving_valid_holders() {
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/28");
    // x: status says .5, Eip lists nothing. y: Eip lists .6 for it, its status is empty (crash
    // between the writes). z: status claims .5 too, with a colliding port: it must move. ghost: the
    // Eip lists .9 for a Service that does not exist.
    for (name, ip) in [("x", Some("192.0.2.5")), ("y", None), ("z", Some("192.0.2.5"))] {
        let mut yaml = lb(name, "", "[{port: 80}]");
        if let Some(ip) = ip {
            yaml.push_str(&format!(
                "status:\n  loadBalancer:\n    ingress: [{{ip: {ip}}}]\n"
            ));
        }
        api.put_service(&yaml);
    }
    api.eips.get_mut("pool").unwrap()["status"] =
        json!({"used": {"192.0.2.6": "default/y", "192.0.2.9": "default/ghost"}});
    let mut r = handled();
    settle(&mut r, &mut api);
    assert_eq!(api.ingress("x"), vec!["192.0.2.5"], "x keeps its valid IP");
    assert_eq!(
        api.ingress("y"),
        vec!["192.0.2.6"],
        "y's IP adopted from the Eip status"
    );
    let z = api.ingress("z");
    assert_eq!(z.len(), 1);
    assert!(
        !["192.0.2.5", "192.0.2.6", "192.0.2.9"].contains(&z[0].as_str()),
        "{z:?}"
    );
    let used = &api.eip_status("pool")["used"];
    assert_eq!(used.as_object().unwrap().len(), 3, "{used}");
    assert!(used.get("192.0.2.9").is_none(), "ghost dropped");
    let warnings = api.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.0 == "IPConflict" && w.1 == "Service/z" && w.2.contains("port TCP/80")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.0 == "StatusRepaired" && w.2.contains("ghost")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.0 == "StatusRepaired" && w.2.contains("default/x")),
        "{warnings:?}"
    );
}

#[test]
fn sharing_only_on_request_and_without_port_collision() {
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/28");
    api.put_service(&lb("a", "", "[{port: 80}]"));
    let mut r = handled();
    settle(&mut r, &mut api);
    let ip = api.ingress("a")[0].clone();
    api.put_service(&lb(
        "b",
        &format!("    eip.openelb.kubesphere.io/v1alpha1: {ip}\n"),
        "[{port: 443}]",
    ));
    api.put_service(&lb(
        "c",
        &format!("    eip.openelb.kubesphere.io/v1alpha1: {ip}\n"),
        "[{port: 80}]",
    ));
    api.put_service(&lb("d", "", "[{port: 80}]"));
    settle(&mut r, &mut api);
    assert_eq!(api.ingress("b"), vec![ip.clone()]);
    assert!(api.ingress("c").is_empty(), "port 80 collides with a");
    assert_ne!(api.ingress("d"), vec![ip.clone()], "never shared without asking");
    assert_eq!(api.eip_status("pool")["used"][&ip], "default/a;default/b");
    let warnings = api.warnings();
    let c: Vec<_> = warnings.iter().filter(|w| w.1 == "Service/c").collect();
    assert_eq!(c.len(), 1, "said once: {warnings:?}");
    assert_eq!(c[0].0, "IPSharingConflict");
    assert!(c[0].2.contains("default/a") && c[0].2.contains("TCP/80"), "{c:?}");
    // The Warning is said once however many passes run.
    for _ in 0..3 {
        api.apply(&r.pass(&api.snapshot()));
    }
    assert_eq!(api.warnings().iter().filter(|w| w.1 == "Service/c").count(), 1);
}

#[test]
fn release_on_annotation_removal_type_change_class_and_deletion() {
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/28");
    for name in ["ann", "typ", "cls", "del"] {
        api.put_service(&lb(name, "", "[{port: 80}]"));
    }
    let mut r = handled();
    settle(&mut r, &mut api);
    assert_eq!(api.eip_status("pool")["usage"], 4);

    let mut ann = api.services[&("default".into(), "ann".into())].clone();
    ann["metadata"]["annotations"] = json!({});
    api.services.insert(("default".into(), "ann".into()), ann);
    let mut typ = api.services[&("default".into(), "typ".into())].clone();
    typ["spec"]["type"] = "ClusterIP".into();
    api.services.insert(("default".into(), "typ".into()), typ);
    let mut cls = api.services[&("default".into(), "cls".into())].clone();
    cls["spec"]["loadBalancerClass"] = "other.io/lb".into();
    api.services.insert(("default".into(), "cls".into()), cls);
    api.delete_service("del");
    settle(&mut r, &mut api);

    for name in ["ann", "typ", "cls"] {
        let svc = &api.services[&("default".into(), name.into())];
        assert!(api.ingress(name).is_empty(), "{name}: {svc}");
        assert!(
            svc["metadata"]["labels"].get(names::EIP_POOL_LABEL).is_none(),
            "{name}"
        );
        assert_eq!(svc["metadata"]["finalizers"], json!([]), "{name}");
    }
    assert!(
        !api.services.contains_key(&("default".into(), "del".into())),
        "finalizer removed, deletion done"
    );
    let status = api.eip_status("pool");
    assert_eq!(status["usage"], 0);
    assert_eq!(status["used"], json!({}));
}

#[test]
fn pending_service_is_retried_when_a_pool_appears() {
    let mut api = Api::default();
    api.put_service(&lb("web", "", "[{port: 80}]"));
    let mut r = handled();
    let report = r.pass(&api.snapshot());
    assert_eq!(report.pending.get("no_pool_applies"), Some(&1));
    assert_eq!(report.new_failures.get("no_pool_applies"), Some(&1));
    api.apply(&report);
    assert!(
        api.warnings()
            .iter()
            .any(|w| w.0 == "NoEipApplies" && w.1 == "Service/web")
    );
    default_eip(&mut api, "192.0.2.0/30");
    settle(&mut r, &mut api);
    assert_eq!(api.ingress("web"), vec!["192.0.2.1"]);
}

#[test]
fn deleting_an_eip_in_use_warns_and_holds_until_drained() {
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/29");
    api.put_service(&lb("web", "", "[{port: 80}]"));
    let mut r = handled();
    settle(&mut r, &mut api);
    api.delete_eip("pool");
    api.put_service(&lb("late", "", "[{port: 80}]"));
    settle(&mut r, &mut api);
    assert!(api.eips.contains_key("pool"), "finalizer holds the Eip");
    assert_eq!(api.ingress("web"), vec!["192.0.2.1"], "existing IP stays");
    assert!(api.ingress("late").is_empty(), "a deleting Eip gives no new IPs");
    let warnings = api.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.0 == "EipInUse" && w.1 == "Eip/pool" && w.2.contains("default/web")),
        "{warnings:?}"
    );
    api.delete_service("web");
    settle(&mut r, &mut api);
    assert!(!api.eips.contains_key("pool"), "drained: finalizer removed");
}

#[test]
fn disabled_pool_keeps_existing_and_gives_nothing_new() {
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/29");
    api.put_service(&lb("old", "", "[{port: 80}]"));
    let mut r = handled();
    settle(&mut r, &mut api);
    let mut eip = api.eips["pool"].clone();
    eip["spec"]["disable"] = true.into();
    api.eips.insert("pool".into(), eip);
    api.put_service(&lb("new", "", "[{port: 80}]"));
    settle(&mut r, &mut api);
    assert_eq!(api.ingress("old"), vec!["192.0.2.1"]);
    assert!(api.ingress("new").is_empty());
    // The only default pool is disabled: no enabled pool applies.
    assert!(
        api.warnings()
            .iter()
            .any(|w| w.1 == "Service/new" && w.0 == "NoEipApplies" && w.2.contains("enabled")),
        "{:?}",
        api.warnings()
    );
}

#[test]
fn bad_input_is_a_warning_naming_object_and_field() {
    let mut api = Api::default();
    api.put_eip("metadata: {name: broken}\nspec: {address: 192.0.2.20-192.0.2.10}\n");
    default_eip(&mut api, "192.0.2.0/29");
    api.put_service(&lb(
        "badip",
        "    eip.openelb.kubesphere.io/v1alpha1: not-an-ip\n",
        "[{port: 80}]",
    ));
    api.put_service(&lb(
        "outside",
        "    eip.openelb.kubesphere.io/v1alpha1: 203.0.113.5\n",
        "[{port: 80}]",
    ));
    let mut r = handled();
    settle(&mut r, &mut api);
    let warnings = api.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.1 == "Eip/broken" && w.0 == "InvalidEip" && w.2.contains("spec.address")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.1 == "Service/badip" && w.2.contains(names::EIP_IP_ANNOTATION)),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.1 == "Service/outside" && w.0 == "IPNotInEip" && w.2.contains("203.0.113.5")),
        "{warnings:?}"
    );
    assert_eq!(api.eip_status("broken")["ready"], false);
}

#[test]
fn class_and_default_lb_flags() {
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/28");
    api.put_service("metadata: {name: plain}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n");
    api.put_service("metadata: {name: classed}\nspec: {type: LoadBalancer, loadBalancerClass: oxelb.io/lb, ports: [{port: 81}]}\n");
    api.put_service("metadata: {name: foreign}\nspec: {type: LoadBalancer, loadBalancerClass: other.io/lb, ports: [{port: 82}]}\n");
    let mut r = Reconciler::new(Handling {
        lb_class: Some("oxelb.io/lb".into()),
        default_lb: true,
    });
    settle(&mut r, &mut api);
    assert_eq!(api.ingress("classed").len(), 1);
    assert_eq!(api.ingress("plain").len(), 1);
    assert!(api.ingress("foreign").is_empty());
    assert!(api.services[&("default".into(), "foreign".into())]["metadata"]["finalizers"].is_null());
}

#[test]
fn dual_stack_gets_one_ip_per_family() {
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/29");
    api.put_eip("metadata:\n  name: v6\n  annotations: {eip.openelb.kubesphere.io/is-default-eip: \"true\"}\nspec:\n  address: 2001:db8::/120\n");
    let mut svc = lb("dual", "", "[{port: 80}]");
    svc = svc.replace(
        "  type: LoadBalancer\n",
        "  type: LoadBalancer\n  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: RequireDualStack\n",
    );
    api.put_service(&svc);
    let mut r = handled();
    settle(&mut r, &mut api);
    assert_eq!(api.ingress("dual"), vec!["192.0.2.1", "2001:db8::1"]);
    assert_eq!(api.eip_status("v6")["v4"], false);
}

#[test]
fn pool_shrink_moves_only_the_orphaned_service() {
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/28");
    for name in ["a", "b"] {
        api.put_service(&lb(name, "", "[{port: 80}]"));
    }
    let mut r = handled();
    settle(&mut r, &mut api);
    let mut eip = api.eips["pool"].clone();
    eip["spec"]["address"] = "192.0.2.1-192.0.2.1".into();
    api.eips.insert("pool".into(), eip.clone());
    eip["spec"]["address"] = "192.0.2.1-192.0.2.3".into();
    api.eips.insert("pool".into(), eip);
    // Same as above, but in one step the address shrank to exclude b's .2? No: .1-.3 keeps both.
    settle(&mut r, &mut api);
    assert_eq!(api.ingress("a"), vec!["192.0.2.1"]);
    assert_eq!(api.ingress("b"), vec!["192.0.2.2"]);
    let mut eip = api.eips["pool"].clone();
    eip["spec"]["address"] = "192.0.2.1-192.0.2.1".into();
    api.eips.insert("pool".into(), eip);
    settle(&mut r, &mut api);
    assert_eq!(api.ingress("a"), vec!["192.0.2.1"]);
    assert!(api.ingress("b").is_empty(), "pool full after the shrink");
    assert!(
        api.warnings()
            .iter()
            .any(|w| w.0 == "IPReleased" && w.1 == "Service/b"),
        "{:?}",
        api.warnings()
    );
}

#[test]
fn dual_stack_names_a_pool_per_family_in_the_pool_annotation() {
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/29");
    api.put_eip("metadata: {name: v4}\nspec: {address: 198.51.100.0/29}\n");
    api.put_eip("metadata: {name: v6}\nspec: {address: 2001:db8::/120}\n");
    let svc = lb(
        "dual",
        "    eip.openelb.kubesphere.io/v1alpha2: v4, v6\n",
        "[{port: 80}]",
    )
    .replace(
        "  type: LoadBalancer\n",
        "  type: LoadBalancer\n  ipFamilies: [IPv6, IPv4]\n  ipFamilyPolicy: RequireDualStack\n",
    );
    api.put_service(&svc);
    let mut r = handled();
    settle(&mut r, &mut api);
    assert_eq!(api.ingress("dual"), vec!["198.51.100.1", "2001:db8::1"]);
    let labels = &api.services[&("default".into(), "dual".into())]["metadata"]["labels"];
    assert_eq!(
        labels[names::EIP_POOL_LABEL],
        "v4",
        "the label names the IPv4 pool, listed first"
    );
}

#[test]
fn v05_protocol_annotation_is_accepted_and_a_contradiction_warned_once() {
    let mut api = Api::default();
    api.put_eip("metadata:\n  name: pool\n  annotations: {eip.openelb.kubesphere.io/is-default-eip: \"true\"}\nspec: {address: 192.0.2.0/29, protocol: layer2, interface: eth0}\n");
    api.put_service(&lb(
        "agree",
        "    protocol.openelb.kubesphere.io/v1alpha1: layer2\n",
        "[{port: 80}]",
    ));
    api.put_service(&lb(
        "contra",
        "    protocol.openelb.kubesphere.io/v1alpha1: bgp\n",
        "[{port: 80}]",
    ));
    let mut r = handled();
    settle(&mut r, &mut api);
    for _ in 0..3 {
        api.apply(&r.pass(&api.snapshot()));
    }
    assert_eq!(api.ingress("agree").len(), 1);
    assert_eq!(
        api.ingress("contra").len(),
        1,
        "accepted: the IP is still assigned"
    );
    let warnings = api.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].0, "ProtocolMismatch");
    assert_eq!(warnings[0].1, "Service/contra");
    assert!(warnings[0].2.contains("Eip pool is layer2"), "{warnings:?}");
}

#[test]
fn openelb_network_and_broadcast_allocations_are_adopted_not_moved() {
    // OpenELB hands out a CIDR's .0 and .255; oxelb never does, but keeps them on adoption.
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/24");
    for (name, ip) in [("net", "192.0.2.0"), ("bcast", "192.0.2.255")] {
        api.put_service(&format!(
            "{}status:\n  loadBalancer:\n    ingress: [{{ip: {ip}}}]\n",
            lb(name, "", "[{port: 80}]")
        ));
    }
    api.put_service(&lb("new", "", "[{port: 80}]"));
    let mut r = handled();
    settle(&mut r, &mut api);
    assert_eq!(api.ingress("net"), vec!["192.0.2.0"]);
    assert_eq!(api.ingress("bcast"), vec!["192.0.2.255"]);
    assert_eq!(api.ingress("new"), vec!["192.0.2.1"]);
    assert!(
        api.warnings().iter().all(|w| w.0 != "IPConflict"),
        "{:?}",
        api.warnings()
    );
}

/// A pass over a change decides the touched Services as a whole pass would, writes nothing else,
/// and asks for a whole pass when it frees an IP that a waiting Service could take.
#[test]
fn passes_over_changes_agree_with_whole_passes() {
    let touched = |names: &[&str]| -> BTreeSet<ServiceKey> {
        names.iter().map(|n| ServiceKey::new("default", *n)).collect()
    };
    let over = |api: &Api, names: &[&str]| {
        let mut snapshot = api.snapshot();
        snapshot.touched = Some(touched(names));
        snapshot
    };
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.1-192.0.2.4"); // 4 IPs
    for i in 0..3 {
        api.put_service(&lb(&format!("web{i}"), "", "[{port: 80}]"));
    }
    let mut r = handled();
    // Before the first whole pass nothing may be decided from a change.
    let early = r.pass(&over(&api, &["web0"]));
    assert!(early.needs_whole_pass && early.actions.is_empty());
    settle(&mut r, &mut api);
    let writes_before = api.writes.len();

    // One new Service: only it and the Eip are written.
    api.put_service(&lb("web3", "", "[{port: 80}]"));
    let report = r.pass(&over(&api, &["web3"]));
    assert!(!report.needs_whole_pass);
    api.apply(&report);
    let targets: BTreeSet<String> = api.writes[writes_before..].iter().map(|w| w.1.clone()).collect();
    assert_eq!(
        targets,
        BTreeSet::from(["Service default/web3".to_owned(), "Eip pool".to_owned()])
    );
    assert_eq!(api.ingress("web3").len(), 1);

    // The pool is full: web4 waits. Deleting web1 frees an IP: the pass over that change releases
    // it and asks for a whole pass, which gives it to web4.
    api.put_service(&lb("web4", "", "[{port: 80}]"));
    let report = r.pass(&over(&api, &["web4"]));
    api.apply(&report);
    assert!(api.ingress("web4").is_empty());
    assert_eq!(report.pending.get("pool_exhausted"), Some(&1));
    api.delete_service("web1");
    let report = r.pass(&over(&api, &["web1"]));
    assert!(report.needs_whole_pass, "web4 waits for the IP web1 gave back");
    api.apply(&report);
    settle(&mut r, &mut api);
    assert_eq!(api.ingress("web4").len(), 1);

    // What the passes over changes left is a fixed point for a fresh controller's whole pass.
    let mut fresh = handled();
    let report = fresh.pass(&api.snapshot());
    assert!(
        report.actions.iter().all(|a| matches!(a, Action::Event(_))),
        "a fresh whole pass would change nothing: {:?}",
        report.actions
    );
}

/// `status.used` is patched entry by entry: missing and changed entries set, foreign, stale and
/// non-canonical ones nulled, nothing when they agree.
#[test]
fn used_patch_sets_changed_entries_and_nulls_the_rest() {
    use oxelb_controller::reconcile::used_patch;
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let (a, b) = (ServiceKey::new("ns", "a"), ServiceKey::new("ns", "b"));
    let shared = [a.clone(), b.clone()];
    let want = || {
        vec![
            (ip("192.0.2.1"), std::slice::from_ref(&a)),
            (ip("192.0.2.2"), &shared[..]),
            (ip("2001:db8::1"), std::slice::from_ref(&b)),
        ]
    };
    let in_use: BTreeSet<_> = want().into_iter().map(|(ip, _)| ip).collect();
    let wanted = |ip| in_use.contains(&ip);
    let agreed: BTreeMap<String, String> = [
        ("192.0.2.1", "ns/a"),
        ("192.0.2.2", "ns/a;ns/b"),
        ("2001:db8::1", "ns/b"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(used_patch(Some(&agreed), want(), wanted), None);
    let from_nothing = used_patch(None, want(), wanted).unwrap();
    assert_eq!(Value::Object(from_nothing), json!(agreed));

    let mut stale = agreed.clone();
    stale.insert("192.0.2.2".into(), "ns/a".into());
    stale.remove("192.0.2.1");
    stale.insert("192.0.2.9".into(), "ns/gone".into());
    stale.insert("2001:DB8::1".into(), "ns/b".into());
    stale.insert("not-an-ip".into(), "ns/x".into());
    let patch = used_patch(Some(&stale), want(), wanted).unwrap();
    assert_eq!(
        Value::Object(patch),
        json!({"192.0.2.1": "ns/a", "192.0.2.2": "ns/a;ns/b", "192.0.2.9": null,
            "2001:DB8::1": null, "not-an-ip": null})
    );
}

/// Chunks of a burst that more chunks follow may leave the Eip's status to a later pass; the
/// first pass without deferral writes it with every IP the deferred chunks moved.
#[test]
fn deferred_eip_status_is_written_by_the_next_pass_that_does_not_defer() {
    let over = |api: &Api, names: &[&str]| {
        let mut snapshot = api.snapshot();
        snapshot.touched = Some(names.iter().map(|n| ServiceKey::new("default", *n)).collect());
        snapshot
    };
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.1-192.0.2.4");
    let mut r = handled();
    settle(&mut r, &mut api);
    api.put_service(&lb("a", "", "[{port: 80}]"));
    api.put_service(&lb("b", "", "[{port: 80}]"));
    let eip_written = |report: &PassReport| {
        report.actions.iter().any(|a| {
            matches!(
                a,
                Action::Status {
                    target: Target::Eip(_),
                    ..
                }
            )
        })
    };

    let first = r.pass_deferring(&over(&api, &["a"]), true);
    assert!(!eip_written(&first), "deferred: more chunks follow");
    api.apply(&first);
    assert_eq!(api.ingress("a"), ["192.0.2.1"]);
    let last = r.pass_deferring(&over(&api, &["b"]), false);
    assert!(eip_written(&last));
    api.apply(&last);
    assert_eq!(
        api.eip_status("pool")["used"],
        json!({"192.0.2.1": "default/a", "192.0.2.2": "default/b"}),
        "the deferred chunk's IP is listed too"
    );
    assert_eq!(settle(&mut r, &mut api), 0, "nothing left to write");
}
