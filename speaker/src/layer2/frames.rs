//! ARP (RFC 826) and IPv6 Neighbor Discovery (RFC 4861) frames: parsing what clients ask, building
//! what we answer and announce. Pure: bytes in, bytes out; [`parse`] never panics on any input.
//!
//! Fixed headers are read and written with `pnet_packet`'s views. NDP options are walked by hand:
//! pnet 0.35 computes an option's length as `u8 * 8`, which overflows (and panics in debug builds)
//! for a length field of 32 or more, so its option iterator must never see network input.
//!
//! Frames are built without Ethernet padding (42 bytes for ARP): the NIC driver pads to the
//! 60-byte minimum, as it does for the kernel's own ARP frames.

use std::net::{Ipv4Addr, Ipv6Addr};

use pnet_packet::{
    Packet as _,
    arp::{ArpHardwareTypes, ArpOperation, ArpOperations, ArpPacket, MutableArpPacket},
    ethernet::{EtherType, EtherTypes, EthernetPacket, MutableEthernetPacket},
    icmpv6::{
        Icmpv6Code, Icmpv6Types,
        ndp::{MutableNeighborAdvertPacket, MutableNeighborSolicitPacket, NeighborAdvertFlags},
    },
    ip::IpNextHeaderProtocols,
    ipv6::{Ipv6Packet, MutableIpv6Packet},
};

pub use pnet_base::MacAddr;

/// Length of an Ethernet II header (no VLAN tag: AF_PACKET hands frames to us untagged).
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Length of an ARP packet for Ethernet/IPv4 (RFC 826: 8 fixed bytes, 2 MACs, 2 IPv4 addresses).
pub const ARP_LEN: usize = 28;
/// Length of the fixed IPv6 header (RFC 8200 section 3).
pub const IPV6_HEADER_LEN: usize = 40;
/// Length of an NS or NA message without options (RFC 4861 sections 4.3 and 4.4).
pub const ND_MESSAGE_LEN: usize = 24;
/// Length of an Ethernet link-layer address option (RFC 4861 section 4.6.1: length 1, in units of 8).
pub const LINK_LAYER_OPTION_LEN: usize = 8;
/// Length of the ARP frames we build.
pub const ARP_FRAME_LEN: usize = ETHERNET_HEADER_LEN + ARP_LEN;
/// Length of the NA frames we build (one target link-layer address option).
pub const NA_FRAME_LEN: usize =
    ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + ND_MESSAGE_LEN + LINK_LAYER_OPTION_LEN;

/// The all-nodes multicast address `ff02::1` (RFC 4291 section 2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The Ethernet broadcast address.
pub const BROADCAST: MacAddr = MacAddr(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

/// The hop limit of every ND message, sent and required on receipt (RFC 4861 sections 7.1.1, 7.1.2):
/// a router would have decremented it, so 255 proves the sender is on-link.
const ND_HOP_LIMIT: u8 = 255;
/// ICMPv6 type of a Neighbor Solicitation (RFC 4861 section 4.3).
const ICMPV6_NS: u8 = 135;
/// NDP option types (RFC 4861 section 4.6).
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;

/// An ARP request for an IPv4 address (RFC 826, operation 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpRequest {
    /// Who asks (the ARP sender hardware address): the reply goes to it.
    pub sender_mac: MacAddr,
    /// The asker's IP; `0.0.0.0` for an RFC 5227 probe.
    pub sender_ip: Ipv4Addr,
    /// The IP asked for.
    pub target_ip: Ipv4Addr,
}

/// An IPv6 Neighbor Solicitation (RFC 4861 section 4.3) that passed the validation of section 7.1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborSolicitation {
    /// The Ethernet source address.
    pub src_mac: MacAddr,
    /// The IPv6 source; `::` during duplicate address detection.
    pub src_ip: Ipv6Addr,
    /// The IPv6 destination (the target's solicited-node group, or the target itself for NUD).
    pub dst_ip: Ipv6Addr,
    /// The address asked for.
    pub target: Ipv6Addr,
    /// The source link-layer address option, if present (never with `src_ip == ::`).
    pub source_ll_option: Option<MacAddr>,
}

