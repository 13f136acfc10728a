//! Out: the messages the speaker sends, built byte by byte (RFC 4271 section 4, RFC 4760,
//! RFC 6793, RFC 7911, RFC 4724), UPDATEs packed with as many routes as fit 4096 bytes.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{Ipv4Addr, Ipv6Addr},
};

use super::values::{
    AS_TRANS, Attributes, Family, HEADER_LEN, KEEPALIVE, MAX_MESSAGE, NOTIFICATION, OPEN, OpenParams, Prefix,
    Routes, UPDATE,
};

/// Wraps `body` in the header of message type `kind`.
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    // Callers keep bodies within MAX_MESSAGE - HEADER_LEN.
    out.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// KEEPALIVE (RFC 4271 section 4.4).
pub fn keepalive() -> Vec<u8> {
    message(KEEPALIVE, &[])
}

/// NOTIFICATION (RFC 4271 section 4.5).
pub fn notification(code: u8, subcode: u8, data: &[u8]) -> Vec<u8> {
    let mut body = vec![code, subcode];
    body.extend_from_slice(&data[..data.len().min(MAX_MESSAGE - HEADER_LEN - 2)]);
    message(NOTIFICATION, &body)
}

/// OPEN with our capabilities (RFC 4271 section 4.2, RFC 5492).
pub fn open(params: &OpenParams) -> Vec<u8> {
    let mut caps: Vec<u8> = Vec::new();
    let mut cap = |code: u8, value: &[u8]| {
        caps.push(code);
        caps.push(value.len() as u8);
        caps.extend_from_slice(value);
    };
    for family in &params.families {
        // RFC 4760 section 8: AFI, reserved, SAFI.
        let afi = family.afi().to_be_bytes();
        cap(1, &[afi[0], afi[1], 0, 1]);
    }
    if params.route_refresh {
        cap(2, &[]); // Route refresh (RFC 2918).
    }
    if let Some((restart_time, restarting)) = params.graceful_restart {
        // RFC 4724 section 3: R bit, 12-bit restart time, then AFI/SAFI with the F bit (we keep
        // forwarding: the node's data plane does not restart with the speaker).
        let mut value = (restart_time.min(0x0fff) | if restarting { 0x8000 } else { 0 })
            .to_be_bytes()
            .to_vec();
        for family in &params.families {
            value.extend_from_slice(&family.afi().to_be_bytes());
            value.extend_from_slice(&[1, 0x80]);
        }
        cap(64, &value);
    }
    if params.four_octet_as {
        cap(65, &params.local_as.to_be_bytes()); // 4-octet AS (RFC 6793).
    }
    if params.add_path_send {
        // RFC 7911 section 4: AFI, SAFI, send/receive = 2 (send).
        let mut value = Vec::new();
        for family in &params.families {
            value.extend_from_slice(&family.afi().to_be_bytes());
            value.extend_from_slice(&[1, 2]);
        }
        cap(69, &value);
    }
    let mut body = vec![4];
    let my_as = u16::try_from(params.local_as).unwrap_or(AS_TRANS);
    body.extend_from_slice(&my_as.to_be_bytes());
    body.extend_from_slice(&params.hold_time.to_be_bytes());
    body.extend_from_slice(&params.router_id.octets());
    // One optional parameter of type 2 (capabilities) holding them all.
    body.push((caps.len() + 2) as u8);
    body.push(2);
    body.push(caps.len() as u8);
    body.extend_from_slice(&caps);
    message(OPEN, &body)
}

/// How routes are encoded toward one peer (from the negotiation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateParams {
    /// Our AS; empty AS_PATH and LOCAL_PREF for iBGP (`ibgp`).
    pub local_as: u32,
    /// The peer is in our AS.
    pub ibgp: bool,
    /// Both sides have 4-octet AS.
    pub four_octet_as: bool,
    /// Next hop for IPv4 routes.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 routes.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Families negotiated with ADD-PATH send (path id 1 precedes each prefix).
    pub add_path: BTreeSet<Family>,
}

