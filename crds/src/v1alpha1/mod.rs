//! OpenELB's older `network.kubesphere.io/v1alpha1` API: served (so old manifests still apply), never
//! stored. The apiserver converts with strategy `None` (only `apiVersion` changes), so fields that
//! v1alpha2 does not know are pruned on write; oxelb itself only reads and writes v1alpha2.
//!
//! The schemas reproduce OpenELB's v1alpha1 validation (required fields, patterns, port bounds).

mod bgp_conf;
mod bgp_peer;
mod eip;

pub use bgp_conf::{BgpConf, BgpConfSpec, BgpConfStatus};
pub use bgp_peer::{AddPaths, BgpPeer, BgpPeerSpec, BgpPeerStatus, NeighborConfig, Transport};
pub use eip::{Eip, EipSpec, EipStatus, Protocol};
