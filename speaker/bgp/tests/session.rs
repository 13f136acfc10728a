//! The session state machine, input by input, with the exact outputs asserted. The peer's messages
//! are built with the same wire builders (checked against netgauze in `wire`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, net::IpAddr, time::Duration};

use oxelb_bgp::{
    session::{Input, Output, Session, SessionConfig, State, Timer},
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
        restarting: true,
        add_path_send: false,
        passive: false,
        next_hop_v4: None,
        next_hop_v6: Some("2001:db8::11".parse().unwrap()),
    }
}

fn peer_open(asn: u32, hold: u16, families: &[Family]) -> Vec<u8> {
    wire::open(&OpenParams {
        local_as: asn,
        hold_time: hold,
        router_id: "198.51.100.1".parse().unwrap(),
        families: families.iter().copied().collect(),
        graceful_restart: Some((120, false)),
        add_path_send: false,
        route_refresh: true,
        four_octet_as: true,
    })
}

fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// How [`established`] sessions encode their routes (eBGP, 4-octet AS, the IPv4 session's local
/// address as next hop).
fn established_params() -> wire::UpdateParams {
    wire::UpdateParams {
        local_as: 64512,
        ibgp: false,
        four_octet_as: true,
        next_hop_v4: Some("198.51.100.2".parse().unwrap()),
        next_hop_v6: Some("2001:db8::11".parse().unwrap()),
        add_path: BTreeSet::new(),
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The messages sent in `outputs`, decoded.
fn sent(outputs: &[Output]) -> Vec<Received> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send(bytes) => Some(wire::decode(bytes, true).unwrap()),
            _ => None,
        })
        .collect()
}

fn notification_of(outputs: &[Output]) -> Option<(u8, u8)> {
    sent(outputs).into_iter().find_map(|m| match m {
        Received::Notification { code, subcode, .. } => Some((code, subcode)),
        _ => None,
    })
}

/// A session brought to Established with a peer offering `families`.
fn established(families: &[Family]) -> Session {
    let mut s = Session::new(config());
    s.handle(Input::Start);
    s.handle(Input::Connected {
        local: "198.51.100.2".parse().unwrap(),
    });
    s.handle(Input::Received(peer_open(65001, 30, families)));
    let out = s.handle(Input::Received(wire::keepalive()));
    assert!(out.iter().any(|o| matches!(o, Output::Established(_))), "{out:?}");
    s
}

