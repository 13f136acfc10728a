//! Two speakers (the real binary, one per node namespace) announce a Service IP to a real FRR
//! router over BGP: the router installs one ECMP path per node, withdraws when the IP is released,
//! and keeps the other node's path when one speaker stops. Objects come from a `dir:` source with the
//! controller's and kubelet's writes as overlay files. Needs root; skips with a reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, time::Duration};

use oxelb_tests::{
    lab::{Lab, LabError, Ns, lab_or_skip, wait_until},
    routers::{Frr, Neighbor, frr_bgpd_conf},
};

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

const OBJECTS: &str = "\
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
---
apiVersion: network.kubesphere.io/v1alpha2
kind: Eip
metadata: {name: bgp}
spec: {address: 203.0.113.0/28}
---
apiVersion: network.kubesphere.io/v1alpha2
kind: BgpConf
metadata: {name: default}
spec: {as: 64512, listenPort: -1}
---
apiVersion: network.kubesphere.io/v1alpha2
kind: BgpPeer
metadata: {name: router}
spec:
  conf: {peerAs: 64513, neighborAddress: 198.51.100.1}
  timers: {config: {holdTime: '9', keepaliveInterval: '3', connectRetry: '1'}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, annotations: {lb.kubesphere.io/v1alpha1: openelb}}
spec: {type: LoadBalancer, ports: [{port: 80}]}
";

fn node_overlay(name: &str, ip: &str) -> String {
    let addresses: Vec<String> = ip
        .split(',')
        .map(|a| format!("{{type: InternalIP, address: '{a}'}}"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\nstatus:\n  conditions: [{{type: Ready, status: 'True'}}]\n  addresses: [{}]\n",
        addresses.join(", ")
    )
}

fn service_overlay(ips: &[&str]) -> String {
    let ingress: Vec<String> = ips.iter().map(|ip| format!("{{ip: '{ip}'}}")).collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: default\n  finalizers: [finalizer.lb.kubesphere.io/v1alpha1]\nstatus:\n  loadBalancer:\n    ingress: [{}]\n",
        ingress.join(", ")
    )
}

fn write(dir: &Path, rel: &str, body: &str) {
    oxelb_tests::lab::write_file(dir, rel, body).unwrap();
}

fn start_speaker(lab: &mut Lab, ns: &Ns, node: &str, dir: &Path) -> Result<(), LabError> {
    let command = ns.speaker(env!("CARGO_BIN_EXE_oxelb-speaker"), dir, node, "info");
    lab.spawn(&format!("speaker-{node}"), command).map(drop)
}

