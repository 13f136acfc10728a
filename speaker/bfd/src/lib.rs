//! Sans-IO BFD for the oxelb speaker (RFC 5880 asynchronous mode; single hop per RFC 5881,
//! multihop per RFC 5883): no sockets, no async runtime, no clock.
//!
//! - [`wire`]: the Control packet, decoded with the context-free checks of RFC 5880 section
//!   6.8.6, and encoded.
//! - [`session`]: one session's state machine (section 6.2) with its timers (sections 6.8.2 to
//!   6.8.7) and Poll Sequences (section 6.5): [`session::Input`] and the time in,
//!   [`session::Output`] out (packets, state changes, the next deadline).
//! - [`handover`]: continuing sessions across a restart of the speaker process.
//! - [`values`]: a session's configured timers and the state a hand-over carries, shared by
//!   [`session`] and [`handover`].

pub mod handover;
pub mod session;
pub mod values;
pub mod wire;
