//! `BgpPeer`: one BGP neighbour of the speakers (OpenELB `network.kubesphere.io/v1alpha2`).
//!
//! Field names and shapes follow GoBGP's `Peer` API message, which OpenELB feeds the spec to; timers
//! are strings of seconds (OpenELB's choice, so YAML quoting does not matter).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bgp_conf::GracefulRestart;

/// The desired BGP session with one neighbour.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "network.kubesphere.io",
    version = "v1alpha2",
    kind = "BgpPeer",
    plural = "bgppeers",
    singular = "bgppeer",
    status = "BgpPeerStatus",
    derive = "PartialEq",
    doc = "BgpPeer is a BGP neighbour that speakers (on the selected nodes) hold a session with."
)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerSpec {
    /// Neighbour configuration: its address and AS, password, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<PeerConf>,
    /// Multihop eBGP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebgp_multihop: Option<EbgpMultihop>,
    /// Session timers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timers: Option<Timers>,
    /// TCP transport parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// Graceful restart parameters for this neighbour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<GracefulRestart>,
    /// Address families; empty means the neighbour address's family, unicast, add-path sendMax 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub afi_safis: Option<Vec<AfiSafi>>,
    /// Nodes whose speakers peer with this neighbour; absent means all nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// oxelb extension (not in OpenELB): BFD (RFC 5880) with the neighbour, so a dead node's
    /// routes are withdrawn within the detection time instead of the hold time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<Bfd>,
}

/// oxelb extension: a BFD session beside the BGP session (single hop on UDP 3784, RFC 5881;
/// multihop on UDP 4784 when `ebgpMultihop.enabled`, RFC 5883). While it is configured, BFD Down
/// brings the BGP session down at once and BGP does not come up while BFD is Down.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Bfd {
    /// Run BFD with this neighbour (default false: the block alone changes nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How often we would like to send, milliseconds (default 300; 50..=60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_min_tx_ms: Option<u32>,
    /// How often we can receive, milliseconds (default 300; 50..=60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_min_rx_ms: Option<u32>,
    /// Missed packets before the session is declared down (default 3; 2..=255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_multiplier: Option<u32>,
}

impl Bfd {
    /// Default of `desiredMinTxMs` and `requiredMinRxMs`.
    pub const DEFAULT_INTERVAL_MS: u32 = 300;
    /// Default of `detectMultiplier`.
    pub const DEFAULT_MULTIPLIER: u32 = 3;
    /// The allowed intervals: 50 ms is the floor a user-space speaker on a busy node keeps
    /// without false detections (FRR's bfdd allows 10 ms, with its own real-time care).
    pub const INTERVAL_MS: std::ops::RangeInclusive<u32> = 50..=60_000;
    /// The allowed multipliers (FRR's range; RFC 5880 allows 1, which a single late packet
    /// already fails).
    pub const MULTIPLIER: std::ops::RangeInclusive<u32> = 2..=255;

    /// Whether BFD runs.
    pub fn is_enabled(&self) -> bool {
        self.enabled == Some(true)
    }

    /// (desired min TX ms, required min RX ms, detect multiplier) with the defaults filled in
    /// (values are not range-checked here: the webhook refuses them, the speaker clamps them).
    pub fn resolved(&self) -> (u32, u32, u32) {
        (
            self.desired_min_tx_ms.unwrap_or(Self::DEFAULT_INTERVAL_MS),
            self.required_min_rx_ms.unwrap_or(Self::DEFAULT_INTERVAL_MS),
            self.detect_multiplier.unwrap_or(Self::DEFAULT_MULTIPLIER),
        )
    }
}

/// A key of a Secret in the speakers' namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The key in its `data` (default `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl SecretKeyRef {
    /// The key to read: `key`, or `password`.
    pub fn key_or_default(&self) -> &str {
        self.key
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or("password")
    }
}

