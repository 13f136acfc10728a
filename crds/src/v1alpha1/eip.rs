//! v1alpha1 `Eip` (IPv4 only, no interface or namespaces).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// OpenELB v1alpha1's validation of `spec.address`: an IPv4 address, CIDR or range.
const V1ALPHA1_ADDRESS_PATTERN: &str =
    r"^([0-9]{1,3}\.){3}[0-9]{1,3}((\/([0-9]|[1-2][0-9]|3[0-2]))|(\-([0-9]{1,3}\.){3}[0-9]{1,3}))?$";

/// Announce protocol of a v1alpha1 pool.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// BGP.
    #[default]
    Bgp,
    /// ARP/NDP on a NIC.
    Layer2,
}

/// EipSpec defines the desired state of EIP
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "network.kubesphere.io",
    version = "v1alpha1",
    kind = "Eip",
    plural = "eips",
    singular = "eip",
    category = "networking",
    status = "EipStatus",
    derive = "PartialEq",
    storage = false,
    doc = "Eip (v1alpha1) is a pool of external IPv4 addresses; prefer v1alpha2.",
    printcolumn = r#"{"name":"cidr","type":"string","jsonPath":".spec.address"}"#,
    printcolumn = r#"{"name":"usage","type":"integer","jsonPath":".status.usage"}"#,
    printcolumn = r#"{"name":"total","type":"integer","jsonPath":".status.poolSize"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EipSpec {
    /// An IPv4 address, CIDR or range `a-b`.
    #[schemars(regex(pattern = V1ALPHA1_ADDRESS_PATTERN))]
    pub address: String,
    /// bgp or layer2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// No new allocations from this pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable: Option<bool>,
    /// Accepted; no effect.
    #[serde(default, rename = "usingKnownIPs", skip_serializing_if = "Option::is_none")]
    pub using_known_ips: Option<bool>,
}

/// EipStatus defines the observed state of EIP
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EipStatus {
    /// No address left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupied: Option<bool>,
    /// Number of addresses in the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<i64>,
    /// Number of addresses in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<i64>,
}