#[test]
fn active_open_to_established_with_exact_outputs() {
    let mut s = Session::new(config());
    assert_eq!(
        s.handle(Input::Start),
        vec![Output::Connect, Output::Arm(Timer::ConnectRetry, secs(5))]
    );
    assert_eq!(s.state(), State::Connect);
    assert_eq!(s.handle(Input::ConnectFailed), vec![]);
    assert_eq!(
        s.handle(Input::Fired(Timer::ConnectRetry)),
        vec![Output::Connect, Output::Arm(Timer::ConnectRetry, secs(5))]
    );

    let out = s.handle(Input::Connected {
        local: "198.51.100.2".parse().unwrap(),
    });
    assert_eq!(out.len(), 3);
    assert_eq!(out[0], Output::Cancel(Timer::ConnectRetry));
    assert!(matches!(
        &sent(&out)[0],
        Received::Open {
            peer_as: 64512,
            hold_time: 90,
            ..
        }
    ));
    assert_eq!(out[2], Output::Arm(Timer::Hold, secs(240)));
    assert_eq!(s.state(), State::OpenSent);

    // The peer offers hold 30: the smaller wins; keepalive a third of it.
    let out = s.handle(Input::Received(peer_open(65001, 30, &[Family::Ipv4Unicast])));
    assert_eq!(sent(&out), vec![Received::Keepalive]);
    assert_eq!(
        &out[1..],
        &[
            Output::Arm(Timer::Hold, secs(30)),
            Output::Arm(Timer::Keepalive, secs(10))
        ]
    );
    assert_eq!(s.state(), State::OpenConfirm);

    let out = s.handle(Input::Received(wire::keepalive()));
    assert_eq!(out[0], Output::Arm(Timer::Hold, secs(30)));
    match &out[1] {
        Output::Established(n) => {
            assert_eq!((n.hold_time, n.keepalive), (30, 10));
            assert_eq!(n.families, [Family::Ipv4Unicast].into(), "only what both offered");
            assert!(n.four_octet_as && n.peer_graceful_restart && n.peer_route_refresh);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        out.len(),
        2,
        "no routes and no End-of-RIB before the table is ready"
    );
    assert_eq!(s.state(), State::Established);
    assert_eq!(
        (
            s.sent.open,
            s.sent.keepalive,
            s.received.open,
            s.received.keepalive
        ),
        (1, 1, 1, 1)
    );

    // Keepalives on the timer.
    assert_eq!(
        s.handle(Input::Fired(Timer::Keepalive)),
        vec![
            Output::Send(wire::keepalive()),
            Output::Arm(Timer::Keepalive, secs(10))
        ]
    );
}

#[test]
fn initial_table_and_end_of_rib_only_after_table_ready_then_deltas() {
    let mut s = established(&[Family::Ipv4Unicast, Family::Ipv6Unicast]);
    assert!(
        s.handle(Input::Routes(wire::host_routes(&ips(&[
            "198.51.100.5",
            "2001:db8::5"
        ]))))
        .is_empty(),
        "not before TableReady"
    );
    let out = s.handle(Input::TableReady);
    let updates: Vec<&Output> = out.iter().filter(|o| matches!(o, Output::Send(_))).collect();
    assert_eq!(updates.len(), 4, "v4 UPDATE, v6 UPDATE, two End-of-RIBs: {out:?}");
    assert_eq!(
        out.last(),
        Some(&Output::Send(wire::end_of_rib(Family::Ipv6Unicast)))
    );
    assert_eq!(
        s.advertised(),
        &wire::host_routes(&ips(&["198.51.100.5", "2001:db8::5"]))
    );

    // Only the difference goes out afterwards.
    let out = s.handle(Input::Routes(wire::host_routes(&ips(&[
        "198.51.100.5",
        "198.51.100.6",
    ]))));
    let p = established_params();
    let mut expected = wire::withdraw(
        wire::host_routes(&ips(&["2001:db8::5"])).keys(),
        Family::Ipv6Unicast,
        &p,
    );
    expected.splice(
        0..0,
        wire::announce(
            &wire::host_routes(&ips(&["198.51.100.6"])),
            Family::Ipv4Unicast,
            &p,
        ),
    );
    assert_eq!(out, expected.into_iter().map(Output::Send).collect::<Vec<_>>());
    assert!(
        s.handle(Input::Routes(wire::host_routes(&ips(&[
            "198.51.100.5",
            "198.51.100.6"
        ]))))
        .is_empty(),
        "no change, nothing sent"
    );
}

#[test]
fn a_policy_change_re_announces_only_the_changed_prefixes_and_keeps_the_session() {
    let mut s = established(&[Family::Ipv4Unicast, Family::Ipv6Unicast]);
    s.handle(Input::TableReady);
    let mut routes = wire::host_routes(&ips(&["198.51.100.5", "198.51.100.6", "2001:db8::5"]));
    s.handle(Input::Routes(routes.clone()));
    let p = established_params();
    // One prefix gets communities: one UPDATE for it, no withdrawal (it replaces the route).
    let tagged = std::sync::Arc::new(wire::Attributes {
        communities: vec![0xFFFF_FF01],
        ..wire::Attributes::default()
    });
    let five = wire::Prefix::host("198.51.100.5".parse().unwrap());
    routes.insert(five, tagged.clone());
    let out = s.handle(Input::Routes(routes.clone()));
    let only: wire::Routes = [(five, tagged)].into();
    assert_eq!(
        out,
        wire::announce(&only, Family::Ipv4Unicast, &p)
            .into_iter()
            .map(Output::Send)
            .collect::<Vec<_>>()
    );
    assert_eq!(s.state(), State::Established);
    // An aggregate replacing two host routes: withdraw both, announce the aggregate.
    let aggregate = wire::Prefix::new("198.51.100.0".parse().unwrap(), 28).unwrap();
    let mut aggregated = routes.clone();
    aggregated.retain(|prefix, _| prefix.family() == Family::Ipv6Unicast);
    aggregated.insert(aggregate, std::sync::Arc::new(wire::Attributes::default()));
    let out = s.handle(Input::Routes(aggregated.clone()));
    let sent = sent(&out);
    assert_eq!(sent.len(), 2, "one withdrawal, one announcement: {out:?}");
    assert_eq!(s.advertised(), &aggregated);
    assert_eq!(s.state(), State::Established);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Disconnect | Output::Down(_)))
    );
}

