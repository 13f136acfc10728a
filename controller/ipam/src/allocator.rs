//! The allocator: pools, who holds which IP, and the rules for choosing and sharing IPs.

mod pool_status;
mod sharing;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::compact::{FamilyIps, SortedVecSet};

use oxelb_crds::address::IpFamily;

use crate::error::{AssignError, RegisterError, SharingConflict};
use crate::free::FreeOffsets;
use crate::request::{PoolSpec, ServiceKey, ServiceRequest};
use crate::status::{AssignedIp, Assignment, Orphan, OrphanReason};

use self::sharing::Sharing;

/// One pool and its free assignable offsets.
#[derive(Debug, Clone)]
struct PoolState {
    /// The pool's name, shared with every [`IpUse`] of the pool.
    name: Arc<str>,
    spec: PoolSpec,
    /// Assignable offsets held by nobody (through this pool or an overlapping one).
    free: FreeOffsets,
}

/// One IP in use.
#[derive(Debug, Clone)]
struct IpUse {
    /// The pool the IP was assigned from (the pool's own shared name, not a copy per IP).
    pool: Arc<str>,
    /// Never empty: an IP without holders is removed.
    holders: SortedVecSet<ServiceKey>,
}

/// One Service's IPs and the sharing facts it last presented.
#[derive(Debug, Clone)]
struct ServiceState {
    ips: FamilyIps,
    sharing: Sharing,
}

/// What [`Allocator::assign`] decided for one family, before anything is changed.
enum Step {
    /// The Service keeps the IP it holds.
    Keep(IpAddr),
    /// The Service becomes a holder of `ip` (free, or shared with its current holders).
    Take { ip: IpAddr, pool: Arc<str> },
}

/// Assigns IPs from pools to Services. Pure: no I/O, no clock; the controller feeds it and writes the
/// results.
///
/// Every mutating call either succeeds completely or changes nothing. Allocation is O(log n) in the
/// number of IPs in use (times the number of pools containing the IP, which is one unless pools overlap),
/// and memory is proportional to the IPs in use, whatever the pool sizes.
///
/// Restart: call [`Allocator::set_pools`], then [`Allocator::register_existing`] for every IP found in
/// Service and Eip status, and only then [`Allocator::assign`], so no IP is handed out twice.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    pools: BTreeMap<String, PoolState>,
    ips: BTreeMap<IpAddr, IpUse>,
    services: BTreeMap<ServiceKey, ServiceState>,
}

impl Allocator {
    /// An allocator with no pools and no assignments.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the set of pools (by name; a later duplicate name wins).
    ///
    /// Assignments are kept when their pool still exists and its new address still contains the IP;
    /// every other assignment is dropped and returned, and the controller decides
    /// (typically it assigns the Service again). Changing only `disabled`, `priority`, namespaces or the
    /// default flag never drops anything.
    pub fn set_pools(&mut self, pools: impl IntoIterator<Item = PoolSpec>) -> Vec<Orphan> {
        let specs: BTreeMap<String, PoolSpec> =
            pools.into_iter().map(|spec| (spec.name.clone(), spec)).collect();

        let mut orphans = Vec::new();
        let mut dropped = Vec::new();
        for (ip, usage) in &self.ips {
            let reason = match specs.get(&*usage.pool) {
                None => Some(OrphanReason::PoolRemoved),
                // Kept while the range still contains it, even where it stopped being assignable
                // (a range turned CIDR): a Service never moves for a change it does not need.
                Some(spec) if !spec.range.contains(*ip) => Some(OrphanReason::OutsidePool),
                Some(_) => None,
            };
            if let Some(reason) = reason {
                dropped.push(*ip);
                orphans.extend(usage.holders.iter().map(|service| Orphan {
                    service: service.clone(),
                    ip: *ip,
                    pool: usage.pool.to_string(),
                    reason,
                }));
            }
        }
        for ip in dropped {
            if let Some(usage) = self.ips.remove(&ip) {
                for service in usage.holders {
                    self.forget_service_ip(&service, ip);
                }
            }
        }

        // Rebuild every free set from the IPs in use: pools change rarely, and this is O(used) per pool.
        self.pools = specs
            .into_values()
            .map(|spec| {
                let mut free = FreeOffsets::full(spec.range.assignable_size());
                for ip in self.ips_in(&spec) {
                    if let Some(offset) = spec.range.assignable_offset(ip) {
                        free.take(offset);
                    }
                }
                // The IPs in use keep sharing the name they were given.
                let name = self
                    .pools
                    .get(&spec.name)
                    .map_or_else(|| spec.name.as_str().into(), |old| old.name.clone());
                (spec.name.clone(), PoolState { name, spec, free })
            })
            .collect();
        orphans
    }

