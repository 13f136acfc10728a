//! Capability fallback in the session (RFC 5492 section 5): a NOTIFICATION 2/7 in answer to our
//! OPEN, and the OPENs of the following connection attempts, output by output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use oxelb_bgp::{
    session::{Capability, Input, Output, Session, SessionConfig, State, Timer},
    wire::{self, Family, OpenParams, Received},
};

fn config() -> SessionConfig {
    SessionConfig {
        local_as: 64512,
        peer_as: 65001,
        router_id: "192.0.2.11".parse().unwrap(),
        hold_time: 90,
        keepalive: None,
        connect_retry: 5,
        families: [Family::Ipv4Unicast, Family::Ipv6Unicast].into(),
        graceful_restart: Some(120),
        restarting: false,
        add_path_send: true,
        passive: false,
        next_hop_v4: None,
        next_hop_v6: Some("2001:db8::11".parse().unwrap()),
    }
}

fn peer_open(families: &[Family], four_octet_as: bool) -> Vec<u8> {
    wire::open(&OpenParams {
        local_as: 65001,
        hold_time: 30,
        router_id: "198.51.100.1".parse().unwrap(),
        families: families.iter().copied().collect(),
        graceful_restart: Some((120, false)),
        add_path_send: false,
        route_refresh: true,
        four_octet_as,
    })
}

/// The capabilities of an OPEN we sent, as (code, value), read from the raw bytes (RFC 5492
/// section 4: one optional parameter of type 2 holding them all).
fn capabilities(open: &[u8]) -> Vec<(u8, Vec<u8>)> {
    assert_eq!(open[18], 1, "an OPEN");
    let params = &open[29..29 + usize::from(open[28])];
    assert_eq!(params[0], 2);
    let mut caps = &params[2..2 + usize::from(params[1])];
    let mut out = Vec::new();
    while let [code, len, rest @ ..] = caps {
        let len = usize::from(*len);
        out.push((*code, rest[..len].to_vec()));
        caps = &rest[len..];
    }
    out
}

fn codes(open: &[u8]) -> Vec<u8> {
    capabilities(open).into_iter().map(|(code, _)| code).collect()
}

/// Our OPEN in `outputs`.
fn open_of(outputs: &[Output]) -> Vec<u8> {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::Send(bytes) if bytes[18] == 1 => Some(bytes.clone()),
            _ => None,
        })
        .expect("an OPEN")
}

/// Starts `s` and connects: our OPEN.
fn connect(s: &mut Session) -> Vec<u8> {
    if s.state() == State::Idle {
        let out = s.handle(Input::Fired(Timer::ConnectRetry));
        assert!(
            out.contains(&Output::Connect) || s.state() == State::Connect,
            "{out:?}"
        );
    }
    open_of(&s.handle(Input::Connected {
        local: "198.51.100.2".parse().unwrap(),
    }))
}

fn started() -> (Session, Vec<u8>) {
    let mut s = Session::new(config());
    s.handle(Input::Start);
    let open = connect(&mut s);
    (s, open)
}

const MP_V6: [u8; 6] = [1, 4, 0, 2, 0, 1];

fn refuse(s: &mut Session, data: &[u8]) -> Vec<Output> {
    s.handle(Input::Received(wire::notification(2, 7, data)))
}

fn down_reason(out: &[Output]) -> String {
    out.iter()
        .find_map(|o| match o {
            Output::Down(reason) => Some(reason.clone()),
            _ => None,
        })
        .expect("down")
}

#[test]
fn notification_data_is_decoded() {
    let n = wire::notification(2, 7, &MP_V6);
    assert_eq!(
        wire::decode(&n, true).unwrap(),
        Received::Notification {
            code: 2,
            subcode: 7,
            data: MP_V6.to_vec()
        }
    );
}

#[test]
fn a_refused_family_is_left_out_of_the_next_open_and_the_session_comes_up() {
    let (mut s, first) = started();
    assert_eq!(codes(&first), vec![1, 1, 2, 64, 65, 69]);
    let out = refuse(&mut s, &MP_V6);
    let fallback = out
        .iter()
        .find_map(|o| match o {
            Output::Fallback(f) => Some(f.clone()),
            _ => None,
        })
        .expect("fallback");
    assert_eq!(
        fallback.left_out,
        vec![Capability::Multiprotocol(Family::Ipv6Unicast)]
    );
    let reason = down_reason(&out);
    assert!(
        reason.starts_with("peer sent NOTIFICATION 2/7 (OPEN Message Error/Unsupported Capability): the next OPEN leaves out multiprotocol-ipv6-unicast"),
        "{reason}"
    );
    // Reset like any error: disconnect, Idle, the automatic restart on ConnectRetry.
    assert!(out.contains(&Output::Disconnect));
    assert!(out.contains(&Output::Arm(Timer::ConnectRetry, Duration::from_secs(5))));
    assert_eq!(s.state(), State::Idle);
    assert_eq!(
        s.left_out(),
        &[Capability::Multiprotocol(Family::Ipv6Unicast)].into()
    );

    let second = connect(&mut s);
    let caps = capabilities(&second);
    assert_eq!(codes(&second), vec![1, 2, 64, 65, 69]);
    assert_eq!(caps[0].1, vec![0, 1, 0, 1], "IPv4 unicast only");
    // Graceful restart and ADD-PATH list only the family still offered (RFC 4724 section 3,
    // RFC 7911 section 4).
    assert_eq!(caps[2].1, vec![0, 120, 0, 1, 1, 0x80]);
    assert_eq!(caps[4].1, vec![0, 1, 1, 2]);

    s.handle(Input::Received(peer_open(&[Family::Ipv4Unicast], true)));
    let out = s.handle(Input::Received(wire::keepalive()));
    let negotiated = out
        .iter()
        .find_map(|o| match o {
            Output::Established(n) => Some(n.clone()),
            _ => None,
        })
        .expect("established");
    assert_eq!(negotiated.families, [Family::Ipv4Unicast].into());
    assert!(negotiated.graceful_restart && negotiated.four_octet_as);
    // Later connections of the session keep leaving it out.
    s.handle(Input::Closed);
    assert_eq!(codes(&connect(&mut s)), vec![1, 2, 64, 65, 69]);
}

