//! The layer2 sockets against real kernels: a "node" namespace runs a minimal responder on the
//! AF_PACKET sockets (this test binary, re-run inside the namespace as an ignored helper) and a
//! "client" namespace resolves the node's virtual IPs with its own kernel's ARP and NDP.
//!
//! Checked: the ARP socket receives the client's ARP request and our reply lands in the client's
//! neighbour table; the same for an NS and our NA (so checksum, hop limit and option are accepted
//! by Linux); the gratuitous ARP (request form) and the unsolicited NA update an existing entry;
//! the NS socket's BPF filter lets nothing but NS through (no echo requests, MLD, NA); our own
//! frames never come back. Needs root; skips with a reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::{Duration, Instant},
};

use oxelb_speaker::layer2::{
    frames::{
        MacAddr, Request, arp_reply, gratuitous_arp, neighbor_advertisement, parse, solicited_node_mac,
        unsolicited_neighbor_advertisement,
    },
    socket::{PacketSocket, RECV_BUFFER_LEN, interface_index},
};
use oxelb_tests::lab::{Lab, LabError, lab_or_skip, wait_until};

const VIP4: &str = "192.0.2.100";
const VIP6: &str = "2001:db8::100";
/// Held by the client with a wrong MAC before the node announces them.
const ANNOUNCED4: &str = "192.0.2.101";
const ANNOUNCED6: &str = "2001:db8::101";
const WRONG_MAC: &str = "02:00:00:00:00:99";

/// Not a test of its own: the node half of `responder_against_client_kernel`.
#[test]
#[ignore = "helper: started inside a lab namespace by responder_against_client_kernel"]
fn responder_in_namespace() {
    let ifname = std::env::var("OXELB_L2_IF").unwrap();
    let mac = oxelb_speaker::layer2::interface::parse_mac(&std::env::var("OXELB_L2_MAC").unwrap()).unwrap();
    let mac = MacAddr::from(mac);
    let stop = PathBuf::from(std::env::var("OXELB_L2_STOP").unwrap());
    let vip4: Ipv4Addr = VIP4.parse().unwrap();
    let vip6: Ipv6Addr = VIP6.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ifindex = interface_index(&ifname).unwrap();
        let arp = PacketSocket::arp(ifindex).unwrap();
        let ns = PacketSocket::neighbor_solicitation(ifindex).unwrap();
        // Join twice and leave once: the kernel counts, so the group stays joined.
        ns.join(solicited_node_mac(vip6)).unwrap();
        ns.join(solicited_node_mac(vip6)).unwrap();
        ns.leave(solicited_node_mac(vip6)).unwrap();
        println!("READY");
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut arp_buf, mut ns_buf) = ([0u8; RECV_BUFFER_LEN], [0u8; RECV_BUFFER_LEN]);
        loop {
            tokio::select! {
                got = arp.recv(&mut arp_buf) => {
                    let frame = &arp_buf[..got.unwrap()];
                    if frame.get(6..12) == Some(&[mac.0, mac.1, mac.2, mac.3, mac.4, mac.5][..]) {
                        println!("OWN FRAME on the ARP socket");
                    }
                    match parse(frame) {
                        Ok(Request::Arp(request)) if request.target_ip == vip4 => {
                            arp.send(&arp_reply(&request, mac)).await.unwrap();
                            println!("ANSWERED ARP from {}", request.sender_ip);
                        }
                        other => println!("ARP SOCKET {other:?}"),
                    }
                }
                got = ns.recv(&mut ns_buf) => {
                    let frame = &ns_buf[..got.unwrap()];
                    match parse(frame) {
                        Ok(Request::NeighborSolicitation(solicitation)) if solicitation.target == vip6 => {
                            ns.send(&neighbor_advertisement(&solicitation, mac)).await.unwrap();
                            println!("ANSWERED NS from {}", solicitation.src_ip);
                        }
                        Ok(Request::NeighborSolicitation(solicitation)) => {
                            println!("NS for {}", solicitation.target);
                        }
                        other => println!("NOT AN NS ON THE NS SOCKET {other:?}"),
                    }
                }
                _ = tick.tick() => {
                    arp.send(&gratuitous_arp(ANNOUNCED4.parse().unwrap(), mac)).await.unwrap();
                    let na = unsolicited_neighbor_advertisement(ANNOUNCED6.parse().unwrap(), mac);
                    ns.send(&na).await.unwrap();
                    if stop.exists() || Instant::now() > deadline {
                        break;
                    }
                }
            }
        }
        ns.leave(solicited_node_mac(vip6)).unwrap();
        println!("DONE");
    });
}

