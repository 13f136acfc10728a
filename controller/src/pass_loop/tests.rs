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