fn next_hops(frr: &Frr, lab: &Lab, want: &[&str]) -> Result<(), LabError> {
    wait_until(
        &format!("FRR next hops {want:?} for 203.0.113.5/32"),
        WAIT,
        POLL,
        || {
            let hops = frr.bgp_next_hops("203.0.113.5/32").map_err(|e| e.to_string())?;
            if hops == want {
                Ok(())
            } else {
                Err(format!(
                    "{hops:?}\nspeaker n1:\n{}\nspeaker n2:\n{}",
                    tail(&lab.log("speaker-n1")),
                    tail(&lab.log("speaker-n2"))
                ))
            }
        },
    )
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

#[test]
fn two_speakers_give_frr_ecmp_paths_and_withdraw_on_release() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("two_speakers_give_frr_ecmp_paths_and_withdraw_on_release")? else {
        return Ok(());
    };
    let router = lab.netns("router")?;
    let n1 = lab.netns("n1")?;
    let n2 = lab.netns("n2")?;
    lab.bridge(&router, "lan")?;
    for (ns, port, ip) in [
        (&n1, "lan-n1", "198.51.100.2/24"),
        (&n2, "lan-n2", "198.51.100.3/24"),
    ] {
        lab.veth(&router, port, ns, "eth0")?;
        lab.attach(&router, port, "lan")?;
        lab.addr(ns, "eth0", ip)?;
    }
    lab.addr(&router, "lan", "198.51.100.1/24")?;
    let frr = Frr::start(
        &mut lab,
        &router,
        "router",
        &frr_bgpd_conf(
            64513,
            "198.51.100.1",
            &[
                Neighbor::new("198.51.100.2", 64512),
                Neighbor::new("198.51.100.3", 64512),
            ],
            "",
        ),
    )?;

    let dir = lab.dir().join("objects");
    write(&dir, "objects.yaml", OBJECTS);
    write(
        &dir,
        "status/nodes.core/n1.yaml",
        &node_overlay("n1", "198.51.100.2"),
    );
    write(
        &dir,
        "status/nodes.core/n2.yaml",
        &node_overlay("n2", "198.51.100.3"),
    );
    write(
        &dir,
        "status/services.core/default/web.yaml",
        &service_overlay(&["203.0.113.5"]),
    );
    start_speaker(&mut lab, &n1, "n1", &dir)?;
    start_speaker(&mut lab, &n2, "n2", &dir)?;

    frr.wait_established("198.51.100.2", WAIT)?;
    frr.wait_established("198.51.100.3", WAIT)?;
    // One path per node, both in the kernel: ECMP.
    next_hops(&frr, &lab, &["198.51.100.2", "198.51.100.3"])?;
    wait_until("two kernel next hops", WAIT, POLL, || {
        let route = frr.kernel_route("203.0.113.5/32").map_err(|e| e.to_string())?;
        if route.matches("nexthop via").count() == 2 {
            Ok(())
        } else {
            Err(route)
        }
    })?;

    // Released by the controller: every speaker withdraws.
    write(
        &dir,
        "status/services.core/default/web.yaml",
        &service_overlay(&[]),
    );
    next_hops(&frr, &lab, &[])?;

    // Assigned again, then one speaker stops: the router keeps the other path.
    write(
        &dir,
        "status/services.core/default/web.yaml",
        &service_overlay(&["203.0.113.5"]),
    );
    next_hops(&frr, &lab, &["198.51.100.2", "198.51.100.3"])?;
    lab.stop("speaker-n2", Duration::from_secs(5));
    next_hops(&frr, &lab, &["198.51.100.2"])?;
    assert!(
        lab.log("speaker-n1").contains("BGP session established"),
        "{}",
        lab.log("speaker-n1")
    );
    Ok(())
}

/// A lab with one router namespace (`router`, LAN bridge with `router_ips`) and node namespaces
/// (`(name, "v4[,v6]")`), each on the LAN.
fn lan(lab: &mut Lab, router_ips: &[&str], nodes: &[(&str, &str)]) -> Result<(Ns, Vec<Ns>), LabError> {
    let router = lab.netns("router")?;
    lab.bridge(&router, "lan")?;
    for ip in router_ips {
        lab.addr(&router, "lan", ip)?;
    }
    let mut out = Vec::new();
    for (name, ips) in nodes {
        let ns = lab.netns(name)?;
        let port = format!("lan-{name}");
        lab.veth(&router, &port, &ns, "eth0")?;
        lab.attach(&router, &port, "lan")?;
        for ip in ips.split(',') {
            let prefix = if ip.contains(':') { 64 } else { 24 };
            lab.addr(&ns, "eth0", &format!("{ip}/{prefix}"))?;
        }
        out.push(ns);
    }
    Ok((router, out))
}

/// The objects directory: `objects` plus the Node overlays and the Service's ingress.
fn objects_dir(lab: &Lab, objects: &str, nodes: &[(&str, &str)], ingress: &[&str]) -> std::path::PathBuf {
    let dir = lab.dir().join("objects");
    write(&dir, "objects.yaml", objects);
    for (name, ips) in nodes {
        write(
            &dir,
            &format!("status/nodes.core/{name}.yaml"),
            &node_overlay(name, ips),
        );
    }
    write(
        &dir,
        "status/services.core/default/web.yaml",
        &service_overlay(ingress),
    );
    dir
}

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, annotations: {lb.kubesphere.io/v1alpha1: openelb}}
spec: {type: LoadBalancer, ports: [{port: 80}]}
";

