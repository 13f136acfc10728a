use pnet_packet::icmpv6::ndp::NeighborAdvertPacket;

use super::*;

// Captured on a veth between two network namespaces (Linux 6.x): A = 02:00:00:00:00:0a,
// 192.0.2.1, 2001:db8::1; B = 02:00:00:00:00:0b, 192.0.2.2, 2001:db8::2. `ping` from A to B.
const MAC_A: MacAddr = MacAddr(2, 0, 0, 0, 0, 0x0a);
const MAC_B: MacAddr = MacAddr(2, 0, 0, 0, 0, 0x0b);

/// A asks for 192.0.2.2.
pub(crate) const LINUX_ARP_REQUEST: &str = "ffffffffffff02000000000a08060001\
    08000604000102000000000ac0000201000000000000c0000202";
/// B's kernel answers.
const LINUX_ARP_REPLY: &str = "02000000000a02000000000b08060001\
    08000604000202000000000bc000020202000000000ac0000201";
/// A solicits 2001:db8::2 (to ff02::1:ff00:2, with its source link-layer option).
pub(crate) const LINUX_NS: &str = "3333ff00000202000000000a86dd6000\
    000000203aff20010db8000000000000000000000001ff020000000000000000\
    0001ff00000287001c1e000000002001\
    0db8000000000000000000000002010102000000000a";
/// B's kernel answers (flags S|O, target link-layer option).
const LINUX_NA: &str = "02000000000a02000000000b86dd6000\
    000000203aff20010db800000000000000000000000220010db8000000000000\
    00000000000188008a68600000002001\
    0db8000000000000000000000002020102000000000b";
/// A's duplicate address detection for 2001:db8::1: source ::, with a nonce option (RFC 7527).
pub(crate) const LINUX_DAD_NS: &str = "3333ff00000102000000000a86dd6000\
    000000203aff00000000000000000000000000000000ff020000000000000000\
    0001ff000001870059e8000000002001\
    0db80000000000000000000000010e016f9162ec127e";
/// An MLDv2 report (hop-by-hop options header first): not ours.
const LINUX_MLD: &str = "33330000001602000000000b86dd6000\
    00000038000100000000000000000000000000000000ff020000000000000000\
    0000000000163a000502000001008f00\
    6d630000000204000000ff0200000000000000000001ff00000b04000000ff02\
    00000000000000000001ff000002";
/// A router solicitation: ICMPv6, hop limit 255, but type 133.
const LINUX_RS: &str = "33330000000202000000000b86dd6000\
    000000103afffe800000000000000000\
    00fffe00000bff020000000000000000\
    00000000000285007b18000000000101\
    02000000000b";

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn golden_arp_request_parses() {
    let got = parse(&hex(LINUX_ARP_REQUEST)).unwrap();
    assert_eq!(
        got,
        Request::Arp(ArpRequest {
            sender_mac: MAC_A,
            sender_ip: Ipv4Addr::new(192, 0, 2, 1),
            target_ip: Ipv4Addr::new(192, 0, 2, 2),
        })
    );
}

#[test]
fn golden_arp_reply_is_what_linux_sends() {
    let Request::Arp(request) = parse(&hex(LINUX_ARP_REQUEST)).unwrap() else {
        panic!("not ARP")
    };
    assert_eq!(arp_reply(&request, MAC_B), hex(LINUX_ARP_REPLY));
    // And Linux's reply is not a request.
    assert_eq!(parse(&hex(LINUX_ARP_REPLY)), Err(Ignored::ArpNotRequest(2)));
}

#[test]
fn golden_ns_parses() {
    let got = parse(&hex(LINUX_NS)).unwrap();
    assert_eq!(
        got,
        Request::NeighborSolicitation(NeighborSolicitation {
            src_mac: MAC_A,
            src_ip: ip6("2001:db8::1"),
            dst_ip: ip6("ff02::1:ff00:2"),
            target: ip6("2001:db8::2"),
            source_ll_option: Some(MAC_A),
        })
    );
}

#[test]
fn golden_na_is_what_linux_sends() {
    let Request::NeighborSolicitation(ns) = parse(&hex(LINUX_NS)).unwrap() else {
        panic!("not NS")
    };
    assert_eq!(neighbor_advertisement(&ns, MAC_B), hex(LINUX_NA));
}

