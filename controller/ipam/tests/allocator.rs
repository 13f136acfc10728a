//! The allocator's rules, one test (or a few) per rule of the Service contract.
//!
//! Long because it holds one scenario (or a few) per rule, over 40 in all; one file keeps them in
//! one test binary, which links once.

// Test helpers (not #[test] fns) unwrap on literals written in this file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use oxelb_ipam::{
    Allocator, AssignError, AssignedIp, IpFamily, IpRange, Orphan, OrphanReason, PoolSpec, PoolStatus,
    Protocol, RegisterError, ServiceKey, ServiceRequest, SharingConflict, TrafficPolicy,
};
use pretty_assertions::assert_eq;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn range(s: &str) -> IpRange {
    s.parse().unwrap()
}

fn pool(name: &str, address: &str) -> PoolSpec {
    PoolSpec::new(name, range(address))
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

fn req(name: &str) -> ServiceRequest {
    ServiceRequest::new(key(name))
}

fn req_in(namespace: &str, name: &str) -> ServiceRequest {
    ServiceRequest::new(ServiceKey::new(namespace, name))
}

fn with_ip(mut request: ServiceRequest, address: &str) -> ServiceRequest {
    request.requested_ips.push(ip(address));
    request
}

fn with_pool(mut request: ServiceRequest, name: &str) -> ServiceRequest {
    request.pool = Some(name.into());
    request
}

fn with_ports(mut request: ServiceRequest, ports: &[(Protocol, u16)]) -> ServiceRequest {
    request.ports = ports.iter().copied().collect();
    request
}

fn default_pool(name: &str, address: &str) -> PoolSpec {
    PoolSpec {
        is_default: true,
        ..pool(name, address)
    }
}

fn allocator(pools: Vec<PoolSpec>) -> Allocator {
    let mut allocator = Allocator::new();
    assert_eq!(allocator.set_pools(pools), vec![]);
    allocator
}

/// The single IP of a single-family assignment.
fn assign_one(allocator: &mut Allocator, request: &ServiceRequest) -> AssignedIp {
    let assignment = allocator.assign(request).unwrap();
    assert_eq!(assignment.ips.len(), 1, "{assignment:?}");
    assignment.ips[0].clone()
}

fn assigned(address: &str, pool: &str) -> AssignedIp {
    AssignedIp {
        ip: ip(address),
        pool: pool.into(),
    }
}

// ---- automatic allocation ----

#[test]
fn lowest_free_address_skips_network_and_broadcast() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/30")]);
    assert_eq!(assign_one(&mut a, &req("a")), assigned("192.0.2.1", "p"));
    assert_eq!(assign_one(&mut a, &req("b")), assigned("192.0.2.2", "p"));
    let err = a.assign(&req("c")).unwrap_err();
    assert_eq!(
        err,
        AssignError::AllPoolsFull {
            service: key("c"),
            family: IpFamily::V4,
            pools: vec!["p".into()]
        }
    );
    assert!(a.holders(ip("192.0.2.0")).is_empty());
    assert!(a.holders(ip("192.0.2.3")).is_empty());
}

#[test]
fn ipv6_cidr_skips_subnet_router_anycast() {
    let mut a = allocator(vec![default_pool("p6", "2001:db8::/126")]);
    let mut r = req("a");
    r.families = BTreeSet::from([IpFamily::V6]);
    assert_eq!(assign_one(&mut a, &r), assigned("2001:db8::1", "p6"));
}

#[test]
fn release_then_reallocate_is_stable_and_fills_the_lowest_hole() {
    let mut a = allocator(vec![default_pool("p", "198.51.100.10-198.51.100.20")]);
    for name in ["a", "b", "c"] {
        assign_one(&mut a, &req(name));
    }
    assert_eq!(a.release(&key("b")), vec![ip("198.51.100.11")]);
    assert_eq!(
        a.release(&key("b")),
        Vec::<IpAddr>::new(),
        "releasing twice is harmless"
    );
    assert_eq!(assign_one(&mut a, &req("d")), assigned("198.51.100.11", "p"));
    assert_eq!(assign_one(&mut a, &req("e")), assigned("198.51.100.13", "p"));
}

#[test]
fn a_slash_64_pool_works() {
    let mut a = allocator(vec![default_pool("big", "2001:db8:1::/64")]);
    let mut r = req("a");
    r.families = BTreeSet::from([IpFamily::V6]);
    assert_eq!(assign_one(&mut a, &r), assigned("2001:db8:1::1", "big"));
    let status = a.pool_status("big").unwrap();
    assert_eq!(status.pool_size, (1u128 << 64) - 1);
    assert_eq!(status.usage, 1);
    assert!(!status.occupied);
    // A requested address near the top and one past the bottom, then automatic allocation goes on.
    let top = with_ip(r.clone(), "2001:db8:1::ffff:ffff:ffff:ffff");
    let mut top = top;
    top.key = key("top");
    assert_eq!(
        assign_one(&mut a, &top),
        assigned("2001:db8:1::ffff:ffff:ffff:ffff", "big")
    );
    let mut next = r;
    next.key = key("next");
    assert_eq!(assign_one(&mut a, &next), assigned("2001:db8:1::2", "big"));
}

