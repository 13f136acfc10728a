//! OPEN messages as FRR and GoBGP really send them (captured in a lab, see `golden/README.md`),
//! decoded by the speaker: the values negotiation depends on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use oxelb_bgp::{
    session::{Input, Output, Session, SessionConfig, State},
    wire::{self, Family, Received},
};

fn golden(name: &str) -> Vec<u8> {
    let text =
        std::fs::read_to_string(format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn frr_open() {
    let bytes = golden("frr-8.4-open.hex");
    assert_eq!(
        wire::next_frame(&mut bytes.clone()).unwrap(),
        Some(bytes.clone()),
        "one whole message"
    );
    match wire::decode(&bytes, true).unwrap() {
        Received::Open {
            version,
            peer_as,
            hold_time,
            router_id,
            capabilities,
        } => {
            assert_eq!((version, peer_as, hold_time), (4, 64513, 180));
            assert_eq!(router_id.to_string(), "198.51.100.1");
            assert_eq!(
                capabilities.families,
                [Family::Ipv4Unicast, Family::Ipv6Unicast].into()
            );
            assert_eq!(capabilities.four_octet_as, Some(64513));
            assert!(capabilities.route_refresh && capabilities.graceful_restart);
            assert_eq!(
                capabilities.add_path_receive,
                [Family::Ipv4Unicast, Family::Ipv6Unicast].into()
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn gobgp_open_with_as_trans() {
    let bytes = golden("gobgp-3.10-open.hex");
    assert_eq!(&bytes[20..22], &[0x5b, 0xa0], "AS_TRANS in the 2-octet field");
    match wire::decode(&bytes, true).unwrap() {
        Received::Open {
            peer_as,
            hold_time,
            capabilities,
            ..
        } => {
            assert_eq!(
                peer_as, 4_200_000_001,
                "the 4-octet capability wins over AS_TRANS"
            );
            assert_eq!(hold_time, 90);
            assert_eq!(capabilities.families, [Family::Ipv4Unicast].into());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_session_negotiates_with_the_real_opens() {
    for (file, peer_as, families) in [
        (
            "frr-8.4-open.hex",
            64513,
            vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        ),
        ("gobgp-3.10-open.hex", 4_200_000_001, vec![Family::Ipv4Unicast]),
    ] {
        let mut s = Session::new(SessionConfig {
            local_as: 64512,
            peer_as,
            router_id: "198.51.100.2".parse().unwrap(),
            hold_time: 90,
            keepalive: None,
            connect_retry: 1,
            families: [Family::Ipv4Unicast, Family::Ipv6Unicast].into(),
            graceful_restart: None,
            restarting: false,
            add_path_send: false,
            passive: false,
            next_hop_v4: None,
            next_hop_v6: None,
        });
        s.handle(Input::Start);
        s.handle(Input::Connected {
            local: "198.51.100.2".parse().unwrap(),
        });
        s.handle(Input::Received(golden(file)));
        assert_eq!(s.state(), State::OpenConfirm, "{file}");
        let out = s.handle(Input::Received(wire::keepalive()));
        match out.iter().find(|o| matches!(o, Output::Established(_))) {
            Some(Output::Established(n)) => assert_eq!(n.families, families.into_iter().collect(), "{file}"),
            _ => panic!("{file}: {out:?}"),
        }
    }
}
