//! BFD (BgpPeer `spec.bfd`, an oxelb extension) against real routers: FRR 8.4 with bfdd
//! (`neighbor X bfd profile ...`) and BIRD 2.0 (`protocol bfd`, `bfd on`), IPv4 and IPv6 sessions
//! from one node. One scenario per router, in steps:
//! 1. both BFD sessions come Up and the intervals are negotiated as configured (seen from the
//!    router, and in the speaker's BgpPeer status);
//! 2. a change of the BFD timers alone reaches the router (a Poll Sequence) and does not restart
//!    the BGP session; a SIGTERM restart of the speaker hands both BFD sessions to the next
//!    process (the router's sessions and routes stay), which polls back to the timers;
//! 3. the node's link goes away (no FIN can reach the router): the router withdraws both routes
//!    within the BFD detection time, long before the BGP hold time (90 s), and the speaker brings
//!    its BGP sessions down on BFD Down;
//! 4. the link comes back: BFD Up first, then BGP, then the routes.
//!
//! A second node namespace without a speaker keeps the router's LAN bridge up, so the router sees
//! no interface change: only BFD (or the hold timer) can tell it the node is gone.
//! Needs root (network namespaces); each test skips with a reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bgp_support;

use std::time::{Duration, Instant};

use bgp_support::{POLL, WAIT, lan, objects_dir, plain, start_speaker, tail, write};
use oxelb_tests::{
    lab::{LabError, lab_or_skip, rss_kib, wait_until},
    routers::{Bird, Neighbor, Router, RouterKind, RouterSetup},
};

const ROUTER_V4: &str = "198.51.100.1";
const ROUTER_V6: &str = "2001:db8:1::1";
const N1: &str = "198.51.100.2";
const N1_V6: &str = "2001:db8:1::2";
const IP_V4: &str = "203.0.113.5";
const IP_V6: &str = "2001:db8:ffff::5";
/// The router's BFD: 100 ms x 3.
const ROUTER_BFD: (u32, u8) = (100, 3);

#[test]
fn bfd_against_frr() -> Result<(), LabError> {
    scenario(RouterKind::Frr)
}

#[test]
fn bfd_against_bird() -> Result<(), LabError> {
    scenario(RouterKind::Bird)
}