/// A frame we may have to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// An ARP request.
    Arp(ArpRequest),
    /// A Neighbor Solicitation.
    NeighborSolicitation(NeighborSolicitation),
}

/// Which header a frame was too short for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// The Ethernet header.
    Ethernet,
    /// The ARP packet.
    Arp,
    /// The fixed IPv6 header.
    Ipv6,
    /// The ICMPv6 NS message (24 bytes).
    Icmpv6,
}

/// Why a frame is not a request we answer. Expected and frequent (other traffic on the wire):
/// callers count these, they do not warn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    /// The frame ends before the header ends.
    #[error("too short for the {0:?} header")]
    TooShort(Layer),
    /// Neither ARP nor IPv6.
    #[error("ethertype {0:#06x} is neither ARP nor IPv6")]
    EtherType(u16),
    /// ARP hardware type is not Ethernet (1).
    #[error("ARP hardware type {0} is not Ethernet")]
    ArpHardwareType(u16),
    /// ARP protocol type is not IPv4 (0x0800).
    #[error("ARP protocol type {0:#06x} is not IPv4")]
    ArpProtocolType(u16),
    /// ARP address lengths are not 6 and 4.
    #[error("ARP address lengths {hardware}/{protocol} are not 6/4")]
    ArpAddressLengths {
        /// The hardware address length.
        hardware: u8,
        /// The protocol address length.
        protocol: u8,
    },
    /// An ARP reply or other operation.
    #[error("ARP operation {0} is not a request")]
    ArpNotRequest(u16),
    /// A gratuitous ARP (sender IP = target IP): someone announces `ip`, nobody asks. Answering it
    /// would be wrong; seeing one for an IP we announce means another host claims it.
    #[error("gratuitous ARP from {sender_mac} for {ip}")]
    GratuitousArp {
        /// Who announces.
        sender_mac: MacAddr,
        /// The IP announced.
        ip: Ipv4Addr,
    },
    /// The ARP sender hardware address is a multicast or broadcast address.
    #[error("ARP sender {0} is a group address")]
    ArpGroupSender(MacAddr),
    /// The IP version field is not 6.
    #[error("IP version {0} in an IPv6 frame")]
    IpVersion(u8),
    /// The IPv6 payload length runs past the frame.
    #[error("IPv6 payload length {declared} exceeds the {available} bytes present")]
    Ipv6PayloadLength {
        /// The payload length field.
        declared: u16,
        /// The bytes after the IPv6 header.
        available: usize,
    },
    /// The next header is not ICMPv6 (58). NS with extension headers are ignored too, as the BPF
    /// filter does.
    #[error("IPv6 next header {0} is not ICMPv6")]
    NotIcmpv6(u8),
    /// An ICMPv6 message other than a Neighbor Solicitation.
    #[error("ICMPv6 type {0} is not a Neighbor Solicitation")]
    NotNeighborSolicitation(u8),
    /// RFC 4861 7.1.1: the hop limit must be 255 (the sender is on-link).
    #[error("hop limit {0} is not 255")]
    HopLimit(u8),
    /// RFC 4861 7.1.1: the ICMP code must be 0.
    #[error("ICMPv6 code {0} is not 0")]
    IcmpCode(u8),
    /// The ICMPv6 checksum over the pseudo-header (RFC 8200 section 8.1) is wrong.
    #[error("bad ICMPv6 checksum")]
    Checksum,
    /// RFC 4861 7.1.1: the target must not be a multicast address.
    #[error("target {0} is multicast")]
    MulticastTarget(Ipv6Addr),
    /// RFC 4861 7.1.1: an option has length 0, or runs past the message.
    #[error("malformed NDP option")]
    BadOption,
    /// RFC 4861 7.1.1: with source `::` the destination must be a solicited-node address.
    #[error("source :: but destination {0} is not a solicited-node address")]
    UnspecifiedSourceDestination(Ipv6Addr),
    /// RFC 4861 7.1.1: with source `::` there must be no source link-layer address option.
    #[error("source :: with a source link-layer address option")]
    UnspecifiedSourceWithLinkLayer,
}

