//! The BGP side of the speaker: the I/O around the sans-IO session of `oxelb-bgp`.
//!
//! - [`transport`]: TCP connect and listen with TCP-MD5 and the session's TTL.

pub mod transport;