/// The AS_PATH (and, toward an old peer with a 4-octet AS, AS4_PATH) attributes.
fn as_path_attributes(p: &UpdateParams) -> Vec<u8> {
    let mut out = Vec::new();
    if p.ibgp {
        out.extend_from_slice(&[0x40, 2, 0]); // Well-known mandatory, empty.
        return out;
    }
    if p.four_octet_as {
        out.extend_from_slice(&[0x40, 2, 6, 2, 1]);
        out.extend_from_slice(&p.local_as.to_be_bytes());
    } else {
        let two = u16::try_from(p.local_as).unwrap_or(AS_TRANS);
        out.extend_from_slice(&[0x40, 2, 4, 2, 1]);
        out.extend_from_slice(&two.to_be_bytes());
        if two == AS_TRANS {
            // RFC 6793 section 4.2.2: the real path in AS4_PATH (optional transitive, type 17).
            out.extend_from_slice(&[0xc0, 17, 6, 2, 1]);
            out.extend_from_slice(&p.local_as.to_be_bytes());
        }
    }
    out
}

fn attribute(flags: u8, kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 4);
    if value.len() > 255 {
        out.extend_from_slice(&[flags | 0x10, kind]);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags, kind, value.len() as u8]);
    }
    out.extend_from_slice(value);
    out
}

fn update(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + withdrawn.len() + attributes.len() + nlri.len());
    body.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    body.extend_from_slice(attributes);
    body.extend_from_slice(nlri);
    message(UPDATE, &body)
}

