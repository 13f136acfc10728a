//! The BGP transport against a real router: FRR expects TCP-MD5 from the node; the right password
//! completes the TCP handshake, a wrong or missing one times out (FRR drops the segments silently)
//! and the error says what to check. Needs root (network namespaces); skips with a reason otherwise.
//!
//! The client side runs inside the node's namespace: the test starts its own binary there, running
//! only the ignored `client_in_namespace` helper.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, time::Duration};

use oxelb_speaker::bgp::transport::{Dial, connect};
use oxelb_tests::{
    lab::{LabError, lab_or_skip},
    routers::{Frr, Neighbor, frr_bgpd_conf},
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Not a test of its own: the client half of `tcp_md5_against_frr`, run inside the node namespace.
#[test]
#[ignore = "helper: started inside a lab namespace by tcp_md5_against_frr"]
fn client_in_namespace() {
    let peer: SocketAddr = std::env::var("OXELB_DIAL_PEER").unwrap().parse().unwrap();
    let dial = Dial {
        peer,
        local: None,
        md5_password: std::env::var("OXELB_DIAL_MD5").ok(),
        ttl: 1,
        tcp_mss: std::env::var("OXELB_DIAL_MSS").ok().and_then(|m| m.parse().ok()),
        mtu_discovery: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match runtime.block_on(connect(&dial, CONNECT_TIMEOUT)) {
        Ok(stream) => println!("RESULT connected from {}", stream.local_addr().unwrap()),
        Err(error) => println!("RESULT failed: {error}"),
    }
}

fn dial_from(ns: &oxelb_tests::lab::Ns, peer: &str, password: Option<&str>) -> Result<String, LabError> {
    let exe = std::env::current_exe().unwrap();
    let mut command = ns.command(&exe.display().to_string());
    command.args([
        "client_in_namespace",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    command.env("OXELB_DIAL_PEER", peer);
    match password {
        Some(p) => command.env("OXELB_DIAL_MD5", p),
        None => command.env_remove("OXELB_DIAL_MD5"),
    };
    let output = command.output().map_err(|source| LabError::Spawn {
        command: format!("{command:?}"),
        source,
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, result)| result.to_owned()))
        .unwrap_or_else(|| {
            format!(
                "no RESULT line: {stdout} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        }))
}

#[test]
fn tcp_md5_against_frr() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("tcp_md5_against_frr")? else {
        return Ok(());
    };
    let router = lab.netns("router")?;
    let node = lab.netns("node")?;
    lab.veth(&router, "eth0", &node, "eth0")?;
    lab.addr(&router, "eth0", "198.51.100.1/24")?;
    lab.addr(&node, "eth0", "198.51.100.2/24")?;
    let mut neighbor = Neighbor::new("198.51.100.2", 64512);
    neighbor.password = Some("s3cret".into());
    // Passive: FRR must not race us with its own connection attempts.
    neighbor.passive = true;
    let _frr = Frr::start(
        &mut lab,
        &router,
        "router",
        &frr_bgpd_conf(64513, "198.51.100.1", &[neighbor], ""),
    )?;

    let right = dial_from(&node, "198.51.100.1:179", Some("s3cret"))?;
    assert!(right.starts_with("connected from 198.51.100.2"), "{right}");
    let wrong = dial_from(&node, "198.51.100.1:179", Some("wrong"))?;
    assert!(
        wrong.contains("no TCP answer within 3s") && wrong.contains("spec.conf.authPassword"),
        "{wrong}"
    );
    let missing = dial_from(&node, "198.51.100.1:179", None)?;
    assert!(
        missing.contains("no TCP answer") && missing.contains("set BgpPeer spec.conf.authPassword"),
        "{missing}"
    );
    Ok(())
}
