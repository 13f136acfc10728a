use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use super::*;

fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn hosts(ips: &BTreeSet<IpAddr>) -> BTreeSet<Prefix> {
    ips.iter().map(|ip| Prefix::host(*ip)).collect()
}

fn params() -> UpdateParams {
    UpdateParams {
        local_as: 64512,
        ibgp: false,
        four_octet_as: true,
        next_hop_v4: Some("192.0.2.11".parse().unwrap()),
        next_hop_v6: Some("2001:db8::11".parse().unwrap()),
        add_path: BTreeSet::new(),
    }
}

#[test]
fn keepalive_and_notification_golden_bytes() {
    let mut expected = vec![0xff; 16];
    expected.extend_from_slice(&[0, 19, 4]);
    assert_eq!(keepalive(), expected);
    assert_eq!(decode(&keepalive(), true).unwrap(), Received::Keepalive);
    let n = notification(4, 0, &[]);
    assert_eq!(&n[16..], &[0, 21, 3, 4, 0]);
    assert_eq!(
        decode(&n, true).unwrap(),
        Received::Notification {
            code: 4,
            subcode: 0,
            data: Vec::new()
        }
    );
}

#[test]
fn open_golden_bytes_and_netgauze_reads_it() {
    let p = OpenParams {
        local_as: 64512,
        hold_time: 90,
        router_id: "192.0.2.11".parse().unwrap(),
        families: [Family::Ipv4Unicast].into(),
        graceful_restart: None,
        add_path_send: false,
        route_refresh: true,
        four_octet_as: true,
    };
    let bytes = open(&p);
    // Header; version 4, AS 64512 (0xfc00), hold 90, id; params 16 bytes: capabilities MP
    // IPv4/unicast, route refresh, 4-octet AS 64512.
    let mut expected = vec![0xff; 16];
    expected.extend_from_slice(&[0, 45, 1, 4, 0xfc, 0x00, 0, 90, 192, 0, 2, 11, 16, 2, 14]);
    expected.extend_from_slice(&[1, 4, 0, 1, 0, 1, 2, 0, 65, 4, 0, 0, 0xfc, 0x00]);
    assert_eq!(bytes, expected);
    match decode(&bytes, true).unwrap() {
        Received::Open {
            version,
            peer_as,
            hold_time,
            router_id,
            capabilities,
        } => {
            assert_eq!((version, peer_as, hold_time), (4, 64512, 90));
            assert_eq!(router_id, "192.0.2.11".parse::<Ipv4Addr>().unwrap());
            assert_eq!(capabilities.families, [Family::Ipv4Unicast].into());
            assert_eq!(capabilities.four_octet_as, Some(64512));
            assert!(capabilities.route_refresh && !capabilities.graceful_restart);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn four_octet_as_uses_as_trans_and_every_capability_decodes() {
    let p = OpenParams {
        local_as: 4_200_000_000,
        hold_time: 9,
        router_id: "192.0.2.11".parse().unwrap(),
        families: [Family::Ipv4Unicast, Family::Ipv6Unicast].into(),
        graceful_restart: Some((120, true)),
        add_path_send: true,
        route_refresh: true,
        four_octet_as: true,
    };
    let bytes = open(&p);
    assert_eq!(&bytes[20..22], &AS_TRANS.to_be_bytes());
    match decode(&bytes, true).unwrap() {
        Received::Open {
            peer_as,
            capabilities,
            ..
        } => {
            assert_eq!(peer_as, 4_200_000_000, "the capability's AS wins over AS_TRANS");
            assert_eq!(
                capabilities.families,
                [Family::Ipv4Unicast, Family::Ipv6Unicast].into()
            );
            assert!(capabilities.graceful_restart);
            assert!(capabilities.add_path_receive.is_empty(), "we offered send only");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn updates_pack_800_v4_host_routes_per_message_and_decode() {
    let routes: BTreeSet<IpAddr> = (0..2000u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i)))
        .collect();
    let messages = announce(&host_routes(&routes), Family::Ipv4Unicast, &params());
    assert_eq!(messages.len(), 3, "2000 /32s in 3 UPDATEs");
    for m in &messages {
        assert!(m.len() <= MAX_MESSAGE);
        assert_eq!(
            decode(m, true).unwrap(),
            Received::Update { treat_as_withdraw: 0 }
        );
    }
    let per_first = (messages[0].len() - HEADER_LEN - 4 - 25) / 5;
    assert!(per_first >= 800, "{per_first} per UPDATE");
    let w = withdraw(&hosts(&routes), Family::Ipv4Unicast, &params());
    assert_eq!(w.len(), 3);
    assert!(
        w.iter()
            .all(|m| m.len() <= MAX_MESSAGE && decode(m, true).is_ok())
    );
}

#[test]
fn v6_updates_eor_ibgp_add_path_and_two_octet_peers_decode() {
    let v6: BTreeSet<IpAddr> = (0..500u16)
        .map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, i)))
        .collect();
    let messages = announce(&host_routes(&v6), Family::Ipv6Unicast, &params());
    assert_eq!(messages.len(), 3, "about 220 /128s per UPDATE");
    assert!(
        messages
            .iter()
            .all(|m| m.len() <= MAX_MESSAGE && decode(m, true).is_ok())
    );
    assert!(
        withdraw(&hosts(&v6), Family::Ipv6Unicast, &params())
            .iter()
            .all(|m| decode(m, true).is_ok())
    );
    for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
        assert!(matches!(
            decode(&end_of_rib(family), true).unwrap(),
            Received::Update { .. }
        ));
    }
    assert_eq!(end_of_rib(Family::Ipv4Unicast).len(), 23);
    let ibgp = UpdateParams {
        ibgp: true,
        ..params()
    };
    assert!(
        decode(
            &announce(&host_routes(&ips(&["198.51.100.5"])), Family::Ipv4Unicast, &ibgp)[0],
            true
        )
        .is_ok()
    );
    let two_octet = UpdateParams {
        four_octet_as: false,
        local_as: 4_200_000_000,
        ..params()
    };
    let m = &announce(
        &host_routes(&ips(&["198.51.100.5"])),
        Family::Ipv4Unicast,
        &two_octet,
    )[0];
    assert!(
        m.windows(2).any(|w| w == AS_TRANS.to_be_bytes()),
        "AS_TRANS in AS_PATH"
    );
    assert!(decode(m, false).is_ok());
    let no_v6_hop = UpdateParams {
        next_hop_v6: None,
        ..params()
    };
    assert!(announce(&host_routes(&v6), Family::Ipv6Unicast, &no_v6_hop).is_empty());
}