// ---- keep existing ----

#[test]
fn assigning_again_returns_the_same_ip_even_when_a_better_pool_appears() {
    let mut a = allocator(vec![default_pool("fallback", "192.0.2.0/29")]);
    let first = assign_one(&mut a, &req_in("team", "a"));
    let better = PoolSpec {
        namespaces: vec!["team".into()],
        priority: Some(0),
        ..pool("team-pool", "198.51.100.0/29")
    };
    let fallback = default_pool("fallback", "192.0.2.0/29");
    assert_eq!(a.set_pools(vec![fallback, better]), vec![]);
    assert_eq!(assign_one(&mut a, &req_in("team", "a")), first);
    // A new Service of that namespace does get the better pool.
    assert_eq!(
        assign_one(&mut a, &req_in("team", "b")),
        assigned("198.51.100.1", "team-pool")
    );
}

#[test]
fn naming_another_pool_moves_the_service_and_frees_the_old_ip() {
    let mut a = allocator(vec![
        default_pool("p", "192.0.2.0/29"),
        pool("q", "198.51.100.0/29"),
    ]);
    assert_eq!(assign_one(&mut a, &req("a")), assigned("192.0.2.1", "p"));
    assert_eq!(
        assign_one(&mut a, &with_pool(req("a"), "q")),
        assigned("198.51.100.1", "q")
    );
    assert!(a.holders(ip("192.0.2.1")).is_empty());
    assert_eq!(a.pool_status("p").unwrap().usage, 0);
}

#[test]
fn requesting_another_ip_moves_the_service() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    assign_one(&mut a, &req("a"));
    assert_eq!(
        assign_one(&mut a, &with_ip(req("a"), "192.0.2.5")),
        assigned("192.0.2.5", "p")
    );
    assert_eq!(a.pool_status("p").unwrap().used.len(), 1);
    assert_eq!(assign_one(&mut a, &req("b")), assigned("192.0.2.1", "p"));
}

#[test]
fn a_failed_assign_changes_nothing() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    let first = assign_one(&mut a, &req("a"));
    let err = a.assign(&with_pool(req("a"), "missing")).unwrap_err();
    assert!(matches!(err, AssignError::PoolNotFound { .. }));
    assert_eq!(a.assignment(&key("a")).unwrap().ips, vec![first]);
}

// ---- pool choice ----

#[test]
fn requested_ip_chooses_its_pool_over_namespace_and_default() {
    let mut a = allocator(vec![
        default_pool("default", "192.0.2.0/29"),
        PoolSpec {
            namespaces: vec!["default".into()],
            ..pool("bound", "198.51.100.0/29")
        },
        pool("other", "203.0.113.0/29"),
    ]);
    assert_eq!(
        assign_one(&mut a, &with_ip(req("a"), "203.0.113.3")),
        assigned("203.0.113.3", "other")
    );
}

#[test]
fn requested_ip_in_a_range_pool_may_be_its_first_address() {
    let mut a = allocator(vec![pool("r", "192.0.2.0-192.0.2.3")]);
    assert_eq!(
        assign_one(&mut a, &with_ip(req("a"), "192.0.2.0")),
        assigned("192.0.2.0", "r")
    );
}

#[test]
fn namespace_pools_non_full_first_then_priority_then_name() {
    let bound = |name: &str, address: &str, priority: Option<i64>| PoolSpec {
        namespaces: vec!["team".into()],
        priority,
        ..pool(name, address)
    };
    let mut a = allocator(vec![
        bound("a-unset", "203.0.113.0/29", None),
        bound("b-prio5", "198.51.100.0/29", Some(5)),
        bound("c-prio1-full", "192.0.2.7", Some(1)),
        bound("d-prio1", "192.0.2.16/29", Some(1)),
        default_pool("dflt", "192.0.2.32/29"),
    ]);
    // c-prio1-full has priority 1 and its single address is free: it comes first (then d by name).
    assert_eq!(
        assign_one(&mut a, &req_in("team", "s1")),
        assigned("192.0.2.7", "c-prio1-full")
    );
    // Now it is full: d-prio1 (same priority, non-full).
    assert_eq!(
        assign_one(&mut a, &req_in("team", "s2")),
        assigned("192.0.2.17", "d-prio1")
    );
    // Fill d-prio1 (6 assignable): then priority 5 beats unset priority.
    for i in 0..5 {
        assign_one(&mut a, &req_in("team", &format!("fill{i}")));
    }
    assert!(a.pool_status("d-prio1").unwrap().occupied);
    assert_eq!(
        assign_one(&mut a, &req_in("team", "s3")),
        assigned("198.51.100.1", "b-prio5")
    );
}