#[test]
fn golden_requests_are_built_as_linux_builds_them() {
    let a4 = Ipv4Addr::new(192, 0, 2, 1);
    let b4 = Ipv4Addr::new(192, 0, 2, 2);
    assert_eq!(arp_request(MAC_A, a4, b4), hex(LINUX_ARP_REQUEST));
    let ns = neighbor_solicitation(MAC_A, ip6("2001:db8::1"), ip6("2001:db8::2"));
    assert_eq!(ns, hex(LINUX_NS));
    // The DAD form: no option, so the nonce-less message is 24 bytes, and it parses.
    let dad = neighbor_solicitation(MAC_A, Ipv6Addr::UNSPECIFIED, ip6("2001:db8::1"));
    assert_eq!(dad.len(), ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + ND_MESSAGE_LEN);
    let Ok(Request::NeighborSolicitation(parsed)) = parse(&dad) else {
        panic!("DAD NS rejected")
    };
    assert_eq!(parsed.src_ip, Ipv6Addr::UNSPECIFIED);
    assert_eq!(parsed.dst_ip, ip6("ff02::1:ff00:1"));
}

#[test]
fn golden_dad_ns_parses_and_is_answered_to_all_nodes() {
    let Request::NeighborSolicitation(ns) = parse(&hex(LINUX_DAD_NS)).unwrap() else {
        panic!("not NS")
    };
    assert_eq!(ns.src_ip, Ipv6Addr::UNSPECIFIED);
    assert_eq!(ns.target, ip6("2001:db8::1"));
    assert_eq!(ns.source_ll_option, None);
    let na = neighbor_advertisement(&ns, MAC_B);
    let eth = EthernetPacket::new(&na).unwrap();
    assert_eq!(eth.get_destination(), MacAddr(0x33, 0x33, 0, 0, 0, 1));
    let ip = Ipv6Packet::new(eth.payload()).unwrap();
    assert_eq!(ip.get_destination(), ALL_NODES);
    let adv = NeighborAdvertPacket::new(ip.payload()).unwrap();
    assert_eq!(adv.get_flags(), NeighborAdvertFlags::Override);
}

#[test]
fn other_linux_traffic_is_ignored() {
    assert_eq!(parse(&hex(LINUX_MLD)), Err(Ignored::NotIcmpv6(0)));
    assert_eq!(parse(&hex(LINUX_RS)), Err(Ignored::NotNeighborSolicitation(133)));
    assert_eq!(parse(&hex(LINUX_NA)), Err(Ignored::NotNeighborSolicitation(136)));
}

#[test]
fn gratuitous_arp_is_the_request_form() {
    let ip = Ipv4Addr::new(192, 0, 2, 50);
    let frame = gratuitous_arp(ip, MAC_B);
    assert_eq!(frame.len(), ARP_FRAME_LEN);
    let eth = EthernetPacket::new(&frame).unwrap();
    assert_eq!(eth.get_destination(), BROADCAST);
    assert_eq!(eth.get_source(), MAC_B);
    let arp = ArpPacket::new(eth.payload()).unwrap();
    assert_eq!(arp.get_operation(), ArpOperations::Request);
    assert_eq!(arp.get_sender_hw_addr(), MAC_B);
    assert_eq!(arp.get_sender_proto_addr(), ip);
    assert_eq!(arp.get_target_hw_addr(), MacAddr::zero());
    assert_eq!(arp.get_target_proto_addr(), ip);
    // Our own parser sees it as gratuitous: never answered.
    assert_eq!(
        parse(&frame),
        Err(Ignored::GratuitousArp {
            sender_mac: MAC_B,
            ip
        })
    );
}

#[test]
fn unsolicited_na_round_trip() {
    let ip = ip6("2001:db8::50");
    let frame = unsolicited_neighbor_advertisement(ip, MAC_B);
    assert_eq!(frame.len(), NA_FRAME_LEN);
    let eth = EthernetPacket::new(&frame).unwrap();
    assert_eq!(eth.get_destination(), MacAddr(0x33, 0x33, 0, 0, 0, 1));
    assert_eq!(eth.get_source(), MAC_B);
    let packet = Ipv6Packet::new(eth.payload()).unwrap();
    assert_eq!(packet.get_hop_limit(), 255);
    assert_eq!(packet.get_source(), ip);
    assert_eq!(packet.get_destination(), ALL_NODES);
    let icmp = packet.payload();
    assert!(checksum_ok(ip, ALL_NODES, icmp));
    // Cross-check our checksum with pnet's implementation.
    let view = pnet_packet::icmpv6::Icmpv6Packet::new(icmp).unwrap();
    assert_eq!(
        pnet_packet::icmpv6::checksum(&view, &ip, &ALL_NODES),
        view.get_checksum()
    );
    let adv = NeighborAdvertPacket::new(icmp).unwrap();
    assert_eq!(adv.get_flags(), NeighborAdvertFlags::Override);
    assert_eq!(adv.get_target_addr(), ip);
    assert_eq!(&icmp[24..], &[2, 1, 2, 0, 0, 0, 0, 0x0b]);
}