/// Parses a whole Ethernet frame as an ARP request or a Neighbor Solicitation.
pub fn parse(frame: &[u8]) -> Result<Request, Ignored> {
    let ethernet = EthernetPacket::new(frame).ok_or(Ignored::TooShort(Layer::Ethernet))?;
    let ethertype = ethernet.get_ethertype();
    if ethertype == EtherTypes::Arp {
        parse_arp(ethernet.payload()).map(Request::Arp)
    } else if ethertype == EtherTypes::Ipv6 {
        parse_ns(ethernet.get_source(), ethernet.payload()).map(Request::NeighborSolicitation)
    } else {
        Err(Ignored::EtherType(ethertype.0))
    }
}

/// Parses the ARP packet after the Ethernet header (Ethernet padding may follow).
fn parse_arp(payload: &[u8]) -> Result<ArpRequest, Ignored> {
    let arp = ArpPacket::new(payload).ok_or(Ignored::TooShort(Layer::Arp))?;
    // RFC 826 "Packet Reception": check hardware and protocol types and lengths first.
    if arp.get_hardware_type() != ArpHardwareTypes::Ethernet {
        return Err(Ignored::ArpHardwareType(arp.get_hardware_type().0));
    }
    if arp.get_protocol_type() != EtherTypes::Ipv4 {
        return Err(Ignored::ArpProtocolType(arp.get_protocol_type().0));
    }
    let (hardware, protocol) = (arp.get_hw_addr_len(), arp.get_proto_addr_len());
    if (hardware, protocol) != (6, 4) {
        return Err(Ignored::ArpAddressLengths { hardware, protocol });
    }
    if arp.get_operation() != ArpOperations::Request {
        return Err(Ignored::ArpNotRequest(arp.get_operation().0));
    }
    let sender_mac = arp.get_sender_hw_addr();
    if is_group_mac(sender_mac) {
        return Err(Ignored::ArpGroupSender(sender_mac));
    }
    let (sender_ip, target_ip) = (arp.get_sender_proto_addr(), arp.get_target_proto_addr());
    if sender_ip == target_ip {
        return Err(Ignored::GratuitousArp {
            sender_mac,
            ip: sender_ip,
        });
    }
    Ok(ArpRequest {
        sender_mac,
        sender_ip,
        target_ip,
    })
}

/// Parses the IPv6 packet after the Ethernet header, validating per RFC 4861 section 7.1.1.
fn parse_ns(src_mac: MacAddr, payload: &[u8]) -> Result<NeighborSolicitation, Ignored> {
    let ip = Ipv6Packet::new(payload).ok_or(Ignored::TooShort(Layer::Ipv6))?;
    if ip.get_version() != 6 {
        return Err(Ignored::IpVersion(ip.get_version()));
    }
    if ip.get_next_header() != IpNextHeaderProtocols::Icmpv6 {
        return Err(Ignored::NotIcmpv6(ip.get_next_header().0));
    }
    // The ICMPv6 message is exactly payload_length bytes; anything after is Ethernet padding.
    let declared = ip.get_payload_length();
    let after_header = payload.get(IPV6_HEADER_LEN..).unwrap_or_default();
    let message = after_header
        .get(..usize::from(declared))
        .ok_or(Ignored::Ipv6PayloadLength {
            declared,
            available: after_header.len(),
        })?;
    let (&icmp_type, &code) = match message {
        [t, c, ..] => (t, c),
        _ => return Err(Ignored::TooShort(Layer::Icmpv6)),
    };
    if icmp_type != ICMPV6_NS {
        return Err(Ignored::NotNeighborSolicitation(icmp_type));
    }
    if ip.get_hop_limit() != ND_HOP_LIMIT {
        return Err(Ignored::HopLimit(ip.get_hop_limit()));
    }
    if code != 0 {
        return Err(Ignored::IcmpCode(code));
    }
    // RFC 4861 7.1.1: "ICMP length (derived from the IP length) is 24 or more octets".
    if message.len() < ND_MESSAGE_LEN {
        return Err(Ignored::TooShort(Layer::Icmpv6));
    }
    let (src_ip, dst_ip) = (ip.get_source(), ip.get_destination());
    if !checksum_ok(src_ip, dst_ip, message) {
        return Err(Ignored::Checksum);
    }
    let target = ipv6_at(message, 8).ok_or(Ignored::TooShort(Layer::Icmpv6))?;
    if target.is_multicast() {
        return Err(Ignored::MulticastTarget(target));
    }
    let source_ll_option = source_link_layer(message.get(ND_MESSAGE_LEN..).unwrap_or_default())?;
    if src_ip.is_unspecified() {
        if !is_solicited_node(dst_ip) {
            return Err(Ignored::UnspecifiedSourceDestination(dst_ip));
        }
        if source_ll_option.is_some() {
            return Err(Ignored::UnspecifiedSourceWithLinkLayer);
        }
    }
    Ok(NeighborSolicitation {
        src_mac,
        src_ip,
        dst_ip,
        target,
        source_ll_option,
    })
}