#[test]
fn namespace_selector_binds_when_every_pair_matches() {
    let selected = PoolSpec {
        namespace_selector: BTreeMap::from([("env".into(), "prod".into()), ("team".into(), "web".into())]),
        ..pool("sel", "198.51.100.0/29")
    };
    let mut a = allocator(vec![selected, default_pool("dflt", "192.0.2.0/29")]);

    let mut prod = req_in("web", "a");
    prod.namespace_labels = BTreeMap::<String, String>::from([
        ("env".into(), "prod".into()),
        ("team".into(), "web".into()),
        ("extra".into(), "x".into()),
    ])
    .into();
    assert_eq!(assign_one(&mut a, &prod), assigned("198.51.100.1", "sel"));

    let mut partial = req_in("web", "b");
    partial.namespace_labels = BTreeMap::<String, String>::from([("env".into(), "prod".into())]).into();
    assert_eq!(assign_one(&mut a, &partial), assigned("192.0.2.1", "dflt"));
}

#[test]
fn empty_namespace_selector_binds_nothing() {
    let mut a = allocator(vec![pool("p", "192.0.2.0/29")]);
    let err = a.assign(&req("a")).unwrap_err();
    assert_eq!(
        err,
        AssignError::NoPoolApplies {
            service: key("a"),
            namespace: "default".into(),
            family: IpFamily::V4
        }
    );
    assert!(err.to_string().contains("default/a"), "{err}");
}

#[test]
fn default_pool_when_no_pool_is_bound_and_after_bound_pools_are_full() {
    let mut a = allocator(vec![
        PoolSpec {
            namespaces: vec!["team".into()],
            ..pool("bound", "192.0.2.9")
        },
        default_pool("dflt", "198.51.100.0/29"),
    ]);
    assert_eq!(
        assign_one(&mut a, &req_in("other", "a")),
        assigned("198.51.100.1", "dflt")
    );
    assert_eq!(
        assign_one(&mut a, &req_in("team", "b")),
        assigned("192.0.2.9", "bound")
    );
    assert_eq!(
        assign_one(&mut a, &req_in("team", "c")),
        assigned("198.51.100.2", "dflt")
    );
}

#[test]
fn all_applicable_pools_full_names_them_in_order() {
    let mut a = allocator(vec![
        PoolSpec {
            namespaces: vec!["default".into()],
            ..pool("bound", "192.0.2.9")
        },
        default_pool("dflt", "198.51.100.7"),
    ]);
    assign_one(&mut a, &req("a"));
    assign_one(&mut a, &req("b"));
    let err = a.assign(&req("c")).unwrap_err();
    assert_eq!(
        err,
        AssignError::AllPoolsFull {
            service: key("c"),
            family: IpFamily::V4,
            pools: vec!["bound".into(), "dflt".into()]
        }
    );
}

#[test]
fn named_pool_is_used_even_if_not_bound() {
    let mut a = allocator(vec![
        default_pool("dflt", "192.0.2.0/29"),
        pool("named", "203.0.113.8/29"),
    ]);
    assert_eq!(
        assign_one(&mut a, &with_pool(req("a"), "named")),
        assigned("203.0.113.9", "named")
    );
}

// ---- errors ----

#[test]
fn named_pool_missing() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    let err = a.assign(&with_pool(req("a"), "nope")).unwrap_err();
    assert_eq!(
        err,
        AssignError::PoolNotFound {
            service: key("a"),
            pool: "nope".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "Service default/a: Eip \"nope\" named by the Service does not exist; retried when pools change"
    );
}

#[test]
fn named_pool_exhausted() {
    let mut a = allocator(vec![pool("one", "192.0.2.9")]);
    assign_one(&mut a, &with_pool(req("a"), "one"));
    assert_eq!(
        a.assign(&with_pool(req("b"), "one")).unwrap_err(),
        AssignError::PoolExhausted {
            service: key("b"),
            pool: "one".into()
        }
    );
}

#[test]
fn named_pool_of_the_wrong_family() {
    let mut a = allocator(vec![pool("v6", "2001:db8::/120")]);
    assert_eq!(
        a.assign(&with_pool(req("a"), "v6")).unwrap_err(),
        AssignError::PoolWrongFamily {
            service: key("a"),
            pool: "v6".into(),
            pool_family: IpFamily::V6,
            family: IpFamily::V4
        }
    );
}