#[test]
fn na_goes_to_the_ethernet_source_without_a_link_layer_option() {
    let ns = NeighborSolicitation {
        src_mac: MAC_A,
        src_ip: ip6("2001:db8::1"),
        dst_ip: ip6("2001:db8::2"),
        target: ip6("2001:db8::2"),
        source_ll_option: None,
    };
    let frame = neighbor_advertisement(&ns, MAC_B);
    let eth = EthernetPacket::new(&frame).unwrap();
    assert_eq!(eth.get_destination(), MAC_A);
    let adv = NeighborAdvertPacket::new(&frame[54..]).unwrap();
    assert_eq!(
        adv.get_flags(),
        NeighborAdvertFlags::Solicited | NeighborAdvertFlags::Override
    );
}

#[test]
fn arp_reply_round_trip_and_probe() {
    let request = ArpRequest {
        sender_mac: MAC_A,
        sender_ip: Ipv4Addr::UNSPECIFIED,
        target_ip: Ipv4Addr::new(192, 0, 2, 9),
    };
    let frame = arp_reply(&request, MAC_B);
    let eth = EthernetPacket::new(&frame).unwrap();
    assert_eq!(eth.get_destination(), MAC_A);
    let arp = ArpPacket::new(eth.payload()).unwrap();
    assert_eq!(arp.get_operation(), ArpOperations::Reply);
    assert_eq!(arp.get_sender_hw_addr(), MAC_B);
    assert_eq!(arp.get_sender_proto_addr(), request.target_ip);
    assert_eq!(arp.get_target_hw_addr(), MAC_A);
    assert_eq!(arp.get_target_proto_addr(), Ipv4Addr::UNSPECIFIED);
    // A request built the same way parses back to itself.
    let asked = arp_request(MAC_A, request.sender_ip, request.target_ip);
    assert_eq!(parse(&asked), Ok(Request::Arp(request)));
}

#[test]
fn solicited_node_addresses() {
    let ip = ip6("2001:db8::1234:5678");
    assert_eq!(solicited_node_multicast(ip), ip6("ff02::1:ff34:5678"));
    assert_eq!(
        solicited_node_mac(ip),
        MacAddr(0x33, 0x33, 0xff, 0x34, 0x56, 0x78)
    );
    assert!(is_solicited_node(ip6("ff02::1:ff00:2")));
    assert!(!is_solicited_node(ip6("ff02::1")));
    assert!(!is_solicited_node(ip6("ff02::2:ff00:2")));
    assert_eq!(ipv6_multicast_mac(ALL_NODES), MacAddr(0x33, 0x33, 0, 0, 0, 1));
}

/// Sets `frame[at] = value` and, for an NS, fixes the checksum so the intended check is reached.
fn mutate_ns(at: usize, value: u8) -> Result<Request, Ignored> {
    let mut frame = hex(LINUX_NS);
    frame[at] = value;
    let src = ipv6_at(&frame, 22).unwrap();
    let dst = ipv6_at(&frame, 38).unwrap();
    frame[56] = 0;
    frame[57] = 0;
    let declared = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
    let end = (54 + declared).min(frame.len());
    let sum = icmpv6_checksum(src, dst, &frame[54..end]);
    frame[56..58].copy_from_slice(&sum.to_be_bytes());
    parse(&frame)
}

#[test]
fn ns_validation_rfc4861_7_1_1() {
    assert_eq!(mutate_ns(21, 64), Err(Ignored::HopLimit(64)));
    assert_eq!(mutate_ns(55, 1), Err(Ignored::IcmpCode(1)));
    assert_eq!(mutate_ns(14, 0x40), Err(Ignored::IpVersion(4)));
    assert_eq!(
        mutate_ns(62, 0xff),
        Err(Ignored::MulticastTarget(ip6("ff01:db8::2")))
    );
    // Option length 0.
    assert_eq!(mutate_ns(79, 0), Err(Ignored::BadOption));
    // Option longer than the message (and >= 32: the length pnet's own parser overflows on).
    assert_eq!(mutate_ns(79, 40), Err(Ignored::BadOption));
    // Payload length past the frame.
    assert_eq!(
        mutate_ns(19, 0x21),
        Err(Ignored::Ipv6PayloadLength {
            declared: 0x21,
            available: 32
        })
    );
    // Shorter payload length: the option is cut off, the rest counts as padding; 31 bytes
    // leave a 7-byte option region, which is malformed.
    assert_eq!(mutate_ns(19, 31), Err(Ignored::BadOption));
    // 24 bytes: no options at all, still a valid NS.
    let Ok(Request::NeighborSolicitation(ns)) = mutate_ns(19, 24) else {
        panic!("24-byte NS rejected")
    };
    assert_eq!(ns.source_ll_option, None);
    assert_eq!(mutate_ns(19, 23), Err(Ignored::TooShort(Layer::Icmpv6)));
}