/// Walks the NDP options (RFC 4861 section 4.6) and returns the source link-layer address, if any.
/// Unknown options are skipped (section 7.1.1); a zero length or an overrun rejects the message.
fn source_link_layer(mut options: &[u8]) -> Result<Option<MacAddr>, Ignored> {
    let mut found = None;
    while !options.is_empty() {
        let [kind, units, ..] = *options else {
            return Err(Ignored::BadOption);
        };
        let len = usize::from(units) * 8;
        if len == 0 || len > options.len() {
            return Err(Ignored::BadOption);
        }
        if kind == OPT_SOURCE_LL && found.is_none() {
            // Ethernet: 6 bytes after type and length (RFC 2464 section 6); a longer option of
            // another link type still starts with them.
            if let Some(&[a, b, c, d, e, f]) = options.get(2..8) {
                found = Some(MacAddr(a, b, c, d, e, f));
            }
        }
        options = options.get(len..).unwrap_or_default();
    }
    Ok(found)
}

fn ipv6_at(bytes: &[u8], offset: usize) -> Option<Ipv6Addr> {
    let octets: [u8; 16] = bytes.get(offset..offset + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(octets))
}

fn is_group_mac(mac: MacAddr) -> bool {
    // The I/G bit, the least significant bit of the first octet (IEEE 802): broadcast included.
    mac.0 & 1 == 1
}

/// Whether `ip` is a solicited-node multicast address `ff02::1:ffXX:XXXX` (RFC 4291 section 2.7.1).
pub fn is_solicited_node(ip: Ipv6Addr) -> bool {
    let o = ip.octets();
    o[..13] == solicited_node_multicast(Ipv6Addr::UNSPECIFIED).octets()[..13]
}

/// The solicited-node multicast address of `ip`: `ff02::1:ff` followed by its low 24 bits (RFC 4291
/// section 2.7.1). A Neighbor Solicitation for `ip` is sent there.
pub fn solicited_node_multicast(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet address of an IPv6 multicast group: `33:33` followed by the group's low 32 bits
/// (RFC 2464 section 7).
pub fn ipv6_multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr(0x33, 0x33, o[12], o[13], o[14], o[15])
}

/// The Ethernet address NS for `ip` arrive on, `33:33:ff:XX:XX:XX`: join it with
/// `PACKET_ADD_MEMBERSHIP` for every IPv6 address announced, or the NIC may filter them out.
pub fn solicited_node_mac(ip: Ipv6Addr) -> MacAddr {
    ipv6_multicast_mac(solicited_node_multicast(ip))
}