#[test]
fn requested_ip_outside_every_pool() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    let err = a.assign(&with_ip(req("a"), "198.51.100.1")).unwrap_err();
    assert_eq!(
        err,
        AssignError::IpOutsideEveryPool {
            service: key("a"),
            ip: ip("198.51.100.1")
        }
    );
    assert!(err.to_string().contains("198.51.100.1"), "{err}");
}

#[test]
fn requested_ip_outside_the_named_pool() {
    let mut a = allocator(vec![pool("p", "192.0.2.0/29"), pool("q", "198.51.100.0/29")]);
    let err = a
        .assign(&with_pool(with_ip(req("a"), "198.51.100.2"), "p"))
        .unwrap_err();
    assert_eq!(
        err,
        AssignError::IpOutsideNamedPool {
            service: key("a"),
            ip: ip("198.51.100.2"),
            pool: "p".into()
        }
    );
    // Inside the named pool is fine.
    assert_eq!(
        assign_one(&mut a, &with_pool(with_ip(req("a"), "192.0.2.3"), "p")),
        assigned("192.0.2.3", "p")
    );
}

#[test]
fn requested_network_broadcast_or_anycast_address_is_refused() {
    let mut a = allocator(vec![pool("p", "192.0.2.0/29"), pool("p6", "2001:db8::/120")]);
    for address in ["192.0.2.0", "192.0.2.7"] {
        assert_eq!(
            a.assign(&with_ip(req("a"), address)).unwrap_err(),
            AssignError::IpNotAssignable {
                service: key("a"),
                ip: ip(address),
                pool: "p".into()
            }
        );
    }
    let mut r = with_ip(req("a"), "2001:db8::");
    r.families = BTreeSet::from([IpFamily::V6]);
    assert!(matches!(
        a.assign(&r).unwrap_err(),
        AssignError::IpNotAssignable { .. }
    ));
}

#[test]
fn request_validation_errors() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    let mut none = req("a");
    none.families.clear();
    assert_eq!(
        a.assign(&none).unwrap_err(),
        AssignError::NoFamily { service: key("a") }
    );
    let two = with_ip(with_ip(req("a"), "192.0.2.1"), "192.0.2.2");
    assert_eq!(
        a.assign(&two).unwrap_err(),
        AssignError::TwoRequestedIpsOfOneFamily {
            service: key("a"),
            family: IpFamily::V4,
            first: ip("192.0.2.1"),
            second: ip("192.0.2.2")
        }
    );
    let v6 = with_ip(req("a"), "2001:db8::5");
    assert_eq!(
        a.assign(&v6).unwrap_err(),
        AssignError::RequestedFamilyNotWanted {
            service: key("a"),
            ip: ip("2001:db8::5"),
            family: IpFamily::V6
        }
    );
    assert!(a.assignment(&key("a")).is_none());
}

// ---- disabled pools ----

#[test]
fn disabled_pool_gives_nothing_new_but_existing_assignments_stay() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    let held = assign_one(&mut a, &req("a"));
    let disabled = PoolSpec {
        disabled: true,
        ..default_pool("p", "192.0.2.0/29")
    };
    assert_eq!(a.set_pools(vec![disabled]), vec![]);
    assert_eq!(assign_one(&mut a, &req("a")), held, "existing assignment stays");
    assert_eq!(
        a.assign(&req("b")).unwrap_err(),
        AssignError::NoPoolApplies {
            service: key("b"),
            namespace: "default".into(),
            family: IpFamily::V4
        },
        "a disabled default pool does not apply"
    );
    assert_eq!(
        a.assign(&with_pool(req("b"), "p")).unwrap_err(),
        AssignError::PoolDisabled {
            service: key("b"),
            pool: "p".into()
        }
    );
    assert_eq!(
        a.assign(&with_ip(req("b"), "192.0.2.4")).unwrap_err(),
        AssignError::PoolDisabled {
            service: key("b"),
            pool: "p".into()
        }
    );
}

#[test]
fn disabled_bound_pool_is_skipped_for_the_next_one() {
    let mut a = allocator(vec![
        PoolSpec {
            namespaces: vec!["default".into()],
            priority: Some(0),
            disabled: true,
            ..pool("off", "192.0.2.0/29")
        },
        PoolSpec {
            namespaces: vec!["default".into()],
            priority: Some(9),
            ..pool("on", "198.51.100.0/29")
        },
    ]);
    assert_eq!(assign_one(&mut a, &req("a")), assigned("198.51.100.1", "on"));
}

// ---- dual-stack ----

fn dual(name: &str) -> ServiceRequest {
    let mut r = req(name);
    r.families = BTreeSet::from([IpFamily::V4, IpFamily::V6]);
    r
}

