//! Small collections for the allocator's per-IP and per-Service records.
//!
//! The allocator keeps one record per IP in use and one per Service, so their size is the
//! allocator's memory per assignment. `BTreeSet`/`BTreeMap` allocate a node of eleven slots even for
//! one element: an IP's holders (nearly always one Service) and a Service's IPs (at most one per
//! family) are kept here in the smallest form that gives the same answers.

use std::net::IpAddr;

use oxelb_crds::address::IpFamily;

/// A set kept as a sorted slice: iteration in ascending order, as `BTreeSet`, at the size of its
/// elements; a set of one (an IP's only holder, nearly always) is kept inline, without an
/// allocation. Meant for sets of a few elements (the holders of one IP).
#[derive(Debug, Clone)]
pub(crate) enum SortedVecSet<T> {
    /// Exactly one element.
    One(T),
    /// Any number, ascending and distinct.
    Many(Vec<T>),
}

impl<T: Ord> SortedVecSet<T> {
    /// The set holding only `item`.
    pub(crate) fn one(item: T) -> Self {
        SortedVecSet::One(item)
    }

    /// The elements, ascending.
    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            SortedVecSet::One(item) => std::slice::from_ref(item),
            SortedVecSet::Many(items) => items,
        }
    }

    /// Takes the elements out as a `Vec`, leaving an empty set.
    fn take_vec(&mut self) -> Vec<T> {
        match std::mem::replace(self, SortedVecSet::Many(Vec::new())) {
            SortedVecSet::One(item) => vec![item],
            SortedVecSet::Many(items) => items,
        }
    }

    /// Adds `item`; returns whether it was new.
    pub(crate) fn insert(&mut self, item: T) -> bool {
        let Err(at) = self.as_slice().binary_search(&item) else {
            return false;
        };
        let mut items = self.take_vec();
        items.insert(at, item);
        *self = SortedVecSet::Many(items);
        true
    }

    /// Removes `item`; returns whether it was there.
    pub(crate) fn remove(&mut self, item: &T) -> bool {
        let Ok(at) = self.as_slice().binary_search(item) else {
            return false;
        };
        let mut items = self.take_vec();
        items.remove(at);
        *self = SortedVecSet::Many(items);
        true
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The elements, ascending.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.as_slice().iter()
    }
}

impl<T> IntoIterator for SortedVecSet<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        match self {
            SortedVecSet::One(item) => vec![item].into_iter(),
            SortedVecSet::Many(items) => items.into_iter(),
        }
    }
}

/// A Service's IPs: at most one per family, IPv4 first when iterated (the order of `IpFamily`, as
/// the `BTreeMap<IpFamily, IpAddr>` this replaces).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FamilyIps {
    v4: Option<IpAddr>,
    v6: Option<IpAddr>,
}

impl FamilyIps {
    fn slot_mut(&mut self, family: IpFamily) -> &mut Option<IpAddr> {
        match family {
            IpFamily::V4 => &mut self.v4,
            IpFamily::V6 => &mut self.v6,
        }
    }

    /// The IP of `family`, if any.
    pub(crate) fn get(&self, family: &IpFamily) -> Option<&IpAddr> {
        match family {
            IpFamily::V4 => self.v4.as_ref(),
            IpFamily::V6 => self.v6.as_ref(),
        }
    }

    /// Sets the IP of `family`, replacing any other of that family.
    pub(crate) fn insert(&mut self, family: IpFamily, ip: IpAddr) {
        *self.slot_mut(family) = Some(ip);
    }

    /// Keeps only the IPs for which `keep` answers true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&IpFamily, &mut IpAddr) -> bool) {
        for family in [IpFamily::V4, IpFamily::V6] {
            let slot = self.slot_mut(family);
            if let Some(ip) = slot
                && !keep(&family, ip)
            {
                *slot = None;
            }
        }
    }

    /// Whether no IP is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }

    /// The IPs, IPv4 first.
    pub(crate) fn values(&self) -> impl Iterator<Item = &IpAddr> {
        self.v4.iter().chain(self.v6.iter())
    }

    /// The IPs, IPv4 first, by value.
    pub(crate) fn into_values(self) -> impl Iterator<Item = IpAddr> {
        self.v4.into_iter().chain(self.v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_vec_set_keeps_order_and_uniqueness() {
        let mut set = SortedVecSet::one(5);
        assert!(set.insert(1));
        assert!(set.insert(9));
        assert!(!set.insert(5));
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), [1, 5, 9]);
        assert!(set.remove(&5));
        assert!(!set.remove(&5));
        assert!(set.remove(&1) && set.remove(&9));
        assert!(set.is_empty());
        let mut one = SortedVecSet::one(3);
        assert!(!one.insert(3), "a set of one holds it already");
        assert!(one.remove(&3) && one.is_empty() && !one.remove(&3));
        assert_eq!(SortedVecSet::one(7).into_iter().collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn family_ips_hold_one_per_family_v4_first() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v4b: IpAddr = "192.0.2.2".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mut ips = FamilyIps::default();
        assert!(ips.is_empty());
        ips.insert(IpFamily::V6, v6);
        ips.insert(IpFamily::V4, v4);
        ips.insert(IpFamily::V4, v4b);
        assert_eq!(ips.values().copied().collect::<Vec<_>>(), [v4b, v6]);
        assert_eq!(ips.get(&IpFamily::V4), Some(&v4b));
        ips.retain(|_, ip| *ip != v4b);
        assert_eq!(ips.get(&IpFamily::V4), None);
        assert_eq!(ips.clone().into_values().collect::<Vec<_>>(), [v6]);
        ips.retain(|family, _| *family != IpFamily::V6);
        assert!(ips.is_empty());
    }
}