fn common_objects(conf: &str, peers: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: n1}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {{name: v4}}\nspec: {{address: 203.0.113.0/28}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {{name: v6}}\nspec: {{address: '2001:db8:ffff::/120'}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpConf\nmetadata: {{name: default}}\nspec: {conf}\n---\n{peers}---\n{SERVICE}"
    )
}

#[test]
fn bird_learns_ipv4_and_ipv6_host_routes_over_sessions_of_each_family() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("bird_learns_ipv4_and_ipv6_host_routes_over_sessions_of_each_family")?
    else {
        return Ok(());
    };
    let nodes = [("n1", "198.51.100.2,2001:db8:1::2")];
    let (router, ns) = lan(&mut lab, &["198.51.100.1/24", "2001:db8:1::1/64"], &nodes)?;
    let bird = oxelb_tests::routers::Bird::start(
        &mut lab,
        &router,
        "router",
        &(oxelb_tests::routers::bird_conf(
            64513,
            "198.51.100.1",
            "198.51.100.1",
            &[Neighbor::new("198.51.100.2", 64512)],
            "",
        ) + &oxelb_tests::routers::bird_conf(
            64513,
            "198.51.100.1",
            "2001:db8:1::1",
            &[Neighbor::new("2001:db8:1::2", 64512)],
            "",
        )
        .lines()
        .filter(|l| l.starts_with("protocol bgp") || l.starts_with("  ") || *l == "}")
        .collect::<Vec<_>>()
        .join("\n")
        .replace("protocol bgp peer0", "protocol bgp peer6")),
    )?;
    let peers = "apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: r4}\nspec: {conf: {peerAs: 64513, neighborAddress: 198.51.100.1}, timers: {config: {connectRetry: '1'}}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: r6}\nspec: {conf: {peerAs: 64513, neighborAddress: '2001:db8:1::1'}, timers: {config: {connectRetry: '1'}}}\n";
    let dir = objects_dir(
        &lab,
        &common_objects("{as: 64512, listenPort: -1}", peers),
        &nodes,
        &["203.0.113.5", "2001:db8:ffff::5"],
    );
    start_speaker(&mut lab, &ns[0], "n1", &dir)?;
    for (prefix, via) in [
        ("203.0.113.5/32", "198.51.100.2"),
        ("2001:db8:ffff::5/128", "2001:db8:1::2"),
    ] {
        wait_until(&format!("BIRD installs {prefix} via {via}"), WAIT, POLL, || {
            let route = bird.kernel_route(prefix).map_err(|e| e.to_string())?;
            if route.contains(via) {
                Ok(())
            } else {
                Err(format!(
                    "{route:?}; bird: {}; speaker: {}",
                    bird.birdc(&["show", "protocols"]).unwrap_or_default(),
                    tail(&lab.log("speaker-n1"))
                ))
            }
        })?;
    }
    Ok(())
}

