//! BgpPeer transport options and the capability fallback against a real FRR (8.4), with the
//! speaker binary in a node namespace. Needs root (network namespaces); each test skips with a
//! reason otherwise.
//!
//! - FRR's `neighbor X strict-capability-match` answers an OPEN whose multiprotocol capabilities
//!   name a family it has not activated for the neighbor with NOTIFICATION 2/7 (Unsupported
//!   Capability) listing that capability (RFC 5492 section 5): the speaker leaves it out of its
//!   next OPEN and the session comes up.
//! - The same FRR with a family activated that the BgpPeer does not offer answers 2/7 with no
//!   data: nothing to leave out, the session stays down, retrying once per connectRetry.
//! - `transport.tcpMss` is the MSS option of the speaker's SYN, and `mtuDiscovery: false` clears
//!   its DF bit, as a capture on the router's side shows.
//!
//! Of the three routers only FRR sends 2/7 here: BIRD 2.0.12 can require only the BGP role
//! (`require roles`, refused with 2/11, RFC 9234), and gobgpd 3.10 with no family in common
//! comes up carrying none rather than refusing.
//!
//! Addresses: the LAN is 198.51.100.0/24, the Service IP 203.0.113.5.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bgp_support;

use std::time::{Duration, Instant};

use bgp_support::{POLL, WAIT, lan, objects_dir, plain, start_speaker, tail};
use oxelb_tests::{
    lab::{Lab, LabError, Ns, lab_or_skip, wait_until},
    pcap,
    routers::{Frr, Neighbor, frr_bgpd_conf},
};

const ROUTER: &str = "198.51.100.1";
const N1: &str = "198.51.100.2";
const IP_V4: &str = "203.0.113.5";

/// The objects: Node n1, the Eip, BgpConf (AS 64512, `listen_port`), BgpPeer `router` with the
/// `extra` spec fields (inline YAML ending in `, `), the Service.
fn objects(listen_port: i32, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: n1, labels: {{kubernetes.io/hostname: n1}}}}\n---\n\
         apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {{name: v4}}\nspec: {{address: 203.0.113.0/28}}\n---\n\
         apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpConf\nmetadata: {{name: default}}\nspec: {{as: 64512, listenPort: {listen_port}}}\n---\n\
         apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {{name: router}}\nspec: {{{extra}conf: {{peerAs: 64513, neighborAddress: '{ROUTER}'}}, timers: {{config: {{connectRetry: '1'}}}}}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default, annotations: {{lb.kubesphere.io/v1alpha1: openelb}}}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]}}\n"
    )
}

/// A lab with FRR (AS 64513, neighbor n1 with `frr_extra` inside `router bgp`) and node n1.
fn start(test: &str, frr_extra: &str) -> Result<Option<(Lab, Frr, Ns)>, LabError> {
    let Some(mut lab) = lab_or_skip(test)? else {
        return Ok(None);
    };
    let nodes = [("n1", N1)];
    let (router_ns, mut node_ns) = lan(&mut lab, &["198.51.100.1/24"], &nodes)?;
    let conf = frr_bgpd_conf(64513, ROUTER, &[Neighbor::new(N1, 64512)], frr_extra);
    let frr = Frr::start(&mut lab, &router_ns, "router", &conf)?;
    Ok(Some((lab, frr, node_ns.remove(0))))
}

/// The speaker of n1 without a listener, its BgpPeer with `extra`.
fn speaker(lab: &mut Lab, ns: &Ns, extra: &str) -> Result<(), LabError> {
    speaker_listening(lab, ns, -1, extra)
}

fn speaker_listening(lab: &mut Lab, ns: &Ns, listen_port: i32, extra: &str) -> Result<(), LabError> {
    let dir = objects_dir(lab, &objects(listen_port, extra), &[("n1", N1)], &[IP_V4]);
    start_speaker(lab, ns, "n1", &dir)
}

fn established(frr: &Frr, lab: &Lab) -> Result<(), LabError> {
    wait_until("FRR's session with n1 Established", WAIT, POLL, || {
        match frr.neighbor_state(N1).map_err(|e| e.to_string())?.as_str() {
            "Established" => Ok(()),
            state => Err(format!(
                "{state}\n{}\nspeaker: {}",
                frr.vtysh("show bgp summary").unwrap_or_default(),
                tail(&plain(&lab.log("speaker-n1")))
            )),
        }
    })
}

#[test]
fn frr_refusing_a_family_by_strict_capability_match_still_reaches_established() -> Result<(), LabError> {
    let Some((mut lab, frr, ns)) = start(
        "frr_refusing_a_family",
        &format!(" neighbor {N1} strict-capability-match\n"),
    )?
    else {
        return Ok(());
    };
    // Both families offered; FRR has only IPv4 unicast activated for this IPv4 neighbor.
    speaker(
        &mut lab,
        &ns,
        "afiSafis: [{config: {family: {afi: AFI_IP, safi: SAFI_UNICAST}, enabled: true}}, {config: {family: {afi: AFI_IP6, safi: SAFI_UNICAST}, enabled: true}}], ",
    )?;
    established(&frr, &lab)?;
    wait_until("203.0.113.5/32 at FRR", WAIT, POLL, || {
        let hops = frr
            .bgp_next_hops(&format!("{IP_V4}/32"))
            .map_err(|e| e.to_string())?;
        if hops == [N1] {
            Ok(())
        } else {
            Err(format!("{hops:?}"))
        }
    })?;
    let log = plain(&lab.log("speaker-n1"));
    let dropped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("leaving the capability out"))
        .collect();
    assert_eq!(dropped.len(), 1, "{log}");
    assert!(
        dropped[0].contains("capability=\"multiprotocol-ipv6-unicast\"")
            || dropped[0].contains("capability=multiprotocol-ipv6-unicast"),
        "{}",
        dropped[0]
    );
    assert!(dropped[0].contains("code=1"), "{}", dropped[0]);
    assert!(
        log.contains("peer sent NOTIFICATION 2/7 (OPEN Message Error/Unsupported Capability): the next OPEN leaves out multiprotocol-ipv6-unicast (code 1)"),
        "{log}"
    );
    // FRR's own account: it sent the NOTIFICATION, then the session came up with IPv4 only.
    let neighbor = frr.json(&format!("show bgp neighbors {N1} json"))?;
    let n = &neighbor[N1];
    assert_eq!(n["bgpState"].as_str(), Some("Established"), "{n}");
    let caps = &n["neighborCapabilities"];
    let families = caps["multiprotocolExtensions"].to_string();
    assert!(
        families.contains("ipv4Unicast") && !families.contains("ipv6Unicast"),
        "{caps}"
    );
    Ok(())
}