fn policy(communities: &[u32], large: &[[u32; 3]], local_pref: Option<u32>) -> Arc<Attributes> {
    Arc::new(Attributes {
        communities: communities.to_vec(),
        large_communities: large.to_vec(),
        local_pref,
    })
}

/// The (type code, value) of each path attribute of an UPDATE, walked by hand.
fn attributes_of(frame: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let body = &frame[HEADER_LEN..];
    let withdrawn = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let at = 2 + withdrawn;
    let total = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
    let attrs = &body[at + 2..at + 2 + total];
    let mut out = Vec::new();
    let mut i = 0;
    while i < attrs.len() {
        let (flags, code) = (attrs[i], attrs[i + 1]);
        let (header, len) = if flags & 0x10 != 0 {
            (4, usize::from(u16::from_be_bytes([attrs[i + 2], attrs[i + 3]])))
        } else {
            (3, usize::from(attrs[i + 2]))
        };
        out.push((code, attrs[i + header..i + header + len].to_vec()));
        i += header + len;
    }
    out
}

#[test]
fn prefixes_mask_and_encode_the_fewest_octets() {
    let p = Prefix::new("198.51.100.77".parse().unwrap(), 26).unwrap();
    assert_eq!(p.to_string(), "198.51.100.64/26");
    let mut out = Vec::new();
    p.encode(false, &mut out);
    assert_eq!(out, [26, 198, 51, 100, 64]);
    let mut out = Vec::new();
    Prefix::new("203.0.113.0".parse().unwrap(), 20)
        .unwrap()
        .encode(true, &mut out);
    assert_eq!(
        out,
        [0, 0, 0, 1, 20, 203, 0, 112],
        "3 octets for a /20, after the path id"
    );
    let v6 = Prefix::new("2001:db8::1:2".parse().unwrap(), 64).unwrap();
    assert_eq!(v6.to_string(), "2001:db8::/64");
    assert!(Prefix::new("192.0.2.1".parse().unwrap(), 33).is_none());
    assert_eq!(
        Prefix::new("192.0.2.1".parse().unwrap(), 0).unwrap().to_string(),
        "0.0.0.0/0"
    );
    assert_eq!(Prefix::host("192.0.2.1".parse().unwrap()).len(), 32);
}

