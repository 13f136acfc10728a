//! The fuzz target's checks (`fuzz/src/lib.rs`, included below) on stable Rust, over a fixed
//! input set: every golden message, messages from our own builders, and deterministic mutations of
//! each (every bit flipped, every truncation, length fields rewritten, seeded random edits). No
//! input may panic the framer, the decoder or a session; unmodified messages must decode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, net::IpAddr, sync::Arc};

use oxelb_bgp::{
    session::{Input, State},
    wire::{self, Family, OpenParams, UpdateParams},
};

#[path = "../fuzz/src/lib.rs"]
mod checks;

/// The golden captures (`golden/*.hex`), as bytes, by file name.
fn golden() -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/tests/golden", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "hex"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.trim();
            let bytes = (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
                .collect();
            (path.file_name().unwrap().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 2, "golden files missing in {dir}");
    out
}

/// Messages of every type from our builders, with the AS width each must be decoded with.
fn built() -> Vec<(String, Vec<u8>, bool)> {
    let ips: BTreeSet<IpAddr> = ["203.0.113.5", "203.0.113.6", "2001:db8:ffff::5"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    // Host routes of no policy, and of a pool with communities, large communities and LOCAL_PREF,
    // plus an aggregate of each family: COMMUNITIES, LARGE_COMMUNITY and short prefixes mutated
    // below.
    let mut ips_routes = wire::host_routes(&ips);
    let policy = Arc::new(wire::Attributes {
        communities: vec![0xFDE8_0064, 0xFFFF_FF01],
        large_communities: vec![[64512, 1, 2]],
        local_pref: Some(200),
    });
    for (ip, len) in [("198.51.100.64", 26), ("2001:db8:1::", 64), ("203.0.113.9", 32)] {
        ips_routes.insert(
            wire::Prefix::new(ip.parse().unwrap(), len).unwrap(),
            policy.clone(),
        );
    }
    let ips = ips_routes;
    let p = UpdateParams {
        local_as: 64512,
        ibgp: false,
        four_octet_as: true,
        next_hop_v4: Some("198.51.100.2".parse().unwrap()),
        next_hop_v6: Some("2001:db8::2".parse().unwrap()),
        add_path: BTreeSet::new(),
    };
    let as_trans = UpdateParams {
        local_as: 4_200_000_001,
        four_octet_as: false,
        ..p.clone()
    };
    let add_path = UpdateParams {
        add_path: [Family::Ipv4Unicast].into(),
        ..p.clone()
    };
    let mut refresh = vec![0xff; 16];
    refresh.extend_from_slice(&[0, 23, 5, 0, 1, 0, 1]);
    let mut out = vec![
        ("keepalive".to_owned(), wire::keepalive(), true),
        ("notification".into(), wire::notification(6, 2, &[]), true),
        ("route-refresh".into(), refresh, true),
        (
            "open".into(),
            wire::open(&OpenParams {
                local_as: 4_200_000_001,
                hold_time: 90,
                router_id: "198.51.100.2".parse().unwrap(),
                families: [Family::Ipv4Unicast, Family::Ipv6Unicast].into(),
                graceful_restart: Some((120, true)),
                add_path_send: true,
                route_refresh: true,
                four_octet_as: true,
            }),
            true,
        ),
        ("eor-v4".into(), wire::end_of_rib(Family::Ipv4Unicast), true),
        ("eor-v6".into(), wire::end_of_rib(Family::Ipv6Unicast), true),
    ];
    for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
        let ibgp = UpdateParams {
            ibgp: true,
            ..p.clone()
        };
        for (name, params) in [("4-octet", &p), ("as-trans", &as_trans), ("ibgp", &ibgp)] {
            let four = params.four_octet_as;
            for m in wire::announce(&ips, family, params) {
                out.push((format!("announce-{family:?}-{name}"), m, four));
            }
            for m in wire::withdraw(ips.keys(), family, params) {
                out.push((format!("withdraw-{family:?}-{name}"), m, four));
            }
        }
    }
    // ADD-PATH UPDATEs carry a path identifier the decoder (negotiated without ADD-PATH receive)
    // reads as prefix bytes: garbage it must survive, not a message it must accept.
    for m in wire::announce(&ips, Family::Ipv4Unicast, &add_path) {
        out.push(("announce-add-path".into(), m, true));
    }
    out
}

/// Every seed message: golden and built (the add-path one is only a mutation seed).
fn seeds() -> Vec<Vec<u8>> {
    golden()
        .into_iter()
        .map(|(_, bytes)| bytes)
        .chain(built().into_iter().map(|(_, bytes, _)| bytes))
        .collect()
}

