//! The values a session runs on, shared by the state machine ([`crate::session`]) and the
//! hand-over between processes ([`crate::handover`]): the timers it is configured with
//! ([`Config`]) and what its peer holds us to ([`Snapshot`]), both RFC 5880 section 6.8.1
//! variables. Beneath both modules, so neither imports the other for them.

use serde::{Deserialize, Serialize};

/// A session's configured timers (RFC 5880 section 6.8.1: bfd.DesiredMinTxInterval,
/// bfd.RequiredMinRxInterval, bfd.DetectMult).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Config {
    /// How often we would like to send, microseconds (the peer may ask for less often).
    pub desired_min_tx_us: u32,
    /// How often we can take packets, microseconds (0: send us no periodic packets).
    pub required_min_rx_us: u32,
    /// The Detect Mult we send: the peer declares us down after this many missed intervals.
    pub detect_mult: u8,
}

impl Default for Config {
    /// 300 ms x 3, as FRR's bfdd and the BgpPeer extension default to.
    fn default() -> Self {
        Self {
            desired_min_tx_us: 300_000,
            required_min_rx_us: 300_000,
            detect_mult: 3,
        }
    }
}

/// What a session's peer holds us to (RFC 5880 section 6.8.1 variables), as the stopping
/// process left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// bfd.LocalDiscr: the peer sends it as Your Discriminator.
    pub local_discriminator: u32,
    /// bfd.RemoteDiscr.
    pub remote_discriminator: u32,
    /// The Desired Min TX we advertised, microseconds.
    pub desired_min_tx_us: u32,
    /// The Required Min RX we advertised, microseconds.
    pub required_min_rx_us: u32,
    /// The Detect Mult we advertised (raised for the hand-over).
    pub detect_mult: u8,
    /// The peer's Desired Min TX, microseconds.
    pub remote_desired_min_tx_us: u32,
    /// The peer's Required Min RX, microseconds.
    pub remote_required_min_rx_us: u32,
    /// The peer's Detect Mult.
    pub remote_detect_mult: u8,
}
