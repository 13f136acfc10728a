//! The speaker's BGP scenarios, each run against each real router: FRR, BIRD and gobgpd. Every
//! scenario is written once against [`Router`], and `against!` makes one test per router
//! (`<scenario>::frr`, `::bird`, `::gobgp`). A check that a router cannot make is left out for that
//! router only: gobgpd installs no kernel routes here, so for it the BGP table is the figure, and
//! its CLI cannot ask for a route refresh. Needs root (network namespaces); each test skips with a reason otherwise.
//!
//! Long because each scenario is written once for all three routers (the point of the file): eight
//! scenarios with their expectations; the routers themselves live in `oxelb_tests::routers`.
//!
//! Addresses: the LAN is 198.51.100.0/24 and 2001:db8:1::/64, the Service IPs come from
//! 203.0.113.0/28 and 2001:db8:ffff::/120.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bgp_support;

use std::time::{Duration, Instant};

use bgp_support::{POLL, WAIT, lan, objects_dir, plain, service_overlay, start_speaker, tail, write};
use oxelb_tests::{
    lab::{Lab, LabError, Ns, lab_or_skip, wait_until},
    routers::{Neighbor, PathView, Router, RouterKind, RouterSetup},
};

const ROUTER_V4: &str = "198.51.100.1";
const ROUTER_V6: &str = "2001:db8:1::1";
const N1: &str = "198.51.100.2";
const N2: &str = "198.51.100.3";
const N1_V6: &str = "2001:db8:1::2";
const IP_V4: &str = "203.0.113.5";
const IP_V6: &str = "2001:db8:ffff::5";

/// One test per router for `scenario(kind)`: `scenario: frr => Frr, ...` (test name => kind).
macro_rules! against {
    ($scenario:ident: $($test:ident => $kind:ident),+ $(,)?) => {
        mod $scenario {
            use super::*;
            $(
                #[test]
                fn $test() -> Result<(), LabError> {
                    super::$scenario(RouterKind::$kind)
                }
            )+
        }
    };
}

against!(both_families_announced_then_withdrawn: frr => Frr, bird => Bird, gobgp => Gobgp);
against!(two_nodes_give_two_paths: frr => Frr, bird => Bird, gobgp => Gobgp);
against!(tcp_md5_right_and_wrong_with_four_octet_ases: frr => Frr, bird => Bird, gobgp => Gobgp);
against!(passive_on_listen_port_and_active_to_remote_port: frr => Frr, bird => Bird, gobgp => Gobgp);
against!(graceful_restart_keeps_the_route_through_a_speaker_crash: frr => Frr, bird => Bird, gobgp => Gobgp);
// Not gobgpd: its CLI cannot send a ROUTE-REFRESH (`neighbor <addr> softresetin` re-reads its own
// Adj-RIB-In; the speaker counted no ROUTE-REFRESH received when it was tried).
against!(route_refresh_sends_the_table_again_without_a_reset: frr => Frr, bird => Bird);

/// The objects: Nodes `nodes` (labelled `kubernetes.io/hostname`), both Eips, BgpConf `conf`
/// (the spec, inline YAML), `peers` (whole BgpPeer documents) and the Service default/web.
fn objects(nodes: &[(&str, &str)], conf: &str, peers: &str) -> String {
    let mut out = String::new();
    for (name, _) in nodes {
        out.push_str(&format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {{kubernetes.io/hostname: {name}}}}}\n---\n"
        ));
    }
    out.push_str(&format!(
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {{name: v4}}\nspec: {{address: 203.0.113.0/28}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {{name: v6}}\nspec: {{address: '2001:db8:ffff::/120'}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpConf\nmetadata: {{name: default}}\nspec: {conf}\n---\n{peers}---\napiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default, annotations: {{lb.kubesphere.io/v1alpha1: openelb}}}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]}}\n"
    ));
    out
}

/// A BgpPeer document: `name`, the router at `address` in `peer_as`, `extra` spec fields (inline
/// YAML, each ending in `, `), connect retry 1 s.
fn peer(name: &str, address: &str, peer_as: u32, extra: &str) -> String {
    format!(
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {{name: {name}}}\nspec: {{{extra}conf: {{peerAs: {peer_as}, neighborAddress: '{address}'}}, timers: {{config: {{connectRetry: '1'}}}}}}\n---\n"
    )
}

