//! The checks the `decode` fuzz target runs on every input. The stable test
//! `speaker/bfd/tests/decode_robustness.rs` includes this file (`#[path]`), so the fuzzer and the
//! test exercise exactly the same code.
//!
//! For arbitrary received bytes:
//! - `wire::decode` never panics, and what it accepts satisfies RFC 5880 section 6.8.6 (version 1,
//!   Detect Mult and My Discriminator non-zero, Your Discriminator non-zero unless Down or
//!   AdminDown, no A or M bit) and encodes back to the same first 24 bytes;
//! - a session in each state (AdminDown, Down, Init, Up, and Up in a Poll Sequence) takes the
//!   packet, as addressed (Your Discriminator as decoded, and rewritten to the session's own),
//!   without panicking; every packet it sends decodes; it is Up only if the peer's packet allowed
//!   it; it keeps a deadline while it has anything timed to do.

use std::time::{Duration, Instant};

use oxelb_bfd::{
    session::{Config, Input, Session},
    wire::{self, State},
};

/// Runs every check on `data` (panics on a violation, as the fuzzer expects).
pub fn check(data: &[u8]) {
    let Ok(packet) = wire::decode(data) else {
        return;
    };
    assert_eq!(data[0] >> 5, wire::VERSION);
    assert_ne!(packet.detect_mult, 0);
    assert_ne!(packet.my_discriminator, 0);
    assert!(packet.your_discriminator != 0 || matches!(packet.state, State::Down | State::AdminDown));
    assert!(!packet.authenticated);
    let encoded = wire::encode(&packet);
    assert_eq!(encoded[..3], data[..3], "first three bytes round-trip");
    assert_eq!(encoded[4..], data[4..wire::LEN], "fields round-trip");
    assert_eq!(wire::decode(&encoded), Ok(packet));

    let now = Instant::now();
    for (name, template) in sessions(now) {
        for addressed in [packet.your_discriminator, template.local_discriminator()] {
            let mut session = template.clone();
            let before = session.state();
            let mut packet = packet;
            packet.your_discriminator = addressed;
            let at = now + Duration::from_millis(500);
            let out = session.handle(Input::Received(packet), at);
            for sent in &out.send {
                assert_eq!(
                    wire::decode(&wire::encode(sent)),
                    Ok(*sent),
                    "{name}: sends what decodes"
                );
                assert!(!(sent.poll && sent.final_), "{name}: Poll and Final together");
            }
            if session.state() == State::Up && before != State::Up {
                assert!(
                    matches!(
                        (before, packet.state),
                        (State::Down, State::Init) | (State::Init, State::Init | State::Up)
                    ),
                    "{name}: Up from {before:?} on a {:?} packet",
                    packet.state
                );
            }
            if before == State::AdminDown {
                assert_eq!(
                    session.state(),
                    State::AdminDown,
                    "{name}: AdminDown ignores packets"
                );
            }
            assert_eq!(out.next_deadline, session.next_deadline());
            // Time passes: the session must come back to rest without panicking. The longest
            // Detection Time is 255 x (2^32 - 1) microseconds, about 12.7 days.
            let later = at + Duration::from_micros(255 * u64::from(u32::MAX)) + Duration::from_secs(1);
            let _ = session.handle(Input::Tick, later);
            assert!(
                !matches!(session.state(), State::Up | State::Init),
                "{name}: still {:?} after the longest Detection Time of silence",
                session.state()
            );
        }
    }
}

/// A session in each state, built by talking to a scripted peer (discriminator 7).
pub fn sessions(now: Instant) -> Vec<(&'static str, Session)> {
    let config = Config {
        desired_min_tx_us: 100_000,
        required_min_rx_us: 100_000,
        detect_mult: 3,
    };
    let peer = |state: State, your: u32| wire::ControlPacket {
        diagnostic: wire::Diagnostic::None,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        authenticated: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 7,
        your_discriminator: your,
        desired_min_tx_us: 100_000,
        required_min_rx_us: 100_000,
        required_min_echo_rx_us: 0,
    };
    let down = Session::new(config, 42, now);
    let mut init = down.clone();
    init.handle(Input::Received(peer(State::Down, 0)), now);
    let mut up = init.clone();
    up.handle(Input::Received(peer(State::Up, 42)), now);
    let mut polling = up.clone();
    polling.handle(
        Input::Configure(Config {
            desired_min_tx_us: 300_000,
            ..config
        }),
        now,
    );
    let mut admin = up.clone();
    admin.handle(Input::AdminDown, now);
    assert_eq!(init.state(), State::Init);
    assert_eq!(up.state(), State::Up);
    assert!(polling.polling());
    vec![
        ("admin-down", admin),
        ("down", down),
        ("init", init),
        ("up", up),
        ("up-polling", polling),
    ]
}