    /// The IPs in use inside `spec`'s range (assignable or not), ascending.
    fn ips_in(&self, spec: &PoolSpec) -> Vec<IpAddr> {
        self.ips
            .range(spec.range.first()..=spec.range.last())
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// Removes `ip` from `service`'s IPs, and the Service itself when it holds nothing more.
    fn forget_service_ip(&mut self, service: &ServiceKey, ip: IpAddr) {
        if let Some(state) = self.services.get_mut(service) {
            state.ips.retain(|_, held| *held != ip);
            if state.ips.is_empty() {
                self.services.remove(service);
            }
        }
    }

    /// Gives (or keeps) the Service one IP per wanted family, following the pool-choice and sharing rules
    /// in the [crate docs](crate). On error nothing changes.
    ///
    /// An IP the Service already holds is kept while it is still allowed: it equals the requested IP of
    /// its family (if any), it comes from the named pool (if any), and its sharing is still legal. IPs
    /// of families the Service no longer wants are released.
    pub fn assign(&mut self, request: &ServiceRequest) -> Result<Assignment, AssignError> {
        let service = &request.key;
        if request.families.is_empty() {
            return Err(AssignError::NoFamily {
                service: service.clone(),
            });
        }
        let mut requested: BTreeMap<IpFamily, IpAddr> = BTreeMap::new();
        for ip in &request.requested_ips {
            let family = IpFamily::of(*ip);
            if !request.families.contains(&family) {
                return Err(AssignError::RequestedFamilyNotWanted {
                    service: service.clone(),
                    ip: *ip,
                    family,
                });
            }
            if let Some(first) = requested.insert(family, *ip)
                && first != *ip
            {
                return Err(AssignError::TwoRequestedIpsOfOneFamily {
                    service: service.clone(),
                    family,
                    first,
                    second: *ip,
                });
            }
        }
        let sharing = Sharing::of(request);

        let mut steps = Vec::new();
        for family in &request.families {
            steps.push(self.plan(request, &sharing, *family, requested.get(family).copied())?);
        }

        // Commit: nothing below can fail.
        let previous = self
            .services
            .get(service)
            .map(|state| state.ips.clone())
            .unwrap_or_default();
        let mut ips = FamilyIps::default();
        for step in steps {
            let ip = match step {
                Step::Keep(ip) => ip,
                Step::Take { ip, pool } => {
                    self.hold(service, ip, pool);
                    ip
                }
            };
            ips.insert(IpFamily::of(ip), ip);
        }
        for old in previous.values() {
            if ips.get(&IpFamily::of(*old)) != Some(old) {
                self.unhold(service, *old);
            }
        }
        self.services
            .insert(service.clone(), ServiceState { ips, sharing });
        Ok(self.assignment(service).unwrap_or_default())
    }

    /// Decides the IP of one family for `request`, without changing anything.
    fn plan(
        &self,
        request: &ServiceRequest,
        sharing: &Sharing,
        family: IpFamily,
        requested: Option<IpAddr>,
    ) -> Result<Step, AssignError> {
        let service = &request.key;
        let held = self
            .services
            .get(service)
            .and_then(|state| state.ips.get(&family).copied());
        if let Some(held) = held
            && let Some(usage) = self.ips.get(&held)
            && requested.is_none_or(|ip| ip == held)
            && self
                .pool_name_for(request, family)
                .is_none_or(|pool| *pool == *usage.pool)
        {
            // Still allowed, unless the Service's new ports or selector collide with a co-holder.
            self.check_sharing(service, sharing, held)?;
            return Ok(Step::Keep(held));
        }

        if let Some(ip) = requested {
            return self.plan_requested(request, sharing, ip);
        }

        if let Some(name) = &self.pool_name_for(request, family) {
            let pool = self.named_pool(service, name)?;
            if pool.spec.range.family() != family {
                return Err(AssignError::PoolWrongFamily {
                    service: service.clone(),
                    pool: name.clone(),
                    pool_family: pool.spec.range.family(),
                    family,
                });
            }
            if pool.spec.disabled {
                return Err(AssignError::PoolDisabled {
                    service: service.clone(),
                    pool: name.clone(),
                });
            }
            return lowest_free(pool).ok_or_else(|| AssignError::PoolExhausted {
                service: service.clone(),
                pool: name.clone(),
            });
        }

        // Pools bound to the namespace: non-full first, then lower priority (unset last), then name;
        // the default pool comes after them.
        let mut bound: Vec<&PoolState> = self
            .pools
            .values()
            .filter(|pool| usable_for(pool, family))
            .filter(|pool| pool.spec.binds(&service.namespace, &request.namespace_labels))
            .collect();
        bound.sort_by(|a, b| {
            let rank = |pool: &PoolState| {
                (
                    pool.free.is_empty(),
                    pool.spec.priority.is_none(),
                    pool.spec.priority,
                )
            };
            rank(a).cmp(&rank(b)).then_with(|| a.spec.name.cmp(&b.spec.name))
        });
        let default = self
            .pools
            .values()
            .find(|pool| pool.spec.is_default && usable_for(pool, family));
        if let Some(default) = default
            && !bound.iter().any(|pool| pool.spec.name == default.spec.name)
        {
            bound.push(default);
        }
        if bound.is_empty() {
            return Err(AssignError::NoPoolApplies {
                service: service.clone(),
                namespace: service.namespace.to_string(),
                family,
            });
        }
        bound
            .iter()
            .find_map(|pool| lowest_free(pool))
            .ok_or_else(|| AssignError::AllPoolsFull {
                service: service.clone(),
                family,
                pools: bound.iter().map(|pool| pool.spec.name.clone()).collect(),
            })
    }

    /// Decides for an explicitly requested IP that the Service does not hold (or may no longer keep).
    fn plan_requested(
        &self,
        request: &ServiceRequest,
        sharing: &Sharing,
        ip: IpAddr,
    ) -> Result<Step, AssignError> {
        let service = &request.key;
        let pool = match &self.pool_name_for(request, IpFamily::of(ip)) {
            Some(name) => {
                let pool = self.named_pool(service, name)?;
                if !pool.spec.range.contains(ip) {
                    return Err(AssignError::IpOutsideNamedPool {
                        service: service.clone(),
                        ip,
                        pool: name.clone(),
                    });
                }
                // A held IP stays in the pool it was assigned from (only differs if pools overlap).
                match self.ips.get(&ip) {
                    Some(usage) => self.pools.get(&*usage.pool).unwrap_or(pool),
                    None => pool,
                }
            }
            None => self.pool_of(ip).ok_or_else(|| AssignError::IpOutsideEveryPool {
                service: service.clone(),
                ip,
            })?,
        };
        let name = pool.name.clone();
        if pool.spec.disabled {
            return Err(AssignError::PoolDisabled {
                service: service.clone(),
                pool: name.to_string(),
            });
        }
        if !pool.spec.range.is_assignable(ip) {
            return Err(AssignError::IpNotAssignable {
                service: service.clone(),
                ip,
                pool: name.to_string(),
            });
        }
        // Explicitly requested: sharing is allowed if ports and selectors agree.
        self.check_sharing(service, sharing, ip)?;
        Ok(Step::Take { ip, pool: name })
    }

    /// The named pool, or the error naming it.
    /// The pool `request` names for `family`: its one named pool, or among its per-family pools the
    /// one of that family (else the first, so the error names a pool the user wrote).
    fn pool_name_for(&self, request: &ServiceRequest, family: IpFamily) -> Option<String> {
        if let Some(pool) = &request.pool {
            return Some(pool.clone());
        }
        request
            .family_pools
            .iter()
            .find(|name| {
                self.pools
                    .get(name.as_str())
                    .is_some_and(|pool| pool.spec.range.family() == family)
            })
            .or(request.family_pools.first())
            .cloned()
    }

    fn named_pool(&self, service: &ServiceKey, name: &str) -> Result<&PoolState, AssignError> {
        self.pools.get(name).ok_or_else(|| AssignError::PoolNotFound {
            service: service.clone(),
            pool: name.to_owned(),
        })
    }

    /// The pool `ip` belongs to: the one it was assigned from if in use, else the first pool (by name)
    /// containing it, preferring one where it is assignable.
    fn pool_of(&self, ip: IpAddr) -> Option<&PoolState> {
        if let Some(pool) = self.ips.get(&ip).and_then(|usage| self.pools.get(&*usage.pool)) {
            return Some(pool);
        }
        let mut containing = self.pools.values().filter(|pool| pool.spec.range.contains(ip));
        let first = containing.clone().next();
        containing
            .find(|pool| pool.spec.range.is_assignable(ip))
            .or(first)
    }

    /// Whether `service` (with `sharing`) may hold `ip` beside its other holders (MetalLB's rules).
    ///
    /// Only called for an IP the Service asked for explicitly or already holds: automatic allocation
    /// never sees a held IP, because held IPs are not in any free set.
    fn check_sharing(
        &self,
        service: &ServiceKey,
        sharing: &Sharing,
        ip: IpAddr,
    ) -> Result<(), SharingConflict> {
        let Some(usage) = self.ips.get(&ip) else {
            return Ok(());
        };
        for holder in usage.holders.iter().filter(|holder| *holder != service) {
            let Some(other) = self.services.get(holder).map(|state| &state.sharing) else {
                continue;
            };
            sharing.may_share(service, ip, holder, other)?;
        }
        Ok(())
    }

    /// Records `service` as a holder of `ip` from `pool`, taking the IP out of every free set.
    fn hold(&mut self, service: &ServiceKey, ip: IpAddr, pool: Arc<str>) {
        if let Some(usage) = self.ips.get_mut(&ip) {
            usage.holders.insert(service.clone());
            return;
        }
        for state in self.pools.values_mut() {
            if let Some(offset) = state.spec.range.assignable_offset(ip) {
                state.free.take(offset);
            }
        }
        self.ips.insert(
            ip,
            IpUse {
                pool,
                holders: SortedVecSet::one(service.clone()),
            },
        );
    }

    /// Removes `service` as a holder of `ip`; the last holder leaving frees the IP.
    fn unhold(&mut self, service: &ServiceKey, ip: IpAddr) {
        let Some(usage) = self.ips.get_mut(&ip) else {
            return;
        };
        usage.holders.remove(service);
        if !usage.holders.is_empty() {
            return;
        }
        self.ips.remove(&ip);
        for state in self.pools.values_mut() {
            if let Some(offset) = state.spec.range.assignable_offset(ip) {
                state.free.give_back(offset);
            }
        }
    }

    /// Re-registers an assignment found in Service or Eip status (restart), before any
    /// [`Allocator::assign`]. Registering the same IP twice is harmless; a disabled pool is fine (existing
    /// assignments stay). Two holders of one IP are accepted if their ports and selectors allow sharing
    /// (who asked first is not known after a restart). On error nothing is recorded.
    pub fn register_existing(
        &mut self,
        request: &ServiceRequest,
        ip: IpAddr,
    ) -> Result<AssignedIp, RegisterError> {
        let service = &request.key;
        let pool = self
            .pool_of(ip)
            .ok_or_else(|| RegisterError::IpOutsideEveryPool {
                service: service.clone(),
                ip,
            })?;
        // Any address of the range is kept, also a CIDR's network or broadcast address: OpenELB hands
        // those out, and adopting its allocations must not move a Service (its IP is in users' DNS).
        // Only new allocations avoid them.
        let name = pool.name.clone();
        let family = IpFamily::of(ip);
        if let Some(registered) = self
            .services
            .get(service)
            .and_then(|state| state.ips.get(&family))
            && *registered != ip
        {
            return Err(RegisterError::FamilyAlreadyHeld {
                service: service.clone(),
                ip,
                registered: *registered,
            });
        }
        let sharing = Sharing::of(request);
        // The Service's latest ports and selector must suit the co-holders of every IP it will hold.
        let held = self
            .services
            .get(service)
            .map(|state| state.ips.values().copied().collect::<Vec<_>>())
            .unwrap_or_default();
        for address in held.into_iter().chain([ip]) {
            self.check_sharing(service, &sharing, address)?;
        }

        self.hold(service, ip, name.clone());
        let state = self
            .services
            .entry(service.clone())
            .or_insert_with(|| ServiceState {
                ips: FamilyIps::default(),
                sharing: sharing.clone(),
            });
        state.ips.insert(family, ip);
        state.sharing = sharing;
        Ok(AssignedIp {
            ip,
            pool: name.to_string(),
        })
    }

    /// Releases every IP of `service` (a shared IP is freed when its last holder goes) and returns the
    /// IPs it held, ascending. Releasing an unknown Service returns nothing.
    pub fn release(&mut self, service: &ServiceKey) -> Vec<IpAddr> {
        let Some(state) = self.services.remove(service) else {
            return Vec::new();
        };
        for ip in state.ips.values() {
            self.unhold(service, *ip);
        }
        state.ips.into_values().collect()
    }

    /// The IPs `service` holds, IPv4 first, or `None` if it holds none.
    pub fn assignment(&self, service: &ServiceKey) -> Option<Assignment> {
        let state = self.services.get(service)?;
        Some(Assignment {
            ips: state
                .ips
                .values()
                .filter_map(|ip| {
                    self.ips.get(ip).map(|usage| AssignedIp {
                        ip: *ip,
                        pool: usage.pool.to_string(),
                    })
                })
                .collect(),
        })
    }

    /// Every Service holding at least one IP, sorted by namespace then name.
    pub fn services(&self) -> impl Iterator<Item = &ServiceKey> {
        self.services.keys()
    }

    /// The Services holding `ip`, sorted; empty if it is free.
    pub fn holders(&self, ip: IpAddr) -> Vec<ServiceKey> {
        self.ips
            .get(&ip)
            .map(|usage| usage.holders.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Whether `pool` may give new IPs of `family`.
fn usable_for(pool: &PoolState, family: IpFamily) -> bool {
    !pool.spec.disabled && pool.spec.range.family() == family
}

/// The lowest free assignable address of `pool`, as a step.
fn lowest_free(pool: &PoolState) -> Option<Step> {
    let offset = pool.free.lowest()?;
    let ip = pool.spec.range.nth_assignable(offset)?;
    Some(Step::Take {
        ip,
        pool: pool.name.clone(),
    })
}