#[test]
fn gobgp_with_tcp_md5_and_four_octet_ases() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("gobgp_with_tcp_md5_and_four_octet_ases")? else {
        return Ok(());
    };
    let nodes = [("n1", "198.51.100.2")];
    let (router, ns) = lan(&mut lab, &["198.51.100.1/24"], &nodes)?;
    let mut neighbor = Neighbor::new("198.51.100.2", 4_200_000_000);
    neighbor.password = Some("s3cret".into());
    let gobgp = oxelb_tests::routers::Gobgp::start(
        &mut lab,
        &router,
        "router",
        &oxelb_tests::routers::gobgp_conf(4_200_000_001, "198.51.100.1", &[neighbor], 179),
    )?;
    let peers = "apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: router}\nspec: {conf: {peerAs: 4200000001, neighborAddress: 198.51.100.1, authPassword: s3cret}, timers: {config: {connectRetry: '1'}}}\n";
    let dir = objects_dir(
        &lab,
        &common_objects("{as: 4200000000, listenPort: -1}", peers),
        &nodes,
        &["203.0.113.5"],
    );
    start_speaker(&mut lab, &ns[0], "n1", &dir)?;
    wait_until(
        "GoBGP learns 203.0.113.5/32 with AS path 4200000000",
        WAIT,
        POLL,
        || {
            let rib = gobgp
                .cli(&["global", "rib", "-a", "ipv4"])
                .map_err(|e| e.to_string())?;
            if rib.contains("203.0.113.5/32") && rib.contains("4200000000") && rib.contains("198.51.100.2") {
                Ok(())
            } else {
                Err(format!("{rib}; speaker: {}", tail(&lab.log("speaker-n1"))))
            }
        },
    )?;
    Ok(())
}

#[test]
fn editing_one_bgppeer_leaves_the_other_session_up() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("editing_one_bgppeer_leaves_the_other_session_up")? else {
        return Ok(());
    };
    let nodes = [("n1", "198.51.100.2")];
    let (router, ns) = lan(&mut lab, &["198.51.100.1/24", "198.51.100.4/24"], &nodes)?;
    // Two routers in one namespace: FRR on .1, GoBGP on .4 (each bound to its address).
    let frr = Frr::start(
        &mut lab,
        &router,
        "frr",
        &frr_bgpd_conf(64513, "198.51.100.1", &[Neighbor::new("198.51.100.2", 64512)], ""),
    )?;
    // GoBGP does not listen (FRR has port 179): it dials the speaker's listenPort from .4, and the
    // speaker's session to it is passive.
    let mut dialler = Neighbor::new("198.51.100.2", 64512);
    dialler.port = Some(17900);
    dialler.local_address = Some("198.51.100.4".into());
    let gobgp = oxelb_tests::routers::Gobgp::start(
        &mut lab,
        &router,
        "gobgp",
        &oxelb_tests::routers::gobgp_conf(64514, "198.51.100.4", &[dialler], -1),
    )?;
    let peers = |hold: &str| {
        format!(
            "apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {{name: frr}}\nspec: {{conf: {{peerAs: 64513, neighborAddress: 198.51.100.1}}, timers: {{config: {{connectRetry: '1'}}}}}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {{name: gobgp}}\nspec: {{conf: {{peerAs: 64514, neighborAddress: 198.51.100.4}}, transport: {{passiveMode: true}}, timers: {{config: {{holdTime: '{hold}', connectRetry: '1'}}}}}}\n"
        )
    };
    let dir = objects_dir(
        &lab,
        &common_objects("{as: 64512, listenPort: 17900}", &peers("90")),
        &nodes,
        &["203.0.113.5"],
    );
    start_speaker(&mut lab, &ns[0], "n1", &dir)?;
    frr.wait_established("198.51.100.2", WAIT)?;
    let established = |frr: &Frr| -> Result<u64, LabError> {
        Ok(
            frr.json("show bgp neighbors 198.51.100.2 json")?["198.51.100.2"]["connectionsEstablished"]
                .as_u64()
                .unwrap_or(0),
        )
    };
    let gobgp_up = || {
        gobgp
            .neighbor_state("198.51.100.2")
            .map(|s| s.contains("ESTABLISHED"))
            .unwrap_or(false)
    };
    wait_until("GoBGP session up", WAIT, POLL, || {
        if gobgp_up() {
            Ok(())
        } else {
            Err(tail(&lab.log("speaker-n1")))
        }
    })?;
    let before = established(&frr)?;

    // Edit the GoBGP BgpPeer: its session restarts with the new hold time; FRR's is untouched.
    write(
        &dir,
        "objects.yaml",
        &common_objects("{as: 64512, listenPort: 17900}", &peers("30")),
    );
    wait_until("the speaker restarts only the gobgp session", WAIT, POLL, || {
        let log = lab.log("speaker-n1");
        if log.contains("stopping BGP session") && log.matches("starting BGP session").count() >= 3 {
            Ok(())
        } else {
            Err(tail(&log))
        }
    })?;
    wait_until("GoBGP session back up", WAIT, POLL, || {
        if gobgp_up() {
            Ok(())
        } else {
            Err(tail(&lab.log("speaker-n1")))
        }
    })?;
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        established(&frr)?,
        before,
        "FRR's session was reset by an edit of another BgpPeer"
    );
    assert_eq!(frr.neighbor_state("198.51.100.2")?, "Established");
    let log = lab.log("speaker-n1");
    assert!(
        !log.lines()
            .any(|l| l.contains("stopping BGP session") && l.contains("peer=frr")),
        "{log}"
    );
    Ok(())
}

