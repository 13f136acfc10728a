//! BGP messages and ARP packets out of a lab's packet capture, with the time each one was on the
//! wire.
//!
//! Benchmarks capture the router's side of a lab with `tcpdump -w` and use this to tell the
//! sender's part of a figure (how long after Established its table was on the wire) from the
//! receiving router's part. It reads the classic libpcap format (the one `tcpdump -w` writes) of
//! Ethernet frames carrying IPv4 TCP, follows each direction of each connection by sequence
//! number and splits the byte stream into BGP messages (RFC 4271 §4.1: 16-octet marker, 2-octet
//! length, 1-octet type). Lab links are veths: no loss and no reordering, so a segment that does
//! not continue its stream exactly (a retransmission) is skipped, not reassembled.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddrV4},
    path::Path,
    time::Duration,
};

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file could not be read.
    #[error("cannot read the capture {path}: {source}")]
    Io {
        /// The capture file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Not a libpcap file with Ethernet frames (`tcpdump -w` on an Ethernet or veth interface).
    #[error("{path} is not a libpcap capture of Ethernet frames: {reason}")]
    Format {
        /// The capture file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// One BGP message seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpMessage {
    /// When the segment that completed the message was captured (since the Unix epoch).
    pub at: Duration,
    /// Sender.
    pub from: SocketAddrV4,
    /// Receiver.
    pub to: SocketAddrV4,
    /// Message type (RFC 4271 §4.1): 1 OPEN, 2 UPDATE, 3 NOTIFICATION, 4 KEEPALIVE.
    pub kind: u8,
    /// IPv4 prefixes in an UPDATE's NLRI field (RFC 4271 §4.3); 0 for other messages.
    pub announced: u32,
    /// Whether the message is the IPv4 unicast End-of-RIB marker (RFC 4724 §2: an UPDATE with
    /// nothing in it).
    pub end_of_rib: bool,
    /// The whole message, header included.
    pub bytes: Vec<u8>,
}

/// BGP message type KEEPALIVE (RFC 4271 §4.1).
pub const KEEPALIVE: u8 = 4;
/// BGP message type UPDATE (RFC 4271 §4.1).
pub const UPDATE: u8 = 2;

/// Every BGP message (TCP port 179 on either side) in the capture at `path`, in capture order. A
/// capture still being written may end in half a record: that record is left out.
pub fn bgp_messages(path: &Path) -> Result<Vec<BgpMessage>, PcapError> {
    let bytes = std::fs::read(path).map_err(|source| PcapError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&bytes).map_err(|reason| PcapError::Format {
        path: path.display().to_string(),
        reason,
    })
}

/// One direction of one TCP connection: the next sequence number expected and the bytes not yet
/// forming a whole message.
#[derive(Default)]
struct Stream {
    next_seq: Option<u32>,
    pending: Vec<u8>,
}

/// The records of a classic libpcap file of Ethernet frames: each frame with its capture time
/// (since the Unix epoch). A record cut short (a capture still being written) ends the list.
fn records(bytes: &[u8]) -> Result<Vec<(Duration, &[u8])>, String> {
    let header = bytes.get(..24).ok_or("shorter than the 24-octet file header")?;
    let magic = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    // Microsecond (a1b2c3d4) or nanosecond (a1b23c4d) timestamps, written little-endian on this
    // machine; the big-endian forms would read as their byte swaps.
    let nanos = match magic {
        0xa1b2_c3d4 => false,
        0xa1b2_3c4d => true,
        other => return Err(format!("magic {other:#010x} is not little-endian libpcap")),
    };
    let linktype = u32::from_le_bytes([header[20], header[21], header[22], header[23]]);
    if linktype != 1 {
        return Err(format!("link type {linktype}, not Ethernet (1)"));
    }
    let mut out = Vec::new();
    let mut rest = &bytes[24..];
    while rest.len() >= 16 {
        let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        let (secs, frac, captured) = (word(0), word(4), word(8) as usize);
        let at = Duration::from_secs(u64::from(secs))
            + if nanos {
                Duration::from_nanos(u64::from(frac))
            } else {
                Duration::from_micros(u64::from(frac))
            };
        let Some(frame) = rest.get(16..16 + captured) else {
            break;
        };
        rest = &rest[16 + captured..];
        out.push((at, frame));
    }
    Ok(out)
}

fn parse(bytes: &[u8]) -> Result<Vec<BgpMessage>, String> {
    let mut streams: HashMap<(SocketAddrV4, SocketAddrV4), Stream> = HashMap::new();
    let mut messages = Vec::new();
    for (at, frame) in records(bytes)? {
        let Some(segment) = tcp_segment(frame) else {
            continue;
        };
        if segment.payload.is_empty() || (segment.from.port() != 179 && segment.to.port() != 179) {
            continue;
        }
        let stream = streams.entry((segment.from, segment.to)).or_default();
        let expected = *stream.next_seq.get_or_insert(segment.seq);
        if segment.seq != expected {
            continue;
        }
        stream.next_seq = Some(expected.wrapping_add(segment.payload.len() as u32));
        stream.pending.extend_from_slice(segment.payload);
        while let Some((kind, announced, end_of_rib, bytes)) = next_message(&mut stream.pending) {
            messages.push(BgpMessage {
                at,
                from: segment.from,
                to: segment.to,
                kind,
                announced,
                end_of_rib,
                bytes,
            });
        }
    }
    Ok(messages)
}

/// A TCP segment with SYN set (a connection's first segment, or its SYN-ACK) and the MSS
/// option it carries (RFC 9293 section 3.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSyn {
    /// When it was captured (since the Unix epoch).
    pub at: Duration,
    /// Sender.
    pub from: SocketAddrV4,
    /// Receiver.
    pub to: SocketAddrV4,
    /// ACK set too: the SYN-ACK.
    pub ack: bool,
    /// The Maximum Segment Size option (kind 2), when present.
    pub mss: Option<u16>,
    /// The IPv4 Don't Fragment bit (set under path MTU discovery, RFC 1191).
    pub dont_fragment: bool,
}