#[test]
fn dual_stack_gets_one_ip_per_family_skipping_wrong_family_pools() {
    let mut a = allocator(vec![
        default_pool("v4", "192.0.2.0/29"),
        PoolSpec {
            namespaces: vec!["default".into()],
            ..pool("v6", "2001:db8::/120")
        },
    ]);
    let assignment = a.assign(&dual("a")).unwrap();
    assert_eq!(
        assignment.ips,
        vec![assigned("192.0.2.1", "v4"), assigned("2001:db8::1", "v6")]
    );
    // Dropping IPv6 releases the IPv6 address only.
    assert_eq!(
        a.assign(&req("a")).unwrap().ips,
        vec![assigned("192.0.2.1", "v4")]
    );
    assert!(a.holders(ip("2001:db8::1")).is_empty());
}

#[test]
fn dual_stack_is_all_or_nothing() {
    let mut a = allocator(vec![default_pool("v4", "192.0.2.0/29")]);
    let err = a.assign(&dual("a")).unwrap_err();
    assert_eq!(
        err,
        AssignError::NoPoolApplies {
            service: key("a"),
            namespace: "default".into(),
            family: IpFamily::V6
        }
    );
    assert!(a.assignment(&key("a")).is_none());
    assert_eq!(a.pool_status("v4").unwrap().usage, 0);
}

#[test]
fn dual_stack_with_requested_ips_of_both_families() {
    let mut a = allocator(vec![pool("v4", "192.0.2.0/29"), pool("v6", "2001:db8::/120")]);
    let r = with_ip(with_ip(dual("a"), "2001:db8::42"), "192.0.2.6");
    assert_eq!(
        a.assign(&r).unwrap().ips,
        vec![assigned("192.0.2.6", "v4"), assigned("2001:db8::42", "v6")]
    );
}

#[test]
fn dual_stack_names_one_pool_per_family() {
    let mut a = allocator(vec![
        default_pool("v4-default", "192.0.2.0/29"),
        pool("v4-named", "198.51.100.0/29"),
        pool("v6-named", "2001:db8::/120"),
    ]);
    let mut r = dual("a");
    // Written in any order; each family takes the named pool of its family.
    r.family_pools = vec!["v6-named".into(), "v4-named".into()];
    assert_eq!(
        a.assign(&r).unwrap().ips,
        vec![
            assigned("198.51.100.1", "v4-named"),
            assigned("2001:db8::1", "v6-named")
        ]
    );
    // Kept on the next pass; moved only when the names change.
    assert_eq!(a.assign(&r).unwrap().ips[0], assigned("198.51.100.1", "v4-named"));
    // No named pool of a wanted family: the error names a pool the user wrote.
    let mut b = dual("b");
    b.family_pools = vec!["v4-named".into(), "missing".into()];
    assert_eq!(
        a.assign(&b).unwrap_err(),
        AssignError::PoolWrongFamily {
            service: key("b"),
            pool: "v4-named".into(),
            pool_family: IpFamily::V4,
            family: IpFamily::V6,
        }
    );
    assert!(a.assignment(&key("b")).is_none(), "all or nothing");
}

// ---- sharing ----

const TCP80: (Protocol, u16) = (Protocol::Tcp, 80);
const TCP443: (Protocol, u16) = (Protocol::Tcp, 443);
const UDP80: (Protocol, u16) = (Protocol::Udp, 80);

#[test]
fn sharing_allowed_when_requested_and_ports_differ() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    let first = assign_one(&mut a, &with_ports(req("a"), &[TCP80]));
    let second = with_ports(with_ip(req("b"), "192.0.2.1"), &[TCP443, UDP80]);
    assert_eq!(assign_one(&mut a, &second), first);
    assert_eq!(a.holders(ip("192.0.2.1")), vec![key("a"), key("b")]);
    let status = a.pool_status("p").unwrap();
    assert_eq!(status.usage, 1);
    assert_eq!(status.used[&ip("192.0.2.1")], vec![key("a"), key("b")]);
}

#[test]
fn sharing_refused_on_port_collision_naming_holder_and_port() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    assign_one(&mut a, &with_ports(req("a"), &[TCP80, TCP443]));
    let err = a
        .assign(&with_ports(with_ip(req("b"), "192.0.2.1"), &[TCP443]))
        .unwrap_err();
    assert_eq!(
        err,
        AssignError::Sharing(SharingConflict::PortCollision {
            ip: ip("192.0.2.1"),
            service: key("b"),
            holder: key("a"),
            protocol: Protocol::Tcp,
            port: 443
        })
    );
    assert_eq!(
        err.to_string(),
        "Service default/b cannot share 192.0.2.1 with default/a: both use port TCP/443; nothing assigned"
    );
    assert!(a.assignment(&key("b")).is_none());
}