#[test]
fn policy_attributes_in_type_order_and_equal_attributes_share_updates() {
    let tagged = policy(&[0xFDE8_0064, 0xFFFF_FF01], &[[64512, 1, 2]], Some(200));
    let mut routes = Routes::new();
    for i in 0..1000u32 {
        routes.insert(
            Prefix::host(IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i))),
            tagged.clone(),
        );
    }
    routes.extend(host_routes(&ips(&["203.0.113.1", "203.0.113.2"])));
    routes.insert(
        Prefix::new("203.0.113.64".parse().unwrap(), 26).unwrap(),
        policy(&[0xFFFF_029A], &[], None),
    );
    let ebgp = announce(&routes, Family::Ipv4Unicast, &params());
    // Plain (2 prefixes): 1 UPDATE; tagged (1000): 2; blackhole aggregate: 1 (groups in the
    // order of their attributes).
    let codes = |m: &Vec<u8>| attributes_of(m).iter().map(|(c, _)| *c).collect::<Vec<_>>();
    assert_eq!(ebgp.len(), 4, "one group of UPDATEs per distinct attribute set");
    assert_eq!(codes(&ebgp[0]), [1, 2, 3], "no policy: as before");
    assert_eq!(codes(&ebgp[3]), [1, 2, 3, 8], "blackhole only");
    assert_eq!(
        codes(&ebgp[2]),
        [1, 2, 3, 8, 32],
        "no LOCAL_PREF toward eBGP (RFC 4271 5.1.5)"
    );
    assert_eq!(ebgp[3][ebgp[3].len() - 5..], [26, 203, 0, 113, 64]);
    assert!(
        (ebgp[1].len() - HEADER_LEN - 4 - 41) / 5 >= 790,
        "tagged routes still pack about 800 per UPDATE"
    );
    let a = attributes_of(&ebgp[2]);
    assert_eq!(a[3].1, [0xfd, 0xe8, 0, 0x64, 0xff, 0xff, 0xff, 0x01]);
    assert_eq!(a[4].1, [0, 0, 0xfc, 0, 0, 0, 0, 1, 0, 0, 0, 2]);
    for m in &ebgp {
        assert!(m.len() <= MAX_MESSAGE);
        assert_eq!(
            decode(m, true).unwrap(),
            Received::Update { treat_as_withdraw: 0 }
        );
    }
    let ibgp = UpdateParams {
        ibgp: true,
        ..params()
    };
    let messages = announce(&routes, Family::Ipv4Unicast, &ibgp);
    let a = attributes_of(&messages[2]);
    assert_eq!(a.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [1, 2, 3, 5, 8, 32]);
    assert_eq!(a[3].1, 200u32.to_be_bytes(), "the pool's LOCAL_PREF");
    assert_eq!(
        attributes_of(&messages[0])[3].1,
        100u32.to_be_bytes(),
        "default 100"
    );
    let v6: Routes = [(
        Prefix::new("2001:db8:1::".parse().unwrap(), 64).unwrap(),
        tagged.clone(),
    )]
    .into();
    let m = &announce(&v6, Family::Ipv6Unicast, &ibgp)[0];
    assert_eq!(
        attributes_of(m).iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        [1, 2, 5, 8, 14, 32]
    );
    assert_eq!(
        decode(m, true).unwrap(),
        Received::Update { treat_as_withdraw: 0 }
    );
    let w = withdraw(v6.keys(), Family::Ipv6Unicast, &params());
    assert_eq!(
        attributes_of(&w[0])[0].1,
        [0, 2, 1, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0]
    );
}

#[test]
fn framing() {
    let mut buffer = keepalive();
    buffer.extend_from_slice(&keepalive()[..10]);
    assert_eq!(next_frame(&mut buffer).unwrap(), Some(keepalive()));
    assert_eq!(next_frame(&mut buffer).unwrap(), None, "half a message waits");
    let mut bad = vec![0u8; 19];
    assert_eq!(
        next_frame(&mut bad).unwrap_err().subcode,
        1,
        "bad marker: not synchronized"
    );
    let mut long = keepalive();
    long[17] = 20;
    assert_eq!(next_frame(&mut long).unwrap_err().subcode, 2, "bad length");
    let mut kind = keepalive();
    kind[18] = 9;
    assert_eq!(next_frame(&mut kind).unwrap_err().subcode, 3, "bad type");
}

proptest::proptest! {
    #[test]
    fn framing_and_decoding_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        let mut buffer = vec![0xff; 16];
        buffer.extend_from_slice(&bytes);
        while let Ok(Some(frame)) = next_frame(&mut buffer) {
            let _ = decode(&frame, true);
            let _ = decode(&frame, false);
        }
        let _ = decode(&bytes, true);
    }
}