/// Sums 16-bit big-endian words in ones' complement, without the final inversion.
fn ones_complement_sum(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    // Fold the carries back in (RFC 1071): each fold shrinks the sum, so this terminates.
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// The sum over the IPv6 pseudo-header of an ICMPv6 message (RFC 8200 section 8.1).
fn pseudo_header_sum(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> u32 {
    let mut sum = ones_complement_sum(0, &src.octets());
    sum = ones_complement_sum(sum, &dst.octets());
    // Upper-layer packet length (32 bits; an ND message is far below 4 GiB), 3 zero bytes, 58.
    sum = ones_complement_sum(sum, &u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    ones_complement_sum(sum, &[0, 0, 0, IpNextHeaderProtocols::Icmpv6.0])
}

/// Whether `message` (checksum field included) sums to all ones with its pseudo-header.
fn checksum_ok(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> bool {
    ones_complement_sum(pseudo_header_sum(src, dst, message.len()), message) == 0xffff
}

/// The ICMPv6 checksum of `message`, whose checksum field (bytes 2-3) must be zero.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let sum = ones_complement_sum(pseudo_header_sum(src, dst, message.len()), message);
    // The sum is folded to 16 bits, so the conversion cannot fail.
    !u16::try_from(sum).unwrap_or(u16::MAX)
}

/// Writes an Ethernet header into the start of `buf` (at least [`ETHERNET_HEADER_LEN`] long).
fn write_ethernet(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: EtherType) {
    if let Some(mut eth) = MutableEthernetPacket::new(buf) {
        eth.set_destination(dst);
        eth.set_source(src);
        eth.set_ethertype(ethertype);
    }
}

/// An Ethernet/IPv4 ARP frame (42 bytes).
fn arp_frame(
    eth_dst: MacAddr,
    operation: ArpOperation,
    sender: (MacAddr, Ipv4Addr),
    target: (MacAddr, Ipv4Addr),
) -> Vec<u8> {
    let mut buf = vec![0u8; ARP_FRAME_LEN];
    write_ethernet(&mut buf, eth_dst, sender.0, EtherTypes::Arp);
    // The buffer is sized for both headers, so the view always exists.
    if let Some(mut arp) = buf.get_mut(ETHERNET_HEADER_LEN..).and_then(MutableArpPacket::new) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(operation);
        arp.set_sender_hw_addr(sender.0);
        arp.set_sender_proto_addr(sender.1);
        arp.set_target_hw_addr(target.0);
        arp.set_target_proto_addr(target.1);
    }
    buf
}

/// The reply to `request`, from `our_mac`: unicast to the asker (RFC 826: swap sender and target,
/// put our address in the sender hardware field, operation 2). To an RFC 5227 probe (sender IP
/// `0.0.0.0`) the reply goes to the prober's MAC with target IP `0.0.0.0`, as Linux answers.
pub fn arp_reply(request: &ArpRequest, our_mac: MacAddr) -> Vec<u8> {
    arp_frame(
        request.sender_mac,
        ArpOperations::Reply,
        (our_mac, request.target_ip),
        (request.sender_mac, request.sender_ip),
    )
}

/// A gratuitous ARP announcing `ip` at `our_mac`, in the *request* form (RFC 5227 section 3:
/// sender IP = target IP, target MAC zero, broadcast). Linux ignores the reply form with a
/// broadcast target MAC within its locktime, so the request form is the one that moves clients.
pub fn gratuitous_arp(ip: Ipv4Addr, our_mac: MacAddr) -> Vec<u8> {
    arp_frame(
        BROADCAST,
        ArpOperations::Request,
        (our_mac, ip),
        (MacAddr::zero(), ip),
    )
}

/// A Neighbor Solicitation or Advertisement frame (RFC 4861 sections 4.3, 4.4) with one
/// link-layer address option carrying `our_mac`, hop limit 255 and its checksum.
fn nd_frame(
    eth_dst: MacAddr,
    ips: (Ipv6Addr, Ipv6Addr),
    kind: NdKind,
    target: Ipv6Addr,
    our_mac: MacAddr,
) -> Vec<u8> {
    let (src_ip, dst_ip) = ips;
    // No option from the unspecified address (RFC 4861 4.3): the source link-layer option is
    // absent in duplicate address detection.
    let with_option = !src_ip.is_unspecified();
    let icmp_len = ND_MESSAGE_LEN + if with_option { LINK_LAYER_OPTION_LEN } else { 0 };
    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + icmp_len];
    write_ethernet(&mut buf, eth_dst, our_mac, EtherTypes::Ipv6);
    let (_, rest) = buf.split_at_mut(ETHERNET_HEADER_LEN);
    let (ip_header, icmp) = rest.split_at_mut(IPV6_HEADER_LEN);
    // Sized above: every view below exists.
    if let Some(mut ip) = MutableIpv6Packet::new(ip_header) {
        ip.set_version(6);
        ip.set_payload_length(u16::try_from(icmp_len).unwrap_or(u16::MAX));
        ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
        ip.set_hop_limit(ND_HOP_LIMIT);
        ip.set_source(src_ip);
        ip.set_destination(dst_ip);
    }
    let option_type = match kind {
        NdKind::Solicitation => {
            if let Some(mut ns) = MutableNeighborSolicitPacket::new(icmp) {
                ns.set_icmpv6_type(Icmpv6Types::NeighborSolicit);
                ns.set_icmpv6_code(Icmpv6Code(0));
                ns.set_target_addr(target);
            }
            OPT_SOURCE_LL
        }
        NdKind::Advertisement { flags } => {
            if let Some(mut na) = MutableNeighborAdvertPacket::new(icmp) {
                na.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
                na.set_icmpv6_code(Icmpv6Code(0));
                na.set_flags(flags);
                na.set_target_addr(target);
            }
            OPT_TARGET_LL
        }
    };
    // The link-layer address option (RFC 4861 4.6.1), written by hand (see module docs).
    let m = our_mac;
    if with_option && let Some(option) = icmp.get_mut(ND_MESSAGE_LEN..) {
        option.copy_from_slice(&[option_type, 1, m.0, m.1, m.2, m.3, m.4, m.5]);
    }
    let checksum = icmpv6_checksum(src_ip, dst_ip, icmp);
    if let Some(field) = icmp.get_mut(2..4) {
        field.copy_from_slice(&checksum.to_be_bytes());
    }
    buf
}

/// Which ND message [`nd_frame`] builds.
#[derive(Clone, Copy)]
enum NdKind {
    Solicitation,
    Advertisement { flags: u8 },
}

/// A Neighbor Advertisement of `target` at `our_mac`; its IPv6 source is the target itself, an
/// address we answer for (RFC 4861 7.2.4 asks for an address of the interface; Linux does the same).
fn na_frame(eth_dst: MacAddr, dst_ip: Ipv6Addr, target: Ipv6Addr, flags: u8, our_mac: MacAddr) -> Vec<u8> {
    nd_frame(
        eth_dst,
        (target, dst_ip),
        NdKind::Advertisement { flags },
        target,
        our_mac,
    )
}

/// An ARP request for `target_ip` from `sender_ip` at `our_mac`, broadcast, as Linux sends it (for
/// tests and probes; the speaker itself only answers and announces).
pub fn arp_request(our_mac: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        BROADCAST,
        ArpOperations::Request,
        (our_mac, sender_ip),
        (MacAddr::zero(), target_ip),
    )
}

