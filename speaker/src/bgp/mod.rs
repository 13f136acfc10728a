//! The BGP side of the speaker: the I/O around the sans-IO session of `oxelb-bgp`.
//!
//! - [`transport`]: TCP connect and listen with TCP-MD5 and the session's TTL.
//! - [`driver`]: one task per session, turning the session's outputs into TCP and timers.
//! - [`manager`]: the sessions of this node, following the planner; BgpPeer status; metrics.

pub mod driver;
pub mod manager;
pub mod transport;
