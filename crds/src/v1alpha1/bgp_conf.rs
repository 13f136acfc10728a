//! v1alpha1 `BgpConf`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// struct for container bgp:config. Configuration parameters relating to the global BGP router.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[kube(
    group = "network.kubesphere.io",
    version = "v1alpha1",
    kind = "BgpConf",
    plural = "bgpconfs",
    singular = "bgpconf",
    status = "BgpConfStatus",
    derive = "PartialEq",
    storage = false,
    doc = "BgpConf (v1alpha1) is the global BGP router configuration; prefer v1alpha2."
)]
pub struct BgpConfSpec {
    /// Local autonomous system number of the router.
    #[serde(rename = "as")]
    pub as_number: u32,
    /// TCP port to listen on.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Router id of the router, an IPv4 address.
    #[serde(rename = "routerID")]
    #[schemars(regex(pattern = r"^([0-9]{1,3}\.){3}[0-9]{1,3}$"))]
    pub router_id: String,
}

/// BgpConfStatus defines the observed state of BgpConf (no fields in v1alpha1).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct BgpConfStatus {}