/// Every IPv4 TCP SYN and SYN-ACK in the capture at `path`, in capture order.
pub fn tcp_syns(path: &Path) -> Result<Vec<TcpSyn>, PcapError> {
    frames_in(path, |at, frame| {
        let segment = tcp_segment(frame)?;
        (segment.flags & 0x02 != 0).then(|| TcpSyn {
            at,
            from: segment.from,
            to: segment.to,
            ack: segment.flags & 0x10 != 0,
            mss: mss_option(segment.options),
            dont_fragment: segment.dont_fragment,
        })
    })
}

/// The MSS option among TCP `options` (RFC 9293 section 3.2: kind 0 ends the list, kind 1 is
/// one octet of padding, every other kind has a length octet).
fn mss_option(mut options: &[u8]) -> Option<u16> {
    loop {
        match options {
            [] | [0, ..] => return None,
            [1, rest @ ..] => options = rest,
            [2, 4, a, b, ..] => return Some(u16::from_be_bytes([*a, *b])),
            [_, len, ..] if *len >= 2 => options = options.get(usize::from(*len)..)?,
            _ => return None,
        }
    }
}

/// One IPv4-over-Ethernet ARP packet seen on the wire (RFC 826).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpFrame {
    /// When it was captured (since the Unix epoch).
    pub at: Duration,
    /// A reply (operation 2); else a request (1).
    pub reply: bool,
    /// The sender hardware address.
    pub sender_mac: [u8; 6],
    /// The sender protocol address: the IP a reply or a gratuitous ARP claims.
    pub sender_ip: Ipv4Addr,
    /// The target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpFrame {
    /// Whether the frame claims `sender_ip` for `sender_mac`: a reply, or a gratuitous ARP (a
    /// request whose sender and target addresses are the same, RFC 5227 section 3).
    pub fn is_claim(&self) -> bool {
        self.reply || self.sender_ip == self.target_ip
    }
}

/// Every ARP packet in the capture at `path`, in capture order.
pub fn arp_frames(path: &Path) -> Result<Vec<ArpFrame>, PcapError> {
    frames_in(path, arp_frame)
}

/// What `pick` makes of each frame of the capture at `path` (with its capture time), in capture
/// order, leaving out the frames it gives nothing for.
fn frames_in<T>(path: &Path, pick: impl Fn(Duration, &[u8]) -> Option<T>) -> Result<Vec<T>, PcapError> {
    let bytes = std::fs::read(path).map_err(|source| PcapError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let records = records(&bytes).map_err(|reason| PcapError::Format {
        path: path.display().to_string(),
        reason,
    })?;
    Ok(records
        .into_iter()
        .filter_map(|(at, frame)| pick(at, frame))
        .collect())
}

/// An Ethernet frame's ARP packet for IPv4 (EtherType 0x0806, hardware type 1, protocol 0x0800,
/// lengths 6 and 4).
fn arp_frame(at: Duration, frame: &[u8]) -> Option<ArpFrame> {
    if frame.get(12..14)? != [0x08, 0x06] {
        return None;
    }
    let arp = frame.get(14..42)?;
    if arp[0..6] != [0x00, 0x01, 0x08, 0x00, 6, 4] {
        return None;
    }
    let op = u16::from_be_bytes([arp[6], arp[7]]);
    if op != 1 && op != 2 {
        return None;
    }
    let mut sender_mac = [0u8; 6];
    sender_mac.copy_from_slice(&arp[8..14]);
    Some(ArpFrame {
        at,
        reply: op == 2,
        sender_mac,
        sender_ip: Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]),
        target_ip: Ipv4Addr::new(arp[24], arp[25], arp[26], arp[27]),
    })
}