#[test]
fn unmodified_golden_and_built_messages_frame_and_decode() {
    for (name, bytes) in golden() {
        assert_eq!(
            wire::next_frame(&mut bytes.clone()),
            Ok(Some(bytes.clone())),
            "{name}: one whole message"
        );
        for four in [true, false] {
            assert!(
                wire::decode(&bytes, four).is_ok(),
                "{name} (four_octet_as {four}): {:?}",
                wire::decode(&bytes, four)
            );
        }
        checks::check(&bytes);
    }
    for (name, bytes, four) in built() {
        assert_eq!(
            wire::next_frame(&mut bytes.clone()),
            Ok(Some(bytes.clone())),
            "{name}"
        );
        if name != "announce-add-path" {
            assert!(wire::decode(&bytes, four).is_ok(), "{name}");
        }
        checks::check(&bytes);
    }
}

#[test]
fn every_truncation_waits_for_more_and_never_panics() {
    for frame in seeds() {
        for len in 0..frame.len() {
            let prefix = &frame[..len];
            assert_eq!(
                wire::next_frame(&mut prefix.to_vec()),
                Ok(None),
                "a prefix of a good message is incomplete, not an error: {prefix:02x?}"
            );
            for four in [true, false] {
                // A NOTIFICATION is reported however short; anything else cut short is refused.
                if frame[18] != 3 {
                    assert!(wire::decode(prefix, four).is_err(), "{prefix:02x?}");
                }
            }
            checks::check(prefix);
        }
    }
}

#[test]
fn every_bit_flip_never_panics() {
    for frame in seeds() {
        for bit in 0..frame.len() * 8 {
            let mut m = frame.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            checks::check(&m);
        }
    }
}

#[test]
fn rewritten_length_fields_never_panic() {
    for frame in seeds() {
        // The header's length: every value around the minimums and the real one, and the edges.
        let real = frame.len() as u16;
        let lengths = (0..=30).chain(real.saturating_sub(10)..=real + 10);
        for length in lengths.chain([4095, 4096, 4097, 0x7fff, 0xffff]) {
            let mut m = frame.clone();
            m[16..18].copy_from_slice(&length.to_be_bytes());
            checks::check(&m);
            // With room behind it, so that a longer length frames.
            m.resize(frame.len() + 64, 0);
            checks::check(&m);
        }
        // Every body byte (optional-parameter, capability, attribute, prefix lengths among them)
        // set to the values a length check trips over.
        for i in wire::HEADER_LEN..frame.len() {
            let original = frame[i];
            for value in [
                0,
                1,
                2,
                4,
                16,
                32,
                128,
                0x7f,
                0xff,
                original.wrapping_add(1),
                original.wrapping_sub(1),
            ] {
                let mut m = frame.clone();
                m[i] = value;
                checks::check(&m);
            }
        }
    }
}

/// xorshift64 (Marsaglia): deterministic, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn seeded_random_edits_never_panic() {
    let seeds = seeds();
    let mut rng = XorShift(0x0e1b_5eed_0bad_f00d);
    for round in 0..6000 {
        let mut m = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(m.len() + 1);
            match rng.below(6) {
                0 if at < m.len() => m[at] = rng.next() as u8,
                1 => m.insert(at, rng.next() as u8),
                2 if at < m.len() => {
                    m.remove(at);
                }
                3 => {
                    // Splice in part of another message.
                    let other = &seeds[rng.below(seeds.len())];
                    let from = rng.below(other.len());
                    let to = from + rng.below(other.len() - from + 1);
                    m.splice(at..at, other[from..to].iter().copied());
                }
                4 => m.truncate(at),
                _ => {
                    // Append a whole message: a stream of several.
                    m.extend_from_slice(&seeds[rng.below(seeds.len())]);
                }
            }
        }
        checks::check(&m);
    }
}

#[test]
fn a_stream_split_at_every_byte_keeps_the_session_up() {
    let keepalive = wire::keepalive();
    let update = built()
        .into_iter()
        .find(|(name, ..)| name == "announce-Ipv4Unicast-4-octet")
        .unwrap()
        .1;
    let mut refresh = vec![0xff; 16];
    refresh.extend_from_slice(&[0, 23, 5, 0, 1, 0, 1]);
    let stream: Vec<u8> = [keepalive.clone(), update, refresh, keepalive].concat();
    for cut in 0..=stream.len() {
        let mut s = checks::templates()[0].clone();
        let before = s.received.total;
        for part in [&stream[..cut], &stream[cut..]] {
            let out = s.handle(Input::Received(part.to_vec()));
            assert_eq!(s.state(), State::Established, "cut at {cut}: {out:?}");
        }
        assert_eq!(s.received.total - before, 4, "cut at {cut}");
    }
    checks::frames(&stream);
}