/// The router setup for AS 64513 at ROUTER_V4 (and ROUTER_V6).
fn setup(neighbors: Vec<Neighbor>) -> RouterSetup {
    RouterSetup {
        asn: 64513,
        router_id: ROUTER_V4.into(),
        ipv6: Some(ROUTER_V6.into()),
        neighbors,
        listen_port: None,
    }
}

/// Writes `objects` with the Node overlays and the Service's `ingress`, and starts a speaker on
/// each node; returns the objects directory.
fn speakers(
    lab: &mut Lab,
    ns: &[Ns],
    nodes: &[(&str, &str)],
    objects: &str,
    ingress: &[&str],
) -> Result<std::path::PathBuf, LabError> {
    let dir = objects_dir(lab, objects, nodes, ingress);
    for (ns, (name, _)) in ns.iter().zip(nodes) {
        start_speaker(lab, ns, name, &dir)?;
    }
    Ok(dir)
}

/// [`speakers`] with BgpConf AS 64512 (no listener), one BgpPeer `router` and the Service on IP_V4.
fn plain_speakers(lab: &mut Lab, ns: &[Ns], nodes: &[(&str, &str)]) -> Result<std::path::PathBuf, LabError> {
    let peers = peer("router", ROUTER_V4, 64513, "");
    speakers(
        lab,
        ns,
        nodes,
        &objects(nodes, "{as: 64512, listenPort: -1}", &peers),
        &[IP_V4],
    )
}

/// Waits until the router's next hops for `prefix` are `want` (and, where the router installs
/// kernel routes, the kernel has as many next hops; none when `want` is empty).
fn expect_hops(router: &Router, lab: &Lab, prefix: &str, want: &[&str]) -> Result<(), LabError> {
    wait_until(&format!("next hops {want:?} for {prefix}"), WAIT, POLL, || {
        let hops = router.next_hops(prefix).map_err(|e| e.to_string())?;
        let kernel = router.kernel_route(prefix).map_err(|e| e.to_string())?;
        let kernel_ok = kernel.as_deref().is_none_or(|route| match want {
            [] => route.trim().is_empty(),
            [one] => route.contains(one) && !route.contains("nexthop"),
            many => {
                route.matches("nexthop via").count() == many.len() && many.iter().all(|h| route.contains(h))
            }
        });
        if hops == want && kernel_ok {
            Ok(())
        } else {
            Err(format!(
                "table {hops:?}, kernel {kernel:?}\n{}",
                context(router, lab)
            ))
        }
    })
}

/// What the router and both speakers say, for a failure message.
fn context(router: &Router, lab: &Lab) -> String {
    format!(
        "router: {}\nspeaker n1: {}\nspeaker n2: {}",
        router.sessions(),
        tail(&lab.log("speaker-n1")),
        tail(&lab.log("speaker-n2"))
    )
}

/// Waits until the router has the session with `neighbor` Established.
fn expect_established(router: &Router, lab: &Lab, neighbor: &str) -> Result<(), LabError> {
    wait_until(
        &format!("session with {neighbor} Established"),
        WAIT,
        POLL,
        || {
            if router.established(neighbor).map_err(|e| e.to_string())? {
                Ok(())
            } else {
                Err(format!(
                    "{}\nspeaker n1: {}",
                    router.sessions(),
                    tail(&lab.log("speaker-n1"))
                ))
            }
        },
    )
}

/// A lab with the router and `nodes`, the router started as `setup` asks.
fn start(
    kind: RouterKind,
    test: &str,
    nodes: &[(&str, &str)],
    setup: &RouterSetup,
) -> Result<Option<(Lab, Router, Vec<Ns>)>, LabError> {
    let Some(mut lab) = lab_or_skip(&format!("{test}::{kind:?}"))? else {
        return Ok(None);
    };
    let (router_ns, node_ns) = lan(&mut lab, &["198.51.100.1/24", "2001:db8:1::1/64"], nodes)?;
    let router = Router::start(kind, &mut lab, &router_ns, setup)?;
    Ok(Some((lab, router, node_ns)))
}

