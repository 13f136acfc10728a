//! The free assignable offsets of one pool, as a set of disjoint intervals.
//!
//! Memory is proportional to the number of holes punched by addresses in use (at most one interval
//! more than the number of used offsets), never to the pool size, so a /64 costs the same as a /30.
//! Every operation is O(log n) in the number of intervals.

use std::collections::BTreeMap;

/// Free offsets in `0..size`, stored as inclusive intervals `start -> end`, disjoint and non-adjacent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FreeOffsets {
    intervals: BTreeMap<u128, u128>,
}

impl FreeOffsets {
    /// Every offset in `0..size` is free.
    pub(crate) fn full(size: u128) -> Self {
        let mut intervals = BTreeMap::new();
        if size > 0 {
            intervals.insert(0, size - 1);
        }
        FreeOffsets { intervals }
    }

    /// The lowest free offset.
    pub(crate) fn lowest(&self) -> Option<u128> {
        self.intervals.keys().next().copied()
    }

    /// Whether no offset is free.
    pub(crate) fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// The interval holding `offset`, if `offset` is free.
    fn interval_of(&self, offset: u128) -> Option<(u128, u128)> {
        self.intervals
            .range(..=offset)
            .next_back()
            .filter(|(_, end)| **end >= offset)
            .map(|(start, end)| (*start, *end))
    }

    /// Whether `offset` is free.
    pub(crate) fn is_free(&self, offset: u128) -> bool {
        self.interval_of(offset).is_some()
    }

    /// Marks `offset` used; returns whether it was free.
    pub(crate) fn take(&mut self, offset: u128) -> bool {
        let Some((start, end)) = self.interval_of(offset) else {
            return false;
        };
        self.intervals.remove(&start);
        if start < offset {
            self.intervals.insert(start, offset - 1);
        }
        if offset < end {
            self.intervals.insert(offset + 1, end);
        }
        true
    }

    /// Marks `offset` free again, merging with its neighbours; returns whether it was used.
    ///
    /// The caller guarantees `offset` lies inside the pool's assignable range.
    pub(crate) fn give_back(&mut self, offset: u128) -> bool {
        if self.is_free(offset) {
            return false;
        }
        let mut start = offset;
        let mut end = offset;
        // The interval ending right before `offset`, if any, is absorbed.
        if let Some(before) = offset.checked_sub(1)
            && let Some((prev_start, _)) = self.interval_of(before)
        {
            self.intervals.remove(&prev_start);
            start = prev_start;
        }
        // The interval starting right after `offset`, if any, is absorbed.
        if let Some(after) = offset.checked_add(1)
            && let Some(next_end) = self.intervals.remove(&after)
        {
            end = next_end;
        }
        self.intervals.insert(start, end);
        true
    }

    /// Number of disjoint free intervals (memory use), for tests.
    #[cfg(test)]
    pub(crate) fn interval_count(&self) -> usize {
        self.intervals.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn empty_pool_has_nothing_free() {
        let free = FreeOffsets::full(0);
        assert!(free.is_empty());
        assert_eq!(free.lowest(), None);
    }

    #[test]
    fn take_splits_and_give_back_merges() {
        let mut free = FreeOffsets::full(10);
        assert!(free.take(0));
        assert_eq!(free.lowest(), Some(1));
        assert!(free.take(5));
        assert_eq!(free.interval_count(), 2);
        assert!(!free.take(5), "already used");
        assert!(free.give_back(5));
        assert_eq!(free.interval_count(), 1);
        assert!(!free.give_back(5), "already free");
        assert!(free.give_back(0));
        assert_eq!(free, FreeOffsets::full(10));
    }

    #[test]
    fn huge_pool_is_cheap_at_both_ends() {
        let mut free = FreeOffsets::full(u128::MAX);
        assert!(free.take(0));
        assert!(free.take(u128::MAX - 1));
        assert_eq!(free.lowest(), Some(1));
        assert!(free.give_back(u128::MAX - 1));
        assert!(free.give_back(0));
        assert_eq!(free, FreeOffsets::full(u128::MAX));
    }

    proptest! {
        /// The interval set behaves exactly like a naive set of used offsets.
        #[test]
        fn matches_a_naive_model(ops in proptest::collection::vec((any::<bool>(), 0u128..24), 0..200)) {
            let size = 24;
            let mut free = FreeOffsets::full(size);
            let mut used = BTreeSet::new();
            for (take, offset) in ops {
                if take {
                    prop_assert_eq!(free.take(offset), used.insert(offset));
                } else {
                    prop_assert_eq!(free.give_back(offset), used.remove(&offset));
                }
                let naive_lowest = (0..size).find(|o| !used.contains(o));
                prop_assert_eq!(free.lowest(), naive_lowest);
                for o in 0..size {
                    prop_assert_eq!(free.is_free(o), !used.contains(&o));
                }
                prop_assert!(free.interval_count() <= used.len() + 1);
            }
        }
    }
}