/// A Neighbor Solicitation for `target` from `src_ip` at `our_mac`, to the target's solicited-node
/// group, as Linux sends it (RFC 4861 7.2.2; for tests and probes). With source `::` (duplicate
/// address detection) it carries no source link-layer option.
pub fn neighbor_solicitation(our_mac: MacAddr, src_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node_multicast(target);
    nd_frame(
        ipv6_multicast_mac(group),
        (src_ip, group),
        NdKind::Solicitation,
        target,
        our_mac,
    )
}

/// The Neighbor Advertisement answering `ns` for its target, from `our_mac` (RFC 4861 7.2.4):
/// Solicited and Override set, unicast to the solicitor (to its source link-layer option, else its
/// Ethernet source). If the solicitor is doing duplicate address detection (source `::`), the
/// answer goes to all-nodes `ff02::1` with Solicited clear, as 7.2.4 requires.
pub fn neighbor_advertisement(ns: &NeighborSolicitation, our_mac: MacAddr) -> Vec<u8> {
    if ns.src_ip.is_unspecified() {
        return na_frame(
            ipv6_multicast_mac(ALL_NODES),
            ALL_NODES,
            ns.target,
            NeighborAdvertFlags::Override,
            our_mac,
        );
    }
    na_frame(
        ns.source_ll_option.unwrap_or(ns.src_mac),
        ns.src_ip,
        ns.target,
        NeighborAdvertFlags::Solicited | NeighborAdvertFlags::Override,
        our_mac,
    )
}

/// An unsolicited Neighbor Advertisement announcing `ip` at `our_mac` (RFC 4861 7.2.6): to
/// all-nodes, Override set so that caches update, Solicited clear.
pub fn unsolicited_neighbor_advertisement(ip: Ipv6Addr, our_mac: MacAddr) -> Vec<u8> {
    na_frame(
        ipv6_multicast_mac(ALL_NODES),
        ALL_NODES,
        ip,
        NeighborAdvertFlags::Override,
        our_mac,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
