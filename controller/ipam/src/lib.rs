//! Pure IP allocation over Eip pools (OpenELB's Service contract, see `openelb-compat.md`).
//!
//! The controller parses Eips into [`PoolSpec`]s and Services into [`ServiceRequest`]s and asks an
//! [`Allocator`]; this crate does no I/O, knows no clock and depends on neither kube nor tokio.
//!
//! # Rules
//! - **Pool choice** (per wanted family; dual-stack gets one IP per family), in order:
//!   1. an IP the Service already holds is kept while still allowed: it matches the requested IP and
//!      the named pool (when given) and its sharing is still legal, even if a "better" pool appeared or
//!      its pool was disabled;
//!   2. a requested IP: it must lie in some pool (in the named pool, when one is named), that pool must
//!      be enabled, and the IP must be assignable (never the IPv4 network/broadcast or the IPv6
//!      Subnet-Router anycast address of a CIDR);
//!   3. a named pool: it must exist, be of the family, be enabled and have a free IP;
//!   4. otherwise the enabled pools of the family bound to the Service's namespace (by `namespaces`, or
//!      by a non-empty `namespaceSelector` whose pairs all match the Namespace labels), non-full first,
//!      then lower `priority` (unset after every set value), then name; after them the default pool.
//!      None: [`AssignError::NoPoolApplies`]; all full: [`AssignError::AllPoolsFull`].
//! - **Automatic allocation** takes the lowest free assignable address of the chosen pool, in O(log n)
//!   with memory proportional to the IPs in use (a /64 pool works).
//! - **Sharing** (MetalLB's rule): a Service gets an IP another Service holds only when it asks for it
//!   explicitly, no `(protocol, port)` pair collides, and, if either has `externalTrafficPolicy:
//!   Local`, both have the same pod selector. Refusals name the holder and the port (or the selector).
//! - **Errors change nothing**: a refused [`Allocator::assign`] leaves the Service with what it held
//!   (dual-stack is all or nothing).
//! - **Restart**: [`Allocator::register_existing`] re-registers assignments read from Service and Eip
//!   status before any allocation; conflicts come back as [`RegisterError`]s, never a panic or a silent
//!   overwrite. Any address inside the range is kept, also a CIDR's network or broadcast address
//!   (OpenELB hands those out; adopting its allocations must not move a Service); only new
//!   allocations avoid them.
//! - **Release**: [`Allocator::release`] frees a Service's IPs; a shared IP is freed with its last holder.
//! - **Pool changes**: [`Allocator::set_pools`] returns the assignments whose pool vanished or whose range
//!   no longer contains the IP, after dropping them; the controller decides what to do.
//!
//! # Example
//! ```
//! use oxelb_ipam::{Allocator, PoolSpec, ServiceKey, ServiceRequest};
//!
//! let mut allocator = Allocator::new();
//! let pool = PoolSpec {
//!     is_default: true,
//!     ..PoolSpec::new("eip-sample", "192.0.2.0/24".parse()?)
//! };
//! // On start: pools first, then every existing assignment, then new allocations.
//! assert!(allocator.set_pools([pool]).is_empty());
//! let old = ServiceRequest::new(ServiceKey::new("default", "old"));
//! allocator.register_existing(&old, "192.0.2.1".parse()?)?;
//!
//! let new = ServiceRequest::new(ServiceKey::new("default", "web"));
//! let assignment = allocator.assign(&new)?;
//! assert_eq!(assignment.ips[0].ip.to_string(), "192.0.2.2");
//! assert_eq!(assignment.ips[0].pool, "eip-sample");
//! assert_eq!(allocator.pool_status("eip-sample").map(|s| s.usage), Some(2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod allocator;
mod compact;
mod error;
mod free;
mod request;
mod status;

pub use allocator::Allocator;
pub use error::{AssignError, RegisterError, SharingConflict};
pub use oxelb_crds::address::{IpFamily, IpRange};
pub use request::{LabelSet, PoolSpec, Protocol, ServiceKey, ServiceRequest, TrafficPolicy};
pub use status::{AssignedIp, Assignment, Orphan, OrphanReason, PoolStatus};