/// The memory figure: the speaker's RSS with 3 BFD sessions Up at 100 ms x 3 stays within
/// 1 MiB of its RSS with the same 3 BGP sessions and no BFD (three BIRD routers on the LAN; BFD
/// enabled on the running speaker by editing the BgpPeers).
#[test]
fn three_bfd_sessions_cost_under_one_mib() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("bfd::memory")? else {
        return Ok(());
    };
    let routers = ["198.51.100.1", "198.51.100.4", "198.51.100.5"];
    let nodes = [("n1", "198.51.100.2")];
    let (first, node_ns) = lan(&mut lab, &["198.51.100.1/24"], &nodes)?;
    // Three BIRD routers on the LAN (the first in `lan`'s router namespace).
    let mut birds = Vec::new();
    for (i, address) in routers.iter().enumerate() {
        let ns = if i == 0 {
            first.clone()
        } else {
            let ns = lab.netns(&format!("r{i}"))?;
            lab.veth(&first, &format!("lan-r{i}"), &ns, "eth0")?;
            lab.attach(&first, &format!("lan-r{i}"), "lan")?;
            lab.addr(&ns, "eth0", &format!("{address}/24"))?;
            ns
        };
        let conf = format!(
            "router id {address};\nprotocol device {{}}\nprotocol bfd {{ interface \"*\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }}; }}\nprotocol bgp peer0 {{\n  local {address} as 64513;\n  neighbor {N1} as 64512;\n  connect retry time 1;\n  bfd on;\n  ipv4 {{ import all; export none; }};\n}}\n"
        );
        birds.push(Bird::start(&mut lab, &ns, &format!("r{i}"), &conf)?);
    }
    let objects = |bfd: &str| {
        let mut text = String::from(
            "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {kubernetes.io/hostname: n1}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: v4}\nspec: {address: 203.0.113.0/28}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpConf\nmetadata: {name: default}\nspec: {as: 64512, listenPort: -1}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default, annotations: {lb.kubesphere.io/v1alpha1: openelb}}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n",
        );
        for (i, address) in routers.iter().enumerate() {
            text.push_str(&format!(
                "---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {{name: r{i}}}\nspec: {{bfd: {bfd}, conf: {{peerAs: 64513, neighborAddress: '{address}'}}, timers: {{config: {{connectRetry: '1'}}}}}}\n"
            ));
        }
        text
    };
    let dir = objects_dir(&lab, &objects("{enabled: false}"), &nodes, &[IP_V4]);
    let command = node_ns[0].speaker(env!("CARGO_BIN_EXE_oxelb-speaker"), &dir, "n1", "info");
    let pid = lab.spawn("speaker-n1", command)?;
    wait_until("three BGP sessions", WAIT, POLL, || {
        let up = birds
            .iter()
            .filter(|b| matches!(b.established(0), Ok(true)))
            .count();
        if up == 3 {
            Ok(())
        } else {
            Err(format!("{up} established"))
        }
    })?;
    // Settle, then take the larger of a few samples (RSS moves by a page or two).
    let sample = || -> u64 {
        (0..5)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(400));
                rss_kib(pid).unwrap_or(0)
            })
            .max()
            .unwrap_or(0)
    };
    std::thread::sleep(Duration::from_secs(3));
    let without = sample();
    write(
        &dir,
        "objects.yaml",
        &objects("{enabled: true, desiredMinTxMs: 100, requiredMinRxMs: 100, detectMultiplier: 3}"),
    );
    wait_until("three BFD sessions Up at the routers", WAIT, POLL, || {
        let text: String = birds
            .iter()
            .map(|b| b.birdc(&["show", "bfd", "sessions"]).unwrap_or_default())
            .collect();
        if text.matches(" Up ").count() == 3 {
            Ok(())
        } else {
            Err(text)
        }
    })?;
    std::thread::sleep(Duration::from_secs(3));
    let with = sample();
    println!(
        "speaker RSS: {without} KiB with 3 BGP sessions, {with} KiB with 3 BFD sessions at 100 ms x 3 added"
    );
    assert!(without > 0 && with > 0, "no RSS read");
    assert!(
        with.saturating_sub(without) <= 1024,
        "3 BFD sessions cost {} KiB (> 1 MiB): {without} -> {with}",
        with.saturating_sub(without)
    );
    Ok(())
}

fn objects(bfd: &str) -> String {
    let peer = |name: &str, address: &str| {
        format!(
            "apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {{name: {name}}}\nspec: {{bfd: {bfd}, conf: {{peerAs: 64513, neighborAddress: '{address}'}}, gracefulRestart: {{enabled: true, restartTime: 60}}, timers: {{config: {{connectRetry: '1'}}}}}}\n---\n"
        )
    };
    format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: n1, labels: {{kubernetes.io/hostname: n1}}}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {{name: v4}}\nspec: {{address: 203.0.113.0/28}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {{name: v6}}\nspec: {{address: '2001:db8:ffff::/120'}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpConf\nmetadata: {{name: default}}\nspec: {{as: 64512, listenPort: -1}}\n---\n{}{}apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default, annotations: {{lb.kubesphere.io/v1alpha1: openelb}}}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]}}\n",
        peer("r4", ROUTER_V4),
        peer("r6", ROUTER_V6)
    )
}

/// The speaker's status file of BgpPeer `name` (the `dir:` source's overlay), if written.
fn status(dir: &std::path::Path, name: &str) -> String {
    let path = dir
        .join("status/bgppeers.network.kubesphere.io")
        .join(format!("{name}.yaml"));
    std::fs::read_to_string(path).unwrap_or_default()
}

fn speaker_log(lab: &oxelb_tests::lab::Lab) -> String {
    plain(&lab.log("speaker-n1"))
}

/// Whether both routes go via n1 (`want`) or neither does.
fn routes(router: &Router, lab: &oxelb_tests::lab::Lab, want: bool) -> Result<(), String> {
    for (prefix, hop) in [("203.0.113.5/32", N1), ("2001:db8:ffff::5/128", N1_V6)] {
        let hops = router.next_hops(prefix).map_err(|e| e.to_string())?;
        if (hops == [hop]) != want {
            return Err(format!(
                "{prefix}: {hops:?}\n{}\nspeaker: {}",
                router.sessions(),
                tail(&lab.log("speaker-n1"))
            ));
        }
    }
    Ok(())
}

