//! BGP table benchmark (issue 5's figure): one speaker announces 10,000 /32 host routes to a real
//! FRR router in a network-namespace lab, and in the same run gobgpd announces the same 10,000 into
//! the same FRR. Both are loaded first; then FRR brings up one session at a time (`no neighbor
//! shutdown`, FRR connecting, the announcers passive), in the order oxelb, gobgpd, gobgpd, oxelb,
//! ... so that neither is always the first into an empty table, with the table and the kernel
//! emptied before every round. Per round it prints:
//! - **FRR**: from FRR's Established until FRR's table holds all 10,000 (FRR's own session uptime,
//!   `peerUptimeMsec`, read in the first poll that sees them all: an upper bound, tight to the poll
//!   gap printed beside it);
//! - **wire**: from the handshake's last KEEPALIVE until the 10,000th prefix was on the wire, read
//!   from a packet capture on FRR's side (the sender's own part; the rest is FRR's ingestion).
//!
//! Issue 14 adds two more oxelb speakers to the same alternation (only the round's announcer runs
//! during a round; the others are stopped with SIGSTOP), each with its own objects: one
//! whose Eip attaches communities and a large community to every route (`spec.advertisement`),
//! which must fill FRR's table no slower than the plain speaker within the rounds' spread, and one
//! whose Eip aggregates to /24 (`aggregationLength: 24`: the 10,000 /32 become 40 /24).
//!
//! Then the medians and their ratio. Then both announcers get sessions to two more FRR routers
//! (three each, as a node peering with two top-of-rack routers and a route reflector would), and
//! the RSS printed is with all three tables full. Needs root (network namespaces); prints why it
//! skips.
//!
//! `cargo bench -p oxelb-speaker --bench bgp_table`. Addresses: 198.51.100.0/24 for the LAN; the
//! 10,000 Service IPs come from 198.18.0.0/16 (RFC 2544's benchmarking range, as the allocator
//! benchmark; the documentation ranges hold only 256 addresses each). No packet leaves the lab's
//! namespaces: the routers and the announcers are the only hosts.

