//! BGP messages on the wire.
//!
//! - **Out**: what the speaker sends is built here, byte by byte (RFC 4271 section 4, RFC 4760,
//!   RFC 6793, RFC 7911, RFC 4724), so UPDATE packing stays in our hands: as many host routes per
//!   UPDATE as fit 4096 bytes. Tests check every builder against netgauze's decoder.
//! - **In**: what routers send is framed here and parsed by `netgauze-bgp-pkt` (decodes FRR's and
//!   GoBGP's messages correctly, `LAB-NOTES.md`), then reduced to what a load balancer needs.
//!
//! The values are in `values`, building messages in `encode`, reading them in `decode`; this
//! module re-exports all three.

mod decode;
mod encode;
mod values;

pub use self::{
    decode::{decode, next_frame},
    encode::{UpdateParams, announce, end_of_rib, keepalive, notification, open, withdraw},
    values::{
        AS_TRANS, Attributes, Family, HEADER_LEN, MAX_MESSAGE, OpenParams, PeerCapabilities, Prefix,
        Received, Routes, WireError, host_routes,
    },
};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
