//! The fallback decision, data by data (RFC 5492 section 5).

use super::*;

use Capability::{AddPath, FourOctetAs, GracefulRestart, Multiprotocol, RouteRefresh};
use Family::{Ipv4Unicast, Ipv6Unicast};

/// What the speaker offers with both families, graceful restart and ADD-PATH.
fn all() -> BTreeSet<Capability> {
    offered(&[Ipv4Unicast, Ipv6Unicast].into(), true, true)
}

const MP_V4: [u8; 6] = [1, 4, 0, 1, 0, 1];
const MP_V6: [u8; 6] = [1, 4, 0, 2, 0, 1];

#[test]
fn offered_lists_every_capability_of_the_open() {
    assert_eq!(
        all(),
        [
            Multiprotocol(Ipv4Unicast),
            Multiprotocol(Ipv6Unicast),
            RouteRefresh,
            GracefulRestart,
            FourOctetAs,
            AddPath
        ]
        .into()
    );
    assert_eq!(
        offered(&[Ipv4Unicast].into(), false, false),
        [Multiprotocol(Ipv4Unicast), RouteRefresh, FourOctetAs].into()
    );
}

#[test]
fn one_named_capability_is_left_out() {
    let f = fallback(&all(), &BTreeSet::new(), &MP_V6);
    assert_eq!(f.left_out, vec![Multiprotocol(Ipv6Unicast)]);
    assert!(f.not_left_out.is_empty() && f.malformed == 0 && !f.empty);
    assert!(
        f.describe()
            .contains("leaves out multiprotocol-ipv6-unicast (code 1)"),
        "{}",
        f.describe()
    );
    // Route refresh as FRR echoes it: code and an empty value.
    let f = fallback(&all(), &BTreeSet::new(), &[2, 0]);
    assert_eq!(f.left_out, vec![RouteRefresh]);
}

#[test]
fn several_named_capabilities_are_all_left_out_in_their_order() {
    let mut data = vec![69, 4, 0, 1, 1, 2];
    data.extend_from_slice(&MP_V6);
    data.extend_from_slice(&[64, 2, 0x00, 0x78]);
    let f = fallback(&all(), &BTreeSet::new(), &data);
    assert_eq!(
        f.left_out,
        vec![AddPath, Multiprotocol(Ipv6Unicast), GracefulRestart]
    );
    assert!(f.not_left_out.is_empty());
    // The same capability named twice is left out once.
    let f = fallback(&all(), &BTreeSet::new(), &[2, 0, 2, 0]);
    assert_eq!(f.left_out, vec![RouteRefresh]);
    assert!(f.not_left_out.is_empty());
}

#[test]
fn four_octet_as_is_left_out_only_when_named() {
    for data in [&MP_V6[..], &[2, 0], &[64, 0], &[69, 0]] {
        let f = fallback(&all(), &BTreeSet::new(), data);
        assert!(!f.left_out.contains(&FourOctetAs), "{data:?}: {f:?}");
    }
    let f = fallback(&all(), &BTreeSet::new(), &[65, 4, 0, 0, 0xfc, 0]);
    assert_eq!(f.left_out, vec![FourOctetAs]);
}

#[test]
fn malformed_data_uses_the_whole_entries_before_the_fault() {
    // Route refresh, then a multiprotocol entry whose length runs past the end.
    let f = fallback(&all(), &BTreeSet::new(), &[2, 0, 1, 4, 0, 2]);
    assert_eq!(f.left_out, vec![RouteRefresh]);
    assert_eq!(f.malformed, 4);
    assert!(f.describe().contains("4 trailing byte(s)"), "{}", f.describe());
    // A lone byte: nothing left out, reported.
    let f = fallback(&all(), &BTreeSet::new(), &[1]);
    assert!(f.left_out.is_empty());
    assert_eq!(f.malformed, 1);
    assert!(f.describe().contains("same OPEN"), "{}", f.describe());
}