use std::{
    fmt::Write as _,
    net::SocketAddrV4,
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use oxelb_tests::{
    lab::{LabError, lab_or_skip, wait_until},
    pcap::{self, BgpMessage},
    routers::{Frr, Gobgp, Neighbor, frr_bgpd_conf, gobgp_conf},
};

const ROUTES: u32 = 10_000;
/// Measured rounds per announcer (after one unmeasured warm-up round each).
const ROUNDS: usize = 7;
const OXELB: &str = "198.51.100.2";
const GOBGP: &str = "198.51.100.3";
/// The speaker whose Eip attaches communities to every route.
const TAGGED: &str = "198.51.100.6";
/// The speaker whose Eip aggregates to /24.
const AGGREGATED: &str = "198.51.100.7";
/// The /24 aggregates of the 10,000 routes (198.18.0.1 .. 198.18.39.16).
const AGGREGATES: u32 = 40;
/// Every announcer in the alternation, in the order of the printed table.
const ANNOUNCERS: [&str; 4] = [OXELB, TAGGED, AGGREGATED, GOBGP];
/// The Eip of each oxelb announcer: plain, with communities, aggregated.
const EIPS: [(&str, &str, &str); 3] = [
    ("n1", OXELB, "{address: 198.18.0.0/16}"),
    (
        "n2",
        TAGGED,
        "{address: 198.18.0.0/16, advertisement: {communities: ['65000:100', no-export], largeCommunities: ['64512:1:2']}}",
    ),
    (
        "n3",
        AGGREGATED,
        "{address: 198.18.0.0/16, advertisement: {aggregationLength: 24}}",
    ),
];

/// The speaker's second and third BgpPeer, added once the first table is timed.
const EXTRA_PEERS: &str = "---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: r2}\nspec: {conf: {peerAs: 64513, neighborAddress: 198.51.100.4}, transport: {passiveMode: true}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: r3}\nspec: {conf: {peerAs: 64513, neighborAddress: 198.51.100.5}, transport: {passiveMode: true}}\n";

fn write(dir: &Path, rel: &str, body: &str) -> Result<(), LabError> {
    oxelb_tests::lab::write_file(dir, rel, body)
}

/// One measured round: the session FRR brought up and when its table was seen full.
struct Round {
    announcer: &'static str,
    /// The end of the first poll that saw FRR's table full (wall clock, as the capture's stamps).
    full_by: SystemTime,
    /// The start of the poll before it, which still saw the table short.
    short_at: SystemTime,
    /// When FRR's kernel was seen holding all ROUTES (the end of the round's window in the route
    /// monitor's log).
    done_at: SystemTime,
    /// FRR's local port of the round's connection, to find it in the capture.
    frr_port: u16,
}

/// A round's figures, from its capture, the route monitor and the polls.
struct Figures {
    /// Established (on the wire) until zebra installed the last of the routes in the kernel.
    kernel: Duration,
    /// Established until FRR was seen with the full BGP table: an upper bound.
    table: Duration,
    /// How much lower the true figure may be (from the poll before).
    slack: Duration,
    /// Established until the last prefix was on the wire.
    wire: Duration,
}

fn main() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("bgp_table benchmark")? else {
        return Ok(());
    };
    let router = lab.netns("router")?;
    let node = lab.netns("n1")?;
    let tagged_node = lab.netns("n2")?;
    let aggregated_node = lab.netns("n3")?;
    let other = lab.netns("gobgp")?;
    let extra_a = lab.netns("r2")?;
    let extra_b = lab.netns("r3")?;
    lab.bridge(&router, "lan")?;
    lab.addr(&router, "lan", "198.51.100.1/24")?;
    for (ns, port, ip) in [
        (&node, "lan-n1", "198.51.100.2/24"),
        (&other, "lan-g", "198.51.100.3/24"),
        (&extra_a, "lan-r2", "198.51.100.4/24"),
        (&extra_b, "lan-r3", "198.51.100.5/24"),
        (&tagged_node, "lan-n2", "198.51.100.6/24"),
        (&aggregated_node, "lan-n3", "198.51.100.7/24"),
    ] {
        lab.veth(&router, port, ns, "eth0")?;
        lab.attach(&router, port, "lan")?;
        lab.addr(ns, "eth0", ip)?;
    }
    // Every router starts with both announcers shut down; FRR connects when a round opens one.
    let announcers = [Neighbor::new(OXELB, 64512), Neighbor::new(GOBGP, 64514)];
    let shut = format!(" neighbor {OXELB} shutdown\n neighbor {GOBGP} shutdown\n");
    let all: Vec<Neighbor> = ANNOUNCERS
        .iter()
        .map(|a| Neighbor::new(a, if *a == GOBGP { 64514 } else { 64512 }))
        .collect();
    let shut_all: String = ANNOUNCERS
        .iter()
        .map(|a| format!(" neighbor {a} shutdown\n"))
        .collect();
    let frr = Frr::start(
        &mut lab,
        &router,
        "router",
        &frr_bgpd_conf(64513, "198.51.100.1", &all, &shut_all),
    )?;
    let mut extras = Vec::new();
    for (ns, name, ip) in [(&extra_a, "r2", "198.51.100.4"), (&extra_b, "r3", "198.51.100.5")] {
        let conf = frr_bgpd_conf(64513, ip, &announcers, &shut);
        extras.push(Frr::start(&mut lab, ns, name, &conf)?);
    }
    let pcap = lab.capture("tcpdump", &router, "lan", "tcp port 179 and host 198.51.100.1")?;
    // FRR's kernel routes as zebra installs them, stamped to the microsecond (in UTC, to compare
    // with the capture's stamps).
    let mut monitor = router.command("ip");
    monitor.env("TZ", "UTC").args(["-ts", "monitor", "route"]);
    lab.spawn("routes", monitor)?;

    let routers: Vec<Neighbor> = ["198.51.100.1", "198.51.100.4", "198.51.100.5"]
        .iter()
        .map(|ip| Neighbor {
            passive: true,
            ..Neighbor::new(ip, 64513)
        })
        .collect();
    let gobgp = Gobgp::start(&mut lab, &other, "g", &gobgp_conf(64514, GOBGP, &routers, 179))?;
    let loading = Instant::now();
    let ips: Vec<String> = (0..ROUTES)
        .map(|i| format!("{}/32", std::net::Ipv4Addr::from(0xc612_0001 + i)))
        .collect();
    std::thread::scope(|scope| {
        for chunk in ips.chunks(ips.len().div_ceil(4)) {
            let gobgp = &gobgp;
            scope.spawn(move || {
                for prefix in chunk {
                    let _ = gobgp.announce_from_bench(prefix, GOBGP);
                }
            });
        }
    });
    println!(
        "loaded {ROUTES} routes into gobgpd in {:.1} s (its CLI, one call per route)",
        loading.elapsed().as_secs_f64()
    );

    // 10,000 Services, each holding one IP of a /16 Eip, as the controller would have written them;
    // one objects directory per oxelb speaker, differing only in the Eip's advertisement.
    let mut pid = 0;
    // Each oxelb speaker's process, by address: only the round's announcer runs during a round
    // (the others have no session then, and each re-reads 10,000 files every 200 ms, which would
    // take CPU from FRR on this 2-core machine).
    let mut speakers: Vec<(&str, u32)> = Vec::new();
    let mut objects = String::new();
    for (name, address, eip) in EIPS {
        let dir = lab.dir().join(format!("objects-{name}"));
        let text = speaker_objects(name, address, eip);
        write(&dir, "objects.yaml", &text)?;
        write(
            &dir,
            &format!("status/nodes.core/{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nstatus: {{conditions: [{{type: Ready, status: 'True'}}], addresses: [{{type: InternalIP, address: {address}}}]}}\n"
            ),
        )?;
        // The dir source reads one status overlay file per object.
        for i in 0..ROUTES {
            let ip = std::net::Ipv4Addr::from(0xc612_0001 + i);
            write(
                &dir,
                &format!("status/services.core/default/s{i}.yaml"),
                &format!(
                    "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: default, finalizers: [finalizer.lb.kubesphere.io/v1alpha1]}}\nstatus: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}\n"
                ),
            )?;
        }
        let ns = [&node, &tagged_node, &aggregated_node][usize::from(name.as_bytes()[1] - b'1')];
        let command = ns.speaker(env!("CARGO_BIN_EXE_oxelb-speaker"), &dir, name, "warn");
        let spawned = lab.spawn(&format!("speaker-{name}"), command)?;
        speakers.push((address, spawned));
        if address == OXELB {
            pid = spawned;
            objects = text;
        }
    }
    let dir = lab.dir().join("objects-n1");

    // One unmeasured round each (the speakers read their 10,000 objects meanwhile; FRR's first
    // table allocates), then alternate forwards and backwards: A B C D D C B A A B ...
    let mut order = ANNOUNCERS.to_vec();
    for i in 0..ROUNDS {
        let mut block = ANNOUNCERS;
        if i % 2 == 1 {
            block.reverse();
        }
        order.extend(block);
    }
    let mut rounds = Vec::new();
    for (i, announcer) in order.into_iter().enumerate() {
        for (address, speaker) in &speakers {
            signal(*speaker, if *address == announcer { "-CONT" } else { "-STOP" })?;
        }
        let round = round(&frr, announcer)?;
        if i >= ANNOUNCERS.len() {
            rounds.push(round);
        }
    }
    for (_, speaker) in &speakers {
        signal(*speaker, "-CONT")?;
    }
    // The extra routers' RSS part below has oxelb and gobgpd only.
    for announcer in [TAGGED, AGGREGATED] {
        frr.configure_bgp(64513, &format!("neighbor {announcer} shutdown"))?;
    }
    // Let both recorders write out the last round before stopping them.
    std::thread::sleep(Duration::from_secs(1));
    lab.stop("tcpdump", Duration::from_secs(2));
    lab.stop("routes", Duration::from_secs(2));
    let messages = pcap::bgp_messages(&pcap)?;
    let installs = route_installs(&lab.log("routes"));

    println!(
        "{ROUTES} /32 from each announcer ({AGGREGATES} /24 from the aggregating one), one session up at a time, into an empty FRR; from Established (the handshake's last KEEPALIVE on the wire):"
    );
    println!("round  announcer   in FRR's kernel   in FRR's BGP table (poll)   last prefix on the wire");
    let mut figures: [[Vec<f64>; 3]; 4] = Default::default();
    for (i, round) in rounds.iter().enumerate() {
        let Some(f) = figures_of(&messages, &installs, round) else {
            println!(
                "{:>5}  {:<9}  not found in the capture or the route monitor",
                i + 1,
                name(round.announcer)
            );
            continue;
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let slot = ANNOUNCERS.iter().position(|a| *a == round.announcer).unwrap_or(0);
        for (list, value) in figures[slot].iter_mut().zip([f.kernel, f.table, f.wire]) {
            list.push(ms(value));
        }
        println!(
            "{:>5}  {:<9}  {:>10.0} ms   {:>8.0} ms (-{:>3.0} ms)        {:>10.1} ms",
            i + 1,
            name(round.announcer),
            ms(f.kernel),
            ms(f.table),
            ms(f.slack),
            ms(f.wire),
        );
    }
    let [ours, tagged, aggregated, theirs] = figures.clone().map(|lists| lists.map(median));
    println!("median of {ROUNDS} rounds");
    for (who, m) in [
        ("oxelb speaker", ours),
        ("+ communities", tagged),
        ("aggregated", aggregated),
        ("gobgpd", theirs),
    ] {
        println!(
            "       {who:<13}  {:>7.0} ms   {:>8.0} ms                {:>10.1} ms",
            m[0], m[1], m[2]
        );
    }
    // The plain speaker's own spread (min..max over its rounds) is the noise the communities case
    // is judged against, for each figure.
    let spread = |list: &[f64]| {
        let lo = list.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = list.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.0}..{hi:.0}")
    };
    for (i, what) in [
        (0, "FRR's kernel full"),
        (1, "FRR's BGP table full (poll)"),
        (2, "last prefix on the wire"),
    ] {
        println!(
            "with communities vs without, {what}: {:.1} ms ({}) vs {:.1} ms ({}): ratio {:.2}",
            tagged[i],
            spread(&figures[1][i]),
            ours[i],
            spread(&figures[0][i]),
            tagged[i] / ours[i].max(1e-9)
        );
    }
    println!(
        "       ratio oxelb / gobgpd  {:>6.2}   {:>11.2}                {:>10.2}",
        ours[0] / theirs[0].max(1e-9),
        ours[1] / theirs[1].max(1e-9),
        ours[2] / theirs[2].max(1e-9)
    );
    // What the sender cannot change: from its last prefix on the wire until FRR's kernel had them
    // all (per round, then the median).
    let tails = figures
        .each_ref()
        .map(|[kernel, _, wire]| median(kernel.iter().zip(wire).map(|(k, w)| k - w).collect()));
    println!(
        "FRR's own part (last prefix on the wire -> kernel full): oxelb {:.0} ms, gobgpd {:.0} ms; an announcer taking no time at all would score {:.2}",
        tails[0],
        tails[1],
        tails[0] / theirs[0].max(1e-9)
    );

    // Then both announcers get their second and third session, and their RSS is read with all
    // three tables full (timing three FRRs ingesting at once would measure the machine's two
    // cores, so it is not timed).
    objects.push_str(EXTRA_PEERS);
    write(&dir, "objects.yaml", &objects)?;
    for router in [&frr, &extras[0], &extras[1]] {
        for announcer in [OXELB, GOBGP] {
            router.configure_bgp(64513, &format!("no neighbor {announcer} shutdown"))?;
            full_table(router, announcer)?;
        }
    }
    println!(
        "RSS with {ROUTES} routes on 3 sessions: oxelb speaker {} KiB (dir: source with {ROUTES} Service files), gobgpd {} KiB",
        rss(pid),
        rss_of("gobgpd")
    );
    Ok(())
}

