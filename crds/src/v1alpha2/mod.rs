//! OpenELB's `network.kubesphere.io/v1alpha2` API: the storage version, the one oxelb reads and writes.
//!
//! JSON names, types and optionality follow OpenELB's schemas exactly; every optional field is an
//! `Option` that is omitted when `None`, so `serialize(deserialize(x)) == x` for OpenELB's objects.

pub mod advertisement;
mod bgp_conf;
mod bgp_peer;
mod eip;

pub use advertisement::{Advertisement, AnnouncePolicy};
pub use bgp_conf::{BgpConf, BgpConfSpec, BgpConfStatus, GracefulRestart, NodeConfStatus};
pub use bgp_peer::{
    AddPaths, AddPathsConfig, AfiSafi, AfiSafiConfig, Bfd, BfdStatus, BgpPeer, BgpPeerSpec, BgpPeerStatus,
    EbgpMultihop, Family, Message, Messages, MpGracefulRestart, MpGracefulRestartConfig, NodePeerStatus,
    PeerConf, PeerState, Queues, Timers, TimersConfig, TimersState, Transport,
};
pub use eip::{Eip, EipProtocol, EipSpec, EipStatus};