#[test]
fn a_multiprotocol_entry_that_is_no_family_of_ours_leaves_nothing_out() {
    // Wrong length, unknown AFI, a SAFI other than unicast (VPN, 128).
    for data in [
        &[1, 3, 0, 2, 0][..],
        &[1, 4, 0, 25, 0, 70],
        &[1, 4, 0, 1, 0, 128],
        &[1, 0],
    ] {
        let f = fallback(&all(), &BTreeSet::new(), data);
        assert!(f.left_out.is_empty(), "{data:?}");
        assert!(
            matches!(f.not_left_out[..], [NotLeftOut::NotOffered { code: 1, .. }]),
            "{f:?}"
        );
    }
    // A family we do not offer.
    let v4_only = offered(&[Ipv4Unicast].into(), false, false);
    let f = fallback(&v4_only, &BTreeSet::new(), &MP_V6);
    assert!(f.left_out.is_empty());
    assert_eq!(
        f.not_left_out,
        vec![NotLeftOut::NotOffered {
            code: 1,
            value: vec![0, 2, 0, 1]
        }]
    );
}

#[test]
fn capabilities_we_did_not_offer_are_reported_as_possibly_required() {
    // Extended messages (6) and hostname (73): what a router requiring them might name; and
    // graceful restart and ADD-PATH when the session does not offer them.
    let plain = offered(&[Ipv4Unicast].into(), false, false);
    let f = fallback(&plain, &BTreeSet::new(), &[6, 0, 73, 1, b'x', 64, 0, 69, 0]);
    assert!(f.left_out.is_empty());
    assert_eq!(f.not_left_out.len(), 4);
    let text = f.describe();
    assert!(text.contains("code 6, which oxelb did not offer"), "{text}");
    assert!(text.contains("code 73 value 0x78"), "{text}");
}

#[test]
fn empty_data_leaves_nothing_out_and_says_so() {
    let f = fallback(&all(), &BTreeSet::new(), &[]);
    assert_eq!(
        f,
        Fallback {
            empty: true,
            ..Fallback::default()
        }
    );
    let text = f.describe();
    assert!(
        text.contains("named no capability") && text.contains("same OPEN"),
        "{text}"
    );
}

#[test]
fn the_last_family_is_kept() {
    let v6_only = offered(&[Ipv6Unicast].into(), false, false);
    let f = fallback(&v6_only, &BTreeSet::new(), &MP_V6);
    assert!(f.left_out.is_empty());
    assert_eq!(
        f.not_left_out,
        vec![NotLeftOut::LastFamily(Multiprotocol(Ipv6Unicast))]
    );
    // Both families named at once: the first goes, the second is the last and stays.
    let mut both = MP_V4.to_vec();
    both.extend_from_slice(&MP_V6);
    let f = fallback(&all(), &BTreeSet::new(), &both);
    assert_eq!(f.left_out, vec![Multiprotocol(Ipv4Unicast)]);
    assert_eq!(
        f.not_left_out,
        vec![NotLeftOut::LastFamily(Multiprotocol(Ipv6Unicast))]
    );
    // One already left out earlier: the other is the last.
    let gone: BTreeSet<Capability> = [Multiprotocol(Ipv4Unicast)].into();
    let f = fallback(&all(), &gone, &MP_V6);
    assert_eq!(
        f.not_left_out,
        vec![NotLeftOut::LastFamily(Multiprotocol(Ipv6Unicast))]
    );
}

#[test]
fn a_refused_fallback_leaves_out_only_what_is_new_and_is_bounded() {
    let mut gone: BTreeSet<Capability> = BTreeSet::new();
    let f = fallback(&all(), &gone, &[69, 0]);
    gone.extend(f.left_out.iter().copied());
    // Refused again for the same capability: nothing new, said so.
    let f = fallback(&all(), &gone, &[69, 0]);
    assert!(f.left_out.is_empty());
    assert_eq!(f.not_left_out, vec![NotLeftOut::AlreadyLeftOut(AddPath)]);
    assert!(f.describe().contains("already left out"), "{}", f.describe());
    // A peer naming everything, refusal after refusal: the offer shrinks each time until nothing
    // can go, in at most as many refusals as capabilities.
    let everything: Vec<u8> = [&MP_V4[..], &MP_V6, &[2, 0, 64, 0, 65, 0, 69, 0]].concat();
    let mut gone = BTreeSet::new();
    let mut rounds = 0;
    loop {
        let f = fallback(&all(), &gone, &everything);
        if f.left_out.is_empty() {
            break;
        }
        gone.extend(f.left_out);
        rounds += 1;
        assert!(rounds <= all().len(), "no end");
    }
    assert_eq!(rounds, 1, "everything that can go goes at once");
    assert_eq!(all().difference(&gone).count(), 1, "only the last family stays");
}