/// A TCP segment of an IPv4 packet in an Ethernet frame.
struct Segment<'a> {
    from: SocketAddrV4,
    to: SocketAddrV4,
    seq: u32,
    /// The flags octet (CWR ECE URG ACK PSH RST SYN FIN).
    flags: u8,
    /// The IPv4 header's DF bit.
    dont_fragment: bool,
    /// The options between the fixed header and the payload.
    options: &'a [u8],
    payload: &'a [u8],
}

fn tcp_segment(frame: &[u8]) -> Option<Segment<'_>> {
    // Ethernet II: 14 octets, EtherType 0x0800 for IPv4.
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    if *ip.get(9)? != 6 || ihl < 20 || total < ihl {
        return None;
    }
    let source = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let destination = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let tcp = ip.get(ihl..total)?;
    let offset = usize::from(tcp.get(12)? >> 4) * 4;
    Some(Segment {
        from: SocketAddrV4::new(source, u16::from_be_bytes([tcp[0], tcp[1]])),
        to: SocketAddrV4::new(destination, u16::from_be_bytes([tcp[2], tcp[3]])),
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        flags: *tcp.get(13)?,
        dont_fragment: ip[6] & 0x40 != 0,
        options: tcp.get(20..offset)?,
        payload: tcp.get(offset..)?,
    })
}

/// Takes one whole message off the front of `pending`: its type, the IPv4 NLRI it announces,
/// whether it is an End-of-RIB, and its bytes. `None` until a whole message is there. A length below the
/// 19-octet minimum cannot be framed: the stream is dropped (a capture of a broken session).
fn next_message(pending: &mut Vec<u8>) -> Option<(u8, u32, bool, Vec<u8>)> {
    let length = usize::from(u16::from_be_bytes([*pending.get(16)?, *pending.get(17)?]));
    if length < 19 {
        pending.clear();
        return None;
    }
    if pending.len() < length {
        return None;
    }
    let kind = pending[18];
    let (announced, end_of_rib) = if kind == UPDATE {
        update_nlri(&pending[19..length])
    } else {
        (0, false)
    };
    let bytes = pending.drain(..length).collect();
    Some((kind, announced, end_of_rib, bytes))
}