fn name(announcer: &str) -> &'static str {
    match announcer {
        OXELB => "oxelb",
        TAGGED => "oxelb+com",
        AGGREGATED => "oxelb/24",
        _ => "gobgpd",
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) to a speaker this benchmark started.
fn signal(pid: u32, signal: &str) -> Result<(), LabError> {
    oxelb_tests::lab::run("kill", &[signal, &pid.to_string()]).map(drop)
}

/// The prefixes `announcer` sends: ROUTES host routes, or their /24 aggregates.
fn expected(announcer: &str) -> u32 {
    if announcer == AGGREGATED {
        AGGREGATES
    } else {
        ROUTES
    }
}

/// The objects of speaker `node` at `address`: its Node, the Eip with `eip` as spec, BgpConf,
/// the passive BgpPeer to FRR and the 10,000 Services.
fn speaker_objects(node: &str, address: &str, eip: &str) -> String {
    let mut objects = format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {{name: bench}}\nspec: {eip}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpConf\nmetadata: {{name: default}}\nspec: {{as: 64512, listenPort: 179, routerId: {address}}}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {{name: router}}\nspec: {{conf: {{peerAs: 64513, neighborAddress: 198.51.100.1}}, transport: {{passiveMode: true}}}}\n",
    );
    for i in 0..ROUTES {
        let _ = write!(
            objects,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: default}}\nspec: {{type: LoadBalancer}}\n"
        );
    }
    objects
}

