//! The lab harness itself, against real routers: namespaces and links come up and go away, and FRR
//! learns routes from GoBGP and BIRD over real BGP sessions, with one ECMP path per announcer. The
//! speaker's BGP tests stand on exactly these recipes.
//!
//! Needs root; without it each test prints why it skips.

use std::time::Duration;

use oxelb_tests::{
    lab::{LabError, lab_or_skip, output, wait_until},
    routers::{Bird, Frr, Gobgp, Neighbor, bird_conf, frr_bgpd_conf, gobgp_conf},
};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn namespaces_links_and_processes_are_torn_down() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("namespaces_links_and_processes_are_torn_down")? else {
        return Ok(());
    };
    let a = lab.netns("a")?;
    let b = lab.netns("b")?;
    lab.veth(&a, "eth0", &b, "eth0")?;
    lab.addr(&a, "eth0", "192.0.2.1/24")?;
    lab.addr(&b, "eth0", "192.0.2.2/24")?;
    lab.addr(&a, "eth0", "2001:db8::1/64")?;
    lab.addr(&b, "eth0", "2001:db8::2/64")?;
    b.run("ping", &["-c", "1", "-W", "2", "192.0.2.1"])?;
    b.run("ping", &["-6", "-c", "1", "-W", "2", "2001:db8::1"])?;
    assert!(
        lab.addr(&a, "eth0", "10.0.0.1/24").is_err(),
        "only documentation addresses"
    );
    // The helpers that layer2 tests read: the kernel's own ARP and NDP answers.
    let (mac, _) = b.neighbor("192.0.2.1")?.expect("ARP entry after ping");
    assert_eq!(mac, a.mac("eth0")?);
    let (mac6, _) = b.neighbor("2001:db8::1")?.expect("NDP entry after ping");
    assert_eq!(mac6, mac);
    assert_eq!(b.neighbor("192.0.2.99")?, None);
    let mut sleeper = a.command("sleep");
    sleeper.arg("600");
    let pid = lab.spawn("sleeper", sleeper)?;
    let names = [a.name().to_owned(), b.name().to_owned()];
    drop(lab);
    let listed = String::from_utf8_lossy(&output("ip", &["netns", "list"])?.stdout).into_owned();
    for name in &names {
        assert!(
            !listed.lines().any(|l| l.split_whitespace().next() == Some(name)),
            "{name} left behind: {listed}"
        );
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")),
        "process {pid} left running"
    );
    Ok(())
}

#[test]
fn frr_learns_one_ecmp_path_per_announcer_from_gobgp_and_bird() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("frr_learns_one_ecmp_path_per_announcer_from_gobgp_and_bird")? else {
        return Ok(());
    };
    // router (FRR, AS 64512) with a LAN bridge; two announcers on the LAN: GoBGP (AS 64513) and BIRD
    // (AS 64514), both announcing 203.0.113.10/32 with themselves as next hop.
    let r = lab.netns("r")?;
    let g = lab.netns("g")?;
    let b = lab.netns("b")?;
    lab.bridge(&r, "lan")?;
    for (ns, port) in [(&g, "lan-g"), (&b, "lan-b")] {
        lab.veth(&r, port, ns, "eth0")?;
        lab.attach(&r, port, "lan")?;
    }
    lab.addr(&r, "lan", "198.51.100.1/24")?;
    lab.addr(&g, "eth0", "198.51.100.2/24")?;
    lab.addr(&b, "eth0", "198.51.100.3/24")?;

    let frr = Frr::start(
        &mut lab,
        &r,
        "r",
        &frr_bgpd_conf(
            64512,
            "198.51.100.1",
            &[
                Neighbor::new("198.51.100.2", 64513),
                Neighbor::new("198.51.100.3", 64514),
            ],
            "",
        ),
    )?;
    let gobgp = Gobgp::start(
        &mut lab,
        &g,
        "g",
        &gobgp_conf(
            64513,
            "198.51.100.2",
            &[Neighbor::new("198.51.100.1", 64512)],
            179,
        ),
    )?;
    let bird = Bird::start(
        &mut lab,
        &b,
        "b",
        &bird_conf(
            64514,
            "198.51.100.3",
            "198.51.100.3",
            &[Neighbor::new("198.51.100.1", 64512)],
            "protocol static { ipv4; route 203.0.113.10/32 via 198.51.100.3; }",
        ),
    )?;
    frr.wait_established("198.51.100.2", WAIT)?;
    frr.wait_established("198.51.100.3", WAIT)?;
    assert!(bird.established(0)?);
    assert!(
        gobgp
            .neighbor_state("198.51.100.1")?
            .starts_with("BGP_FSM_ESTABLISHED")
            || gobgp.neighbor_state("198.51.100.1")?.contains("ESTABLISHED"),
        "{}",
        gobgp.cli(&["neighbor", "198.51.100.1"])?
    );

    gobgp.announce("203.0.113.10/32", "198.51.100.2")?;
    let hops = wait_until("two ECMP paths in FRR", WAIT, Duration::from_millis(100), || {
        let hops = frr.bgp_next_hops("203.0.113.10/32").map_err(|e| e.to_string())?;
        if hops.len() == 2 {
            Ok(hops)
        } else {
            Err(format!("{hops:?}"))
        }
    })?;
    assert_eq!(hops, vec!["198.51.100.2", "198.51.100.3"]);
    let kernel = wait_until("two kernel next hops", WAIT, Duration::from_millis(100), || {
        let route = frr.kernel_route("203.0.113.10/32").map_err(|e| e.to_string())?;
        if route.matches("nexthop via").count() == 2 {
            Ok(route)
        } else {
            Err(format!(
                "kernel: {route}; FRR: {}",
                frr.vtysh("show ip bgp 203.0.113.10/32").unwrap_or_default()
            ))
        }
    })?;
    assert!(
        kernel.contains("198.51.100.2") && kernel.contains("198.51.100.3"),
        "{kernel}"
    );

    // A withdrawal removes exactly that path.
    gobgp.withdraw("203.0.113.10/32")?;
    wait_until("GoBGP's path withdrawn", WAIT, Duration::from_millis(100), || {
        let hops = frr.bgp_next_hops("203.0.113.10/32").map_err(|e| e.to_string())?;
        if hops == ["198.51.100.3"] {
            Ok(())
        } else {
            Err(format!("{hops:?}"))
        }
    })?;
    Ok(())
}
