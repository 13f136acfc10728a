//! Sans-IO BGP for the oxelb speaker: no sockets, no async runtime, no clock.
//!
//! - [`wire`]: messages out (built here, packed per 4096 bytes) and in (framed here, parsed by
//!   `netgauze-bgp-pkt`).
//! - [`session`]: the session state machine after RFC 4271 section 8: [`session::Input`]s in,
//!   [`session::Output`]s out; the speaker's driver does the TCP and the timers.

pub mod session;
pub mod wire;