/// Asserts, polling for 3 s, that FRR's only path to 203.0.113.5/32 stays via 198.51.100.2.
fn route_stays(frr: &Frr, what: &str) -> Result<(), LabError> {
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        assert_eq!(
            frr.bgp_next_hops("203.0.113.5/32")?,
            vec!["198.51.100.2"],
            "{what}"
        );
        std::thread::sleep(POLL);
    }
    Ok(())
}

#[test]
fn graceful_restart_keeps_routes_through_a_speaker_crash() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("graceful_restart_keeps_routes_through_a_speaker_crash")? else {
        return Ok(());
    };
    let nodes = [("n1", "198.51.100.2")];
    let (router, ns) = lan(&mut lab, &["198.51.100.1/24"], &nodes)?;
    let frr = Frr::start(
        &mut lab,
        &router,
        "router",
        &frr_bgpd_conf(
            64513,
            "198.51.100.1",
            &[Neighbor::new("198.51.100.2", 64512)],
            " bgp graceful-restart\n",
        ),
    )?;
    let peers = "apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: router}\nspec: {conf: {peerAs: 64513, neighborAddress: 198.51.100.1}, gracefulRestart: {enabled: true, restartTime: 60}, timers: {config: {connectRetry: '1'}}}\n";
    let dir = objects_dir(
        &lab,
        &common_objects("{as: 64512, listenPort: -1}", peers),
        &nodes,
        &["203.0.113.5"],
    );
    start_speaker(&mut lab, &ns[0], "n1", &dir)?;
    next_hops(&frr, &lab, &["198.51.100.2"])?;

    // Crash (SIGKILL: no Cease): FRR keeps the route as stale for the restart time.
    lab.kill("speaker-n1");
    route_stays(&frr, "route withdrawn while the speaker was down")?;
    // Back: the session comes up again, End-of-RIB follows the full table, and the route never left.
    start_speaker(&mut lab, &ns[0], "n1", &dir)?;
    frr.wait_established("198.51.100.2", WAIT)?;
    route_stays(&frr, "route lost across the restart")?;
    let route = frr.vtysh("show ip bgp 203.0.113.5/32")?;
    assert!(!route.contains("stale"), "still stale after End-of-RIB: {route}");
    Ok(())
}