/// IPv4 and IPv6 sessions from one node: a /32 and a /128 with the node as next hop, in the table
/// and the kernel; both withdrawn when the controller releases the IPs.
fn both_families_announced_then_withdrawn(kind: RouterKind) -> Result<(), LabError> {
    let nodes = [("n1", "198.51.100.2,2001:db8:1::2")];
    let routers = setup(vec![Neighbor::new(N1, 64512), Neighbor::new(N1_V6, 64512)]);
    let Some((mut lab, router, ns)) = start(kind, "both_families", &nodes, &routers)? else {
        return Ok(());
    };
    let peers = peer("r4", ROUTER_V4, 64513, "") + &peer("r6", ROUTER_V6, 64513, "");
    let dir = speakers(
        &mut lab,
        &ns,
        &nodes,
        &objects(&nodes, "{as: 64512, listenPort: -1}", &peers),
        &[IP_V4, IP_V6],
    )?;
    expect_hops(&router, &lab, "203.0.113.5/32", &[N1])?;
    expect_hops(&router, &lab, "2001:db8:ffff::5/128", &[N1_V6])?;

    write(
        &dir,
        "status/services.core/default/web.yaml",
        &service_overlay(&[]),
    );
    expect_hops(&router, &lab, "203.0.113.5/32", &[])?;
    expect_hops(&router, &lab, "2001:db8:ffff::5/128", &[])?;
    assert!(
        router.established(N1)? && router.established(N1_V6)?,
        "a withdrawal keeps the sessions"
    );
    Ok(())
}

/// Two nodes announce the same IP: two paths, ECMP in the kernel; one speaker stops and its path
/// goes, the other stays.
fn two_nodes_give_two_paths(kind: RouterKind) -> Result<(), LabError> {
    let nodes = [("n1", N1), ("n2", N2)];
    let routers = setup(vec![Neighbor::new(N1, 64512), Neighbor::new(N2, 64512)]);
    let Some((mut lab, router, ns)) = start(kind, "two_nodes", &nodes, &routers)? else {
        return Ok(());
    };
    plain_speakers(&mut lab, &ns, &nodes)?;
    expect_hops(&router, &lab, "203.0.113.5/32", &[N1, N2])?;
    lab.stop("speaker-n2", Duration::from_secs(5));
    expect_hops(&router, &lab, "203.0.113.5/32", &[N1])?;
    Ok(())
}

/// TCP-MD5 (RFC 2385) with 4-octet ASes on both sides (RFC 6793): n1 has the router's password
/// and gets its route in; n2 has a wrong one, never gets a session, and its log names the field.
fn tcp_md5_right_and_wrong_with_four_octet_ases(kind: RouterKind) -> Result<(), LabError> {
    let nodes = [("n1", N1), ("n2", N2)];
    let mut neighbors = vec![Neighbor::new(N1, 4_200_000_000), Neighbor::new(N2, 4_200_000_000)];
    for n in &mut neighbors {
        n.password = Some("s3cret".into());
    }
    let mut routers = setup(neighbors);
    routers.asn = 4_200_000_001;
    let Some((mut lab, router, ns)) = start(kind, "tcp_md5", &nodes, &routers)? else {
        return Ok(());
    };
    let peers = peer(
        "right",
        ROUTER_V4,
        4_200_000_001,
        "nodeSelector: {matchLabels: {kubernetes.io/hostname: n1}}, ",
    )
    .replace("conf: {", "conf: {authPassword: s3cret, ")
        + &peer(
            "wrong",
            ROUTER_V4,
            4_200_000_001,
            "nodeSelector: {matchLabels: {kubernetes.io/hostname: n2}}, ",
        )
        .replace("conf: {", "conf: {authPassword: not-it, ");
    speakers(
        &mut lab,
        &ns,
        &nodes,
        &objects(&nodes, "{as: 4200000000, listenPort: -1}", &peers),
        &[IP_V4],
    )?;
    expect_hops(&router, &lab, "203.0.113.5/32", &[N1])?;
    // The wrong password: the router drops the SYNs, so the speaker's connect times out, and says
    // what to check.
    let log = wait_until("n2's log to name authPassword", WAIT, POLL, || {
        let log = plain(&lab.log("speaker-n2"));
        if log.contains("authPassword") {
            Ok(log)
        } else {
            Err(tail(&log))
        }
    })?;
    assert!(!router.established(N2)?, "{}", router.sessions());
    assert!(!log.contains("BGP session established"), "{log}");
    assert_eq!(router.next_hops("203.0.113.5/32")?, [N1]);
    Ok(())
}