/// Neighbour configuration (GoBGP `PeerConf`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PeerConf {
    /// TCP-MD5 password (RFC 2385).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password: Option<String>,
    /// oxelb extension (not in OpenELB): the TCP-MD5 password from a key of a Secret in the
    /// speakers' namespace (`oxelb-system`), instead of `authPassword` in clear text. Set at most
    /// one of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password_secret: Option<SecretKeyRef>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Local AS for this session, overriding the BgpConf's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_as: Option<u32>,
    /// The neighbour's address (its identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbor_address: Option<String>,
    /// The neighbour's AS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_as: Option<u32>,
    /// GoBGP peer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_group: Option<String>,
    /// GoBGP peer type (0 internal, 1 external).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_type: Option<u32>,
    /// GoBGP remove-private-AS mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_private_as: Option<String>,
    /// Route flap damping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_flap_damping: Option<bool>,
    /// GoBGP send-community bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_community: Option<u32>,
    /// Unnumbered BGP: the interface to peer over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbor_interface: Option<String>,
    /// VRF name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,
    /// Accept this many occurrences of the own AS in AS_PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_own_as: Option<u32>,
    /// Replace the peer's AS with the local AS in AS_PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_peer_as: Option<bool>,
    /// Keep the session administratively down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_down: Option<bool>,
}

/// Multihop eBGP (GoBGP `EbgpMultihop`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EbgpMultihop {
    /// Multihop is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// IP TTL of the session's packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multihop_ttl: Option<u32>,
}

/// Session timers (GoBGP `Timers`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Timers {
    /// Configured timers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<TimersConfig>,
}

/// Configured timers, each a string of seconds (e.g. `"90"`), as OpenELB declares them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TimersConfig {
    /// Seconds between connection attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_retry: Option<String>,
    /// Hold time offered in OPEN, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// Seconds between KEEPALIVEs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_interval: Option<String>,
    /// Minimum seconds between UPDATEs for the same prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_advertisement_interval: Option<String>,
}

/// TCP transport parameters (GoBGP `Transport`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Transport {
    /// Path MTU discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu_discovery: Option<bool>,
    /// Do not connect; wait for the neighbour to connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,
    /// Address to connect to, if not the neighbour address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<String>,
    /// TCP port of the neighbour (default 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_port: Option<u32>,
    /// TCP maximum segment size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_mss: Option<u32>,
}

impl Transport {
    /// The `tcpMss` values Linux accepts for `TCP_MAXSEG` (`TCP_MIN_MSS` to `MAX_TCP_WINDOW`);
    /// 0 means unset (GoBGP's default: the kernel's MSS).
    pub const TCP_MSS: std::ops::RangeInclusive<u32> = 88..=32_767;
}

/// One address family of the session (GoBGP `AfiSafi`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AfiSafi {
    /// Graceful restart for this family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mp_graceful_restart: Option<MpGracefulRestart>,
    /// The family and whether it is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<AfiSafiConfig>,
    /// ADD-PATH (RFC 7911) for this family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_paths: Option<AddPaths>,
}

/// Per-family graceful restart.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MpGracefulRestart {
    /// Configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<MpGracefulRestartConfig>,
}

/// Per-family graceful restart configuration.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MpGracefulRestartConfig {
    /// Graceful restart is enabled for this family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Family selection.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AfiSafiConfig {
    /// The family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// The family is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// An address family as GoBGP's API names it: afi `AFI_IP`/`AFI_IP6`, safi `SAFI_UNICAST`, ...
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Family {
    /// Address family identifier, e.g. AFI_IP, AFI_IP6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub afi: Option<String>,
    /// Subsequent address family identifier, e.g. SAFI_UNICAST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safi: Option<String>,
}

/// ADD-PATH (RFC 7911).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AddPaths {
    /// Configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<AddPathsConfig>,
}

/// ADD-PATH configuration.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AddPathsConfig {
    /// Accept several paths per prefix from the neighbour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive: Option<bool>,
    /// Send at most this many paths per prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_max: Option<u32>,
}