#[test]
fn route_refresh_from_frr_gets_the_table_again() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("route_refresh_from_frr_gets_the_table_again")? else {
        return Ok(());
    };
    let nodes = [("n1", "198.51.100.2")];
    let (router, ns) = lan(&mut lab, &["198.51.100.1/24"], &nodes)?;
    let frr = Frr::start(
        &mut lab,
        &router,
        "router",
        &frr_bgpd_conf(64513, "198.51.100.1", &[Neighbor::new("198.51.100.2", 64512)], ""),
    )?;
    let peers = "apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: router}\nspec: {conf: {peerAs: 64513, neighborAddress: 198.51.100.1}, timers: {config: {connectRetry: '1'}}}\n";
    let dir = objects_dir(
        &lab,
        &common_objects("{as: 64512, listenPort: -1}", peers),
        &nodes,
        &["203.0.113.5"],
    );
    start_speaker(&mut lab, &ns[0], "n1", &dir)?;
    next_hops(&frr, &lab, &["198.51.100.2"])?;
    let stats = |frr: &Frr| -> Result<(u64, u64), LabError> {
        let n = &frr.json("show bgp neighbors 198.51.100.2 json")?["198.51.100.2"]["messageStats"];
        Ok((
            n["routeRefreshSent"].as_u64().unwrap_or(0),
            n["updatesRecv"].as_u64().unwrap_or(0),
        ))
    };
    let (refresh_before, updates_before) = stats(&frr)?;
    frr.vtysh("clear bgp ipv4 unicast 198.51.100.2 soft in")?;
    let (refresh, updates) = wait_until("the table sent again after ROUTE-REFRESH", WAIT, POLL, || {
        let (refresh, updates) = stats(&frr).map_err(|e| e.to_string())?;
        if refresh > refresh_before && updates >= updates_before + 2 {
            Ok((refresh, updates))
        } else {
            Err(format!("refresh {refresh}, updates {updates}"))
        }
    })?;
    assert!(
        refresh > refresh_before && updates >= updates_before + 2,
        "one UPDATE and the End-of-RIB"
    );
    assert_eq!(frr.bgp_next_hops("203.0.113.5/32")?, vec!["198.51.100.2"]);
    assert_eq!(
        frr.neighbor_state("198.51.100.2")?,
        "Established",
        "a refresh never resets the session"
    );
    Ok(())
}

/// BIRD's config for the speaker at 198.51.100.2 with the BGP protocol as a peer without the
/// 4-octet AS capability (`enable as4 off`: BIRD does not offer it, so the session has 2-octet
/// AS_PATHs, RFC 6793 section 4.2). `speaker_as`: the AS BIRD expects, or `None` for any external
/// AS (`neighbor ... external`). Not 23456 for a 4-octet speaker: BIRD 2 still reads the capability
/// the speaker offers and checks that AS, and refuses a 4-octet neighbor AS with `as4 off`.
fn bird_conf_without_as4(speaker_as: Option<u32>) -> String {
    let conf = oxelb_tests::routers::bird_conf(
        64513,
        "198.51.100.1",
        "198.51.100.1",
        &[Neighbor::new("198.51.100.2", speaker_as.unwrap_or(0))],
        "",
    );
    let mut old = conf.replace(
        "  connect retry time 1;\n",
        "  connect retry time 1;\n  enable as4 off;\n",
    );
    if speaker_as.is_none() {
        old = old.replace(
            "  neighbor 198.51.100.2 as 0;\n",
            "  neighbor 198.51.100.2 external;\n",
        );
    }
    assert!(
        old.contains("enable as4 off") && !old.contains(" as 0;"),
        "bird_conf changed shape: {old}"
    );
    old
}

/// `log` without terminal colours (the speaker's log fields are `key=value` once stripped).
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, up to the final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Starts tcpdump on the router's LAN, writing BGP packets to a pcap file as they pass.
fn capture_bgp(lab: &mut Lab, router: &Ns) -> Result<std::path::PathBuf, LabError> {
    lab.capture("tcpdump", router, "lan", "tcp port 179")
}

/// The whole BGP messages in a capture so far.
fn bgp_messages(pcap: &std::path::Path) -> Vec<Vec<u8>> {
    oxelb_tests::pcap::bgp_messages(pcap)
        .map(|messages| messages.into_iter().map(|m| m.bytes).collect())
        .unwrap_or_default()
}

