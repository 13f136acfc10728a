//! Property tests of `oxelb_crds::address`: display/parse round-trips, contains/offset/nth agree,
//! sizes never overflow, garbage never panics.

// Tests may panic on unexpected input: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use oxelb_crds::address::{self, AddressForm, IpFamily, IpRange};
use proptest::prelude::*;

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        // Small IPv6 values and values near the top exercise the edges of the space.
        (0u128..1024).prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        (0u128..1024).prop_map(|v| IpAddr::V6(Ipv6Addr::from(u128::MAX - v))),
    ]
}

fn as_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Any valid Eip address text, in all three forms and both families.
fn any_address() -> impl Strategy<Value = String> {
    prop_oneof![
        any_ip().prop_map(|ip| ip.to_string()),
        (any_ip(), any::<u8>()).prop_map(|(ip, len)| {
            let max = if ip.is_ipv4() { 33 } else { 129 };
            format!("{ip}/{}", len % max)
        }),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| {
            let (a, b) = (a.min(b), a.max(b));
            format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b))
        }),
        (any::<u128>(), any::<u128>()).prop_map(|(a, b)| {
            let (a, b) = (a.min(b), a.max(b));
            format!("{}-{}", Ipv6Addr::from(a), Ipv6Addr::from(b))
        }),
    ]
}

fn any_range() -> impl Strategy<Value = IpRange> {
    any_address().prop_map(|s| address::parse(&s).unwrap())
}

proptest! {
    #[test]
    fn display_parse_round_trips(range in any_range()) {
        let text = range.to_string();
        prop_assert_eq!(address::parse(&text), Ok(range));
        // Parsing is insensitive to surrounding whitespace.
        prop_assert_eq!(address::parse(&format!(" \t{text}\n")), Ok(range));
    }

    #[test]
    fn sizes_are_consistent_and_never_overflow(range in any_range()) {
        let span = as_u128(range.last()) - as_u128(range.first());
        prop_assert_eq!(range.size(), span.saturating_add(1));
        prop_assert!(range.assignable_size() <= range.size());
        prop_assert!(range.size() - range.assignable_size() <= 2);
        let expected_skipped = match (range.form(), range.family()) {
            (AddressForm::Cidr { prefix_len }, IpFamily::V4) if prefix_len <= 30 => 2,
            (AddressForm::Cidr { prefix_len }, IpFamily::V6) if prefix_len <= 126 => 1,
            _ => 0,
        };
        if range.size() != u128::MAX {
            prop_assert_eq!(range.size() - range.assignable_size(), expected_skipped);
        }
    }

    #[test]
    fn nth_and_offset_agree(range in any_range(), n in any::<u128>()) {
        let size = range.assignable_size();
        prop_assume!(size > 0);
        for offset in [0, n % size, size - 1] {
            let ip = range.nth_assignable(offset).unwrap();
            prop_assert!(range.contains(ip));
            prop_assert!(range.is_assignable(ip));
            prop_assert_eq!(range.assignable_offset(ip), Some(offset));
        }
        prop_assert_eq!(range.nth_assignable(size), None);
        prop_assert_eq!(range.first_assignable(), range.nth_assignable(0));
        prop_assert_eq!(range.last_assignable(), range.nth_assignable(size - 1));
    }

    #[test]
    fn contains_and_assignable_agree_for_any_ip(range in any_range(), ip in any_ip()) {
        let inside = IpFamily::of(ip) == range.family()
            && as_u128(range.first()) <= as_u128(ip)
            && as_u128(ip) <= as_u128(range.last());
        prop_assert_eq!(range.contains(ip), inside);
        if range.is_assignable(ip) {
            prop_assert!(range.contains(ip));
            let offset = range.assignable_offset(ip).unwrap();
            prop_assert_eq!(range.nth_assignable(offset), Some(ip));
        } else {
            prop_assert_eq!(range.assignable_offset(ip), None);
        }
    }

    #[test]
    fn iteration_matches_nth_for_small_ranges(start in any::<u32>(), len in 0u32..64) {
        let end = start.saturating_add(len);
        let range = address::parse(&format!("{}-{}", Ipv4Addr::from(start), Ipv4Addr::from(end))).unwrap();
        let all: Vec<IpAddr> = range.assignable().collect();
        prop_assert_eq!(all.len() as u128, range.assignable_size());
        for (i, ip) in all.iter().enumerate() {
            prop_assert_eq!(range.nth_assignable(i as u128), Some(*ip));
        }
    }

    #[test]
    fn garbage_never_panics(s in ".{0,64}") {
        let _ = address::parse(&s);
    }

    #[test]
    fn address_like_garbage_never_panics(s in "[0-9a-fA-F:./\\- %]{0,48}") {
        if let Ok(range) = address::parse(&s) {
            prop_assert!(range.size() >= 1);
            prop_assert_eq!(address::parse(&range.to_string()), Ok(range));
        }
    }
}