#[test]
fn ns_unspecified_source_rules() {
    // :: source with a source link-layer option.
    let mut frame = hex(LINUX_NS);
    frame[22..38].fill(0);
    let fix = |frame: &mut Vec<u8>| {
        let (src, dst) = (ipv6_at(frame, 22).unwrap(), ipv6_at(frame, 38).unwrap());
        frame[56..58].fill(0);
        let sum = icmpv6_checksum(src, dst, &frame[54..]);
        frame[56..58].copy_from_slice(&sum.to_be_bytes());
    };
    fix(&mut frame);
    assert_eq!(parse(&frame), Err(Ignored::UnspecifiedSourceWithLinkLayer));
    // :: source to a unicast destination.
    frame[38..54].copy_from_slice(&ip6("2001:db8::2").octets());
    fix(&mut frame);
    assert_eq!(
        parse(&frame),
        Err(Ignored::UnspecifiedSourceDestination(ip6("2001:db8::2")))
    );
}

#[test]
fn every_checksum_error_is_caught() {
    let good = hex(LINUX_NS);
    for at in 54..good.len() {
        let mut frame = good.clone();
        frame[at] ^= 0x10;
        if at == 54 || at == 55 {
            continue; // Type and code are checked before the checksum.
        }
        assert_eq!(parse(&frame), Err(Ignored::Checksum), "byte {at}");
    }
    // The pseudo-header counts: a changed source address breaks the checksum.
    let mut frame = good;
    frame[37] ^= 1;
    assert_eq!(parse(&frame), Err(Ignored::Checksum));
}

#[test]
fn arp_validation_rfc826() {
    let good = hex(LINUX_ARP_REQUEST);
    let at = |i: usize, v: u8| {
        let mut f = good.clone();
        f[i] = v;
        parse(&f)
    };
    assert_eq!(at(15, 6), Err(Ignored::ArpHardwareType(6)));
    assert_eq!(at(16, 0x86), Err(Ignored::ArpProtocolType(0x8600)));
    assert_eq!(
        at(18, 8),
        Err(Ignored::ArpAddressLengths {
            hardware: 8,
            protocol: 4
        })
    );
    assert_eq!(
        at(19, 16),
        Err(Ignored::ArpAddressLengths {
            hardware: 6,
            protocol: 16
        })
    );
    assert_eq!(at(21, 3), Err(Ignored::ArpNotRequest(3)));
    assert_eq!(
        at(22, 0x01),
        Err(Ignored::ArpGroupSender(MacAddr(1, 0, 0, 0, 0, 0x0a)))
    );
    assert_eq!(at(12, 0x08).map(|_| ()), Ok(())); // Unchanged byte: still fine.
    assert_eq!(at(13, 0x00), Err(Ignored::EtherType(0x0800)));
    // Ethernet padding after the ARP packet is fine (frames on the wire are at least 60 bytes).
    let mut padded = good.clone();
    padded.resize(60, 0);
    assert!(parse(&padded).is_ok());
}

#[test]
fn every_truncation_is_too_short_never_a_panic() {
    for golden in [LINUX_ARP_REQUEST, LINUX_NS, LINUX_DAD_NS, LINUX_MLD] {
        let frame = hex(golden);
        for len in 0..frame.len() {
            assert!(parse(&frame[..len]).is_err(), "{golden} cut at {len}");
        }
    }
    assert_eq!(parse(&[]), Err(Ignored::TooShort(Layer::Ethernet)));
    assert_eq!(
        parse(&hex(LINUX_ARP_REQUEST)[..41]),
        Err(Ignored::TooShort(Layer::Arp))
    );
    assert_eq!(parse(&hex(LINUX_NS)[..53]), Err(Ignored::TooShort(Layer::Ipv6)));
}
