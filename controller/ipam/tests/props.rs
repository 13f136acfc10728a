//! Property tests: random sequences of assign / release / register / pool changes on small pools
//! must keep the allocator's invariants.

// Test helpers (not #[test] fns) unwrap on literals written in this file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use oxelb_ipam::{
    Allocator, IpFamily, IpRange, PoolSpec, Protocol, ServiceKey, ServiceRequest, TrafficPolicy,
};
use proptest::prelude::*;

const SERVICES: usize = 8;

/// Small pools of both families, including network/broadcast cases and a single address.
fn pools(variant: u8) -> Vec<PoolSpec> {
    let spec = |name: &str, address: &str, default: bool, priority: Option<i64>| PoolSpec {
        is_default: default,
        priority,
        namespaces: if name.starts_with("ns") {
            vec!["team".into()]
        } else {
            vec![]
        },
        ..PoolSpec::new(name, address.parse::<IpRange>().unwrap())
    };
    let mut all = vec![
        spec("dflt", "192.0.2.0/29", true, None),
        spec("ns-a", "198.51.100.0/30", false, Some(1)),
        spec("ns-b", "198.51.100.8-198.51.100.9", false, None),
        spec("single", "203.0.113.5", false, None),
        spec("dflt6", "2001:db8::/125", false, None),
        spec("ns6", "2001:db8:1::/126", false, Some(0)),
    ];
    match variant % 4 {
        // Shrink the default pool: assignments in its upper half become orphans.
        1 => all[0] = spec("dflt", "192.0.2.0/30", true, None),
        // Remove a pool.
        2 => {
            all.remove(1);
        }
        // Disable one.
        3 => all[2].disabled = true,
        _ => {}
    }
    all
}