/// Empties FRR (both announcers shut down, its table and kernel routes gone), brings up the
/// session with `announcer` and times it until FRR holds all ROUTES.
fn round(frr: &Frr, announcer: &'static str) -> Result<Round, LabError> {
    for neighbor in ANNOUNCERS {
        frr.configure_bgp(64513, &format!("neighbor {neighbor} shutdown"))?;
    }
    wait_until(
        "FRR's table and kernel empty",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            let kernel = kernel_routes(frr).map_err(|e| e.to_string())?;
            let table = frr
                .json("show bgp ipv4 unicast summary json")
                .map_err(|e| e.to_string())?["ribCount"]
                .as_u64()
                .unwrap_or(0);
            if kernel == 0 && table == 0 {
                Ok(())
            } else {
                Err(format!("{table} in the table, {kernel} in the kernel"))
            }
        },
    )?;
    frr.configure_bgp(64513, &format!("no neighbor {announcer} shutdown"))?;
    let mut short_at = SystemTime::now();
    let (full_by, short_at) = wait_until(
        &format!("FRR's table full from {announcer}"),
        Duration::from_secs(120),
        Duration::ZERO,
        || {
            let polled = SystemTime::now();
            let summary = frr
                .json("show bgp ipv4 unicast summary json")
                .map_err(|e| e.to_string())?;
            let peer = &summary["peers"][announcer];
            let received = peer["pfxRcd"].as_u64().unwrap_or(0);
            if peer["state"].as_str() == Some("Established") && received >= u64::from(expected(announcer)) {
                return Ok((SystemTime::now(), short_at));
            }
            short_at = polled;
            Err(format!("{received} received, state {}", peer["state"]))
        },
    )?;
    let done_at = wait_until(
        "FRR's kernel full",
        Duration::from_secs(120),
        Duration::from_millis(20),
        || {
            let count = kernel_routes(frr).map_err(|e| e.to_string())?;
            if count >= expected(announcer) as usize {
                Ok(SystemTime::now())
            } else {
                Err(format!("{count} in the kernel"))
            }
        },
    )?;
    let detail = frr.json(&format!("show bgp neighbors {announcer} json"))?;
    let frr_port = detail[announcer]["portLocal"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| LabError::Unexpected(format!("FRR's neighbor {announcer} has no portLocal")))?;
    Ok(Round {
        announcer,
        full_by,
        short_at,
        done_at,
        frr_port,
    })
}

