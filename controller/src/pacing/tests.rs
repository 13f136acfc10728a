use super::*;

#[test]
fn passes_over_changes_take_at_most_max_services_in_key_order() {
    let keys = |range: std::ops::Range<usize>| -> BTreeSet<ServiceKey> {
        range.map(|i| ServiceKey::new("ns", format!("s{i:03}"))).collect()
    };
    let mut carry = BTreeSet::new();
    // 250 changes, 100 a pass: 100, then 100 more plus nothing new, then the rest plus new ones.
    assert_eq!(
        next_touched(Some(keys(0..250)), &mut carry, 100),
        Some(keys(0..100))
    );
    assert_eq!(carry, keys(100..250));
    assert_eq!(
        next_touched(Some(BTreeSet::new()), &mut carry, 100),
        Some(keys(100..200))
    );
    // A change to a carried Service is one key, not two.
    let mut again = keys(260..270);
    again.insert(ServiceKey::new("ns", "s210"));
    assert_eq!(
        next_touched(Some(again), &mut carry, 100),
        Some(keys(200..250).into_iter().chain(keys(260..270)).collect())
    );
    assert!(carry.is_empty());
    // A whole pass decides everything: nothing is carried past it.
    next_touched(Some(keys(0..150)), &mut carry, 100);
    assert_eq!(carry.len(), 50);
    assert_eq!(next_touched(None, &mut carry, 100), None);
    assert!(carry.is_empty());
}

fn keys(range: std::ops::Range<usize>) -> BTreeSet<ServiceKey> {
    range.map(|i| ServiceKey::new("ns", format!("s{i:04}"))).collect()
}

/// A term starts with a whole pass, then decides changes only, and passes whole again every
/// RESYNC or when a pass asks for it.
#[test]
fn whole_first_then_changes_then_the_safety_net() {
    let t0 = Instant::now();
    let mut pacing = Pacing::new(t0);
    let first = pacing.begin(t0, Some(keys(0..3)));
    assert!(first.whole && first.touched.is_none() && !first.defer_eips);
    assert_eq!(
        pacing.end(false, 0, 0, t0),
        RESYNC,
        "nothing left: wait for the safety net"
    );

    let t1 = t0 + Duration::from_secs(1);
    let touched = pacing.begin(t1, Some(keys(0..2)));
    assert_eq!(
        touched,
        PassPlan {
            whole: false,
            touched: Some(keys(0..2)),
            defer_eips: false
        }
    );
    assert_eq!(
        pacing.end(true, 0, 0, t1),
        DEBOUNCE,
        "the pass asked for a whole one"
    );
    assert!(pacing.begin(t1, Some(BTreeSet::new())).whole);
    pacing.end(false, 0, 0, t1);
    assert!(
        !pacing
            .begin(t1 + Duration::from_secs(2), Some(BTreeSet::new()))
            .whole
    );
    pacing.end(false, 0, 0, t1);
    assert!(
        pacing.begin(t1 + RESYNC, Some(BTreeSet::new())).whole,
        "RESYNC after the last whole pass"
    );
    assert!(
        pacing.begin(t1 + RESYNC, None).whole,
        "a change that calls for one"
    );
}

/// Failed writes back off, doubling up to the bound, with a whole pass next; a clean pass resets
/// the backoff; a conflict retries soon.
#[test]
fn errors_back_off_and_conflicts_retry() {
    let t0 = Instant::now();
    let mut pacing = Pacing::new(t0);
    pacing.begin(t0, None);
    let mut waits = Vec::new();
    for _ in 0..8 {
        waits.push(pacing.end(false, 1, 0, t0));
    }
    assert_eq!(waits[0], ERROR_BACKOFF.0);
    assert_eq!(waits[1], ERROR_BACKOFF.0 * 2);
    assert_eq!(*waits.last().unwrap(), ERROR_BACKOFF.1);
    assert!(
        pacing.begin(t0, Some(BTreeSet::new())).whole,
        "failed writes are decided again whole"
    );
    assert_eq!(pacing.end(false, 0, 1, t0), CONFLICT_RETRY);
    assert_eq!(
        pacing.end(false, 1, 0, t0),
        ERROR_BACKOFF.0,
        "reset by the pass without errors"
    );
}

/// A burst is decided MAX_TOUCHED_PER_PASS Services at a time without waiting, and the Eips'
/// status is written at most every EIP_STATUS_EVERY meanwhile, and after the last chunk.
#[test]
fn a_burst_goes_in_chunks_deferring_eip_status() {
    let t0 = Instant::now();
    let mut pacing = Pacing::new(t0);
    pacing.begin(t0, None);
    pacing.end(false, 0, 0, t0);
    let t1 = t0 + Duration::from_secs(1);
    let first = pacing.begin(t1, Some(keys(0..2500)));
    assert_eq!(first.touched.map(|t| t.len()), Some(MAX_TOUCHED_PER_PASS));
    assert!(first.defer_eips, "within EIP_STATUS_EVERY of the last Eip write");
    assert_eq!(
        pacing.end(false, 0, 0, t1),
        Duration::ZERO,
        "the rest follows at once"
    );
    let t2 = t0 + EIP_STATUS_EVERY;
    let second = pacing.begin(t2, Some(BTreeSet::new()));
    assert_eq!(second.touched.map(|t| t.len()), Some(MAX_TOUCHED_PER_PASS));
    assert!(!second.defer_eips, "EIP_STATUS_EVERY has passed");
    pacing.end(false, 0, 0, t2);
    let last = pacing.begin(t2, Some(BTreeSet::new()));
    assert_eq!(last.touched.map(|t| t.len()), Some(500));
    assert!(!last.defer_eips, "the last chunk writes them");
}
