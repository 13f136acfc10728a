//! The fuzz target's checks (`fuzz/src/lib.rs`, included below) on stable Rust, over a fixed
//! input set: every golden packet and deterministic mutations of each (every truncation, every
//! bit flipped, the Length field rewritten to every value, trailing bytes, seeded random edits),
//! plus the packets the RFC says to discard, each refused for the right reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use oxelb_bfd::wire::{self, State, WireError};

#[path = "../fuzz/src/lib.rs"]
mod checks;
mod support;

fn golden() -> Vec<Vec<u8>> {
    let out: Vec<Vec<u8>> = support::golden().into_iter().map(|(_, bytes)| bytes).collect();
    assert!(out.len() >= 30);
    out
}

#[test]
fn every_truncation() {
    for seed in golden() {
        for len in 0..seed.len() {
            assert_eq!(wire::decode(&seed[..len]), Err(WireError::Truncated { len }));
            checks::check(&seed[..len]);
        }
    }
}

#[test]
fn every_bit_flip() {
    let mut accepted = 0;
    for seed in golden() {
        for bit in 0..seed.len() * 8 {
            let mut bytes = seed.clone();
            bytes[bit / 8] ^= 0x80 >> (bit % 8);
            accepted += usize::from(wire::decode(&bytes).is_ok());
            checks::check(&bytes);
        }
    }
    // Flips in the interval fields, the diagnostic and most flags still decode: the session
    // sees them; flips in version, length or the zero checks are refused.
    assert!(accepted > 0);
}

#[test]
fn every_length_field_and_trailing_bytes() {
    for seed in golden() {
        for length in 0..=255u8 {
            for extra in [0usize, 1, 2, 8, 231] {
                let mut bytes = seed.clone();
                bytes[3] = length;
                bytes.resize(24 + extra, 0xa5);
                let result = wire::decode(&bytes);
                let fits = usize::from(length) >= 24 && usize::from(length) <= bytes.len();
                assert_eq!(result.is_ok(), fits, "length {length}, {} bytes", bytes.len());
                checks::check(&bytes);
            }
        }
    }
}

#[test]
fn seeded_random_edits() {
    let mut rng: u64 = 0x5eed_bfd0;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let seeds = golden();
    for round in 0..20_000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..1 + next() % 6 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        if next() % 8 == 0 {
            bytes.truncate((next() % 30) as usize);
        }
        checks::check(&bytes);
    }
}

#[test]
fn packets_rfc_5880_section_6_8_6_discards() {
    let good = golden()[0].clone();
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        wire::decode(&b)
    };
    assert_eq!(
        edit(&|b| b[0] = (2 << 5) | (b[0] & 0x1f)),
        Err(WireError::Version(2))
    );
    assert_eq!(edit(&|b| b[0] &= 0x1f), Err(WireError::Version(0)));
    assert_eq!(edit(&|b| b[2] = 0), Err(WireError::DetectMultZero));
    assert_eq!(edit(&|b| b[1] |= 0x01), Err(WireError::Multipoint));
    assert_eq!(edit(&|b| b[4..8].fill(0)), Err(WireError::MyDiscriminatorZero));
    // Your Discriminator 0 is fine in Down and AdminDown only.
    for state in State::ALL {
        let result = edit(&|b| {
            b[1] = (b[1] & 0x3f) | (state.bits() << 6);
            b[8..12].fill(0);
        });
        match state {
            State::Down | State::AdminDown => assert!(result.is_ok(), "{state:?}"),
            _ => assert_eq!(result, Err(WireError::YourDiscriminatorZero(state))),
        }
    }
    // The A bit: 26 bytes at least, and refused as unconfigured authentication.
    assert!(matches!(
        edit(&|b| b[1] |= 0x04),
        Err(WireError::Length {
            authenticated: true,
            ..
        })
    ));
    assert_eq!(
        edit(&|b| {
            b[1] |= 0x04;
            b[3] = 28;
            b.extend_from_slice(&[1, 4, 0, 0]);
        }),
        Err(WireError::Authentication)
    );
    // Intervals of 0 decode (the session handles them): Required Min RX 0 means "send me
    // nothing periodic", Desired Min TX 0 is reserved.
    let zero = edit(&|b| b[12..24].fill(0)).unwrap();
    assert_eq!((zero.desired_min_tx_us, zero.required_min_rx_us), (0, 0));
    checks::check(&wire::encode(&zero));
}
