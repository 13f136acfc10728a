//! The sharing rules (MetalLB's): what a Service presents to share an IP, and whether two
//! Services may hold one IP together.

use std::net::IpAddr;

use crate::{
    error::SharingConflict,
    request::{LabelSet, Protocol, ServiceKey, ServiceRequest, TrafficPolicy},
};

/// What decides whether two Services may share an IP, kept for every Service that holds one: its
/// ports as a sorted slice and its selector shared with the request (no per-Service tree nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sharing {
    /// `(protocol, port)` pairs, ascending and distinct.
    ports: Box<[(Protocol, u16)]>,
    policy: TrafficPolicy,
    selector: LabelSet,
}

impl Sharing {
    pub(super) fn of(request: &ServiceRequest) -> Self {
        Sharing {
            ports: request.ports.iter().copied().collect(),
            policy: request.traffic_policy,
            selector: request.selector.clone(),
        }
    }

    /// The lowest `(protocol, port)` pair both use, if any.
    fn first_common_port(&self, other: &Sharing) -> Option<(Protocol, u16)> {
        let (mut a, mut b) = (self.ports.iter().peekable(), other.ports.iter().peekable());
        while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
            match x.cmp(y) {
                std::cmp::Ordering::Less => {
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    b.next();
                }
                std::cmp::Ordering::Equal => return Some(**x),
            }
        }
        None
    }

    /// Whether `service` (with these facts) may hold `ip` beside `holder` (with `other`): no
    /// `(protocol, port)` pair in common and, if either has `externalTrafficPolicy: Local`, the same
    /// selector.
    pub(super) fn may_share(
        &self,
        service: &ServiceKey,
        ip: IpAddr,
        holder: &ServiceKey,
        other: &Sharing,
    ) -> Result<(), SharingConflict> {
        if let Some((protocol, port)) = self.first_common_port(other) {
            return Err(SharingConflict::PortCollision {
                ip,
                service: service.clone(),
                holder: holder.clone(),
                protocol,
                port,
            });
        }
        let local = self.policy == TrafficPolicy::Local || other.policy == TrafficPolicy::Local;
        if local && self.selector != other.selector {
            return Err(SharingConflict::SelectorMismatch {
                ip,
                service: service.clone(),
                holder: holder.clone(),
            });
        }
        Ok(())
    }
}