/// What a lab with BIRD without 4-octet AS saw.
struct OldPeer {
    /// `birdc show route 203.0.113.5/32 all`.
    route: String,
    /// `birdc show protocols all peer0`.
    protocol: String,
    /// The speaker's log, without colours.
    speaker: String,
    /// The speaker's OPEN, as captured.
    open: Vec<u8>,
    /// The speaker's UPDATE announcing 203.0.113.5/32, as captured.
    update: Vec<u8>,
}

/// The speaker as AS `local_as` announces 203.0.113.5/32 to BIRD without 4-octet AS (`enable as4
/// off`), which expects it as `bird_neighbor_as` (`None`: any external AS); waits until BIRD has
/// the route in the kernel, and returns what BIRD shows and what went over the wire.
fn announce_to_bird_without_as4(
    name: &str,
    local_as: u32,
    bird_neighbor_as: Option<u32>,
) -> Result<Option<OldPeer>, LabError> {
    let Some(mut lab) = lab_or_skip(name)? else {
        return Ok(None);
    };
    let nodes = [("n1", "198.51.100.2")];
    let (router, ns) = lan(&mut lab, &["198.51.100.1/24"], &nodes)?;
    let pcap = capture_bgp(&mut lab, &router)?;
    let bird = oxelb_tests::routers::Bird::start(
        &mut lab,
        &router,
        "router",
        &bird_conf_without_as4(bird_neighbor_as),
    )?;
    let peers = "apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: router}\nspec: {conf: {peerAs: 64513, neighborAddress: 198.51.100.1}, timers: {config: {connectRetry: '1'}}}\n";
    let dir = objects_dir(
        &lab,
        &common_objects(&format!("{{as: {local_as}, listenPort: -1}}"), peers),
        &nodes,
        &["203.0.113.5"],
    );
    start_speaker(&mut lab, &ns[0], "n1", &dir)?;
    wait_until(
        "BIRD's session without 4-octet AS Established",
        WAIT,
        POLL,
        || {
            if bird.established(0).map_err(|e| e.to_string())? {
                Ok(())
            } else {
                Err(format!(
                    "{}; speaker: {}",
                    bird.birdc(&["show", "protocols", "all", "peer0"])
                        .unwrap_or_default(),
                    tail(&plain(&lab.log("speaker-n1")))
                ))
            }
        },
    )?;
    let route = wait_until(
        "BIRD installs 203.0.113.5/32 via 198.51.100.2",
        WAIT,
        POLL,
        || {
            let route = bird
                .birdc(&["show", "route", "203.0.113.5/32", "all"])
                .map_err(|e| e.to_string())?;
            let kernel = bird.kernel_route("203.0.113.5/32").map_err(|e| e.to_string())?;
            if route.contains("BGP.as_path:") && kernel.contains("198.51.100.2") {
                Ok(route)
            } else {
                Err(format!(
                    "{route}; kernel: {kernel:?}; bird: {}; speaker: {}",
                    tail(&lab.log("bird-router")),
                    tail(&plain(&lab.log("speaker-n1")))
                ))
            }
        },
    )?;
    let nlri = [32, 203, 0, 113, 5];
    let (open, update) = wait_until("the speaker's OPEN and UPDATE captured", WAIT, POLL, || {
        let messages = bgp_messages(&pcap);
        // The speaker's OPEN is the one with its router ID (198.51.100.2).
        let open = messages
            .iter()
            .find(|m| m[18] == 1 && m.get(24..28) == Some(&[198, 51, 100, 2][..]));
        let update = messages.iter().find(|m| m[18] == 2 && m.ends_with(&nlri));
        match (open, update) {
            (Some(open), Some(update)) => Ok((open.clone(), update.clone())),
            _ => Err(format!("{} messages: {messages:02x?}", messages.len())),
        }
    })?;
    Ok(Some(OldPeer {
        route,
        protocol: bird.birdc(&["show", "protocols", "all", "peer0"])?,
        speaker: plain(&lab.log("speaker-n1")),
        open,
        update,
    }))
}