/// A round's figures. Established is the handshake's last KEEPALIVE on the round's connection
/// (both sides are Established once each has the other's, RFC 4271 §8.2.2); the capture's stamps
/// and the polls' are the same wall clock of the same machine.
fn figures_of(messages: &[BgpMessage], installs: &[Duration], round: &Round) -> Option<Figures> {
    let frr = SocketAddrV4::new("198.51.100.1".parse().ok()?, round.frr_port);
    let peer: std::net::Ipv4Addr = round.announcer.parse().ok()?;
    let connection: Vec<&BgpMessage> = messages
        .iter()
        .filter(|m| (m.from == frr && *m.to.ip() == peer) || (m.to == frr && *m.from.ip() == peer))
        .collect();
    let first_keepalive = |from_frr: bool| {
        connection
            .iter()
            .find(|m| m.kind == pcap::KEEPALIVE && (m.from == frr) == from_frr)
            .map(|m| m.at)
    };
    let established = first_keepalive(true)?.max(first_keepalive(false)?);
    let mut announced = 0;
    let last = connection.iter().find(|m| {
        if m.from != frr {
            announced += m.announced;
        }
        announced >= expected(round.announcer)
    })?;
    let since_epoch = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).ok();
    let full_by = since_epoch(round.full_by)?;
    let short_at = since_epoch(round.short_at)?;
    let done_at = since_epoch(round.done_at)?;
    let installed = installs
        .iter()
        .filter(|&&t| t >= established && t <= done_at)
        .max()?;
    Some(Figures {
        kernel: installed.saturating_sub(established),
        table: full_by.saturating_sub(established),
        slack: full_by.saturating_sub(short_at.max(established)),
        wire: last.at.saturating_sub(established),
    })
}

