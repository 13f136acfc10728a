//! Layer2 announcing: answering ARP (IPv4) and Neighbor Solicitations (IPv6) for the IPs this node
//! won ([`oxelb_speaker_core::election`]), and announcing them on take-over.
//!
//! - [`announcer`]: the loop that decides, at every change, which IPs this node answers for
//!   ([`oxelb_speaker_core::layer2`], [`oxelb_speaker_core::liveness`]) and hands them to the
//!   responders.
//! - [`responder`]: one NIC's responder: answers ARP/NS for the IPs given, announces take-overs,
//!   notices foreign claims.
//! - [`metrics`]: the layer2 metrics.
//! - [`heartbeat`]: the speakers' UDP heartbeats (liveness and serving pools) and claims.
//! - [`staleness`]: saying so when this speaker's own API view is stale.
//! - [`frames`]: parsing requests and building replies and announcements (pure).
//! - [`interface`]: finding the NIC an Eip's `spec.interface` names (reads `/proc` and `/sys`).
//! - [`socket`]: AF_PACKET sockets per interface (ARP; NS behind a BPF filter) under tokio.

pub mod announcer;
pub mod frames;
pub mod heartbeat;
pub mod interface;
pub mod metrics;
pub mod responder;
pub mod staleness;
/// The layer2 raw sockets. Their code lives in the workspace's one unsafe module, [`crate::sys`]:
/// `bind(sockaddr_ll)`, `SOL_PACKET` options and `if_nametoindex` have no safe wrapper.
pub use crate::sys::packet as socket;