fn scenario(kind: RouterKind) -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip(&format!("bfd::{kind:?}"))? else {
        return Ok(());
    };
    let nodes = [("n1", "198.51.100.2,2001:db8:1::2"), ("spare", "198.51.100.9")];
    let (router_ns, node_ns) = lan(&mut lab, &["198.51.100.1/24", "2001:db8:1::1/64"], &nodes)?;
    // Graceful restart on both sides: a SIGTERM restart (step 2b) keeps the routes.
    let neighbor = |address: &str| Neighbor {
        bfd: Some(ROUTER_BFD),
        graceful_restart: true,
        ..Neighbor::new(address, 64512)
    };
    let setup = RouterSetup {
        asn: 64513,
        router_id: ROUTER_V4.into(),
        ipv6: Some(ROUTER_V6.into()),
        neighbors: vec![neighbor(N1), neighbor(N1_V6)],
        listen_port: None,
    };
    let router = Router::start(kind, &mut lab, &router_ns, &setup)?;
    // Speaker: 200 ms TX, 150 ms RX, x4, so every negotiated figure differs from the router's.
    let dir = objects_dir(
        &lab,
        &objects("{enabled: true, desiredMinTxMs: 200, requiredMinRxMs: 150, detectMultiplier: 4}"),
        &nodes[..1],
        &[IP_V4, IP_V6],
    );
    start_speaker(&mut lab, &node_ns[0], "n1", &dir)?;

    // 1. Up, negotiated as configured.
    wait_until("both routes via n1", WAIT, POLL, || routes(&router, &lab, true))?;
    for address in [N1, N1_V6] {
        wait_until(
            &format!("the router's BFD session with {address} Up, as negotiated"),
            WAIT,
            POLL,
            || {
                let view = router.bfd(address).map_err(|e| e.to_string())?;
                let ok = view.as_ref().is_some_and(|v| {
                    v.up && match kind {
                        // FRR shows what we advertise once Up (after our Poll Sequence).
                        RouterKind::Frr => v.remote == Some((200, 150, 4)),
                        // BIRD: it sends at max(its 100, our RX 150); it detects us after our 4 x
                        // max(its RX 100, our TX 200).
                        _ => v.interval_ms == Some(150) && v.timeout_ms == Some(800),
                    }
                });
                if ok { Ok(()) } else { Err(format!("{view:?}")) }
            },
        )?;
    }
    for name in ["r4", "r6"] {
        wait_until(&format!("BgpPeer {name} status with BFD Up"), WAIT, POLL, || {
            let s = status(&dir, name);
            // We send at max(our 200, its RX 100); we detect after its 3 x max(our RX 150, its
            // TX 100).
            if s.contains("state: Up")
                && s.contains("txIntervalMs: 200")
                && s.contains("detectionTimeMs: 450")
            {
                Ok(())
            } else {
                Err(s)
            }
        })?;
    }

    // 2. Retime BFD only: the router sees the new values; BGP is not restarted.
    let established_before = speaker_log(&lab).matches("BGP session established").count();
    write(
        &dir,
        "objects.yaml",
        &objects("{enabled: true, desiredMinTxMs: 300, requiredMinRxMs: 150, detectMultiplier: 4}"),
    );
    wait_until("the router sees TX 300 ms", WAIT, POLL, || {
        let view = router.bfd(N1).map_err(|e| e.to_string())?;
        let ok = view.as_ref().is_some_and(|v| match kind {
            RouterKind::Frr => v.up && v.remote == Some((300, 150, 4)),
            _ => v.up && v.timeout_ms == Some(1200),
        });
        if ok { Ok(()) } else { Err(format!("{view:?}")) }
    })?;
    let log = speaker_log(&lab);
    assert!(log.contains("BFD timers changed"), "{}", tail(&log));
    assert_eq!(
        log.matches("BGP session established").count(),
        established_before,
        "a BFD change restarted BGP:\n{}",
        tail(&log)
    );
    if let Err(e) = routes(&router, &lab, true) {
        panic!("routes lost through a BFD-only change: {e}");
    }

    // 2b. A SIGTERM restart of the speaker hands both BFD sessions (IPv4 and IPv6) to the next
    // process: the router's sessions stay Up and both routes stay, sampled throughout; once BGP
    // is back, the router sees the configured timers again.
    let held = |router: &Router, lab: &oxelb_tests::lab::Lab| -> Result<(), String> {
        routes(router, lab, true)?;
        for address in [N1, N1_V6] {
            let view = router.bfd(address).map_err(|e| e.to_string())?;
            if !view.as_ref().is_some_and(|v| v.up) {
                return Err(format!("{address}: {view:?}"));
            }
        }
        Ok(())
    };
    let restart = Instant::now();
    lab.stop("speaker-n1", Duration::from_secs(5));
    start_speaker(&mut lab, &node_ns[0], "n1", &dir)?;
    let mut samples = 0;
    while restart.elapsed() < Duration::from_secs(4) {
        if let Err(e) = held(&router, &lab) {
            panic!(
                "{kind:?}: lost during the restart after {:?}: {e}",
                restart.elapsed()
            );
        }
        samples += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = speaker_log(&lab);
    assert_eq!(
        log.matches("BFD session continued from the previous speaker process")
            .count(),
        2,
        "{}",
        tail(&log)
    );
    wait_until("the router sees our configured timers again", WAIT, POLL, || {
        for address in [N1, N1_V6] {
            let view = router.bfd(address).map_err(|e| e.to_string())?;
            let ok = view.as_ref().is_some_and(|v| match kind {
                RouterKind::Frr => v.up && v.remote == Some((300, 150, 4)),
                _ => v.up && v.timeout_ms == Some(1200),
            });
            if !ok {
                return Err(format!("{address}: {view:?}"));
            }
        }
        Ok(())
    })?;
    println!("{kind:?}: SIGTERM restart, both BFD sessions and routes held in {samples} samples");

    // 3. The node's link goes away: withdrawn within the detection time (router side: our 4 x
    // 300 ms = 1.2 s), far below the hold time.
    // Keep the node's IPv6 address through the link cut (Linux drops it on down otherwise), as
    // a powered-off node keeps its configuration.
    node_ns[0].run("sysctl", &["-qw", "net.ipv6.conf.eth0.keep_addr_on_down=1"])?;
    let cut = Instant::now();
    node_ns[0].ip(&["link", "set", "eth0", "down"])?;
    wait_until(
        "both routes withdrawn",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || routes(&router, &lab, false),
    )?;
    let took = cut.elapsed();
    println!(
        "{kind:?}: node link down -> routes withdrawn in {} ms",
        took.as_millis()
    );
    assert!(
        took < Duration::from_secs(5),
        "withdrawn after {took:?}: not by BFD (detection 1.2 s)"
    );
    for address in [N1, N1_V6] {
        let view = router.bfd(address)?;
        assert!(
            view.is_some_and(|v| !v.up),
            "{address}: BFD still Up at the router"
        );
    }
    wait_until("the speaker brings BGP down on BFD Down", WAIT, POLL, || {
        let log = speaker_log(&lab);
        if log
            .matches("BFD Down: bringing the BGP session down at once")
            .count()
            >= 2
        {
            Ok(())
        } else {
            Err(tail(&log))
        }
    })?;

    // 4. Back: BFD first, then BGP and the routes.
    node_ns[0].ip(&["link", "set", "eth0", "up"])?;
    wait_until("both routes via n1 again", WAIT, POLL, || {
        routes(&router, &lab, true)
    })?;
    let log = speaker_log(&lab);
    let bfd_up = log
        .rfind("BFD Up: starting the BGP session")
        .expect("BGP started after BFD Up");
    let established = log.rfind("BGP session established").expect("BGP re-established");
    assert!(bfd_up < established, "BGP came up before BFD:\n{}", tail(&log));
    Ok(())
}

