//! `Eip.spec.advertisement`: the per-pool announcement policy, an oxelb extension (OpenELB has none;
//! every OpenELB manifest stays valid without it). Named after MetalLB's `BGPAdvertisement` and
//! `L2Advertisement`, whose knobs it carries for one pool: a MetalLB user finds `communities`,
//! `largeCommunities`, `localPref`, `aggregationLength`, `aggregationLengthV6`, a selector of the
//! peers (MetalLB's `peers`) and of the nodes (MetalLB's `nodeSelectors`).
//!
//! [`Advertisement::parse`] is pure: the block and the pool's parsed address in, the typed
//! [`AnnouncePolicy`] or every [`AdvertisementError`] (each naming its field) out. The webhook refuses
//! what it returns as errors; the speaker, which may read objects no webhook checked (`dir:`
//! source), keeps announcing the pool as before and says the errors in a Warning Event.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::EipProtocol;
use crate::address::{IpFamily, IpRange};
use crate::community::{self, Community, CommunityError, LargeCommunity};

/// The field path of the block.
pub const FIELD: &str = "spec.advertisement";

/// oxelb extension: how the pool's IPs are announced beyond OpenELB's defaults.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Advertisement {
    /// bgp: standard communities (RFC 1997) on every route of the pool: "ASN:VALUE" (each
    /// 0..=65535) or a well-known name: no-export, no-advertise, no-export-subconfed (local-as),
    /// no-peer, blackhole, graceful-shutdown, accept-own, llgr-stale, no-llgr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communities: Option<Vec<String>>,
    /// bgp: large communities (RFC 8092) on every route of the pool: "GLOBAL:LOCAL1:LOCAL2", each
    /// 0..=4294967295.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_communities: Option<Vec<String>>,
    /// bgp: LOCAL_PREF (0..=4294967295) toward iBGP peers; never sent to eBGP peers (RFC 4271
    /// section 5.1.5); default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<i64>,
    /// bgp, IPv4 pools: announce the covering prefix of this length (0..=32) instead of each /32,
    /// while the node announces at least one IP inside it; the pool must consist of whole blocks
    /// of that length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_length: Option<i64>,
    /// bgp, IPv6 pools: as aggregationLength, 0..=128, instead of each /128.
    #[serde(
        default,
        rename = "aggregationLengthV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub aggregation_length_v6: Option<i64>,
    /// bgp: the BgpPeers (by their labels) that receive the pool's routes; absent means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_selector: Option<LabelSelector>,
    /// The nodes (by their labels) that may announce the pool (bgp) or answer ARP/NDP for it
    /// (layer2, vip); absent means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
}

/// The typed policy of one pool.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnnouncePolicy {
    /// Standard communities, sorted, without duplicates.
    pub communities: Vec<Community>,
    /// Large communities, sorted, without duplicates.
    pub large_communities: Vec<LargeCommunity>,
    /// LOCAL_PREF for iBGP peers.
    pub local_pref: Option<u32>,
    /// The prefix length routes of the pool are aggregated to (the pool's family).
    pub aggregation: Option<u8>,
    /// Which BgpPeers receive the routes (`None`: all).
    pub peer_selector: Option<LabelSelector>,
    /// Which nodes may announce or answer (`None`: all).
    pub node_selector: Option<LabelSelector>,
}

/// What is wrong with one field of the block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct AdvertisementError {
    /// The field path, as `kubectl explain` writes it.
    pub field: String,
    /// What is wrong.
    pub problem: Problem,
}

/// The kinds of mistakes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A community string.
    #[error(transparent)]
    Community(#[from] CommunityError),
    /// A number outside its range.
    #[error("{value} is not in {range}")]
    OutOfRange {
        /// The value.
        value: i64,
        /// The accepted range.
        range: &'static str,
    },
    /// The aggregate would cover addresses outside the pool.
    #[error(
        "a /{length} aggregate would cover addresses outside the pool {pool}: the pool must start and end on /{length} boundaries (use a longer length)"
    )]
    AggregateOutsidePool {
        /// The length.
        length: u8,
        /// The pool as written.
        pool: String,
    },
    /// An aggregation length of the other family.
    #[error("the pool is {pool}; this field applies to {field} pools only")]
    WrongFamily {
        /// The pool's family.
        pool: IpFamily,
        /// The family the field applies to.
        field: IpFamily,
    },
    /// A BGP-only field on a layer2/vip pool.
    #[error("applies to bgp pools only; this pool's protocol is {0} (only nodeSelector applies)")]
    BgpOnly(EipProtocol),
    /// A label selector that cannot be evaluated.
    #[error("{0}")]
    Selector(String),
}

