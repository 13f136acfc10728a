//! Golden bytes: BFD Control packets captured with tcpdump from FRR 8.4's bfdd and BIRD 2.0.12
//! talking to each other in a lab (IPv4 and IPv6 single hop; session start, the Poll Sequence that
//! lowers the interval once Up, an interval change to 100 ms, AdminDown, Detection Time expiry).
//! File names say what each is: `<router>-<family>-<state>[-poll|-final]-diag<N>-tx<ms>.hex`.
//! Each must decode to what its name says and encode back to the same bytes; and our own session
//! must send, byte for byte, what these routers send in the same situation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use support::golden;

use oxelb_bfd::{
    session::{Config, Input, Session},
    wire::{self, Diagnostic, State},
};

fn file(name: &str) -> Vec<u8> {
    golden()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("golden file {name}.hex"))
        .1
}

#[test]
fn every_capture_decodes_to_what_its_name_says_and_encodes_back() {
    let all = golden();
    assert!(all.len() >= 30, "{} golden files", all.len());
    for router in ["frr-8.4", "bird-2.0.12"] {
        for family in ["v4", "v6"] {
            let prefix = format!("{router}-{family}-");
            assert!(
                all.iter().any(|(n, _)| n.starts_with(&prefix)),
                "no capture {prefix}*"
            );
        }
    }
    for (name, bytes) in &all {
        let packet = wire::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let parts: Vec<&str> = name.split('-').collect();
        let state = match parts[3] {
            "admindown" => State::AdminDown,
            "down" => State::Down,
            "init" => State::Init,
            "up" => State::Up,
            other => panic!("{name}: state {other}"),
        };
        assert_eq!(packet.state, state, "{name}");
        assert_eq!(packet.poll, name.contains("-poll-"), "{name}: Poll");
        assert_eq!(packet.final_, name.contains("-final-"), "{name}: Final");
        let diag: u8 = name.split("-diag").nth(1).unwrap()[..1].parse().unwrap();
        assert_eq!(packet.diagnostic.bits(), diag, "{name}");
        let tx_ms: u32 = name.rsplit("-tx").next().unwrap().parse().unwrap();
        assert_eq!(packet.desired_min_tx_us, tx_ms * 1000, "{name}");
        assert_eq!(packet.detect_mult, 3, "{name}");
        assert!(!packet.demand && !packet.authenticated, "{name}");
        assert_eq!(
            wire::encode(&packet).as_slice(),
            bytes.as_slice(),
            "{name}: round trip"
        );
    }
}

#[test]
fn known_fields_of_frr_and_bird() {
    // FRR offers echo reception at 50 ms; BIRD has no Echo function.
    let frr = wire::decode(&file("frr-8.4-v4-up-diag0-tx300")).unwrap();
    assert_eq!(frr.required_min_echo_rx_us, 50_000);
    assert_eq!(frr.my_discriminator, 0xfaac_714a);
    assert_eq!(frr.your_discriminator, 0x5bd5_4ae6);
    let bird = wire::decode(&file("bird-2.0.12-v4-up-diag0-tx300")).unwrap();
    assert_eq!(bird.required_min_echo_rx_us, 0);
    assert_eq!(
        (bird.my_discriminator, bird.your_discriminator),
        (0x5bd5_4ae6, 0xfaac_714a)
    );
    // A peer that saw FRR stop says so with diagnostic 3 while polling its slow rate again.
    let bird = wire::decode(&file("bird-2.0.12-v4-down-poll-diag3-tx1000")).unwrap();
    assert_eq!(bird.diagnostic, Diagnostic::NeighborDown);
    // FRR 8.4 sends AdminDown with diagnostic 0, not 7 (Administratively Down).
    let frr = wire::decode(&file("frr-8.4-v4-admindown-diag0-tx100")).unwrap();
    assert_eq!(frr.diagnostic, Diagnostic::None);
    let frr = wire::decode(&file("frr-8.4-v4-down-diag1-tx100")).unwrap();
    assert_eq!(frr.diagnostic, Diagnostic::DetectionTimeExpired);
    assert_eq!(
        frr.your_discriminator, 0,
        "the peer forgotten after the Detection Time"
    );
}

/// Our session, fed BIRD's side of the capture, sends what FRR sent (apart from FRR's echo
/// offer, which we do not make), byte for byte in the fields that matter.
#[test]
fn our_session_answers_birds_packets_as_frr_did() {
    let now = Instant::now();
    let mut ours = Session::new(Config::default(), 0xfaac_714a, now);
    let first = ours.handle(Input::Tick, now);
    let expect_down = file("frr-8.4-v4-down-diag0-tx1000");
    assert_eq!(first.send.len(), 1);
    // FRR also slows its Required Min RX to 1 s while not Up (RFC 5880 asks that only of
    // Desired Min TX); BIRD does not, nor do we: compare up to Desired Min TX.
    assert_eq!(wire::encode(&first.send[0])[..16], expect_down[..16]);
    // BIRD's Down: we go Init, as FRR did.
    let bird_down = wire::decode(&file("bird-2.0.12-v4-down-diag0-tx1000")).unwrap();
    let out = ours.handle(Input::Received(bird_down), now);
    assert_eq!(ours.state(), State::Init);
    assert_eq!(
        wire::encode(out.send.last().unwrap())[..16],
        file("frr-8.4-v4-init-diag0-tx1000")[..16]
    );
    // BIRD's Up with Poll (it lowers its rate to 300 ms): we go Up, answer Final, and start
    // our own poll to lower ours, as FRR did.
    let bird_up_poll = wire::decode(&file("bird-2.0.12-v4-up-poll-diag0-tx300")).unwrap();
    let out = ours.handle(Input::Received(bird_up_poll), now);
    assert_eq!(ours.state(), State::Up);
    let sent: Vec<[u8; 24]> = out.send.iter().map(wire::encode).collect();
    let frr_poll = file("frr-8.4-v4-up-poll-diag0-tx300");
    assert!(sent.iter().any(|p| p[..20] == frr_poll[..20]), "{sent:02x?}");
    // The Final answers the peer's poll: it carries our state; Poll cleared.
    let fin = out.send.iter().find(|p| p.final_).unwrap();
    assert!(!fin.poll);
    // BIRD's Final ends our poll; then our periodic packets match FRR's steady Up.
    let bird_final = wire::decode(&file("bird-2.0.12-v4-up-final-diag0-tx300")).unwrap();
    ours.handle(Input::Received(bird_final), now);
    assert!(!ours.polling());
    let later = ours.next_deadline().unwrap();
    let out = ours.handle(Input::Tick, later);
    assert_eq!(
        wire::encode(&out.send[0])[..20],
        file("frr-8.4-v4-up-diag0-tx300")[..20]
    );
    // BIRD polls again: we answer with exactly FRR's Final.
    let mut poll = bird_final;
    poll.final_ = false;
    poll.poll = true;
    let out = ours.handle(Input::Received(poll), later);
    assert_eq!(
        wire::encode(&out.send[0])[..20],
        file("frr-8.4-v4-up-final-diag0-tx300")[..20]
    );
}

/// BIRD's first packet is ours too when we take BIRD's discriminator: a Down with Desired Min TX
/// 1 s (section 6.8.3), Required Min RX 300 ms, no echo.
#[test]
fn our_first_packet_is_birds() {
    let now = Instant::now();
    let mut ours = Session::new(Config::default(), 0x5bd5_4ae6, now);
    let out = ours.handle(Input::Tick, now);
    assert_eq!(
        wire::encode(&out.send[0]).as_slice(),
        file("bird-2.0.12-v4-down-diag0-tx1000").as_slice()
    );
}
