//! `Eip`: a pool of external IPs (OpenELB `network.kubesphere.io/v1alpha2`).

use std::collections::BTreeMap;
use std::fmt;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::advertisement::{Advertisement, AdvertisementError, AnnouncePolicy};
use crate::address::{self, AddressError, IpRange};
use crate::interface::{self, InterfaceError, InterfaceSelector};

/// How speakers announce the IPs of the pool: bgp (the default when absent or empty), layer2 or vip.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum EipProtocol {
    /// Announced as /32 (/128) routes to the BgpPeers.
    #[default]
    Bgp,
    /// Announced by answering ARP/NDP on `spec.interface` from one node per IP.
    Layer2,
    /// OpenELB's keepalived-based VIP mode; oxelb announces it like layer2.
    Vip,
}

impl EipProtocol {
    /// The value as written in `spec.protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            EipProtocol::Bgp => "bgp",
            EipProtocol::Layer2 => "layer2",
            EipProtocol::Vip => "vip",
        }
    }

    /// Whether the protocol announces on a NIC (layer2 and vip), which then requires `spec.interface`.
    pub fn needs_interface(self) -> bool {
        matches!(self, EipProtocol::Layer2 | EipProtocol::Vip)
    }
}

impl fmt::Display for EipProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads `spec.protocol`, treating `""` like an absent field: OpenELB's Go code defaults an empty
/// protocol to bgp, and objects read from files (`--source dir:`) are not validated by an apiserver.
fn empty_protocol_as_none<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<EipProtocol>, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    match value.as_deref() {
        None | Some("") => Ok(None),
        Some("bgp") => Ok(Some(EipProtocol::Bgp)),
        Some("layer2") => Ok(Some(EipProtocol::Layer2)),
        Some("vip") => Ok(Some(EipProtocol::Vip)),
        Some(other) => Err(serde::de::Error::unknown_variant(
            other,
            &["bgp", "layer2", "vip"],
        )),
    }
}

/// EipSpec defines the desired state of an Eip: a pool of IPs and how they are announced.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "network.kubesphere.io",
    version = "v1alpha2",
    kind = "Eip",
    plural = "eips",
    singular = "eip",
    category = "networking",
    status = "EipStatus",
    derive = "PartialEq",
    doc = "Eip is a pool of external IPs that oxelb (like OpenELB) assigns to LoadBalancer Services.",
    printcolumn = r#"{"name":"cidr","type":"string","jsonPath":".spec.address"}"#,
    printcolumn = r#"{"name":"usage","type":"integer","jsonPath":".status.usage"}"#,
    printcolumn = r#"{"name":"total","type":"integer","jsonPath":".status.poolSize"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EipSpec {
    /// The pool: a single IP, a CIDR (host bits are masked) or a range `a-b`; IPv4 or IPv6. Immutable.
    pub address: String,
    /// How the pool's IPs are announced: bgp (default when absent), layer2 or vip.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_protocol_as_none"
    )]
    pub protocol: Option<EipProtocol>,
    /// layer2/vip: the NIC to announce on: a name (eth0) or can_reach:IP (the NIC routing to IP); not lo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// No new allocations from this pool; existing ones stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable: Option<bool>,
    /// Accepted for compatibility; has no effect (OpenELB ignores it since v0.4).
    #[serde(default, rename = "usingKnownIPs", skip_serializing_if = "Option::is_none")]
    pub using_known_ips: Option<bool>,
    /// priority for automatically assigning addresses: among pools bound to a namespace, lower is preferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// specify the namespace for the allocation by name: the pool is a default for these namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// specify the namespace for allocation by selector: matched against the Namespace's labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<BTreeMap<String, String>>,
    /// oxelb extension (not in OpenELB): the pool's announcement policy: BGP communities, large
    /// communities, LOCAL_PREF, aggregation, and which BgpPeers and nodes announce it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertisement: Option<Advertisement>,
}

/// EipStatus defines the observed state of an Eip; written by the controller.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EipStatus {
    /// `usage >= poolSize`: no address left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupied: Option<bool>,
    /// Number of distinct IPs in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<i64>,
    /// Number of addresses in the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<i64>,
    /// IP -> "namespace/name" of the Service using it; Services sharing an IP are joined with ';'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<BTreeMap<String, String>>,
    /// First address of the pool.
    #[serde(default, rename = "firstIP", skip_serializing_if = "Option::is_none")]
    pub first_ip: Option<String>,
    /// Last address of the pool.
    #[serde(default, rename = "lastIP", skip_serializing_if = "Option::is_none")]
    pub last_ip: Option<String>,
    /// The pool is valid and announced by at least one speaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// The pool is IPv4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v4: Option<bool>,
    /// oxelb extension: `true` when `used` lists only the lowest addresses in use, because the
    /// whole map would make the Eip larger than the controller's `--eip-status-max-bytes` (under
    /// the apiserver's request size limit). `usage` stays exact, and each Service's own status
    /// names its IP. Absent when `used` lists every address in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_truncated: Option<bool>,
}

