//! The checks the `decode` fuzz target runs on every input. The stable test
//! `speaker/bgp/tests/decode_robustness.rs` includes this file (`#[path]`), so the fuzzer and the
//! test exercise exactly the same code.
//!
//! For arbitrary received bytes:
//! - framing (`next_frame`) and decoding (`decode`, with and without 4-octet AS) never panic;
//! - a session in Established (with a 4-octet and with a 2-octet peer) and one in OpenSent take the
//!   bytes without panicking, and what they do about them is consistent: every message they send is
//!   one well-formed frame that decodes, and the session ends up in Idle exactly when it reports
//!   `Down` (a garbled stream resets the session, RFC 4271 section 6; it never wedges it).

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv6Addr},
    sync::OnceLock,
};

use oxelb_bgp::{
    session::{Input, Output, Session, SessionConfig, State},
    wire::{self, Family, OpenParams},
};

/// Runs every check on `data` (panics on a violation, as the fuzzer expects).
pub fn check(data: &[u8]) {
    frames(data);
    // `decode` is public: it must also survive bytes nobody framed.
    let _ = wire::decode(data, true);
    let _ = wire::decode(data, false);
    for template in templates() {
        let before = template.state();
        let mut session = template.clone();
        let out = session.handle(Input::Received(data.to_vec()));
        outputs_consistent(before, &session, &out);
    }
}

/// Splits `data` into frames as the driver does and decodes each with both AS widths.
pub fn frames(data: &[u8]) {
    let mut buffer = data.to_vec();
    while let Ok(Some(frame)) = wire::next_frame(&mut buffer) {
        assert!(
            (wire::HEADER_LEN..=wire::MAX_MESSAGE).contains(&frame.len()),
            "a frame of {} bytes",
            frame.len()
        );
        let _ = wire::decode(&frame, true);
        let _ = wire::decode(&frame, false);
    }
}

fn outputs_consistent(before: State, session: &Session, out: &[Output]) {
    for output in out {
        if let Output::Send(bytes) = output {
            let mut buffer = bytes.clone();
            assert_eq!(
                wire::next_frame(&mut buffer),
                Ok(Some(bytes.clone())),
                "sent bytes are not exactly one message: {bytes:02x?}"
            );
            assert!(
                wire::decode(bytes, true).is_ok(),
                "sent a message that does not decode: {bytes:02x?}"
            );
        }
    }
    let down = out.iter().any(|o| matches!(o, Output::Down(_)));
    assert_eq!(
        session.state() == State::Idle,
        down,
        "from {before:?} to {:?}, outputs {out:?}",
        session.state()
    );
    if down {
        assert!(
            out.contains(&Output::Disconnect),
            "down without disconnect: {out:?}"
        );
    }
}

/// Sessions to feed bytes to: Established with a 4-octet-AS peer, Established with a 2-octet-AS
/// peer (our AS is 4-octet there, so route refresh answers carry AS_TRANS and AS4_PATH), OpenSent.
pub fn templates() -> &'static [Session] {
    static TEMPLATES: OnceLock<Vec<Session>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let four = established(64512, peer_open_four_octet(), true);
        let two = established(4_200_000_001, peer_open_two_octet(), false);
        let mut open_sent = Session::new(config(64512));
        open_sent.handle(Input::Start);
        open_sent.handle(Input::Connected {
            local: IpAddr::from([198, 51, 100, 2]),
        });
        assert_eq!(open_sent.state(), State::OpenSent);
        vec![four, two, open_sent]
    })
}

const PEER_AS: u16 = 65001;

fn config(local_as: u32) -> SessionConfig {
    SessionConfig {
        local_as,
        peer_as: u32::from(PEER_AS),
        router_id: [192, 0, 2, 11].into(),
        hold_time: 90,
        keepalive: None,
        connect_retry: 1,
        families: [Family::Ipv4Unicast, Family::Ipv6Unicast].into(),
        graceful_restart: Some(120),
        restarting: false,
        add_path_send: true,
        passive: false,
        next_hop_v4: None,
        next_hop_v6: Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11)),
    }
}

/// The peer's OPEN as our own builder writes it: 4-octet AS capability, both families.
fn peer_open_four_octet() -> Vec<u8> {
    wire::open(&OpenParams {
        local_as: u32::from(PEER_AS),
        hold_time: 30,
        router_id: [198, 51, 100, 1].into(),
        families: [Family::Ipv4Unicast, Family::Ipv6Unicast].into(),
        graceful_restart: Some((120, false)),
        add_path_send: false,
        route_refresh: true,
        four_octet_as: true,
    })
}

/// An OPEN from a peer without the 4-octet AS capability (RFC 6793 "OLD BGP speaker"): MP IPv4
/// and IPv6 unicast and route refresh only.
fn peer_open_two_octet() -> Vec<u8> {
    let capabilities = [1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1, 2, 0];
    let mut body = vec![4];
    body.extend_from_slice(&PEER_AS.to_be_bytes());
    body.extend_from_slice(&30u16.to_be_bytes());
    body.extend_from_slice(&[198, 51, 100, 1]);
    body.push(capabilities.len() as u8 + 2);
    body.extend_from_slice(&[2, capabilities.len() as u8]);
    body.extend_from_slice(&capabilities);
    let mut message = vec![0xff; 16];
    message.extend_from_slice(&((wire::HEADER_LEN + body.len()) as u16).to_be_bytes());
    message.push(1);
    message.extend_from_slice(&body);
    message
}

fn established(local_as: u32, peer_open: Vec<u8>, four_octet_as: bool) -> Session {
    let mut s = Session::new(config(local_as));
    s.handle(Input::Start);
    s.handle(Input::Connected {
        local: IpAddr::from([198, 51, 100, 2]),
    });
    s.handle(Input::Received(peer_open));
    s.handle(Input::Received(wire::keepalive()));
    assert_eq!(s.state(), State::Established);
    assert_eq!(
        s.negotiated().map(|n| n.four_octet_as),
        Some(four_octet_as),
        "template negotiated the wrong AS width"
    );
    let routes: BTreeSet<IpAddr> = ["203.0.113.5", "2001:db8:ffff::5"]
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    s.handle(Input::Routes(wire::host_routes(&routes)));
    s.handle(Input::TableReady);
    s
}