#[test]
fn the_refusal_after_the_peers_open_in_open_confirm_counts_too() {
    let (mut s, _) = started();
    s.handle(Input::Received(peer_open(&[Family::Ipv4Unicast], true)));
    assert_eq!(s.state(), State::OpenConfirm);
    let out = refuse(&mut s, &[64, 0]);
    assert!(out.iter().any(|o| matches!(o, Output::Fallback(_))));
    assert_eq!(codes(&connect(&mut s)), vec![1, 1, 2, 65, 69]);
    // Graceful restart refused: not negotiated, though the peer offers it.
    s.handle(Input::Received(peer_open(&[Family::Ipv4Unicast], true)));
    let out = s.handle(Input::Received(wire::keepalive()));
    let Some(Output::Established(n)) = out.iter().find(|o| matches!(o, Output::Established(_))) else {
        panic!("{out:?}")
    };
    assert!(n.peer_graceful_restart && !n.graceful_restart);
}

#[test]
fn four_octet_as_refused_sends_as_trans_and_as4_path() {
    let mut config = config();
    config.local_as = 4_200_000_000;
    let mut s = Session::new(config);
    s.handle(Input::Start);
    let first = connect(&mut s);
    assert!(codes(&first).contains(&65));
    refuse(&mut s, &[65, 4, 0xfa, 0x56, 0xea, 0x00]);
    let second = connect(&mut s);
    assert!(!codes(&second).contains(&65), "{:?}", codes(&second));
    assert_eq!(&second[20..22], &wire::AS_TRANS.to_be_bytes());
    // The peer still advertises it: without ours it is not negotiated (RFC 6793 section 4).
    s.handle(Input::Received(peer_open(&[Family::Ipv4Unicast], true)));
    let out = s.handle(Input::Received(wire::keepalive()));
    let Some(Output::Established(n)) = out.iter().find(|o| matches!(o, Output::Established(_))) else {
        panic!("{out:?}")
    };
    assert!(!n.four_octet_as);
}

#[test]
fn empty_data_changes_nothing_and_says_why() {
    let (mut s, first) = started();
    let out = refuse(&mut s, &[]);
    let reason = down_reason(&out);
    assert!(reason.contains("named no capability"), "{reason}");
    assert!(s.left_out().is_empty());
    assert_eq!(connect(&mut s), first, "the same OPEN");
}

#[test]
fn a_refused_fallback_is_bounded_and_says_why() {
    let (mut s, _) = started();
    refuse(&mut s, &MP_V6);
    let second = connect(&mut s);
    // Refused again for the same capability (e.g. a router that keeps naming it): nothing new
    // to leave out, the same OPEN each time, one attempt per ConnectRetry, never a loop.
    for _ in 0..3 {
        let out = refuse(&mut s, &MP_V6);
        let reason = down_reason(&out);
        assert!(
            reason.contains("already left out") && reason.contains("same OPEN"),
            "{reason}"
        );
        assert_eq!(
            out.iter()
                .filter(|o| matches!(o, Output::Arm(Timer::ConnectRetry, _)))
                .count(),
            1
        );
        assert!(
            !out.contains(&Output::Connect),
            "no reconnect before ConnectRetry"
        );
        assert_eq!(connect(&mut s), second);
    }
    // Then naming the other family: the last one is kept.
    let out = refuse(&mut s, &[1, 4, 0, 1, 0, 1]);
    assert!(down_reason(&out).contains("last family"));
    assert_eq!(connect(&mut s), second);
}

#[test]
fn unsupported_capability_outside_the_open_exchange_is_an_ordinary_error() {
    let (mut s, _) = started();
    s.handle(Input::Received(peer_open(&[Family::Ipv4Unicast], true)));
    s.handle(Input::Received(wire::keepalive()));
    assert_eq!(s.state(), State::Established);
    let out = refuse(&mut s, &MP_V6);
    assert!(!out.iter().any(|o| matches!(o, Output::Fallback(_))));
    assert!(s.left_out().is_empty());
}

#[test]
fn a_new_configuration_starts_with_nothing_left_out() {
    let (mut s, first) = started();
    refuse(&mut s, &[69, 0]);
    assert_eq!(s.left_out(), &[Capability::AddPath].into());
    // The speaker makes a new session when the BgpPeer changes.
    let mut changed = config();
    changed.hold_time = 60;
    let mut s = Session::new(changed);
    s.handle(Input::Start);
    assert_eq!(codes(&connect(&mut s)), codes(&first));
}