/// BgpConf `listenPort: 17900` (beside another BGP daemon on 179) with n1's BgpPeer passive: the
/// router connects to n1 on 17900. n2's BgpPeer has `transport.remotePort` 1790, where the router
/// listens: n2 connects there.
fn passive_on_listen_port_and_active_to_remote_port(kind: RouterKind) -> Result<(), LabError> {
    let nodes = [("n1", N1), ("n2", N2)];
    let mut to_n1 = Neighbor::new(N1, 64512);
    to_n1.port = Some(17900);
    let mut routers = setup(vec![to_n1, Neighbor::new(N2, 64512)]);
    routers.listen_port = Some(1790);
    let Some((mut lab, router, ns)) = start(kind, "ports", &nodes, &routers)? else {
        return Ok(());
    };
    let peers = peer(
        "passive",
        ROUTER_V4,
        64513,
        "nodeSelector: {matchLabels: {kubernetes.io/hostname: n1}}, transport: {passiveMode: true}, ",
    ) + &peer(
        "remote-port",
        ROUTER_V4,
        64513,
        "nodeSelector: {matchLabels: {kubernetes.io/hostname: n2}}, transport: {remotePort: 1790}, ",
    );
    speakers(
        &mut lab,
        &ns,
        &nodes,
        &objects(&nodes, "{as: 64512, listenPort: 17900}", &peers),
        &[IP_V4],
    )?;
    expect_hops(&router, &lab, "203.0.113.5/32", &[N1, N2])?;
    // Who connected to whom, from the sockets: the router to n1's 17900, n2 to the router's 1790.
    // n1's listener is dual-stack, so its IPv4 peers show as `[::ffff:198.51.100.1]`.
    let n1_sockets = ns[0].run("ss", &["-tnH", "state", "established"])?;
    let n2_sockets = ns[1].run("ss", &["-tnH", "state", "established"])?;
    assert!(
        n1_sockets
            .split_whitespace()
            .any(|w| w == "[::ffff:198.51.100.2]:17900")
            && n1_sockets.contains("198.51.100.1]:"),
        "n1 accepted on 17900: {n1_sockets}"
    );
    assert!(
        n2_sockets.split_whitespace().any(|w| w == "198.51.100.1:1790"),
        "n2 connected to 1790: {n2_sockets}"
    );
    Ok(())
}

/// Graceful restart (RFC 4724): the speaker is killed (no NOTIFICATION), the router keeps its
/// route through the crash and the restart, sampled every 100 ms; the session comes back.
fn graceful_restart_keeps_the_route_through_a_speaker_crash(kind: RouterKind) -> Result<(), LabError> {
    let nodes = [("n1", N1)];
    let mut neighbor = Neighbor::new(N1, 64512);
    neighbor.graceful_restart = true;
    let Some((mut lab, router, ns)) = start(kind, "graceful_restart", &nodes, &setup(vec![neighbor]))? else {
        return Ok(());
    };
    let dir = speakers(
        &mut lab,
        &ns,
        &nodes,
        &objects(
            &nodes,
            "{as: 64512, listenPort: -1}",
            &peer(
                "router",
                ROUTER_V4,
                64513,
                "gracefulRestart: {enabled: true, restartTime: 60}, ",
            ),
        ),
        &[IP_V4],
    )?;
    expect_hops(&router, &lab, "203.0.113.5/32", &[N1])?;

    lab.kill("speaker-n1");
    let route_stays = |lab: &Lab, for_at_least: Duration, until_established: bool| -> Result<u32, LabError> {
        let start = Instant::now();
        let mut samples = 0;
        while start.elapsed() < WAIT {
            let hops = router.next_hops("203.0.113.5/32")?;
            let kernel = router.kernel_route("203.0.113.5/32")?;
            assert_eq!(
                hops,
                [N1],
                "route gone after {:?}: {}",
                start.elapsed(),
                router.sessions()
            );
            if let Some(kernel) = kernel {
                assert!(
                    kernel.contains(N1),
                    "kernel route gone after {:?}",
                    start.elapsed()
                );
            }
            samples += 1;
            let done = start.elapsed() >= for_at_least && (!until_established || router.established(N1)?);
            if done {
                return Ok(samples);
            }
            std::thread::sleep(POLL);
        }
        Err(LabError::Unexpected(format!(
            "no session again within {WAIT:?}: {}\n{}",
            router.sessions(),
            tail(&lab.log("speaker-n1"))
        )))
    };
    // Down for 2 s, then back: the route never leaves, also while the table is sent again.
    let down = route_stays(&lab, Duration::from_secs(2), false)?;
    let stale_while_down = router.stale("203.0.113.5/32")?;
    start_speaker(&mut lab, &ns[0], "n1", &dir)?;
    let up = route_stays(&lab, Duration::ZERO, true)?;
    let after = route_stays(&lab, Duration::from_secs(1), false)?;
    assert!(down >= 5 && after >= 2, "{down} + {up} + {after} samples");
    // Where the router marks stale routes: stale while the speaker was away, fresh once its
    // End-of-RIB came (RFC 4724 §4.2).
    if let Some(stale) = stale_while_down {
        assert!(
            stale,
            "not marked stale while the speaker was down: {}",
            router.sessions()
        );
        wait_until("the route fresh after End-of-RIB", WAIT, POLL, || {
            match router.stale("203.0.113.5/32").map_err(|e| e.to_string())? {
                Some(false) => Ok(()),
                other => Err(format!("stale: {other:?}; {}", router.sessions())),
            }
        })?;
    }
    Ok(())
}