fn candidate_ips() -> Vec<IpAddr> {
    [
        "192.0.2.0",
        "192.0.2.1",
        "192.0.2.3",
        "192.0.2.6",
        "192.0.2.7",
        "198.51.100.1",
        "198.51.100.9",
        "203.0.113.5",
        "203.0.113.6",
        "2001:db8::",
        "2001:db8::2",
        "2001:db8:1::3",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Assign {
        service: usize,
        ip: Option<usize>,
        pool: Option<usize>,
        ports: Vec<u16>,
        local: bool,
        selector: u8,
        families: u8,
    },
    Register {
        service: usize,
        ip: usize,
        ports: Vec<u16>,
    },
    Release {
        service: usize,
    },
    SetPools {
        variant: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (
            0..SERVICES,
            proptest::option::of(0..12usize),
            proptest::option::weighted(0.2, 0..7usize),
            proptest::collection::vec(79u16..83, 0..3),
            any::<bool>(),
            0u8..2,
            0u8..3,
        )
            .prop_map(|(service, ip, pool, ports, local, selector, families)| Op::Assign {
                service,
                ip,
                pool,
                ports,
                local,
                selector,
                families
            }),
        2 => (0..SERVICES, 0..12usize, proptest::collection::vec(79u16..83, 0..3))
            .prop_map(|(service, ip, ports)| Op::Register { service, ip, ports }),
        2 => (0..SERVICES).prop_map(|service| Op::Release { service }),
        1 => (0u8..4).prop_map(|variant| Op::SetPools { variant }),
    ]
}

fn key(service: usize) -> ServiceKey {
    // Two namespaces: "team" has bound pools, "other" only the default ones.
    let namespace = if service.is_multiple_of(2) {
        "team"
    } else {
        "other"
    };
    ServiceKey::new(namespace, format!("svc{service}"))
}

fn request(service: usize, ports: &[u16], local: bool, selector: u8) -> ServiceRequest {
    let mut request = ServiceRequest::new(key(service));
    request.ports = ports.iter().map(|port| (Protocol::Tcp, *port)).collect();
    request.traffic_policy = if local {
        TrafficPolicy::Local
    } else {
        TrafficPolicy::Cluster
    };
    request.selector = BTreeMap::<String, String>::from([("app".to_owned(), selector.to_string())]).into();
    request
}

/// What the test knows each Service presented last, to check sharing legality from outside.
#[derive(Debug, Clone)]
struct Presented {
    ports: BTreeSet<u16>,
    local: bool,
    selector: u8,
}

fn check_invariants(
    allocator: &Allocator,
    pools: &[PoolSpec],
    presented: &BTreeMap<usize, Presented>,
) -> Result<(), TestCaseError> {
    let statuses = allocator.pool_statuses();
    // The summaries metrics read are the statuses without the IPs in use.
    let summaries = allocator.pool_summaries();
    prop_assert_eq!(summaries.len(), statuses.len());
    for (summary, status) in summaries.iter().zip(&statuses) {
        prop_assert!(summary.used.is_empty());
        let mut full = summary.clone();
        full.used = status.used.clone();
        prop_assert_eq!(&full, status);
    }
    let mut seen: BTreeMap<IpAddr, String> = BTreeMap::new();
    for status in &statuses {
        let spec = pools.iter().find(|p| p.name == status.name).unwrap();
        // Usage equals the distinct IPs in use.
        prop_assert_eq!(status.usage, status.used.len());
        // Registered (adopted) IPs may be any address of the range; the range bounds usage.
        prop_assert!(status.usage as u128 <= spec.range.size());
        for (ip, holders) in &status.used {
            // Never an IP outside its pool.
            prop_assert!(spec.range.contains(*ip), "{} outside {}", ip, spec.name);
            prop_assert!(!holders.is_empty());
            prop_assert_eq!(seen.insert(*ip, status.name.clone()), None, "{} in two pools", ip);
            prop_assert_eq!(allocator.holders(*ip), holders.clone());
            // Never two owners without a legal share.
            for (i, a) in holders.iter().enumerate() {
                for b in &holders[i + 1..] {
                    let index = |k: &ServiceKey| k.name.trim_start_matches("svc").parse::<usize>().unwrap();
                    let (pa, pb) = (&presented[&index(a)], &presented[&index(b)]);
                    prop_assert!(
                        pa.ports.is_disjoint(&pb.ports),
                        "{} and {} share {} with colliding ports",
                        a,
                        b,
                        ip
                    );
                    if pa.local || pb.local {
                        prop_assert_eq!(
                            pa.selector,
                            pb.selector,
                            "{} and {} share {} with different selectors",
                            a,
                            b,
                            ip
                        );
                    }
                }
            }
        }
    }
    // Every Service's assignment is consistent with the pool statuses: at most one IP per family.
    for service in 0..SERVICES {
        if let Some(assignment) = allocator.assignment(&key(service)) {
            let families: BTreeSet<IpFamily> = assignment.ips.iter().map(|a| IpFamily::of(a.ip)).collect();
            prop_assert_eq!(families.len(), assignment.ips.len());
            for assigned in &assignment.ips {
                prop_assert_eq!(seen.get(&assigned.ip), Some(&assigned.pool));
                prop_assert!(allocator.holders(assigned.ip).contains(&key(service)));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_over_random_operations(ops in proptest::collection::vec(op(), 1..60)) {
        let ips = candidate_ips();
        let mut current = pools(0);
        let mut allocator = Allocator::new();
        prop_assert!(allocator.set_pools(current.clone()).is_empty());
        let mut presented: BTreeMap<usize, Presented> = BTreeMap::new();
        let pool_names = ["dflt", "ns-a", "ns-b", "single", "dflt6", "ns6", "missing"];

        for op in ops {
            match op {
                Op::Assign { service, ip, pool, ports, local, selector, families } => {
                    let mut r = request(service, &ports, local, selector);
                    r.families = match families {
                        0 => BTreeSet::from([IpFamily::V4]),
                        1 => BTreeSet::from([IpFamily::V6]),
                        _ => BTreeSet::from([IpFamily::V4, IpFamily::V6]),
                    };
                    r.requested_ips = ip.map(|i| ips[i]).into_iter().collect();
                    r.pool = pool.map(|p| pool_names[p].to_owned());
                    let before = allocator.assignment(&key(service));
                    match allocator.assign(&r) {
                        Ok(assignment) => {
                            presented.insert(service, Presented { ports: ports.iter().copied().collect(), local, selector });
                            // One IP per wanted family, and the requested IP if any.
                            prop_assert_eq!(assignment.ips.len(), r.families.len());
                            for requested in &r.requested_ips {
                                prop_assert!(assignment.ips.iter().any(|a| a.ip == *requested));
                            }
                            // A newly taken IP that was not requested is never shared: automatic
                            // allocation only hands out free addresses.
                            let held_before: Vec<IpAddr> =
                                before.iter().flat_map(|b| b.ips.iter().map(|a| a.ip)).collect();
                            for taken in &assignment.ips {
                                if !held_before.contains(&taken.ip) && !r.requested_ips.contains(&taken.ip) {
                                    prop_assert_eq!(allocator.holders(taken.ip), vec![key(service)]);
                                }
                                // Whatever is newly taken is assignable: only adoption (register)
                                // keeps a network, broadcast or anycast address.
                                if !held_before.contains(&taken.ip) {
                                    let pool = current.iter().find(|p| p.name == taken.pool).unwrap();
                                    prop_assert!(pool.range.is_assignable(taken.ip), "{} handed out from {}", taken.ip, taken.pool);
                                }
                            }
                            // Assigning again is stable.
                            prop_assert_eq!(allocator.assign(&r), Ok(assignment));
                        }
                        Err(_) => prop_assert_eq!(allocator.assignment(&key(service)), before, "a failed assign changed state"),
                    }
                }
                Op::Register { service, ip, ports } => {
                    let r = request(service, &ports, false, 0);
                    let before = allocator.assignment(&key(service));
                    if allocator.register_existing(&r, ips[ip]).is_ok() {
                        presented.insert(service, Presented { ports: ports.iter().copied().collect(), local: false, selector: 0 });
                        prop_assert!(allocator.holders(ips[ip]).contains(&key(service)));
                    } else {
                        prop_assert_eq!(allocator.assignment(&key(service)), before, "a failed register changed state");
                    }
                }
                Op::Release { service } => {
                    allocator.release(&key(service));
                    prop_assert!(allocator.assignment(&key(service)).is_none());
                }
                Op::SetPools { variant } => {
                    current = pools(variant);
                    for orphan in allocator.set_pools(current.clone()) {
                        prop_assert!(!allocator.holders(orphan.ip).contains(&orphan.service));
                    }
                }
            }
            check_invariants(&allocator, &current, &presented)?;
        }
    }
}