fn wait_for_neighbor(client: &oxelb_tests::lab::Ns, ip: &str, mac: &str) -> Result<(), LabError> {
    wait_until(
        &format!("the client's neighbour entry for {ip} to be {mac}"),
        Duration::from_secs(5),
        Duration::from_millis(50),
        || match client.neighbor(ip) {
            Ok(Some((lladdr, state))) if lladdr == mac => Ok(state),
            other => Err(format!("{other:?}")),
        },
    )
    .map(|_| ())
}

fn scenario(lab: &mut Lab) -> Result<(), LabError> {
    let node = lab.netns("node")?;
    let client = lab.netns("cli")?;
    let (node_if, client_if) = (format!("{}n", lab.prefix()), format!("{}c", lab.prefix()));
    lab.veth(&node, &node_if, &client, &client_if)?;
    lab.addr(&node, &node_if, "192.0.2.10/24")?;
    lab.addr(&node, &node_if, "2001:db8::10/64")?;
    lab.addr(&client, &client_if, "192.0.2.1/24")?;
    lab.addr(&client, &client_if, "2001:db8::1/64")?;
    let node_mac = node.mac(&node_if)?;
    for ip in [ANNOUNCED4, ANNOUNCED6] {
        client.ip(&[
            "neigh", "replace", ip, "lladdr", WRONG_MAC, "dev", &client_if, "nud", "stale",
        ])?;
    }

    let stop = lab.dir().join("stop");
    let exe = std::env::current_exe().unwrap();
    let mut command = node.command(&exe.display().to_string());
    command
        .args([
            "responder_in_namespace",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OXELB_L2_IF", &node_if)
        .env("OXELB_L2_MAC", &node_mac)
        .env("OXELB_L2_STOP", &stop);
    lab.spawn("responder", command)?;
    wait_until(
        "the responder",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let log = lab.log("responder");
            if log.contains("READY") { Ok(()) } else { Err(log) }
        },
    )?;

    // The solicited-node MAC of VIP6 is joined on the node's interface (joined twice, left once).
    let group = "33:33:ff:00:01:00";
    let joined = node.ip(&["maddr", "show", "dev", &node_if])?;
    assert!(joined.contains(group), "{group} not joined:\n{joined}");

    // The client's kernel resolves the VIPs (the pings themselves go unanswered: nobody owns the
    // IPs at layer 3, which does not matter here).
    let _ = client.output("ping", &["-c1", "-W1", VIP4])?;
    wait_for_neighbor(&client, VIP4, &node_mac)?;
    let _ = client.output("ping", &["-6", "-c1", "-W1", VIP6])?;
    wait_for_neighbor(&client, VIP6, &node_mac)?;
    // Now resolved: these echo requests reach the node's MAC, and the BPF filter must drop them.
    let _ = client.output("ping", &["-6", "-c2", "-i0.2", "-W1", VIP6])?;
    // Independent validators with timings, when installed: Habets' arping and ndisc6 (which
    // checks hop limit, checksum and option of our NA itself).
    if let Ok(out) = client.output("arping", &["-c", "3", "-i", &client_if, VIP4]) {
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("arping:\n{text}");
        assert!(
            text.contains(&format!("from {node_mac}")),
            "arping got no reply from us:\n{text}"
        );
    }
    if let Ok(out) = client.output("ndisc6", &["-1", "-r", "3", "-w", "500", VIP6, &client_if]) {
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("ndisc6:\n{text}");
        assert!(out.status.success(), "ndisc6 rejected our NA:\n{text}");
        assert!(text.to_lowercase().contains(&node_mac.to_lowercase()), "{text}");
    }
    // The periodic announcements moved the entries that pointed elsewhere.
    wait_for_neighbor(&client, ANNOUNCED4, &node_mac)?;
    wait_for_neighbor(&client, ANNOUNCED6, &node_mac)?;

    std::fs::write(&stop, "").map_err(|source| LabError::Io {
        path: stop.clone(),
        source,
    })?;
    let log = wait_until(
        "the responder to stop",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let log = lab.log("responder");
            if log.contains("DONE") { Ok(log) } else { Err(log) }
        },
    )?;
    eprintln!("responder log:\n{log}");
    let left = node.ip(&["maddr", "show", "dev", &node_if])?;
    assert!(
        !left.contains(group),
        "{group} still joined after the last leave and close:\n{left}"
    );
    assert!(log.contains("ANSWERED ARP from 192.0.2.1"), "{log}");
    assert!(log.contains("ANSWERED NS from 2001:db8::1"), "{log}");
    assert!(
        !log.contains("NOT AN NS ON THE NS SOCKET"),
        "BPF let something else through:\n{log}"
    );
    assert!(!log.contains("OWN FRAME"), "our own frames came back:\n{log}");
    Ok(())
}

#[test]
fn responder_against_client_kernel() {
    let Some(mut lab) = lab_or_skip("responder_against_client_kernel").unwrap() else {
        return;
    };
    if let Err(error) = scenario(&mut lab) {
        panic!("{error}\nresponder log:\n{}", lab.log("responder"));
    }
}