/// The router asks for the routes again (ROUTE-REFRESH, RFC 2918): the speaker sends its table
/// and End-of-RIB again on the same session (its UPDATE counter grows, the session stays).
fn route_refresh_sends_the_table_again_without_a_reset(kind: RouterKind) -> Result<(), LabError> {
    let nodes = [("n1", N1)];
    let Some((mut lab, router, ns)) = start(
        kind,
        "route_refresh",
        &nodes,
        &setup(vec![Neighbor::new(N1, 64512)]),
    )?
    else {
        return Ok(());
    };
    plain_speakers(&mut lab, &ns, &nodes)?;
    expect_hops(&router, &lab, "203.0.113.5/32", &[N1])?;
    expect_established(&router, &lab, N1)?;
    let metrics = |ns: &Ns| -> Result<(u64, String), LabError> {
        let text = ns.run("curl", &["-sf", "http://127.0.0.1:9641/metrics"])?;
        let value = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name) && l.contains("peer=\"router\""))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| v as u64)
        };
        let sent = value("oxelb_bgp_updates_sent").ok_or_else(|| LabError::Unexpected(text.clone()))?;
        Ok((sent, text))
    };
    // The speaker refreshes its metrics every 2 s: the first table is counted once the counter
    // shows and then holds for longer than that.
    let mut last = None;
    let before = wait_until(
        "the first table counted",
        WAIT,
        Duration::from_millis(2500),
        || {
            let sent = metrics(&ns[0]).map(|(sent, _)| sent).ok();
            match (sent, last.replace(sent)) {
                (Some(now), Some(Some(then))) if now == then && now > 0 => Ok(now),
                _ => Err(format!("{sent:?} UPDATEs sent")),
            }
        },
    )?;
    router.refresh(N1)?;
    let (after, text) = wait_until("the table sent again", WAIT, POLL, || {
        let (sent, text) = metrics(&ns[0]).map_err(|e| e.to_string())?;
        if sent > before {
            Ok((sent, text))
        } else {
            Err(format!(
                "{sent} UPDATEs sent, {before} before; {}",
                tail(&lab.log("speaker-n1"))
            ))
        }
    })?;
    assert!(after > before, "the table again: {text}");
    assert!(router.established(N1)?, "a refresh never resets the session");
    let log = plain(&lab.log("speaker-n1"));
    assert_eq!(
        log.matches("BGP session established").count(),
        1,
        "one session for the whole test: {log}"
    );
    assert_eq!(router.next_hops("203.0.113.5/32")?, [N1]);
    Ok(())
}

// Per-pool announcement policy (`Eip.spec.advertisement`, issue 14).
against!(pool_policy_attributes_selectors_and_aggregate: frr => Frr, bird => Bird, gobgp => Gobgp);
against!(pool_local_pref_reaches_ibgp_peers: frr => Frr, bird => Bird, gobgp => Gobgp);