#[test]
fn frr_refusing_without_naming_a_capability_leaves_the_session_down_boundedly() -> Result<(), LabError> {
    // FRR expects IPv6 unicast from this neighbor too; the BgpPeer offers IPv4 only: FRR's
    // strict match fails with a 2/7 that names nothing (FRR 8.4 bgp_open.c
    // strict_capability_same).
    let Some((mut lab, frr, ns)) = start(
        "frr_refusing_without_naming",
        &format!(
            " neighbor {N1} strict-capability-match\n address-family ipv6 unicast\n  neighbor {N1} activate\n exit-address-family\n"
        ),
    )?
    else {
        return Ok(());
    };
    speaker(&mut lab, &ns, "")?;
    wait_until("the speaker's account of the empty 2/7", WAIT, POLL, || {
        let log = plain(&lab.log("speaker-n1"));
        if log.contains("named no capability") {
            Ok(())
        } else {
            Err(tail(&log))
        }
    })?;
    // Watch for a while: never Established, and at most one OPEN per connectRetry (1 s) plus
    // FRR's own idle backoff: no fallback loop.
    let start = Instant::now();
    let before = plain(&lab.log("speaker-n1")).matches("BGP session down").count();
    while start.elapsed() < Duration::from_secs(5) {
        assert_ne!(frr.neighbor_state(N1)?, "Established");
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = plain(&lab.log("speaker-n1"));
    let downs = log.matches("BGP session down").count() - before;
    assert!(downs <= 6, "{downs} resets in 5 s with connectRetry 1 s:\n{log}");
    assert!(!log.contains("leaving the capability out"), "{log}");
    Ok(())
}

#[test]
fn tcp_mss_is_in_the_syn_and_mtu_discovery_off_clears_df() -> Result<(), LabError> {
    let Some((mut lab, frr, ns)) = start("tcp_mss_in_the_syn", "")? else {
        return Ok(());
    };
    let router_ns = frr.ns().clone();
    let capture = lab.capture("syn-capture", &router_ns, "lan-n1", "tcp port 179")?;
    speaker(&mut lab, &ns, "transport: {tcpMss: 1200, mtuDiscovery: false}, ")?;
    established(&frr, &lab)?;
    // Let tcpdump write the last packets out.
    std::thread::sleep(Duration::from_millis(300));
    lab.stop("syn-capture", Duration::from_secs(2));
    let syns = pcap::tcp_syns(&capture).map_err(|e| LabError::Unexpected(e.to_string()))?;
    let ours: Vec<&pcap::TcpSyn> = syns
        .iter()
        .filter(|s| !s.ack && s.from.ip().to_string() == N1)
        .collect();
    assert!(!ours.is_empty(), "no SYN from the speaker: {syns:?}");
    for syn in &ours {
        assert_eq!(syn.mss, Some(1200), "{syn:?}");
        assert!(
            !syn.dont_fragment,
            "mtuDiscovery: false sends without DF: {syn:?}"
        );
    }
    // FRR's SYN-ACK to it keeps FRR's own MSS (the option is per direction).
    assert!(
        syns.iter()
            .any(|s| s.ack && s.to.ip().to_string() == N1 && s.mss != Some(1200)),
        "{syns:?}"
    );
    Ok(())
}

#[test]
fn tcp_mss_of_a_passive_session_is_the_listeners_syn_ack() -> Result<(), LabError> {
    let Some((mut lab, frr, ns)) = start("tcp_mss_passive", "")? else {
        return Ok(());
    };
    let router_ns = frr.ns().clone();
    let capture = lab.capture("syn-capture", &router_ns, "lan-n1", "tcp port 179")?;
    // FRR dials the node (its connect retry is 1 s); the speaker only listens.
    speaker_listening(
        &mut lab,
        &ns,
        179,
        "transport: {passiveMode: true, tcpMss: 1300}, ",
    )?;
    established(&frr, &lab)?;
    std::thread::sleep(Duration::from_millis(300));
    lab.stop("syn-capture", Duration::from_secs(2));
    let syns = pcap::tcp_syns(&capture).map_err(|e| LabError::Unexpected(e.to_string()))?;
    let answers: Vec<&pcap::TcpSyn> = syns
        .iter()
        .filter(|s| s.ack && s.from.ip().to_string() == N1 && s.from.port() == 179)
        .collect();
    assert!(
        !answers.is_empty(),
        "no SYN-ACK from the speaker's listener: {syns:?}"
    );
    for syn_ack in &answers {
        assert_eq!(syn_ack.mss, Some(1300), "{syn_ack:?}");
    }
    assert!(
        !syns.iter().any(|s| !s.ack && s.from.ip().to_string() == N1),
        "a passive session never dials: {syns:?}"
    );
    Ok(())
}