/// Chunks of encoded prefixes that each fit `room` bytes.
fn chunks(prefixes: &[Vec<u8>], room: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for p in prefixes {
        if !current.is_empty() && current.len() + p.len() > room {
            out.push(std::mem::take(&mut current));
        }
        current.extend_from_slice(p);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The NLRI encodings of the `family` prefixes of `prefixes` (with path identifier 1 when
/// ADD-PATH is negotiated for the family).
fn family_prefixes<'a>(
    prefixes: impl IntoIterator<Item = &'a Prefix>,
    family: Family,
    p: &UpdateParams,
) -> Vec<Vec<u8>> {
    let path_id = p.add_path.contains(&family);
    prefixes
        .into_iter()
        .filter(|prefix| prefix.family() == family)
        .map(|prefix| {
            let mut out = Vec::with_capacity(21);
            prefix.encode(path_id, &mut out);
            out
        })
        .collect()
}

/// The attributes of a group of routes in type-code order (RFC 4271 section 5 leaves the order
/// open; GoBGP and FRR send ascending codes): ORIGIN (1), AS_PATH (2) (AS4_PATH (17) right after it
/// toward an old peer, as before), NEXT_HOP (3, IPv4 only), LOCAL_PREF (5, iBGP only: RFC 4271
/// section 5.1.5), COMMUNITIES (8, RFC 1997: optional transitive) are the first part; the second
/// is LARGE_COMMUNITY (32, RFC 8092 section 3: optional transitive). MP_REACH_NLRI (14) goes
/// between the two for IPv6.
fn group_attributes(a: &Attributes, p: &UpdateParams, v4_next_hop: Option<Ipv4Addr>) -> (Vec<u8>, Vec<u8>) {
    let mut low = attribute(0x40, 1, &[0]); // ORIGIN IGP.
    low.extend_from_slice(&as_path_attributes(p));
    if let Some(hop) = v4_next_hop {
        low.extend_from_slice(&attribute(0x40, 3, &hop.octets()));
    }
    if p.ibgp {
        let pref = a.local_pref.unwrap_or(100);
        low.extend_from_slice(&attribute(0x40, 5, &pref.to_be_bytes()));
    }
    if !a.communities.is_empty() {
        let value: Vec<u8> = a.communities.iter().flat_map(|c| c.to_be_bytes()).collect();
        low.extend_from_slice(&attribute(0xc0, 8, &value));
    }
    let mut high = Vec::new();
    if !a.large_communities.is_empty() {
        let value: Vec<u8> = a
            .large_communities
            .iter()
            .flat_map(|l| l.iter().flat_map(|part| part.to_be_bytes()))
            .collect();
        high.extend_from_slice(&attribute(0xc0, 32, &value));
    }
    (low, high)
}

/// UPDATEs announcing the `family` routes of `routes`: one group of UPDATEs per distinct set of
/// attributes (routes with equal attributes share UPDATEs), each UPDATE holding as many prefixes
/// as fit 4096 bytes. Empty when the family has no next hop.
pub fn announce(routes: &Routes, family: Family, p: &UpdateParams) -> Vec<Vec<u8>> {
    let mut groups: BTreeMap<&Attributes, Vec<&Prefix>> = BTreeMap::new();
    for (prefix, attributes) in routes.iter().filter(|(prefix, _)| prefix.family() == family) {
        groups.entry(attributes.as_ref()).or_default().push(prefix);
    }
    let mut out = Vec::new();
    for (attributes, prefixes) in groups {
        let prefixes = family_prefixes(prefixes, family, p);
        match family {
            Family::Ipv4Unicast => {
                let Some(next_hop) = p.next_hop_v4 else {
                    return Vec::new();
                };
                let (mut attrs, high) = group_attributes(attributes, p, Some(next_hop));
                attrs.extend_from_slice(&high);
                let room = MAX_MESSAGE - HEADER_LEN - 4 - attrs.len();
                out.extend(
                    chunks(&prefixes, room)
                        .iter()
                        .map(|nlri| update(&[], &attrs, nlri)),
                );
            }
            Family::Ipv6Unicast => {
                let Some(next_hop) = p.next_hop_v6 else {
                    return Vec::new();
                };
                let (common, high) = group_attributes(attributes, p, None);
                // MP_REACH_NLRI (RFC 4760 section 3), extended length: AFI, SAFI, next hop,
                // reserved; in type-code order between COMMUNITIES and LARGE_COMMUNITY, as GoBGP.
                let fixed = 5 + 16;
                let room = MAX_MESSAGE - HEADER_LEN - 4 - common.len() - high.len() - 4 - fixed;
                out.extend(chunks(&prefixes, room).iter().map(|nlri| {
                    let mut value = vec![0, 2, 1, 16];
                    value.extend_from_slice(&next_hop.octets());
                    value.push(0);
                    value.extend_from_slice(nlri);
                    let mut attrs = common.clone();
                    attrs.extend_from_slice(&attribute_extended(0x80, 14, &value));
                    attrs.extend_from_slice(&high);
                    update(&[], &attrs, &[])
                }));
            }
        }
    }
    out
}

/// An attribute always written with the extended length (stable sizes for packing).
fn attribute_extended(flags: u8, kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![flags | 0x10, kind];
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// UPDATEs withdrawing the `family` prefixes of `prefixes`.
pub fn withdraw<'a>(
    prefixes: impl IntoIterator<Item = &'a Prefix>,
    family: Family,
    p: &UpdateParams,
) -> Vec<Vec<u8>> {
    let prefixes = family_prefixes(prefixes, family, p);
    match family {
        Family::Ipv4Unicast => chunks(&prefixes, MAX_MESSAGE - HEADER_LEN - 4)
            .iter()
            .map(|w| update(w, &[], &[]))
            .collect(),
        Family::Ipv6Unicast => chunks(&prefixes, MAX_MESSAGE - HEADER_LEN - 4 - 4 - 3)
            .iter()
            .map(|w| {
                let mut value = vec![0, 2, 1];
                value.extend_from_slice(w);
                update(&[], &attribute_extended(0x80, 15, &value), &[])
            })
            .collect(),
    }
}

/// End-of-RIB for `family` (RFC 4724 section 2): an empty UPDATE for IPv4 unicast, an
/// MP_UNREACH_NLRI with only AFI/SAFI otherwise.
pub fn end_of_rib(family: Family) -> Vec<u8> {
    match family {
        Family::Ipv4Unicast => update(&[], &[], &[]),
        Family::Ipv6Unicast => update(&[], &attribute(0x80, 15, &[0, 2, 1]), &[]),
    }
}