/// The number of NLRI prefixes in an UPDATE body (RFC 4271 §4.3: withdrawn routes, path
/// attributes, then the NLRI to the end), and whether the body is the empty End-of-RIB.
fn update_nlri(body: &[u8]) -> (u32, bool) {
    let Some(withdrawn) = body
        .get(..2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    else {
        return (0, false);
    };
    let attributes_at = 2 + withdrawn;
    let Some(attributes) = body
        .get(attributes_at..attributes_at + 2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    else {
        return (0, false);
    };
    let mut nlri = body.get(attributes_at + 2 + attributes..).unwrap_or_default();
    let end_of_rib = withdrawn == 0 && attributes == 0 && nlri.is_empty();
    let mut count = 0;
    while let Some((&bits, tail)) = nlri.split_first() {
        nlri = tail.get(usize::from(bits).div_ceil(8)..).unwrap_or_default();
        count += 1;
    }
    (count, end_of_rib)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pcap file holding `frames`, each captured at `t` seconds.
    fn capture(frames: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut file = Vec::new();
        file.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
        file.extend_from_slice(&[2, 0, 4, 0]);
        file.extend_from_slice(&[0; 8]);
        file.extend_from_slice(&65535_u32.to_le_bytes());
        file.extend_from_slice(&1_u32.to_le_bytes());
        for (t, frame) in frames {
            file.extend_from_slice(&t.to_le_bytes());
            file.extend_from_slice(&0_u32.to_le_bytes());
            let length = (frame.len() as u32).to_le_bytes();
            file.extend_from_slice(&length);
            file.extend_from_slice(&length);
            file.extend_from_slice(frame);
        }
        file
    }

    /// An Ethernet frame with an IPv4 TCP segment 192.0.2.2:50000 -> 192.0.2.1:179.
    fn frame(seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 20 + payload.len()) as u16;
        frame.extend_from_slice(&[0x45, 0]);
        frame.extend_from_slice(&total.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0, 64, 6, 0, 0, 192, 0, 2, 2, 192, 0, 2, 1]);
        frame.extend_from_slice(&50000_u16.to_be_bytes());
        frame.extend_from_slice(&179_u16.to_be_bytes());
        frame.extend_from_slice(&seq.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x18, 0, 0, 0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        frame
    }

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut message = vec![0xff; 16];
        message.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        message.push(kind);
        message.extend_from_slice(body);
        message
    }

    /// An UPDATE announcing `n` /32s with one (ORIGIN) attribute.
    fn update(n: u8) -> Vec<u8> {
        let mut body = vec![0, 0, 0, 4, 0x40, 1, 1, 0];
        for i in 0..n {
            body.extend_from_slice(&[32, 198, 51, 100, i]);
        }
        message(UPDATE, &body)
    }

    fn parse_frames(frames: &[(u32, Vec<u8>)]) -> Vec<BgpMessage> {
        parse(&capture(frames)).expect("a valid capture")
    }

    #[test]
    fn messages_split_across_segments_are_timed_by_the_segment_that_completes_them() {
        let mut stream = message(KEEPALIVE, &[]);
        stream.extend(update(3));
        stream.extend(message(UPDATE, &[0, 0, 0, 0]));
        let (a, b) = stream.split_at(25);
        let messages = parse_frames(&[(1, frame(100, a)), (2, frame(125, b))]);
        let summary: Vec<_> = messages
            .iter()
            .map(|m| (m.at.as_secs(), m.kind, m.announced, m.end_of_rib))
            .collect();
        assert_eq!(
            summary,
            [
                (1, KEEPALIVE, 0, false),
                (2, UPDATE, 3, false),
                (2, UPDATE, 0, true)
            ]
        );
        assert_eq!(messages[0].from.port(), 50000);
        assert_eq!(messages[0].to, "192.0.2.1:179".parse().expect("an address"));
        assert_eq!(messages[0].bytes, message(KEEPALIVE, &[]));
    }

    #[test]
    fn a_retransmitted_segment_is_not_counted_twice() {
        let keepalive = message(KEEPALIVE, &[]);
        let messages = parse_frames(&[
            (1, frame(7, &keepalive)),
            (2, frame(7, &keepalive)),
            (3, frame(26, &update(2))),
        ]);
        let kinds: Vec<_> = messages.iter().map(|m| m.kind).collect();
        assert_eq!(kinds, [KEEPALIVE, UPDATE]);
        assert_eq!(messages[1].announced, 2);
    }

    #[test]
    fn bad_input_is_an_error_or_skipped_never_a_panic() {
        assert!(parse(&[]).is_err());
        assert!(parse(&[0; 24]).is_err());
        // A capture cut inside its last record (still being written) keeps the records before.
        let mut truncated = capture(&[(1, frame(1, &update(1))), (2, frame(29, &update(1)))]);
        truncated.truncate(truncated.len() - 3);
        assert_eq!(parse(&truncated).map(|m| m.len()), Ok(1));
        // A message length below the minimum, an UPDATE with attribute lengths past its end.
        let mut short = message(KEEPALIVE, &[]);
        short[17] = 3;
        let broken = message(UPDATE, &[0, 9, 0]);
        assert!(parse_frames(&[(1, frame(1, &short))]).is_empty());
        let messages = parse_frames(&[(1, frame(1, &broken))]);
        assert_eq!(messages.len(), 1);
        assert_eq!((messages[0].announced, messages[0].end_of_rib), (0, false));
    }

    #[test]
    fn syns_and_their_mss_option() {
        // A SYN with options NOP, NOP, SACK permitted (4, 2), MSS 1200, then window scale.
        let mut syn = frame(1, &[]);
        syn[14 + 3] = 52; // IPv4 total length: 20 + 32.
        syn[14 + 20 + 12] = 0x80; // Data offset 8 words.
        syn[14 + 20 + 13] = 0x02; // SYN.
        syn.extend_from_slice(&[1, 1, 4, 2, 2, 4, 0x04, 0xb0, 3, 3, 7, 0]);
        let mut syn_ack = syn.clone();
        syn_ack[14 + 20 + 13] = 0x12;
        let data = frame(2, &message(KEEPALIVE, &[]));
        let file = std::env::temp_dir().join(format!("oxelb-pcap-syn-{}.pcap", std::process::id()));
        std::fs::write(&file, capture(&[(1, syn), (2, syn_ack), (3, data)])).expect("written");
        let syns = tcp_syns(&file).expect("read");
        let _ = std::fs::remove_file(&file);
        let summary: Vec<_> = syns.iter().map(|s| (s.at.as_secs(), s.ack, s.mss)).collect();
        assert_eq!(summary, [(1, false, Some(1200)), (2, true, Some(1200))]);
        assert!(!syns[0].dont_fragment);
        assert_eq!(mss_option(&[1, 0, 2, 4, 0, 1]), None, "after the end of the list");
        assert_eq!(mss_option(&[3, 0]), None, "a length below 2 ends the walk");
        assert_eq!(mss_option(&[8, 10, 0, 0]), None, "an option past the end");
    }
}