#[test]
fn sharing_never_happens_automatically() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.9")]);
    assign_one(&mut a, &with_ports(req("a"), &[TCP80]));
    assert!(matches!(
        a.assign(&with_ports(req("b"), &[TCP443])).unwrap_err(),
        AssignError::AllPoolsFull { .. }
    ));
}

#[test]
fn sharing_with_local_policy_needs_the_same_selector() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    let mut first = with_ports(req("a"), &[TCP80]);
    first.selector = BTreeMap::<String, String>::from([("app".into(), "web".into())]).into();
    assign_one(&mut a, &first);

    let mut other = with_ports(with_ip(req("b"), "192.0.2.1"), &[TCP443]);
    other.traffic_policy = TrafficPolicy::Local;
    other.selector = BTreeMap::<String, String>::from([("app".into(), "db".into())]).into();
    assert_eq!(
        a.assign(&other).unwrap_err(),
        AssignError::Sharing(SharingConflict::SelectorMismatch {
            ip: ip("192.0.2.1"),
            service: key("b"),
            holder: key("a")
        })
    );

    other.selector = first.selector.clone();
    assert_eq!(assign_one(&mut a, &other).ip, ip("192.0.2.1"));

    // Both Cluster: selectors may differ.
    let mut cluster = with_ports(with_ip(req("c"), "192.0.2.1"), &[(Protocol::Sctp, 80)]);
    cluster.selector = BTreeMap::<String, String>::from([("app".into(), "other".into())]).into();
    assert!(
        matches!(
            a.assign(&cluster).unwrap_err(),
            AssignError::Sharing(SharingConflict::SelectorMismatch { .. })
        ),
        "b is Local, so c must match b's selector"
    );
}

#[test]
fn a_shared_ip_is_freed_with_its_last_holder() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    assign_one(&mut a, &with_ports(req("a"), &[TCP80]));
    assign_one(&mut a, &with_ports(with_ip(req("b"), "192.0.2.1"), &[TCP443]));
    assert_eq!(a.release(&key("a")), vec![ip("192.0.2.1")]);
    assert_eq!(a.holders(ip("192.0.2.1")), vec![key("b")]);
    assert_eq!(assign_one(&mut a, &req("c")), assigned("192.0.2.2", "p"));
    a.release(&key("b"));
    assert_eq!(a.pool_status("p").unwrap().usage, 1);
    assert_eq!(assign_one(&mut a, &req("d")), assigned("192.0.2.1", "p"));
}

#[test]
fn a_holder_changing_ports_into_a_collision_is_refused_and_keeps_its_ip() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    assign_one(&mut a, &with_ports(req("a"), &[TCP80]));
    assign_one(&mut a, &with_ports(with_ip(req("b"), "192.0.2.1"), &[TCP443]));
    let err = a.assign(&with_ports(req("a"), &[TCP443])).unwrap_err();
    assert!(matches!(
        err,
        AssignError::Sharing(SharingConflict::PortCollision { port: 443, .. })
    ));
    assert_eq!(a.holders(ip("192.0.2.1")), vec![key("a"), key("b")]);
}

// ---- restart: register_existing ----

#[test]
fn register_then_allocate_never_duplicates() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    assert_eq!(
        a.register_existing(&req("old1"), ip("192.0.2.1")).unwrap(),
        assigned("192.0.2.1", "p")
    );
    a.register_existing(&req("old3"), ip("192.0.2.3")).unwrap();
    assert_eq!(assign_one(&mut a, &req("new1")), assigned("192.0.2.2", "p"));
    assert_eq!(assign_one(&mut a, &req("new2")), assigned("192.0.2.4", "p"));
    // The registered Service keeps its IP when assigned.
    assert_eq!(assign_one(&mut a, &req("old3")), assigned("192.0.2.3", "p"));
}

#[test]
fn register_is_idempotent_and_allowed_in_a_disabled_pool() {
    let mut a = allocator(vec![PoolSpec {
        disabled: true,
        ..pool("p", "192.0.2.0/29")
    }]);
    a.register_existing(&req("a"), ip("192.0.2.5")).unwrap();
    a.register_existing(&req("a"), ip("192.0.2.5")).unwrap();
    assert_eq!(a.holders(ip("192.0.2.5")), vec![key("a")]);
    assert_eq!(a.pool_status("p").unwrap().usage, 1);
}