fn error(field: impl Into<String>, problem: impl Into<Problem>) -> AdvertisementError {
    AdvertisementError {
        field: field.into(),
        problem: problem.into(),
    }
}

impl Advertisement {
    /// Checks the block of a pool of `protocol` whose address parsed as `pool` (written `written`),
    /// and returns the typed policy, or every error.
    pub fn parse(
        &self,
        protocol: EipProtocol,
        pool: &IpRange,
        written: &str,
    ) -> Result<AnnouncePolicy, Vec<AdvertisementError>> {
        let mut errors = Vec::new();
        let mut policy = AnnouncePolicy::default();
        if protocol != EipProtocol::Bgp {
            let bgp_fields = [
                ("communities", self.communities.is_some()),
                ("largeCommunities", self.large_communities.is_some()),
                ("localPref", self.local_pref.is_some()),
                ("aggregationLength", self.aggregation_length.is_some()),
                ("aggregationLengthV6", self.aggregation_length_v6.is_some()),
                ("peerSelector", self.peer_selector.is_some()),
            ];
            for (name, set) in bgp_fields {
                if set {
                    errors.push(error(format!("{FIELD}.{name}"), Problem::BgpOnly(protocol)));
                }
            }
        }
        for (i, text) in self.communities.iter().flatten().enumerate() {
            match community::parse_community(text) {
                Ok(c) => policy.communities.push(c),
                Err(e) => errors.push(error(format!("{FIELD}.communities[{i}]"), e)),
            }
        }
        policy.communities.sort();
        policy.communities.dedup();
        for (i, text) in self.large_communities.iter().flatten().enumerate() {
            match community::parse_large_community(text) {
                Ok(c) => policy.large_communities.push(c),
                Err(e) => errors.push(error(format!("{FIELD}.largeCommunities[{i}]"), e)),
            }
        }
        policy.large_communities.sort();
        policy.large_communities.dedup();
        if let Some(value) = self.local_pref {
            match u32::try_from(value) {
                Ok(v) => policy.local_pref = Some(v),
                Err(_) => errors.push(error(
                    format!("{FIELD}.localPref"),
                    Problem::OutOfRange {
                        value,
                        range: "0..=4294967295",
                    },
                )),
            }
        }
        for (name, value, family, range) in [
            (
                "aggregationLength",
                self.aggregation_length,
                IpFamily::V4,
                "0..=32",
            ),
            (
                "aggregationLengthV6",
                self.aggregation_length_v6,
                IpFamily::V6,
                "0..=128",
            ),
        ] {
            let Some(value) = value else { continue };
            let field = format!("{FIELD}.{name}");
            let length = match u8::try_from(value) {
                Ok(l) if l <= family.bits() => l,
                _ => {
                    errors.push(error(field, Problem::OutOfRange { value, range }));
                    continue;
                }
            };
            if pool.family() != family {
                errors.push(error(
                    field,
                    Problem::WrongFamily {
                        pool: pool.family(),
                        field: family,
                    },
                ));
            } else if !pool.aggregates_within(length) {
                errors.push(error(
                    field,
                    Problem::AggregateOutsidePool {
                        length,
                        pool: written.trim().to_owned(),
                    },
                ));
            } else if length < family.bits() {
                policy.aggregation = Some(length);
            }
        }
        for (name, selector) in [
            ("peerSelector", &self.peer_selector),
            ("nodeSelector", &self.node_selector),
        ] {
            if let Some(selector) = selector {
                errors.extend(check_selector(selector, &format!("{FIELD}.{name}")));
            }
        }
        policy.peer_selector = self.peer_selector.clone();
        policy.node_selector = self.node_selector.clone();
        if errors.is_empty() {
            Ok(policy)
        } else {
            Err(errors)
        }
    }
}

/// The operators of `matchExpressions` (as the API server's `LabelSelectorAsSelector`).
const OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