/// The objects of the policy scenarios: Nodes n1 (labelled `edge: "true"`) and n2, BgpConf AS
/// `asn`, BgpPeers `blue` (label `vrf: blue`, from n1) and `red` (label `vrf: red`, from n2) to
/// the router in `peer_as`, the Eips `tagged` (203.0.113.0/28, with `tagged`'s block), `edge`
/// (203.0.113.16/28, nodeSelector edge), `agg` (203.0.113.32/28, aggregationLength 28 and a
/// community) and `plain` (203.0.113.48/28), and the Service default/web.
fn policy_objects(asn: u32, peer_as: u32, tagged: &str) -> String {
    let eip = |name: &str, spec: &str| {
        format!(
            "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {{name: {name}}}\nspec: {spec}\n---\n"
        )
    };
    let bgp_peer = |name: &str, node: &str| {
        format!(
            "apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {{name: {name}, labels: {{vrf: {name}}}}}\nspec: {{nodeSelector: {{matchLabels: {{kubernetes.io/hostname: {node}}}}}, conf: {{peerAs: {peer_as}, neighborAddress: '{ROUTER_V4}'}}, timers: {{config: {{connectRetry: '1'}}}}}}\n---\n"
        )
    };
    let mut out = String::new();
    out.push_str("apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {kubernetes.io/hostname: n1, edge: 'true'}}\n---\n");
    out.push_str(
        "apiVersion: v1\nkind: Node\nmetadata: {name: n2, labels: {kubernetes.io/hostname: n2}}\n---\n",
    );
    out.push_str(&eip(
        "tagged",
        &format!("{{address: 203.0.113.0/28, advertisement: {tagged}}}"),
    ));
    out.push_str(&eip(
        "edge",
        "{address: 203.0.113.16/28, advertisement: {nodeSelector: {matchLabels: {edge: 'true'}}}}",
    ));
    out.push_str(&eip(
        "agg",
        "{address: 203.0.113.32/28, advertisement: {aggregationLength: 28, communities: ['65000:300']}}",
    ));
    out.push_str(&eip("plain", "{address: 203.0.113.48/28}"));
    out.push_str(&format!(
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpConf\nmetadata: {{name: default}}\nspec: {{as: {asn}, listenPort: -1}}\n---\n"
    ));
    out.push_str(&bgp_peer("blue", "n1"));
    out.push_str(&bgp_peer("red", "n2"));
    out.push_str("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default, annotations: {lb.kubesphere.io/v1alpha1: openelb}}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n");
    out
}

/// The Service's IPs in the policy scenarios: one per pool.
const POLICY_IPS: [&str; 4] = ["203.0.113.5", "203.0.113.20", "203.0.113.33", "203.0.113.50"];

/// Waits until the router's paths of `prefix` are `want` (next hop, communities, large
/// communities; LOCAL_PREF too where `want` sets it).
fn expect_paths(router: &Router, lab: &Lab, prefix: &str, want: &[PathView]) -> Result<(), LabError> {
    wait_until(&format!("paths {want:?} for {prefix}"), WAIT, POLL, || {
        let mut got = router.paths(prefix).map_err(|e| e.to_string())?;
        for (path, wanted) in got.iter_mut().zip(want) {
            if wanted.local_pref.is_none() {
                path.local_pref = None;
            }
        }
        if got == want {
            Ok(())
        } else {
            Err(format!("got {got:?}\n{}", context(router, lab)))
        }
    })
}

fn path(next_hop: &str, communities: &[&str], large: &[&str]) -> PathView {
    PathView {
        next_hop: next_hop.into(),
        communities: communities.iter().map(|c| (*c).to_owned()).collect(),
        large_communities: large.iter().map(|c| (*c).to_owned()).collect(),
        local_pref: None,
    }
}

/// Speaker `node`'s log lines saying its BGP session came up (a policy change must add none).
fn established_count(lab: &Lab, node: &str) -> usize {
    plain(&lab.log(&format!("speaker-{node}")))
        .matches("BGP session established")
        .count()
}