#[test]
fn adopted_network_and_broadcast_addresses_are_kept_but_never_handed_out() {
    // OpenELB hands out a CIDR's network and broadcast addresses; adopting them must not move the
    // Services holding them.
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/30")]);
    assert_eq!(
        a.register_existing(&req("net"), ip("192.0.2.0")).unwrap(),
        assigned("192.0.2.0", "p")
    );
    assert_eq!(
        a.register_existing(&req("bcast"), ip("192.0.2.3")).unwrap(),
        assigned("192.0.2.3", "p")
    );
    assert_eq!(
        a.assign(&req("net")).unwrap().ips,
        vec![assigned("192.0.2.0", "p")],
        "kept"
    );
    let status = a.pool_status("p").unwrap();
    assert_eq!((status.usage, status.pool_size, status.occupied), (2, 2, false));
    // New allocations still use only the assignable .1 and .2.
    assert_eq!(assign_one(&mut a, &req("n1")), assigned("192.0.2.1", "p"));
    assert_eq!(assign_one(&mut a, &req("n2")), assigned("192.0.2.2", "p"));
    assert!(matches!(
        a.assign(&req("n3")),
        Err(AssignError::AllPoolsFull { .. })
    ));
    // Released, the broadcast address is not handed out again.
    a.release(&key("bcast"));
    assert!(matches!(
        a.assign(&req("n3")),
        Err(AssignError::AllPoolsFull { .. })
    ));
    // A new explicit request for it is still refused.
    assert!(matches!(
        a.assign(&with_ip(req("n4"), "192.0.2.3")),
        Err(AssignError::IpNotAssignable { .. })
    ));
}

#[test]
fn register_conflicts_are_errors_not_overwrites() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    assert_eq!(
        a.register_existing(&req("a"), ip("203.0.113.1")).unwrap_err(),
        RegisterError::IpOutsideEveryPool {
            service: key("a"),
            ip: ip("203.0.113.1")
        }
    );
    a.register_existing(&with_ports(req("a"), &[TCP80]), ip("192.0.2.1"))
        .unwrap();
    assert_eq!(
        a.register_existing(&req("a"), ip("192.0.2.2")).unwrap_err(),
        RegisterError::FamilyAlreadyHeld {
            service: key("a"),
            ip: ip("192.0.2.2"),
            registered: ip("192.0.2.1")
        }
    );
    let err = a
        .register_existing(&with_ports(req("b"), &[TCP80]), ip("192.0.2.1"))
        .unwrap_err();
    assert!(matches!(
        err,
        RegisterError::Sharing(SharingConflict::PortCollision { port: 80, .. })
    ));
    assert!(err.to_string().ends_with("; not registered"), "{err}");
    // A legal share is accepted.
    a.register_existing(&with_ports(req("c"), &[TCP443]), ip("192.0.2.1"))
        .unwrap();
    assert_eq!(a.holders(ip("192.0.2.1")), vec![key("a"), key("c")]);
    assert!(a.holders(ip("192.0.2.2")).is_empty());
}

// ---- pool changes ----

#[test]
fn removed_pool_reports_its_assignments() {
    let mut a = allocator(vec![
        default_pool("p", "192.0.2.0/29"),
        pool("q", "198.51.100.0/29"),
    ]);
    assign_one(&mut a, &with_ports(req("a"), &[TCP80]));
    assign_one(&mut a, &with_ports(with_ip(req("b"), "192.0.2.1"), &[TCP443]));
    assign_one(&mut a, &with_pool(req("c"), "q"));
    let orphans = a.set_pools(vec![pool("q", "198.51.100.0/29")]);
    assert_eq!(
        orphans,
        vec![
            Orphan {
                service: key("a"),
                ip: ip("192.0.2.1"),
                pool: "p".into(),
                reason: OrphanReason::PoolRemoved
            },
            Orphan {
                service: key("b"),
                ip: ip("192.0.2.1"),
                pool: "p".into(),
                reason: OrphanReason::PoolRemoved
            },
        ]
    );
    assert!(a.assignment(&key("a")).is_none());
    assert!(a.holders(ip("192.0.2.1")).is_empty());
    assert_eq!(
        a.assignment(&key("c")).unwrap().ips,
        vec![assigned("198.51.100.1", "q")]
    );
    assert!(a.pool_status("p").is_none());
}

#[test]
fn shrunk_pool_reports_out_of_range_assignments_and_keeps_the_rest() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/28")]);
    a.register_existing(&req("low"), ip("192.0.2.2")).unwrap();
    a.register_existing(&req("high"), ip("192.0.2.12")).unwrap();
    a.register_existing(&req("edge"), ip("192.0.2.7")).unwrap();
    let orphans = a.set_pools(vec![default_pool("p", "192.0.2.0/29")]);
    let dropped: Vec<_> = orphans.iter().map(|o| (&*o.service.name, o.reason)).collect();
    assert_eq!(
        dropped,
        vec![("high", OrphanReason::OutsidePool)],
        "192.0.2.7 becomes the broadcast address of the /29 but stays in range: kept"
    );
    assert_eq!(a.pool_status("p").unwrap().usage, 2);
    assert_eq!(
        a.assignment(&key("edge")).unwrap().ips,
        vec![assigned("192.0.2.7", "p")]
    );
    // Allocation continues around the kept IP.
    assert_eq!(assign_one(&mut a, &req("n1")), assigned("192.0.2.1", "p"));
    assert_eq!(assign_one(&mut a, &req("n2")), assigned("192.0.2.3", "p"));
}

