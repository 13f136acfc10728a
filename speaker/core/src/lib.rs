//! oxelb speaker's decisions, in pure code: what this node announces, to whom, and whether it may
//! answer ARP/NDP for an IP now.
//!
//! Values in, values out: the cluster's objects (k8s-openapi and oxelb-crds values, or the compact
//! views of [`view`]), the peers' heartbeats (bytes, with the time since they arrived as a
//! `Duration`) and the API facts the speaker observed. No async runtime, no Kubernetes client, no
//! socket and no clock: this crate's Cargo.toml names none, so the purity is a property of the
//! build, not a habit. The `oxelb-speaker` binary wraps it in I/O (sources, sockets, timers, Leases).
//!
//! - [`view`]: the compact views the speaker's indexes hold (Services, EndpointSlices, Nodes).
//! - [`node`]: a Node's facts (ready, excluded, addresses, labels).
//! - [`desired`]: every IP the cluster announces, and how.
//! - [`sessions`]: the BGP sessions this node holds (BgpConf/BgpPeer resolved for this node).
//! - [`policy`]: per-pool announcement policy (`Eip.spec.advertisement`): routes per peer, layer2
//!   nodes.
//! - [`plan`]: all of the above as one desired state of this node ([`plan::compute_with`]).
//! - [`election`]: which node answers a layer2 IP (a stable hash of node and IP).
//! - [`layer2`]: the election as this node sees it (candidates from the state and heartbeats),
//!   its IPs, and the view digest heartbeats carry.
//! - [`liveness`]: which speakers are alive, from signed heartbeats, and what this node may answer.
//! - [`standin`]: standing in for a peer whose API view is stuck, and when a won IP may be begun.
//! - [`stale`]: noticing that this speaker's own API view is stale (behind its peers').
//! - [`tiebreak`]: two-node and stuck-view tie-breaks from the API facts (per-speaker Leases).
//! - [`unapplied`]: the BgpConf/BgpPeer fields set and not applied, said as a Warning and a
//!   condition (`docs/openelb-fields.md`).

pub mod desired;
pub mod election;
pub mod layer2;
pub mod liveness;
pub mod node;
pub mod plan;
pub mod policy;
pub mod sessions;
pub mod stale;
pub mod standin;
pub mod tiebreak;
pub mod unapplied;
pub mod view;
