//! BGP lab scenarios that need one particular router: editing one BgpPeer leaves another session
//! (with FRR and GoBGP) untouched, and BIRD without the 4-octet AS capability gets 2-octet paths,
//! AS_TRANS and AS4_PATH (RFC 6793). The scenarios every router runs are in `bgp_routers_lab.rs`.
//! Objects come from a `dir:` source with the controller's and kubelet's writes as overlay files.
//! Needs root; skips with a reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use oxelb_tests::{
    lab::{Lab, LabError, Ns, lab_or_skip, wait_until},
    routers::{Frr, Neighbor, frr_bgpd_conf},
};

mod bgp_support;
use bgp_support::*;

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
