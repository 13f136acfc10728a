//! The hand-over file's checks: format, node, age (oxelb_bfd::handover).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use oxelb_bfd::{
    handover::{FORMAT, Handover, Refusal, SessionHandover, Snapshot},
    session::Config,
};

fn handover() -> Handover {
    let snapshot = Snapshot {
        local_discriminator: 42,
        remote_discriminator: 7,
        desired_min_tx_us: 100_000,
        required_min_rx_us: 100_000,
        detect_mult: 100,
        remote_desired_min_tx_us: 100_000,
        remote_required_min_rx_us: 100_000,
        remote_detect_mult: 3,
    };
    let session = SessionHandover {
        neighbor: "192.0.2.1".parse().unwrap(),
        multihop: false,
        config: Config::default(),
        snapshot,
    };
    Handover {
        format: FORMAT,
        node: "n1".into(),
        written_unix_ms: 1_000_000,
        window_ms: 10_000,
        source_port_v4: Some(49999),
        source_port_v6: None,
        sessions: [("router".to_owned(), session)].into(),
    }
}

#[test]
fn a_fresh_handover_of_this_node_is_used() {
    let h = handover();
    assert_eq!(h.check("n1", 1_000_000), Ok(()));
    assert_eq!(h.check("n1", 1_009_999), Ok(()));
    // Clock readings of two processes a little apart.
    assert_eq!(h.check("n1", 999_500), Ok(()));
}

#[test]
fn stale_foreign_future_and_unknown_formats_are_refused_with_the_reason() {
    let h = handover();
    assert_eq!(
        h.check("n1", 1_010_000),
        Err(Refusal::Stale {
            age_ms: 10_000,
            window_ms: 10_000
        })
    );
    assert_eq!(
        h.check("n2", 1_000_001),
        Err(Refusal::ForeignNode {
            written: "n1".into(),
            ours: "n2".into()
        })
    );
    assert_eq!(h.check("n1", 990_000), Err(Refusal::Future { ahead_ms: 10_000 }));
    let old = Handover {
        format: FORMAT + 1,
        ..handover()
    };
    assert_eq!(
        old.check("n1", 1_000_000),
        Err(Refusal::Format { found: FORMAT + 1 })
    );
    for refusal in [
        h.check("n1", 1_010_000),
        h.check("n2", 1_000_000),
        h.check("n1", 990_000),
    ] {
        assert!(!refusal.unwrap_err().to_string().is_empty());
    }
}

#[test]
fn a_session_is_continued_only_with_the_same_peer_and_hop_mode_and_only_once() {
    let mut h = handover();
    let router: IpAddr = "192.0.2.1".parse().unwrap();
    let other: IpAddr = "192.0.2.2".parse().unwrap();
    assert_eq!(h.take("router", other, false), None);
    assert_eq!(h.take("router", router, true), None);
    assert_eq!(h.take("elsewhere", router, false), None);
    let taken = h.take("router", router, false).expect("same peer");
    assert_eq!(taken.snapshot.local_discriminator, 42);
    assert_eq!(h.take("router", router, false), None, "only once");
}