impl OldPeer {
    /// Checks what any session without 4-octet AS must show: BIRD offered no 4-octet AS capability
    /// (the speaker did), the speaker negotiated 2-octet AS, and its OPEN's My AS is `my_as`.
    fn assert_two_octet_session(&self, my_as: u16) {
        let local_caps = self
            .protocol
            .split("Local capabilities")
            .nth(1)
            .and_then(|rest| rest.split("Neighbor capabilities").next())
            .unwrap_or_default();
        assert!(
            !local_caps.is_empty() && !local_caps.contains("4-octet AS"),
            "BIRD offered 4-octet AS: {}",
            self.protocol
        );
        assert!(
            self.protocol
                .split("Neighbor capabilities")
                .nth(1)
                .is_some_and(|caps| caps.contains("4-octet AS numbers")),
            "the speaker always offers 4-octet AS (RFC 6793 section 3): {}",
            self.protocol
        );
        assert!(
            self.speaker
                .lines()
                .any(|l| l.contains("BGP session established") && l.contains("four_octet_as=false")),
            "{}",
            self.speaker
        );
        assert_eq!(
            &self.open[20..22],
            &my_as.to_be_bytes(),
            "My AS in the speaker's OPEN: {:02x?}",
            self.open
        );
    }
}

/// The UPDATE carries `attribute` (flags, type, length, value) verbatim.
fn has_attribute(update: &[u8], attribute: &[u8]) -> bool {
    update.windows(attribute.len()).any(|w| w == attribute)
}

#[test]
fn bird_without_four_octet_as_learns_a_two_octet_as_path() -> Result<(), LabError> {
    let Some(seen) = announce_to_bird_without_as4(
        "bird_without_four_octet_as_learns_a_two_octet_as_path",
        64512,
        Some(64512),
    )?
    else {
        return Ok(());
    };
    seen.assert_two_octet_session(64512);
    assert!(seen.route.contains("BGP.as_path: 64512\n"), "{}", seen.route);
    // AS_PATH (well-known, type 2) of one AS_SEQUENCE with the 2-octet 64512; no AS4_PATH: the AS
    // fits (RFC 6793 section 4.2.2).
    assert!(
        has_attribute(&seen.update, &[0x40, 2, 4, 2, 1, 0xfc, 0x00]),
        "{:02x?}",
        seen.update
    );
    assert!(!has_attribute(&seen.update, &[0xc0, 17]), "{:02x?}", seen.update);
    Ok(())
}

#[test]
fn bird_without_four_octet_as_gets_as_trans_and_as4_path() -> Result<(), LabError> {
    let Some(seen) = announce_to_bird_without_as4(
        "bird_without_four_octet_as_gets_as_trans_and_as4_path",
        4_200_000_001,
        None,
    )?
    else {
        return Ok(());
    };
    // RFC 6793 section 4.2.2: AS_TRANS in OPEN's My AS and in AS_PATH, the real AS in AS4_PATH
    // (optional transitive, type 17).
    seen.assert_two_octet_session(23456);
    assert!(
        has_attribute(&seen.update, &[0x40, 2, 4, 2, 1, 0x5b, 0xa0]),
        "AS_PATH [23456]: {:02x?}",
        seen.update
    );
    let real = 4_200_000_001u32.to_be_bytes();
    assert!(
        has_attribute(
            &seen.update,
            &[0xc0, 17, 6, 2, 1, real[0], real[1], real[2], real[3]]
        ),
        "AS4_PATH [4200000001]: {:02x?}",
        seen.update
    );
    // BIRD rebuilds the path from the two (RFC 6793 section 4.2.3): on a 2-octet session, the real
    // AS can only have come from AS4_PATH.
    assert!(seen.route.contains("BGP.as_path: 4200000001\n"), "{}", seen.route);
    Ok(())
}