#[test]
fn orphaned_service_is_reassigned_by_assign() {
    let mut a = allocator(vec![default_pool("p", "192.0.2.0/29")]);
    assign_one(&mut a, &req("a"));
    let orphans = a.set_pools(vec![default_pool("p2", "198.51.100.0/29")]);
    assert_eq!(orphans.len(), 1);
    assert_eq!(assign_one(&mut a, &req("a")), assigned("198.51.100.1", "p2"));
}

// ---- status ----

#[test]
fn pool_status_reports_every_field() {
    let mut a = allocator(vec![
        default_pool("p", "192.0.2.0/30"),
        pool("p6", "2001:db8::10-2001:db8::1f"),
    ]);
    assign_one(&mut a, &req("b"));
    assign_one(&mut a, &req("a"));
    let status = a.pool_status("p").unwrap();
    assert_eq!(
        status.used,
        BTreeMap::from([
            (ip("192.0.2.1"), vec![key("b")]),
            (ip("192.0.2.2"), vec![key("a")])
        ])
    );
    assert_eq!(status.usage, 2);
    assert_eq!(status.pool_size, 2);
    assert_eq!(status.first_ip, ip("192.0.2.0"));
    assert_eq!(status.last_ip, ip("192.0.2.3"));
    assert!(status.occupied);
    assert!(status.v4);
    let v6 = a.pool_status("p6").unwrap();
    assert_eq!(v6.pool_size, 16);
    assert!(!v6.v4);
    assert!(!v6.occupied);
    assert_eq!(
        a.pool_statuses()
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        vec!["p", "p6"]
    );
    assert!(a.pool_status("missing").is_none());
    // The summary and the walk over the IPs in use say what the full status says.
    let summary = a.pool_summary("p").unwrap();
    assert_eq!(
        summary,
        PoolStatus {
            used: BTreeMap::new(),
            ..status.clone()
        }
    );
    assert_eq!(
        a.pool_used("p")
            .map(|(ip, holders)| (ip, holders.to_vec()))
            .collect::<BTreeMap<_, _>>(),
        status.used
    );
    assert_eq!(a.pool_used("p6").count(), 0);
    assert_eq!(a.pool_used("missing").count(), 0);
    assert_eq!(a.pool_of_used(ip("192.0.2.2")), Some("p"));
    assert_eq!(a.pool_of_used(ip("192.0.2.3")), None);
    assert!(a.pool_summary("missing").is_none());
}

#[test]
fn overlapping_pools_never_hand_out_one_ip_twice() {
    // The webhook forbids overlap; the allocator must still stay consistent if it happens.
    let mut a = allocator(vec![
        pool("a", "192.0.2.0-192.0.2.3"),
        pool("b", "192.0.2.2-192.0.2.5"),
    ]);
    a.register_existing(&req("x"), ip("192.0.2.2")).unwrap();
    assert_eq!(
        assign_one(&mut a, &with_pool(req("y"), "b")),
        assigned("192.0.2.3", "b")
    );
    assert_eq!(
        assign_one(&mut a, &with_pool(req("z"), "a")),
        assigned("192.0.2.0", "a")
    );
    a.release(&key("x"));
    assert_eq!(
        assign_one(&mut a, &with_pool(req("w"), "b")),
        assigned("192.0.2.2", "b")
    );
}

#[test]
fn register_rechecks_the_services_other_shared_ip_with_its_new_ports() {
    let mut a = allocator(vec![
        default_pool("p", "192.0.2.0/29"),
        pool("p6", "2001:db8::/120"),
    ]);
    a.register_existing(&with_ports(req("x"), &[TCP80]), ip("192.0.2.1"))
        .unwrap();
    a.register_existing(&with_ports(req("y"), &[TCP443]), ip("192.0.2.1"))
        .unwrap();
    // y now presents port 80, which collides with x on 192.0.2.1: refused, nothing recorded.
    let err = a
        .register_existing(&with_ports(req("y"), &[TCP80]), ip("2001:db8::5"))
        .unwrap_err();
    assert!(matches!(
        err,
        RegisterError::Sharing(SharingConflict::PortCollision { port: 80, .. })
    ));
    assert!(a.holders(ip("2001:db8::5")).is_empty());
}