/// Bad input from the wire, sent from the router's namespace (TTL 255, as a real peer's): every
/// malformed packet (truncated, version 2, Length beyond the payload, Detect Mult 0, My
/// Discriminator 0, Your Discriminator 0 while Up, authenticated), a packet for no session, one
/// that changes the peer's discriminator, one with intervals of 0; and a BgpPeer with BFD towards
/// an address where nothing answers. The speaker keeps running, logs each with its sender, and
/// the BGP session of the BgpPeer without BFD stays Established throughout.
#[test]
fn bad_bfd_input_leaves_the_speaker_and_bgp_without_bfd_alone() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("bfd::bad_input")? else {
        return Ok(());
    };
    let nodes = [("n1", "198.51.100.2,2001:db8:1::2"), ("spare", "198.51.100.9")];
    let (router_ns, node_ns) = lan(&mut lab, &["198.51.100.1/24", "2001:db8:1::1/64"], &nodes)?;
    let setup = RouterSetup {
        asn: 64513,
        router_id: ROUTER_V4.into(),
        ipv6: Some(ROUTER_V6.into()),
        neighbors: vec![
            Neighbor {
                bfd: Some(ROUTER_BFD),
                ..Neighbor::new(N1, 64512)
            },
            Neighbor::new(N1_V6, 64512),
        ],
        listen_port: None,
    };
    let router = Router::start(RouterKind::Frr, &mut lab, &router_ns, &setup)?;
    // r4 with BFD, r6 without; `silent` with BFD towards an address nobody has.
    let mut text = objects("{enabled: true, desiredMinTxMs: 100, requiredMinRxMs: 100, detectMultiplier: 3}");
    text = text.replacen("spec: {bfd: {enabled: true, desiredMinTxMs: 100, requiredMinRxMs: 100, detectMultiplier: 3}, conf: {peerAs: 64513, neighborAddress: '2001:db8:1::1'}", "spec: {conf: {peerAs: 64513, neighborAddress: '2001:db8:1::1'}", 1);
    text.push_str("---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: silent}\nspec: {bfd: {enabled: true}, conf: {peerAs: 64513, neighborAddress: '198.51.100.7'}, timers: {config: {connectRetry: '1'}}}\n");
    let dir = objects_dir(&lab, &text, &nodes[..1], &[IP_V4, IP_V6]);
    start_speaker(&mut lab, &node_ns[0], "n1", &dir)?;
    for address in [N1, N1_V6] {
        wait_until(&format!("BGP with {address}"), WAIT, POLL, || {
            if router.established(address).map_err(|e| e.to_string())? {
                Ok(())
            } else {
                Err(router.sessions())
            }
        })?;
    }
    wait_until("BFD Up with the router", WAIT, POLL, || {
        let view = router.bfd(N1).map_err(|e| e.to_string())?;
        if view.as_ref().is_some_and(|v| v.up) {
            Ok(())
        } else {
            Err(format!("{view:?}"))
        }
    })?;
    let log = plain(&lab.log("speaker-n1"));
    let ours: u32 = log
        .lines()
        .find(|l| l.contains("starting BFD session") && l.contains("peer=r4"))
        .and_then(|l| l.split("discriminator=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|d| d.parse().ok())
        .expect("our discriminator in the log");
    // Header: version 1, diag 0, state (bits 7-6), flags; Detect Mult; Length; then the six words.
    let packet = |byte0: u8, flags: u8, mult: u8, len: u8, my: u32, your: u32, tx: u32, rx: u32| {
        let mut p = vec![byte0, flags, mult, len];
        for w in [my, your, tx, rx, 0] {
            p.extend_from_slice(&w.to_be_bytes());
        }
        p
    };
    let up = 0xc0;
    let bad: Vec<Vec<u8>> = vec![
        vec![0x20, 0x40, 3],                                                   // truncated
        packet(0x40, up, 3, 24, 9, ours, 100_000, 100_000),                    // version 2
        packet(0x20, up, 3, 200, 9, ours, 100_000, 100_000),                   // Length beyond
        packet(0x20, up, 0, 24, 9, ours, 100_000, 100_000),                    // Detect Mult 0
        packet(0x20, up, 3, 24, 0, ours, 100_000, 100_000),                    // My Discr 0
        packet(0x20, up, 3, 24, 9, 0, 100_000, 100_000),                       // Your Discr 0, Up
        packet(0x20, up | 0x04, 3, 24, 9, ours, 100_000, 100_000),             // A bit, short
        packet(0x20, up, 3, 24, 9, ours.wrapping_add(1000), 100_000, 100_000), // no such session
    ];
    let script = "import socket,sys\nfor h in sys.argv[2:]:\n    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n    s.setsockopt(socket.IPPROTO_IP,socket.IP_TTL,255)\n    s.bind(('198.51.100.1',0))\n    s.sendto(bytes.fromhex(h),(sys.argv[1],3784))\n";
    let send = |packets: &[Vec<u8>]| -> Result<String, LabError> {
        let hex: Vec<String> = packets
            .iter()
            .map(|p| p.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        let mut args = vec!["-c", script, N1];
        args.extend(hex.iter().map(String::as_str));
        router_ns.run("python3", &args)
    };
    let before = plain(&lab.log("speaker-n1")).len();
    send(&bad)?;
    // A peer (from the router's address) that changes its discriminator, and one with intervals
    // of 0: valid packets, handled by the session, logged.
    send(&[packet(0x20, up, 3, 24, 0x0bad_cafe, ours, 100_000, 100_000)])?;
    send(&[packet(0x20, up, 3, 24, 0x0bad_cafe, ours, 0, 0)])?;
    wait_until("the speaker's log lines about the bad input", WAIT, POLL, || {
        let log = plain(&lab.log("speaker-n1"));
        let discarded = log.matches("BFD packet discarded").count();
        if discarded >= 5 && log.contains("from=198.51.100.1") && log.contains("changed its discriminator") {
            Ok(())
        } else {
            Err(format!("{discarded} discarded\n{}", tail(&log)))
        }
    })?;
    // The silent peer's BGP session waits for BFD and says so; BGP without BFD is unaffected.
    std::thread::sleep(Duration::from_secs(2));
    let log = plain(&lab.log("speaker-n1"));
    assert!(
        log.contains("BGP session waits for its BFD session to come Up peer=silent"),
        "{}",
        tail(&log)
    );
    assert!(
        router.established(N1_V6)?,
        "BGP without BFD was disturbed:\n{}",
        router.sessions()
    );
    let since = log.get(before..).unwrap_or_default();
    assert!(
        !since.contains("BGP session down peer=r6"),
        "BGP without BFD went down:\n{}",
        tail(since)
    );
    assert!(!log.contains("panicked"), "{}", tail(&log));
    Ok(())
}

/// Multihop BFD (RFC 5883, UDP 4784) for an `ebgpMultihop` BgpPeer, against FRR with
/// `ebgp-multihop` (which makes bgpd ask bfdd for a multihop session): Up, and the route there.
#[test]
fn multihop_bfd_with_frr() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("bfd::multihop")? else {
        return Ok(());
    };
    let nodes = [("n1", "198.51.100.2")];
    let (router_ns, node_ns) = lan(&mut lab, &["198.51.100.1/24"], &nodes)?;
    let neighbors = vec![Neighbor {
        bfd: Some(ROUTER_BFD),
        local_address: Some(ROUTER_V4.into()),
        ..Neighbor::new(N1, 64512)
    }];
    let conf = oxelb_tests::routers::frr_bgpd_conf(
        64513,
        ROUTER_V4,
        &neighbors,
        &format!(" neighbor {N1} ebgp-multihop 3\n"),
    );
    let bfdd = oxelb_tests::routers::frr_bfdd_conf(&neighbors);
    let frr =
        oxelb_tests::routers::Frr::start_daemons(&mut lab, &router_ns, "router", &conf, 179, Some(&bfdd))?;
    let text = objects(
        "{enabled: true, desiredMinTxMs: 100, requiredMinRxMs: 100, detectMultiplier: 3}, ebgpMultihop: {enabled: true, multihopTtl: 3}",
    );
    let dir = objects_dir(&lab, &text, &nodes, &[IP_V4]);
    start_speaker(&mut lab, &node_ns[0], "n1", &dir)?;
    wait_until(
        "a multihop BFD session Up at FRR, and the route",
        WAIT,
        POLL,
        || {
            let peers = frr.json("show bfd peers json").map_err(|e| e.to_string())?;
            let up = peers.as_array().into_iter().flatten().any(|p| {
                p["peer"].as_str() == Some(N1)
                    && p["multihop"].as_bool() == Some(true)
                    && p["status"].as_str() == Some("up")
            });
            let hops = frr.bgp_next_hops("203.0.113.5/32").map_err(|e| e.to_string())?;
            if up && hops == [N1] {
                Ok(())
            } else {
                Err(format!(
                    "{peers}\n{hops:?}\n{}",
                    tail(&plain(&lab.log("speaker-n1")))
                ))
            }
        },
    )?;
    let log = plain(&lab.log("speaker-n1"));
    assert!(log.contains("multihop=true"), "{}", tail(&log));
    Ok(())
}
