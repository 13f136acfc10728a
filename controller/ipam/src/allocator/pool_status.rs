//! What the allocator answers about its pools: their status, with or without the IPs in use.

use std::{collections::BTreeMap, net::IpAddr};

use super::Allocator;
use crate::{request::ServiceKey, status::PoolStatus};

impl Allocator {
    /// The status of pool `name`, or `None` if there is no such pool.
    pub fn pool_status(&self, name: &str) -> Option<PoolStatus> {
        let pool = self.pools.get(name)?;
        let range = &pool.spec.range;
        let used: BTreeMap<IpAddr, Vec<ServiceKey>> = self
            .ips
            .range(range.first()..=range.last())
            .filter(|(_, usage)| *usage.pool == *name)
            .map(|(ip, usage)| (*ip, usage.holders.iter().cloned().collect()))
            .collect();
        Some(PoolStatus {
            name: name.to_owned(),
            usage: used.len(),
            used,
            pool_size: range.assignable_size(),
            first_ip: range.first(),
            last_ip: range.last(),
            occupied: pool.free.is_empty(),
            v4: range.is_ipv4(),
        })
    }

    /// Every pool's status without [`PoolStatus::used`] (left empty; `usage` is counted): what
    /// metrics need, on every pass, without copying the holders of every IP in use.
    pub fn pool_summaries(&self) -> Vec<PoolStatus> {
        self.pools
            .keys()
            .filter_map(|name| self.pool_summary(name))
            .collect()
    }

    /// Pool `name`'s status without [`PoolStatus::used`] (left empty; `usage` is counted), or
    /// `None` if there is no such pool; [`pool_used`](Self::pool_used) walks the IPs in use.
    pub fn pool_summary(&self, name: &str) -> Option<PoolStatus> {
        let pool = self.pools.get(name)?;
        let range = &pool.spec.range;
        Some(PoolStatus {
            name: name.to_owned(),
            usage: self.pool_used(name).count(),
            used: BTreeMap::new(),
            pool_size: range.assignable_size(),
            first_ip: range.first(),
            last_ip: range.last(),
            occupied: pool.free.is_empty(),
            v4: range.is_ipv4(),
        })
    }

    /// The IPs of pool `name` in use, ascending, each with its holders (sorted): what
    /// [`PoolStatus::used`] holds, without copying it (a pool may hold tens of thousands).
    pub fn pool_used<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (IpAddr, &'a [ServiceKey])> + 'a {
        self.pools.get(name).into_iter().flat_map(move |pool| {
            let range = &pool.spec.range;
            self.ips
                .range(range.first()..=range.last())
                .filter(move |(_, usage)| *usage.pool == *name)
                .map(|(ip, usage)| (*ip, usage.holders.as_slice()))
        })
    }

    /// The pool an IP in use was assigned from; `None` for a free IP.
    pub fn pool_of_used(&self, ip: IpAddr) -> Option<&str> {
        self.ips.get(&ip).map(|usage| &*usage.pool)
    }

    /// The status of every pool, by name.
    pub fn pool_statuses(&self) -> Vec<PoolStatus> {
        self.pools
            .keys()
            .filter_map(|name| self.pool_status(name))
            .collect()
    }
}