/// BgpPeerStatus defines the observed state of BgpPeer; written by speakers.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerStatus {
    /// node name -> the state of that node's session with this neighbour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_peer_status: Option<BTreeMap<String, NodePeerStatus>>,
    /// oxelb extension: conditions about the object as a whole, e.g. `FieldsIgnored` (the spec
    /// sets fields oxelb accepts but does not apply; see `docs/openelb-fields.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// One node's session with the neighbour.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodePeerStatus {
    /// Session state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_state: Option<PeerState>,
    /// Timer state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timers_state: Option<TimersState>,
    /// oxelb extension: the node's BFD session with the neighbour, when `spec.bfd` enables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdStatus>,
}

/// oxelb extension: one node's BFD session.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BfdStatus {
    /// `AdminDown`, `Down`, `Init` or `Up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Why the session last changed state (RFC 5880 diagnostic), e.g. `detection time expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<String>,
    /// The interval we send at, milliseconds, as negotiated (the larger of our desired TX and
    /// the neighbour's required RX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_interval_ms: Option<u32>,
    /// How long without a packet before the neighbour is declared down, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_time_ms: Option<u32>,
    /// The neighbour's detect multiplier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_detect_multiplier: Option<u32>,
    /// Times the session came up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_count: Option<u64>,
    /// Times it went down from Up (flaps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_count: Option<u64>,
    /// When the state last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<String>,
}

/// Session state (GoBGP `PeerState`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PeerState {
    /// TCP-MD5 password in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Local AS of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_as: Option<u32>,
    /// Message counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Messages>,
    /// The neighbour's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbor_address: Option<String>,
    /// The neighbour's AS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_as: Option<u32>,
    /// GoBGP peer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_group: Option<String>,
    /// GoBGP peer type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_type: Option<u32>,
    /// Queue lengths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<Queues>,
    /// GoBGP remove-private-AS mode (a number in the state, a string in the config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_private_as: Option<u32>,
    /// Route flap damping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_flap_damping: Option<bool>,
    /// GoBGP send-community bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_community: Option<u32>,
    /// FSM state, e.g. ESTABLISHED (GoBGP spelling, as OpenELB reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_state: Option<String>,
    /// Admin state, e.g. UP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_state: Option<String>,
    /// Output queue length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_q: Option<u32>,
    /// Number of session flaps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops: Option<u32>,
    /// The neighbour's router id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
}

/// Sent and received message counters.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Messages {
    /// Received messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<Message>,
    /// Sent messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<Message>,
}

/// Message counters by type, each a decimal string (GoBGP's JSON encoding of uint64).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// NOTIFICATION messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
    /// UPDATE messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    /// OPEN messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<String>,
    /// KEEPALIVE messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<String>,
    /// ROUTE-REFRESH messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
    /// Discarded messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discarded: Option<String>,
    /// All messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<String>,
    /// UPDATEs that withdraw routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdraw_update: Option<String>,
    /// Withdrawn prefixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdraw_prefix: Option<String>,
}

/// Queue lengths.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Queues {
    /// Input queue length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<u32>,
    /// Output queue length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<u32>,
}

/// Timer state (GoBGP `TimersState`), strings as OpenELB reports them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TimersState {
    /// Connect retry, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_retry: Option<String>,
    /// Configured hold time, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// Keepalive interval, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_interval: Option<String>,
    /// Minimum advertisement interval, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_advertisement_interval: Option<String>,
    /// Hold time agreed in OPEN, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negotiated_hold_time: Option<String>,
    /// When the session came up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<String>,
    /// When the session went down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime: Option<String>,
}

impl BgpPeer {
    /// Whether the object carries the `openelb.kubesphere.io/cni` label: it belongs to the CNI and
    /// speakers leave it alone.
    pub fn is_cni_owned(&self) -> bool {
        self.metadata
            .labels
            .as_ref()
            .is_some_and(|labels| labels.contains_key(crate::names::CNI_LABEL))
    }
}
