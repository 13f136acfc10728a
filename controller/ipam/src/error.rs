//! Why an assignment or a re-registration was refused.
//!
//! A refused call changes nothing: the Service keeps what it held before.

use std::net::IpAddr;

use oxelb_crds::address::IpFamily;

use crate::request::{Protocol, ServiceKey};

/// Why a Service may not share an IP with the Service already holding it (MetalLB's rules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharingConflict {
    /// Both Services use the same `(protocol, port)`.
    #[error("Service {service} cannot share {ip} with {holder}: both use port {protocol}/{port}")]
    PortCollision {
        /// The IP both want.
        ip: IpAddr,
        /// The Service asking.
        service: ServiceKey,
        /// The Service holding the IP.
        holder: ServiceKey,
        /// The colliding protocol.
        protocol: Protocol,
        /// The colliding port.
        port: u16,
    },
    /// One of them has `externalTrafficPolicy: Local` and their pod selectors differ.
    #[error(
        "Service {service} cannot share {ip} with {holder}: externalTrafficPolicy is Local and their pod selectors differ"
    )]
    SelectorMismatch {
        /// The IP both want.
        ip: IpAddr,
        /// The Service asking.
        service: ServiceKey,
        /// The Service holding the IP.
        holder: ServiceKey,
    },
}

/// Why [`crate::Allocator::assign`] refused. Nothing changed: the Service keeps its current IPs, if any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    /// The request wants no address family.
    #[error("Service {service}: no IP family requested; nothing assigned")]
    NoFamily {
        /// The Service.
        service: ServiceKey,
    },
    /// Two requested IPs of the same family.
    #[error(
        "Service {service}: requested IPs {first} and {second} are both {family}, at most one per family; nothing assigned"
    )]
    TwoRequestedIpsOfOneFamily {
        /// The Service.
        service: ServiceKey,
        /// The family.
        family: IpFamily,
        /// The first requested IP of that family.
        first: IpAddr,
        /// The second.
        second: IpAddr,
    },
    /// A requested IP whose family the Service does not want.
    #[error(
        "Service {service}: requested IP {ip} is {family}, which the Service's ipFamilies do not include; nothing assigned"
    )]
    RequestedFamilyNotWanted {
        /// The Service.
        service: ServiceKey,
        /// The requested IP.
        ip: IpAddr,
        /// Its family.
        family: IpFamily,
    },
    /// The named pool does not exist.
    #[error("Service {service}: Eip {pool:?} named by the Service does not exist; retried when pools change")]
    PoolNotFound {
        /// The Service.
        service: ServiceKey,
        /// The pool name.
        pool: String,
    },
    /// The named pool holds addresses of another family than one the Service wants.
    #[error(
        "Service {service}: Eip {pool:?} is {pool_family} but the Service wants an {family} address; nothing assigned"
    )]
    PoolWrongFamily {
        /// The Service.
        service: ServiceKey,
        /// The pool name.
        pool: String,
        /// The pool's family.
        pool_family: IpFamily,
        /// The family without a pool.
        family: IpFamily,
    },
    /// The chosen pool has `spec.disable: true`.
    #[error("Service {service}: Eip {pool:?} is disabled and gives no new IPs; retried when pools change")]
    PoolDisabled {
        /// The Service.
        service: ServiceKey,
        /// The pool name.
        pool: String,
    },
    /// The named pool has no free assignable address.
    #[error("Service {service}: Eip {pool:?} has no free IP; retried when an IP is released or pools change")]
    PoolExhausted {
        /// The Service.
        service: ServiceKey,
        /// The pool name.
        pool: String,
    },
    /// A requested IP lies in no pool.
    #[error("Service {service}: requested IP {ip} lies in no Eip; retried when pools change")]
    IpOutsideEveryPool {
        /// The Service.
        service: ServiceKey,
        /// The requested IP.
        ip: IpAddr,
    },
    /// A requested IP lies outside the named pool.
    #[error(
        "Service {service}: requested IP {ip} lies outside Eip {pool:?} named by the Service; nothing assigned"
    )]
    IpOutsideNamedPool {
        /// The Service.
        service: ServiceKey,
        /// The requested IP.
        ip: IpAddr,
        /// The named pool.
        pool: String,
    },
    /// A requested IP is the network, broadcast or Subnet-Router anycast address of its pool.
    #[error(
        "Service {service}: requested IP {ip} is the network, broadcast or subnet-router anycast address of Eip {pool:?} and is never assigned"
    )]
    IpNotAssignable {
        /// The Service.
        service: ServiceKey,
        /// The requested IP.
        ip: IpAddr,
        /// The pool containing it.
        pool: String,
    },
    /// No pool applies to the Service for this family: none bound to its namespace, no default pool.
    #[error(
        "Service {service}: no enabled {family} Eip is bound to namespace {namespace:?} and there is no default Eip; retried when pools change"
    )]
    NoPoolApplies {
        /// The Service.
        service: ServiceKey,
        /// The Service's namespace.
        namespace: String,
        /// The family without a pool.
        family: IpFamily,
    },
    /// Every pool that applies is full.
    #[error(
        "Service {service}: every {family} Eip that applies is full ({pools:?}); retried when an IP is released or pools change"
    )]
    AllPoolsFull {
        /// The Service.
        service: ServiceKey,
        /// The family.
        family: IpFamily,
        /// The pools tried, in order of preference.
        pools: Vec<String>,
    },
    /// The requested IP is held by another Service and may not be shared.
    #[error("{0}; nothing assigned")]
    Sharing(#[from] SharingConflict),
}

/// Why [`crate::Allocator::register_existing`] refused an existing assignment. Nothing was recorded:
/// the caller decides (typically: warn, and assign the Service again, which picks a legal IP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The IP lies in no pool.
    #[error("Service {service} holds {ip}, which lies in no Eip; not registered")]
    IpOutsideEveryPool {
        /// The Service.
        service: ServiceKey,
        /// The IP.
        ip: IpAddr,
    },
    /// The Service already holds another IP of this family.
    #[error(
        "Service {service} holds {ip} but is already registered with {registered} of the same family; not registered"
    )]
    FamilyAlreadyHeld {
        /// The Service.
        service: ServiceKey,
        /// The IP being registered.
        ip: IpAddr,
        /// The IP already registered.
        registered: IpAddr,
    },
    /// Another Service holds the IP and the two may not share it.
    #[error("{0}; not registered")]
    Sharing(#[from] SharingConflict),
}