#[test]
fn families_the_peer_did_not_offer_are_never_announced() {
    let mut s = established(&[Family::Ipv4Unicast]);
    s.handle(Input::TableReady);
    assert!(
        s.handle(Input::Routes(wire::host_routes(&ips(&["2001:db8::5"]))))
            .is_empty()
    );
    assert!(s.advertised().is_empty());
}

#[test]
fn echoed_routes_are_accepted_and_ignored() {
    let mut s = established(&[Family::Ipv4Unicast]);
    let p = wire::UpdateParams {
        local_as: 65001,
        ibgp: false,
        four_octet_as: true,
        next_hop_v4: Some("198.51.100.1".parse().unwrap()),
        next_hop_v6: None,
        add_path: BTreeSet::new(),
    };
    let echo = wire::announce(
        &wire::host_routes(&ips(&["198.51.100.5"])),
        Family::Ipv4Unicast,
        &p,
    )
    .remove(0);
    assert_eq!(
        s.handle(Input::Received(echo)),
        vec![Output::Arm(Timer::Hold, secs(30))]
    );
    assert_eq!(s.state(), State::Established);
}

#[test]
fn open_errors_get_the_rfc_notification_and_the_session_restarts_itself() {
    for (open, code) in [
        (peer_open(65099, 90, &[Family::Ipv4Unicast]), (2, 2)),
        (peer_open(65001, 2, &[Family::Ipv4Unicast]), (2, 6)),
    ] {
        let mut s = Session::new(config());
        s.handle(Input::Start);
        s.handle(Input::Connected {
            local: "198.51.100.2".parse().unwrap(),
        });
        let out = s.handle(Input::Received(open));
        assert_eq!(notification_of(&out), Some(code), "{out:?}");
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Down(reason) if reason.contains("OPEN Message Error")))
        );
        assert!(out.contains(&Output::Disconnect));
        assert_eq!(
            out.last(),
            Some(&Output::Arm(Timer::ConnectRetry, secs(5))),
            "automatic restart"
        );
        assert_eq!(s.state(), State::Idle);
        assert_eq!(s.handle(Input::Fired(Timer::ConnectRetry))[0], Output::Connect);
    }
    // A version-3 OPEN: Unsupported Version Number, with the version we speak as data.
    let mut s = Session::new(config());
    s.handle(Input::Start);
    s.handle(Input::Connected {
        local: "198.51.100.2".parse().unwrap(),
    });
    let mut v3 = peer_open(65001, 90, &[Family::Ipv4Unicast]);
    v3[19] = 3;
    let out = s.handle(Input::Received(v3));
    match &out[0] {
        Output::Send(bytes) => assert_eq!(&bytes[18..], &[3, 2, 1, 0, 4]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hold_timer_expiry_notification_and_peer_notification() {
    let mut s = established(&[Family::Ipv4Unicast]);
    let out = s.handle(Input::Fired(Timer::Hold));
    assert_eq!(notification_of(&out), Some((4, 0)));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Down(r) if r.contains("hold timer expired")))
    );
    assert_eq!(s.state(), State::Idle);

    let mut s = established(&[Family::Ipv4Unicast]);
    let out = s.handle(Input::Received(wire::notification(6, 4, &[])));
    assert!(
        out.iter().any(
            |o| matches!(o, Output::Down(r) if r == "peer sent NOTIFICATION 6/4 (Cease/Administrative Reset)")
        ),
        "{out:?}"
    );
    assert!(
        notification_of(&out).is_none(),
        "never answer a NOTIFICATION with one"
    );
}

