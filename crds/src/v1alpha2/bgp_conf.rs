//! `BgpConf`: the cluster's BGP router configuration (OpenELB `network.kubesphere.io/v1alpha2`).
//!
//! Only the object named [`crate::names::DEFAULT_BGP_CONF_NAME`] is used. Field meanings follow GoBGP's
//! `Global` API message, which OpenELB feeds these fields to.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Configuration parameters relating to the global BGP router.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "network.kubesphere.io",
    version = "v1alpha2",
    kind = "BgpConf",
    plural = "bgpconfs",
    singular = "bgpconf",
    status = "BgpConfStatus",
    derive = "PartialEq",
    doc = "BgpConf is the BGP router configuration of every speaker; only the object named `default` is used."
)]
#[serde(rename_all = "camelCase")]
pub struct BgpConfSpec {
    /// Local AS number.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub as_number: Option<u32>,
    /// rack -> AS: a node labelled openelb.kubesphere.io/rack=RACK uses that AS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_per_rack: Option<BTreeMap<String, u32>>,
    /// Router id (IPv4 address); empty means the node's InternalIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// TCP port to listen on for BGP (e.g. 17900 beside Calico's 179); -1 means do not listen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<i32>,
    /// Addresses to listen on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_addresses: Option<Vec<String>>,
    /// Address families (GoBGP route families, as numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub families: Option<Vec<u32>>,
    /// Use multiple paths (ECMP) for the same prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_multiple_paths: Option<bool>,
    /// Graceful restart (RFC 4724) parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<GracefulRestart>,
    /// Name of a ConfigMap holding an import/export policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// Graceful restart (RFC 4724) and long-lived graceful restart parameters, as in GoBGP's API.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GracefulRestart {
    /// Graceful restart is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Restart time announced to peers, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_time: Option<u32>,
    /// Only act as a helper for restarting peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helper_only: Option<bool>,
    /// Deferral time (seconds) before sending End-of-RIB after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferral_time: Option<u32>,
    /// Graceful restart also for NOTIFICATION messages (RFC 8538).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_enabled: Option<bool>,
    /// Long-lived graceful restart is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longlived_enabled: Option<bool>,
    /// Time (seconds) stale routes are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_routes_time: Option<u32>,
    /// The peer's restart time, seconds (state reported by GoBGP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_restart_time: Option<u32>,
    /// The peer is restarting (state reported by GoBGP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_restarting: Option<bool>,
    /// The local router is restarting (state reported by GoBGP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_restarting: Option<bool>,
    /// GoBGP's graceful restart mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// BgpConfStatus defines the observed state of BgpConf; written by speakers.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BgpConfStatus {
    /// node name -> the router id and AS that node uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_conf_status: Option<BTreeMap<String, NodeConfStatus>>,
    /// oxelb extension: conditions about the object as a whole, e.g. `FieldsIgnored` (the spec
    /// sets fields oxelb accepts but does not apply; see `docs/openelb-fields.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// The BGP identity one node uses.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfStatus {
    /// Router id in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// AS number in use.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub as_number: Option<u32>,
}

impl BgpConf {
    /// Whether this is the object speakers use (named `default`).
    pub fn is_default(&self) -> bool {
        self.metadata.name.as_deref() == Some(crate::names::DEFAULT_BGP_CONF_NAME)
    }
}
