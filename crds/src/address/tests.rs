use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn single_ipv4() {
    let r = parse("192.0.2.10").unwrap();
    assert_eq!(r.form(), AddressForm::Single);
    assert_eq!(r.first(), ip("192.0.2.10"));
    assert_eq!(r.last(), ip("192.0.2.10"));
    assert_eq!(r.size(), 1);
    assert_eq!(r.assignable_size(), 1);
    assert!(r.is_assignable(ip("192.0.2.10")));
    assert!(r.is_ipv4());
    assert_eq!(r.to_string(), "192.0.2.10");
}

#[test]
fn single_ipv6_and_whitespace_trimmed() {
    let r = parse("  2001:db8::10\n").unwrap();
    assert_eq!(r.family(), IpFamily::V6);
    assert_eq!(r.size(), 1);
    assert_eq!(r.nth_assignable(0), Some(ip("2001:db8::10")));
    assert_eq!(r.nth_assignable(1), None);
}

#[test]
fn ipv4_cidr_skips_network_and_broadcast() {
    let r = parse("192.0.2.0/24").unwrap();
    assert_eq!(r.form(), AddressForm::Cidr { prefix_len: 24 });
    assert_eq!(r.size(), 256);
    assert_eq!(r.assignable_size(), 254);
    assert!(r.contains(ip("192.0.2.0")));
    assert!(!r.is_assignable(ip("192.0.2.0")));
    assert!(!r.is_assignable(ip("192.0.2.255")));
    assert_eq!(r.first_assignable(), Some(ip("192.0.2.1")));
    assert_eq!(r.last_assignable(), Some(ip("192.0.2.254")));
    assert_eq!(r.nth_assignable(0), Some(ip("192.0.2.1")));
    assert_eq!(r.nth_assignable(253), Some(ip("192.0.2.254")));
    assert_eq!(r.nth_assignable(254), None);
    assert_eq!(r.assignable_offset(ip("192.0.2.54")), Some(53));
    assert!(!r.contains(ip("198.51.100.1")));
}

#[test]
fn ipv4_slash30_has_two_assignable() {
    let r = parse("192.0.2.4/30").unwrap();
    assert_eq!(
        r.assignable().collect::<Vec<_>>(),
        vec![ip("192.0.2.5"), ip("192.0.2.6")]
    );
}

#[test]
fn ipv4_slash31_and_slash32_use_every_address() {
    let r = parse("192.0.2.4/31").unwrap();
    assert_eq!(
        r.assignable().collect::<Vec<_>>(),
        vec![ip("192.0.2.4"), ip("192.0.2.5")]
    );
    let r = parse("192.0.2.9/32").unwrap();
    assert_eq!(r.assignable().collect::<Vec<_>>(), vec![ip("192.0.2.9")]);
    assert_eq!(r.to_string(), "192.0.2.9/32");
}

#[test]
fn host_bits_are_masked() {
    let r = parse("192.0.2.5/24").unwrap();
    assert_eq!(r.first(), ip("192.0.2.0"));
    assert_eq!(r.last(), ip("192.0.2.255"));
    assert_eq!(r.to_string(), "192.0.2.0/24");
    let r = parse("2001:db8::1:2/112").unwrap();
    assert_eq!(r.to_string(), "2001:db8::1:0/112");
}

#[test]
fn ipv6_cidr_skips_subnet_router_anycast_only() {
    let r = parse("2001:db8::/120").unwrap();
    assert_eq!(r.size(), 256);
    assert_eq!(r.assignable_size(), 255);
    assert!(!r.is_assignable(ip("2001:db8::")));
    assert!(r.is_assignable(ip("2001:db8::ff")));
    assert_eq!(r.first_assignable(), Some(ip("2001:db8::1")));
    let r = parse("2001:db8::/126").unwrap();
    assert_eq!(r.assignable_size(), 3);
    let r = parse("2001:db8::/127").unwrap();
    assert_eq!(r.assignable_size(), 2);
    let r = parse("2001:db8::7/128").unwrap();
    assert_eq!(r.assignable().collect::<Vec<_>>(), vec![ip("2001:db8::7")]);
}

#[test]
fn huge_ranges_are_o1_and_never_overflow() {
    let r = parse("2001:db8::/64").unwrap();
    assert_eq!(r.size(), 1u128 << 64);
    assert_eq!(r.assignable_size(), (1u128 << 64) - 1);
    assert_eq!(
        r.nth_assignable((1u128 << 64) - 2),
        Some(ip("2001:db8::ffff:ffff:ffff:ffff"))
    );
    let all = parse("::/0").unwrap();
    assert_eq!(all.size(), u128::MAX, "2^128 saturates");
    assert_eq!(all.assignable_size(), u128::MAX);
    assert_eq!(
        all.nth_assignable(u128::MAX - 1),
        Some(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
    );
    assert_eq!(all.nth_assignable(u128::MAX), None);
    let all_range = parse("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").unwrap();
    assert_eq!(all_range.size(), u128::MAX);
    assert_eq!(all_range.assignable_size(), u128::MAX);
    let all4 = parse("0.0.0.0/0").unwrap();
    assert_eq!(all4.size(), 1u128 << 32);
    assert_eq!(all4.assignable_size(), (1u128 << 32) - 2);
    assert_eq!(all4.last(), ip("255.255.255.255"));
}

#[test]
fn range_uses_every_address_as_written() {
    let r = parse("192.0.2.10-192.0.2.20").unwrap();
    assert_eq!(r.form(), AddressForm::Range);
    assert_eq!(r.size(), 11);
    assert_eq!(r.assignable_size(), 11);
    assert_eq!(r.nth_assignable(0), Some(ip("192.0.2.10")));
    assert_eq!(r.nth_assignable(10), Some(ip("192.0.2.20")));
    assert_eq!(r.to_string(), "192.0.2.10-192.0.2.20");
    let r = parse("192.0.2.0-192.0.2.255").unwrap();
    assert!(
        r.is_assignable(ip("192.0.2.0")),
        "a range is used as written, even .0"
    );
    let r = parse("2001:db8::1-2001:db8::1:0").unwrap();
    assert_eq!(r.size(), 0x1_0000);
    let r = parse("192.0.2.7-192.0.2.7").unwrap();
    assert_eq!(r.size(), 1);
}

#[test]
fn contains_rejects_the_other_family() {
    let r = parse("0.0.0.0/0").unwrap();
    assert!(!r.contains(ip("::1")));
    assert!(!r.is_assignable(ip("::1")));
    assert_eq!(r.assignable_offset(ip("::ffff:192.0.2.1")), None);
}

#[test]
fn overlaps() {
    let a = parse("192.0.2.0/25").unwrap();
    assert!(a.overlaps(&parse("192.0.2.127-192.0.2.200").unwrap()));
    assert!(!a.overlaps(&parse("192.0.2.128/25").unwrap()));
    assert!(!a.overlaps(&parse("::/0").unwrap()));
}

#[test]
fn error_empty() {
    assert_eq!(parse(""), Err(AddressError::Empty));
    assert_eq!(parse(" \t"), Err(AddressError::Empty));
}

#[test]
fn error_start_after_end_message() {
    let err = parse("192.0.2.20-192.0.2.10").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#""192.0.2.20-192.0.2.10": range start is after end"#
    );
}