#[test]
fn unexpected_messages_and_garbage_are_fsm_and_header_errors() {
    let mut s = Session::new(config());
    s.handle(Input::Start);
    s.handle(Input::Connected {
        local: "198.51.100.2".parse().unwrap(),
    });
    let out = s.handle(Input::Received(wire::keepalive()));
    assert_eq!(notification_of(&out), Some((5, 1)), "KEEPALIVE in OpenSent");

    let mut s = established(&[Family::Ipv4Unicast]);
    let out = s.handle(Input::Received(vec![0u8; 40]));
    assert_eq!(notification_of(&out), Some((1, 1)), "not synchronized");
    let mut s = established(&[Family::Ipv4Unicast]);
    let out = s.handle(Input::Received(peer_open(65001, 90, &[Family::Ipv4Unicast])));
    assert_eq!(notification_of(&out), Some((5, 3)), "OPEN in Established");
}

#[test]
fn stop_sends_cease_and_never_restarts() {
    let mut s = established(&[Family::Ipv4Unicast]);
    let out = s.handle(Input::Stop);
    assert_eq!(notification_of(&out), Some((6, 2)));
    assert!(out.contains(&Output::Down("stopped by configuration".into())));
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Arm(Timer::ConnectRetry, _)))
    );
    assert!(s.handle(Input::Fired(Timer::ConnectRetry)).is_empty());
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn route_refresh_resends_the_family_and_end_of_rib() {
    let mut s = established(&[Family::Ipv4Unicast]);
    s.handle(Input::Routes(wire::host_routes(&ips(&["198.51.100.5"]))));
    s.handle(Input::TableReady);
    // ROUTE-REFRESH for IPv4 unicast (RFC 2918): AFI 1, reserved, SAFI 1.
    let mut refresh = vec![0xff; 16];
    refresh.extend_from_slice(&[0, 23, 5, 0, 1, 0, 1]);
    let out = s.handle(Input::Received(refresh));
    let messages = sent(&out);
    assert_eq!(messages.len(), 2, "{out:?}");
    assert_eq!(
        out.last(),
        Some(&Output::Send(wire::end_of_rib(Family::Ipv4Unicast)))
    );
}

#[test]
fn passive_sessions_wait_for_the_router() {
    let mut s = Session::new(SessionConfig {
        passive: true,
        ..config()
    });
    assert!(s.handle(Input::Start).is_empty());
    assert_eq!(s.state(), State::Active);
    let out = s.handle(Input::Connected {
        local: "198.51.100.2".parse().unwrap(),
    });
    assert!(matches!(sent(&out)[0], Received::Open { .. }));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]
    #[test]
    fn no_input_sequence_panics(steps in proptest::collection::vec(0u8..12, 0..40), noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
        let mut s = Session::new(config());
        for step in steps {
            let input = match step {
                0 => Input::Start,
                1 => Input::Stop,
                2 => Input::Connected { local: "198.51.100.2".parse().unwrap() },
                3 => Input::Closed,
                4 => Input::Received(peer_open(65001, 9, &[Family::Ipv4Unicast])),
                5 => Input::Received(wire::keepalive()),
                6 => Input::Received(noise.clone()),
                7 => Input::Fired(Timer::Hold),
                8 => Input::Fired(Timer::Keepalive),
                9 => Input::Fired(Timer::ConnectRetry),
                10 => Input::Routes(wire::host_routes(&ips(&["198.51.100.5"]))),
                _ => Input::TableReady,
            };
            let _ = s.handle(input);
        }
    }
}