/// FRR's kernel routes from BGP.
fn kernel_routes(frr: &Frr) -> Result<usize, LabError> {
    Ok(frr
        .ns()
        .ip(&["-4", "route", "show", "proto", "bgp"])?
        .lines()
        .count())
}

/// When each benchmark route was added, from `ip -ts monitor route` output in UTC: lines such as
/// `[2026-11-26T09:49:48.890182] 198.18.0.1 via 198.51.100.2 dev lan proto bgp metric 20`
/// (removals start with `Deleted` after the stamp), as time since the Unix epoch.
fn route_installs(log: &str) -> Vec<Duration> {
    log.lines()
        .filter_map(|line| {
            let (stamp, event) = line.strip_prefix('[')?.split_once("] ")?;
            if !event.starts_with("198.18.") || !event.contains("proto bgp") {
                return None;
            }
            oxelb_tests::lab::utc_stamp(stamp)
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Waits until `frr` holds all ROUTES from `neighbor`.
fn full_table(frr: &Frr, neighbor: &str) -> Result<(), LabError> {
    wait_until(
        &format!("{} full from {neighbor}", frr.name()),
        Duration::from_secs(180),
        Duration::from_millis(100),
        || {
            let value = frr
                .json(&format!("show bgp neighbors {neighbor} json"))
                .map_err(|e| e.to_string())?;
            let received = value[neighbor]["addressFamilyInfo"]["ipv4Unicast"]["acceptedPrefixCounter"]
                .as_u64()
                .unwrap_or(0);
            if received >= u64::from(ROUTES) {
                Ok(())
            } else {
                Err(format!("{received} accepted"))
            }
        },
    )
}

fn rss(pid: u32) -> String {
    oxelb_tests::lab::rss_kib(pid).map_or_else(|| "?".into(), |k| k.to_string())
}

fn rss_of(name: &str) -> String {
    let pid = std::process::Command::new("pgrep")
        .args(["-n", "-x", name])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().ok());
    pid.map_or_else(|| "?".into(), rss)
}
