//! An Eip whose `status.used` would outgrow what the apiserver stores (issue 28): the controller
//! lists only the lowest addresses that fit, says `usedTruncated: true` and one Warning, keeps
//! `usage` exact, and a restart neither moves an IP nor "repairs" what was left out on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::IpAddr, sync::Arc};

use oxelb_controller::reconcile::{Reconciler, used_fit};
use oxelb_ipam::ServiceKey;

// Shared with the reconcile scenarios; this file uses part of it.
#[allow(dead_code)]
mod support;
use support::{Api, default_eip, handled, lb, settle};

/// Room for about a dozen `used` entries of this test's Eip beside its metadata and spec.
const SMALL: usize = 1100;

fn small() -> Reconciler {
    handled().with_eip_status_max_bytes(SMALL)
}

fn names() -> Vec<String> {
    (0..40).map(|i| format!("svc-{i:02}")).collect()
}

fn truncation_warnings(api: &Api) -> usize {
    api.warnings()
        .iter()
        .filter(|w| w.0 == "EipStatusTruncated")
        .count()
}

fn repairs(api: &Api) -> usize {
    api.warnings().iter().filter(|w| w.0 == "StatusRepaired").count()
}

#[test]
fn a_used_map_over_the_bound_lists_the_lowest_addresses_and_says_so_once() {
    let mut api = Api::default();
    default_eip(&mut api, "192.0.2.0/26");
    for name in names() {
        api.put_service(&lb(&name, "", "[{port: 80}]"));
    }
    let mut first = small();
    settle(&mut first, &mut api);

    let status = api.eip_status("pool").clone();
    assert_eq!(status["usage"], 40, "usage stays exact: {status}");
    assert_eq!(status["usedTruncated"], true, "{status}");
    let used = status["used"].as_object().unwrap();
    assert!(!used.is_empty() && used.len() < 40, "{} listed", used.len());
    // Exactly the lowest addresses in use, each naming its holder.
    let mut held: Vec<(IpAddr, String)> = names()
        .into_iter()
        .map(|n| {
            let ips = api.ingress(&n);
            assert_eq!(ips.len(), 1, "{n}: {ips:?}");
            (ips[0].parse().unwrap(), format!("default/{n}"))
        })
        .collect();
    held.sort();
    held.dedup_by_key(|h| h.0);
    assert_eq!(held.len(), 40, "no IP held twice");
    for (ip, holder) in held.iter().take(used.len()) {
        assert_eq!(used[&ip.to_string()], holder.as_str(), "{ip}");
    }
    assert_eq!(truncation_warnings(&api), 1, "{:?}", api.warnings());
    assert_eq!(repairs(&api), 0, "{:?}", api.warnings());
    let metric = first.truncated_eips();
    assert_eq!(metric.get("pool"), Some(&used.len()));

    // A restart (a new leader) re-registers from the Services' status: nothing moves, nothing is
    // written, and nothing left out on purpose is called a repair.
    let before: Vec<_> = names().iter().map(|n| api.ingress(n)).collect();
    let mut restarted = small();
    let report = restarted.pass(&api.snapshot());
    assert!(report.actions.is_empty(), "{:?}", report.actions);
    settle(&mut restarted, &mut api);
    let after: Vec<_> = names().iter().map(|n| api.ingress(n)).collect();
    assert_eq!(before, after, "0 moves");
    assert_eq!(truncation_warnings(&api), 1, "{:?}", api.warnings());
    assert_eq!(repairs(&api), 0, "{:?}", api.warnings());

    // With room again, the whole map is written and the flag goes.
    let mut roomy = handled();
    settle(&mut roomy, &mut api);
    let status = api.eip_status("pool");
    assert_eq!(status["used"].as_object().unwrap().len(), 40, "{status}");
    assert!(
        status.get("usedTruncated").is_none_or(|v| v.is_null()),
        "{status}"
    );
    assert!(roomy.truncated_eips().is_empty());
    assert_eq!(truncation_warnings(&api), 1);
}

#[test]
fn entries_are_sized_as_json_and_taken_in_order() {
    let key = |n: &str| ServiceKey {
        namespace: Arc::from("default"),
        name: Arc::from(n),
    };
    let a = [key("web")];
    let b = [key("web"), key("api")];
    let entries: Vec<(IpAddr, &[ServiceKey])> = vec![
        ("192.0.2.1".parse().unwrap(), &a),
        ("192.0.2.2".parse().unwrap(), &b),
    ];
    // "192.0.2.1":"default/web", is 26 bytes; "192.0.2.2":"default/web;default/api", 38.
    let fit = |budget| used_fit(entries.iter().map(|(ip, h)| (*ip, *h)), budget);
    assert_eq!(fit(64).listed, 2);
    assert!(!fit(64).truncated);
    assert_eq!(fit(63).listed, 1);
    assert!(fit(63).truncated);
    assert_eq!(fit(63).last, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(fit(25).listed, 0);
    assert_eq!(fit(25).last, None);
}
