//! Property tests of the layer2 frame parser and builders: no input makes `parse` panic, and what
//! we build parses back to what we meant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, Ipv6Addr};

use oxelb_speaker::layer2::frames::{
    ArpRequest, Ignored, MacAddr, NeighborSolicitation, Request, arp_reply, arp_request, gratuitous_arp,
    neighbor_advertisement, neighbor_solicitation, parse, solicited_node_multicast,
    unsolicited_neighbor_advertisement,
};
use proptest::prelude::*;

/// Frames Linux sent on a veth (see the unit tests of `frames`): ARP request, NS, DAD NS, MLD report.
const GOLDEN: [&str; 4] = [
    "ffffffffffff02000000000a0806000108000604000102000000000ac0000201000000000000c0000202",
    "3333ff00000202000000000a86dd6000000000203aff20010db8000000000000000000000001ff02000000000000\
     00000001ff00000287001c1e000000002001\
     0db8000000000000000000000002010102000000000a",
    "3333ff00000102000000000a86dd6000000000203aff00000000000000000000000000000000ff02000000000000\
     00000001ff000001870059e8000000002001\
     0db80000000000000000000000010e016f9162ec127e",
    "33330000001602000000000b86dd600000000038000100000000000000000000000000000000ff02000000000000\
     00000000000000163a000502000001008f00\
     6d630000000204000000ff0200000000000000000001ff00000b04000000ff02\
     00000000000000000001ff000002",
];

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr::from)
}

/// A unicast MAC (I/G bit clear), as a real sender has.
fn unicast_mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(|mut m| {
        m[0] &= 0xfe;
        MacAddr::from(m)
    })
}

/// Whatever the request, our answer is a well-formed frame that is not itself a request.
fn check_answer(request: &Request, our_mac: MacAddr) {
    match request {
        Request::Arp(arp) => {
            let reply = arp_reply(arp, our_mac);
            assert_eq!(parse(&reply), Err(Ignored::ArpNotRequest(2)));
        }
        Request::NeighborSolicitation(ns) => {
            let na = neighbor_advertisement(ns, our_mac);
            assert_eq!(parse(&na), Err(Ignored::NotNeighborSolicitation(136)));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        if let Ok(request) = parse(&bytes) {
            check_answer(&request, MacAddr::new(2, 0, 0, 0, 0, 1));
        }
    }

    /// Random bytes behind a valid ARP or IPv6 Ethernet header, so the deeper parsers are reached.
    #[test]
    fn random_payloads_never_panic(
        ethertype in prop_oneof![Just([0x08u8, 0x06]), Just([0x86, 0xdd])],
        payload in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut frame = hex("3333ff00000202000000000a");
        frame.extend_from_slice(&ethertype);
        frame.extend_from_slice(&payload);
        if let Ok(request) = parse(&frame) {
            check_answer(&request, MacAddr::new(2, 0, 0, 0, 0, 1));
        }
    }

    /// Valid frames with a few bytes changed, then cut or extended.
    #[test]
    fn mutated_golden_frames_never_panic(
        which in 0..GOLDEN.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        resize in prop_oneof![Just(None), (0usize..140).prop_map(Some)],
    ) {
        let mut frame = hex(GOLDEN[which]);
        for (at, value) in edits {
            let i = at.index(frame.len());
            frame[i] = value;
        }
        if let Some(len) = resize {
            frame.resize(len, 0xa5);
        }
        if let Ok(request) = parse(&frame) {
            check_answer(&request, MacAddr::new(2, 0, 0, 0, 0, 1));
        }
    }

    #[test]
    fn arp_request_round_trip(sender in unicast_mac(), a in any::<u32>(), b in any::<u32>(), ours in mac()) {
        prop_assume!(a != b);
        let (sender_ip, target_ip) = (Ipv4Addr::from(a), Ipv4Addr::from(b));
        let parsed = parse(&arp_request(sender, sender_ip, target_ip));
        let request = ArpRequest { sender_mac: sender, sender_ip, target_ip };
        prop_assert_eq!(parsed, Ok(Request::Arp(request)));
        check_answer(&Request::Arp(request), ours);
        // The gratuitous form is never taken for a question.
        prop_assert_eq!(
            parse(&gratuitous_arp(target_ip, sender)),
            Err(Ignored::GratuitousArp { sender_mac: sender, ip: target_ip })
        );
    }

    #[test]
    fn neighbor_solicitation_round_trip(
        sender in mac(),
        src in any::<u128>(),
        target in any::<u128>(),
        ours in mac(),
    ) {
        let (src_ip, target) = (Ipv6Addr::from(src), Ipv6Addr::from(target));
        prop_assume!(!target.is_multicast());
        let parsed = parse(&neighbor_solicitation(sender, src_ip, target));
        let ns = NeighborSolicitation {
            src_mac: sender,
            src_ip,
            dst_ip: solicited_node_multicast(target),
            target,
            source_ll_option: (!src_ip.is_unspecified()).then_some(sender),
        };
        prop_assert_eq!(parsed, Ok(Request::NeighborSolicitation(ns)));
        check_answer(&Request::NeighborSolicitation(ns), ours);
        prop_assert_eq!(
            parse(&unsolicited_neighbor_advertisement(target, ours)),
            Err(Ignored::NotNeighborSolicitation(136))
        );
    }
}