impl EipSpec {
    /// The announce protocol, absent (or empty) meaning [`EipProtocol::Bgp`] as in OpenELB.
    pub fn protocol(&self) -> EipProtocol {
        self.protocol.unwrap_or_default()
    }

    /// Parses `spec.address` (see [`crate::address`]).
    pub fn parsed_address(&self) -> Result<IpRange, AddressError> {
        address::parse(&self.address)
    }

    /// Parses `spec.interface`; `None` when it is absent or empty (bgp pools need none).
    pub fn interface(&self) -> Option<Result<InterfaceSelector, InterfaceError>> {
        self.interface
            .as_deref()
            .filter(|value| !value.trim().is_empty())
            .map(interface::parse)
    }

    /// The announcement policy (`spec.advertisement`); the default policy when the block is absent.
    /// An address that does not parse gives no policy errors (the address error is reported).
    pub fn announce_policy(&self) -> Result<AnnouncePolicy, Vec<AdvertisementError>> {
        match (&self.advertisement, self.parsed_address()) {
            (Some(block), Ok(range)) => block.parse(self.protocol(), &range, &self.address),
            _ => Ok(AnnouncePolicy::default()),
        }
    }

    /// Whether `spec.disable` is set: no new allocations from this pool.
    pub fn is_disabled(&self) -> bool {
        self.disable.unwrap_or(false)
    }
}

impl Eip {
    /// Parses `spec.address` (see [`crate::address`]).
    pub fn parsed_address(&self) -> Result<IpRange, AddressError> {
        self.spec.parsed_address()
    }

    /// Whether the Eip carries `eip.openelb.kubesphere.io/is-default-eip: "true"`.
    pub fn is_default(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(crate::names::IS_DEFAULT_EIP_ANNOTATION))
            .is_some_and(|value| value == crate::names::IS_DEFAULT_EIP_VALUE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(protocol: Option<&str>) -> EipSpec {
        let mut value = serde_json::json!({"address": "192.0.2.0/24"});
        if let Some(protocol) = protocol {
            value["protocol"] = protocol.into();
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn protocol_defaults_to_bgp() {
        assert_eq!(spec(None).protocol(), EipProtocol::Bgp);
        assert_eq!(spec(Some("")).protocol(), EipProtocol::Bgp);
        assert_eq!(spec(Some("")).protocol, None, "empty is read as absent");
        assert_eq!(spec(Some("layer2")).protocol(), EipProtocol::Layer2);
        assert_eq!(spec(Some("vip")).protocol(), EipProtocol::Vip);
    }

    #[test]
    fn unknown_protocol_is_an_error_naming_the_value() {
        let err = serde_json::from_value::<EipSpec>(
            serde_json::json!({"address": "192.0.2.1", "protocol": "ospf"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("ospf"), "{err}");
    }

    #[test]
    fn address_is_required() {
        assert!(serde_json::from_value::<EipSpec>(serde_json::json!({"protocol": "bgp"})).is_err());
    }

    #[test]
    fn interface_parsing() {
        let mut s = spec(Some("layer2"));
        assert_eq!(s.interface(), None);
        s.interface = Some(String::new());
        assert_eq!(s.interface(), None);
        s.interface = Some("can_reach:192.0.2.1".into());
        assert_eq!(
            s.interface(),
            Some(Ok(InterfaceSelector::CanReach("192.0.2.1".parse().unwrap())))
        );
        s.interface = Some("lo".into());
        assert!(matches!(
            s.interface(),
            Some(Err(InterfaceError::Loopback { .. }))
        ));
    }

    #[test]
    fn parsed_address_and_default_annotation() {
        let mut eip = Eip::new("pool", spec(None));
        assert_eq!(eip.parsed_address().unwrap().size(), 256);
        assert!(!eip.is_default());
        eip.metadata.annotations = Some(BTreeMap::from([(
            crate::names::IS_DEFAULT_EIP_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]));
        assert!(eip.is_default());
    }
}
