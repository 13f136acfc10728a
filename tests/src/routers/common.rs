//! What every router type shares: the neighbors of a config, and how long a router gets to
//! start.

use std::time::Duration;

/// How long a router gets to start answering its control socket.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A neighbor of a router config: its address, AS and options.
#[derive(Clone, Debug)]
pub struct Neighbor {
    /// The neighbor's address (a documentation address).
    pub address: String,
    /// Its AS.
    pub asn: u32,
    /// TCP-MD5 password, if any.
    pub password: Option<String>,
    /// The neighbor's port, when not 179.
    pub port: Option<u16>,
    /// Only accept connections, never connect.
    pub passive: bool,
    /// The router's own address for this session (GoBGP `local-address`), when it has several.
    pub local_address: Option<String>,
    /// The router keeps this neighbor's routes while it restarts (RFC 4724 receiving speaker).
    pub graceful_restart: bool,
    /// BFD with this neighbor (FRR `neighbor X bfd` with bfdd, BIRD `bfd on`): (the router's
    /// transmit and receive interval in ms, its detect multiplier).
    pub bfd: Option<(u32, u8)>,
}

impl Neighbor {
    /// A plain neighbor on port 179.
    pub fn new(address: &str, asn: u32) -> Self {
        Self {
            address: address.to_owned(),
            asn,
            password: None,
            port: None,
            passive: false,
            local_address: None,
            graceful_restart: false,
            bfd: None,
        }
    }
}
