//! v1alpha1 `BgpPeer`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The desired BGP session with one neighbour (v1alpha1).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[kube(
    group = "network.kubesphere.io",
    version = "v1alpha1",
    kind = "BgpPeer",
    plural = "bgppeers",
    singular = "bgppeer",
    status = "BgpPeerStatus",
    derive = "PartialEq",
    storage = false,
    doc = "BgpPeer (v1alpha1) is a BGP neighbour; prefer v1alpha2."
)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerSpec {
    /// Parameters relating to the advertisement and receipt of multiple paths for a single NLRI (add-paths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_paths: Option<AddPaths>,
    /// Configuration parameters relating to the BGP neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<NeighborConfig>,
    /// Transport session parameters for the BGP neighbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// Peer through a port forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub using_port_forward: Option<bool>,
}

/// ADD-PATH parameters (v1alpha1).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AddPaths {
    /// The maximum number of paths to advertise to neighbors for a single NLRI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_max: Option<u32>,
}

/// The neighbour (v1alpha1).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NeighborConfig {
    /// Address of the BGP peer (IPv4 in v1alpha1).
    #[schemars(regex(pattern = r"^([0-9]{1,3}\.){3}[0-9]{1,3}$"))]
    pub neighbor_address: String,
    /// AS number of the peer.
    pub peer_as: u32,
}

/// Transport session parameters (v1alpha1).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Transport {
    /// Wait for the peer to connect rather than connecting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,
    /// The peer's TCP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub remote_port: Option<i64>,
}

/// BgpPeerStatus defines the observed state of BgpPeer (no fields in v1alpha1).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct BgpPeerStatus {}
