//! Layer2 announcing: answering ARP (IPv4) and Neighbor Solicitations (IPv6) for the IPs this node
//! won ([`oxelb_speaker_core::election`]), and announcing them on take-over.
//!
//! - [`announcer`]: the responder: which IPs this node answers for, per NIC, and take-over
//!   announcements.
//! - [`heartbeat`]: the speakers' UDP heartbeats (liveness and serving pools).
//! - [`frames`]: parsing requests and building replies and announcements (pure).
//! - [`interface`]: finding the NIC an Eip's `spec.interface` names (reads `/proc` and `/sys`).
//! - [`socket`]: AF_PACKET sockets per interface (ARP; NS behind a BPF filter) under tokio.

pub mod announcer;
pub mod frames;
pub mod heartbeat;
pub mod interface;
/// The layer2 raw sockets. Their code lives in the workspace's one unsafe module, [`crate::sys`]:
/// `bind(sockaddr_ll)`, `SOL_PACKET` options and `if_nametoindex` have no safe wrapper.
pub use crate::sys::packet as socket;