#[test]
fn error_mixed_families() {
    let err = parse("192.0.2.1-2001:db8::1").unwrap_err();
    assert!(matches!(err, AddressError::MixedFamilies { .. }));
    assert_eq!(
        err.to_string(),
        r#""192.0.2.1-2001:db8::1": range mixes IPv4 and IPv6 addresses"#
    );
}

#[test]
fn error_bad_prefix_length() {
    for (input, prefix, max) in [
        ("192.0.2.0/33", "33", 32),
        ("192.0.2.0/", "", 32),
        ("192.0.2.0/+8", "+8", 32),
        ("192.0.2.0/x", "x", 32),
        ("192.0.2.0/24/1", "24/1", 32),
        ("2001:db8::/129", "129", 128),
        ("2001:db8::/0128", "0128", 128),
    ] {
        assert_eq!(
            parse(input),
            Err(AddressError::InvalidPrefixLength {
                input: input.into(),
                prefix: prefix.into(),
                max
            }),
            "{input}"
        );
    }
    assert_eq!(
        parse("192.0.2.0/33").unwrap_err().to_string(),
        r#""192.0.2.0/33": bad prefix length "33", expected a number from 0 to 32"#
    );
}

#[test]
fn error_bad_ip_names_the_part() {
    for (input, part) in [
        ("192.0.2", "192.0.2"),
        ("192.0.2.256", "192.0.2.256"),
        ("192.0.2.010", "192.0.2.010"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("192.0.2.1 - 192.0.2.5", "192.0.2.1 "),
        ("192.0.2.1-", ""),
        ("-192.0.2.1", ""),
        ("192.0.2.1-192.0.2.2-192.0.2.3", "192.0.2.2-192.0.2.3"),
        ("x/24", "x"),
        ("eth0", "eth0"),
    ] {
        assert_eq!(
            parse(input),
            Err(AddressError::InvalidIp {
                input: input.into(),
                part: part.into()
            }),
            "{input}"
        );
    }
    assert_eq!(
        parse("192.0.2.256").unwrap_err().to_string(),
        r#""192.0.2.256": "192.0.2.256" is not an IP address"#
    );
}

#[test]
fn from_str_is_parse() {
    let r: IpRange = "198.51.100.0/30".parse().unwrap();
    assert_eq!(r, parse("198.51.100.0/30").unwrap());
}

#[test]
fn iterator_of_single_address_range_ends() {
    let mut it = parse("203.0.113.255").unwrap().assignable();
    assert_eq!(it.next(), Some(ip("203.0.113.255")));
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None);
    let mut top = parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
        .unwrap()
        .assignable();
    assert!(top.next().is_some());
    assert_eq!(top.next(), None, "no overflow at the top of the space");
}

#[test]
fn aggregation_blocks_and_covering_prefixes() {
    let cidr = parse("198.51.100.0/24").unwrap();
    assert!(cidr.aggregates_within(24) && cidr.aggregates_within(28) && cidr.aggregates_within(32));
    assert!(
        !cidr.aggregates_within(23),
        "a /23 covers addresses outside the /24"
    );
    assert!(!cidr.aggregates_within(33));
    let range = parse("198.51.100.16-198.51.100.47").unwrap();
    assert!(range.aggregates_within(28) && !range.aggregates_within(27));
    let single = parse("203.0.113.7").unwrap();
    assert!(single.aggregates_within(32) && !single.aggregates_within(31));
    let v6 = parse("2001:db8::/64").unwrap();
    assert!(v6.aggregates_within(64) && v6.aggregates_within(128) && !v6.aggregates_within(63));
    assert!(parse("::/0").unwrap().aggregates_within(0));
    assert_eq!(covering(ip("198.51.100.77"), 24), ip("198.51.100.0"));
    assert_eq!(covering(ip("198.51.100.77"), 32), ip("198.51.100.77"));
    assert_eq!(covering(ip("198.51.100.77"), 40), ip("198.51.100.77"));
    assert_eq!(covering(ip("198.51.100.77"), 0), ip("0.0.0.0"));
    assert_eq!(covering(ip("2001:db8::1:2"), 112), ip("2001:db8::1:0"));
}