/// eBGP from two nodes to one router. The router shows each pool as its policy says: communities
/// (`no-export` as 65535:65281) and a large community on `tagged`, only from n1 because its
/// `peerSelector` picks BgpPeer `blue` (n2's BgpPeer `red` never receives it); `edge` only from
/// n1, the node its `nodeSelector` picks; `agg` as the covering /28 from both nodes (no /32);
/// `plain` from both, untagged. Then the policy is edited: the router sees the new communities
/// with no session re-established; then a malformed edit (no webhook in `dir:` mode) changes
/// nothing the router has, and the speaker says a Warning naming the field.
fn pool_policy_attributes_selectors_and_aggregate(kind: RouterKind) -> Result<(), LabError> {
    let nodes = [("n1", N1), ("n2", N2)];
    let routers = setup(vec![Neighbor::new(N1, 64512), Neighbor::new(N2, 64512)]);
    let Some((mut lab, router, ns)) = start(kind, "pool_policy", &nodes, &routers)? else {
        return Ok(());
    };
    let tagged = "{communities: ['65000:100', no-export], largeCommunities: ['64512:1:2'], peerSelector: {matchLabels: {vrf: blue}}}";
    let dir = speakers(
        &mut lab,
        &ns,
        &nodes,
        &policy_objects(64512, 64513, tagged),
        &POLICY_IPS,
    )?;
    expect_paths(
        &router,
        &lab,
        "203.0.113.50/32",
        &[path(N1, &[], &[]), path(N2, &[], &[])],
    )?;
    expect_paths(
        &router,
        &lab,
        "203.0.113.5/32",
        &[path(N1, &["65000:100", "65535:65281"], &["64512:1:2"])],
    )?;
    expect_paths(&router, &lab, "203.0.113.20/32", &[path(N1, &[], &[])])?;
    expect_paths(
        &router,
        &lab,
        "203.0.113.32/28",
        &[path(N1, &["65000:300"], &[]), path(N2, &["65000:300"], &[])],
    )?;
    assert!(
        router.paths("203.0.113.33/32")?.is_empty(),
        "aggregated: no host route"
    );
    let sessions = (established_count(&lab, "n1"), established_count(&lab, "n2"));

    // `tagged` edited to `communities`, still for BgpPeer blue.
    let edit = |communities: &str| {
        let block = format!("{{communities: {communities}, peerSelector: {{matchLabels: {{vrf: blue}}}}}}");
        write(&dir, "objects.yaml", &policy_objects(64512, 64513, &block));
    };
    // A policy change: new communities, no large community; re-announced on the same session.
    edit("['65000:200']");
    expect_paths(&router, &lab, "203.0.113.5/32", &[path(N1, &["65000:200"], &[])])?;
    // A malformed edit: the Warning names the field, and the router keeps what it has.
    edit("[no-exprot]");
    wait_until("n1's Warning naming the field", WAIT, POLL, || {
        let log = plain(&lab.log("speaker-n1"));
        if log.contains("spec.advertisement.communities[0]") && log.contains("no-exprot") {
            Ok(())
        } else {
            Err(tail(&log))
        }
    })?;
    std::thread::sleep(Duration::from_millis(500));
    // BIRD reports a LOCAL_PREF even for eBGP routes (its internal default): not compared here.
    let mut kept = router.paths("203.0.113.5/32")?;
    kept.iter_mut().for_each(|p| p.local_pref = None);
    assert_eq!(
        kept,
        [path(N1, &["65000:200"], &[])],
        "a malformed edit changes nothing"
    );
    for prefix in ["203.0.113.5/32", "203.0.113.20/32"] {
        assert!(
            router.paths(prefix)?.iter().all(|p| p.next_hop != N2),
            "n2 never announces {prefix}"
        );
    }
    assert!(router.established(N1)? && router.established(N2)?);
    assert_eq!(
        (established_count(&lab, "n1"), established_count(&lab, "n2")),
        sessions,
        "no session re-established for a policy change"
    );
    Ok(())
}

/// iBGP (router and nodes in AS 64512): `tagged` carries its `localPref` 300, the other pools
/// the default 100.
fn pool_local_pref_reaches_ibgp_peers(kind: RouterKind) -> Result<(), LabError> {
    let nodes = [("n1", N1), ("n2", N2)];
    let mut routers = setup(vec![Neighbor::new(N1, 64512), Neighbor::new(N2, 64512)]);
    routers.asn = 64512;
    let Some((mut lab, router, ns)) = start(kind, "pool_local_pref", &nodes, &routers)? else {
        return Ok(());
    };
    let tagged = "{localPref: 300, communities: ['65000:100']}";
    speakers(
        &mut lab,
        &ns,
        &nodes,
        &policy_objects(64512, 64512, tagged),
        &POLICY_IPS,
    )?;
    let with_pref = |hop: &str, communities: &[&str], pref: u32| PathView {
        local_pref: Some(pref),
        ..path(hop, communities, &[])
    };
    expect_paths(
        &router,
        &lab,
        "203.0.113.5/32",
        &[
            with_pref(N1, &["65000:100"], 300),
            with_pref(N2, &["65000:100"], 300),
        ],
    )?;
    expect_paths(
        &router,
        &lab,
        "203.0.113.50/32",
        &[with_pref(N1, &[], 100), with_pref(N2, &[], 100)],
    )?;
    Ok(())
}