/// Why a label selector cannot be evaluated, each naming the field: an unknown operator, `In` or
/// `NotIn` without values, `Exists`/`DoesNotExist` with values, an empty key, or an empty
/// `matchLabels` key. (The API server rejects these in its own selectors; a selector that
/// silently matched nothing would hide every route of the pool.)
pub fn check_selector(selector: &LabelSelector, field: &str) -> Vec<AdvertisementError> {
    let mut out = Vec::new();
    for key in selector.match_labels.iter().flatten().map(|(k, _)| k) {
        if key.trim().is_empty() {
            out.push(error(
                format!("{field}.matchLabels"),
                Problem::Selector("a label key is empty".into()),
            ));
        }
    }
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let here = format!("{field}.matchExpressions[{i}]");
        if e.key.trim().is_empty() {
            out.push(error(format!("{here}.key"), Problem::Selector("is empty".into())));
        }
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => out.push(error(
                format!("{here}.values"),
                Problem::Selector(format!("operator {} needs at least one value", e.operator)),
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => out.push(error(
                format!("{here}.values"),
                Problem::Selector(format!("operator {} takes no values", e.operator)),
            )),
            op if !OPERATORS.contains(&op) => out.push(error(
                format!("{here}.operator"),
                Problem::Selector(format!("{op:?} is not one of In, NotIn, Exists, DoesNotExist")),
            )),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::address;

    fn block(value: serde_json::Value) -> Advertisement {
        serde_json::from_value(value).unwrap()
    }

    fn fields(errors: &[AdvertisementError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_full_block_parses() {
        let pool = address::parse("198.51.100.0/24").unwrap();
        let p = block(json!({"communities": ["65000:100", "no-export", "65000:100"],
            "largeCommunities": ["64512:1:2"], "localPref": 200, "aggregationLength": 26,
            "peerSelector": {"matchLabels": {"vrf": "blue"}},
            "nodeSelector": {"matchExpressions": [{"key": "edge", "operator": "Exists"}]}}))
        .parse(EipProtocol::Bgp, &pool, "198.51.100.0/24")
        .unwrap();
        assert_eq!(
            p.communities,
            vec![Community(0xFDE8_0064), Community(0xFFFF_FF01)]
        );
        assert_eq!(p.large_communities, vec![LargeCommunity(64512, 1, 2)]);
        assert_eq!((p.local_pref, p.aggregation), (Some(200), Some(26)));
        assert!(p.peer_selector.is_some() && p.node_selector.is_some());
        let host = block(json!({"aggregationLength": 32}))
            .parse(EipProtocol::Bgp, &pool, "198.51.100.0/24")
            .unwrap();
        assert_eq!(host.aggregation, None, "a /32 aggregate is the host route");
        assert_eq!(
            Advertisement::default().parse(EipProtocol::Layer2, &pool, "x"),
            Ok(AnnouncePolicy::default())
        );
    }

    #[test]
    fn every_mistake_names_its_field() {
        let pool = address::parse("198.51.100.0/24").unwrap();
        let errors = block(json!({"communities": ["65000:100", "no-exprot", "70000:1"],
            "largeCommunities": ["1:2"], "localPref": -1, "aggregationLength": 23,
            "aggregationLengthV6": 64,
            "peerSelector": {"matchExpressions": [{"key": "vrf", "operator": "In"}]},
            "nodeSelector": {"matchExpressions": [{"key": "edge", "operator": "Has"},
                {"key": "", "operator": "Exists", "values": ["x"]}]}}))
        .parse(EipProtocol::Bgp, &pool, "198.51.100.0/24")
        .unwrap_err();
        assert_eq!(
            fields(&errors),
            vec![
                "spec.advertisement.communities[1]",
                "spec.advertisement.communities[2]",
                "spec.advertisement.largeCommunities[0]",
                "spec.advertisement.localPref",
                "spec.advertisement.aggregationLength",
                "spec.advertisement.aggregationLengthV6",
                "spec.advertisement.peerSelector.matchExpressions[0].values",
                "spec.advertisement.nodeSelector.matchExpressions[0].operator",
                "spec.advertisement.nodeSelector.matchExpressions[1].key",
                "spec.advertisement.nodeSelector.matchExpressions[1].values",
            ]
        );
        let text = errors[4].to_string();
        assert!(
            text.contains("/23") && text.contains("outside the pool"),
            "{text}"
        );
        for (value, field) in [
            (json!({"aggregationLength": 33}), "aggregationLength"),
            (json!({"aggregationLength": -1}), "aggregationLength"),
            (json!({"localPref": 4_294_967_296_i64}), "localPref"),
        ] {
            let e = block(value)
                .parse(EipProtocol::Bgp, &pool, "198.51.100.0/24")
                .unwrap_err();
            assert_eq!(e[0].field, format!("spec.advertisement.{field}"));
            assert!(matches!(e[0].problem, Problem::OutOfRange { .. }), "{e:?}");
        }
        let l2 =
            block(json!({"communities": ["no-export"], "nodeSelector": {"matchLabels": {"vlan": "10"}}}))
                .parse(EipProtocol::Layer2, &pool, "198.51.100.0/24")
                .unwrap_err();
        assert_eq!(fields(&l2), vec!["spec.advertisement.communities"]);
        assert!(l2[0].to_string().contains("bgp pools only"), "{}", l2[0]);
    }
}
