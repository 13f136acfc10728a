//! What the allocator reports: assignments, per-pool status and assignments dropped by a pool change.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::request::ServiceKey;

/// One IP a Service holds, with the pool it came from (the Service's `eip.openelb.kubesphere.io/v1alpha2`
/// label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedIp {
    /// The IP.
    pub ip: IpAddr,
    /// The name of the Eip it came from.
    pub pool: String,
}

/// Every IP a Service holds, IPv4 first (what goes to `status.loadBalancer.ingress`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    /// At most one IP per family, IPv4 first.
    pub ips: Vec<AssignedIp>,
}

/// The status of one pool (what the controller writes to `Eip.status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStatus {
    /// The Eip's name.
    pub name: String,
    /// Every IP of this pool in use, with its holders sorted (`status.used`).
    pub used: BTreeMap<IpAddr, Vec<ServiceKey>>,
    /// Number of distinct IPs in use (`status.usage`).
    pub usage: usize,
    /// Number of assignable addresses (`status.poolSize`); the controller caps it for the API.
    pub pool_size: u128,
    /// First address of the range (`status.firstIP`).
    pub first_ip: IpAddr,
    /// Last address of the range (`status.lastIP`).
    pub last_ip: IpAddr,
    /// No assignable address is free (`status.occupied`).
    pub occupied: bool,
    /// The pool is IPv4 (`status.v4`).
    pub v4: bool,
}

/// Why [`crate::Allocator::set_pools`] dropped an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanReason {
    /// The pool no longer exists.
    PoolRemoved,
    /// The pool's new address no longer contains the IP (shrunk or changed).
    OutsidePool,
}

/// An assignment [`crate::Allocator::set_pools`] dropped: the Service no longer holds the IP in the
/// allocator, and the controller decides what to do (typically: assign the Service again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// The Service that held the IP.
    pub service: ServiceKey,
    /// The IP.
    pub ip: IpAddr,
    /// The pool the IP came from.
    pub pool: String,
    /// Why it was dropped.
    pub reason: OrphanReason,
}
