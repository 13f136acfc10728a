//! What the tests of `examples/` (`examples.rs`) and of the manual's YAML (`docs.rs`) share: the
//! strict typing of a document by its apiVersion/kind, and the documentation-address rule. Included
//! by each as `mod common;` (a directory module, so cargo does not build it as a test of its own).
#![allow(dead_code)] // each including test uses a different part

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, Service};
use oxelb_crds::interface::{self, InterfaceSelector};
use oxelb_crds::v1alpha2::{BgpConf, BgpPeer, Eip};
use oxelb_crds::{address, names, v1alpha1};
use oxelb_tests::{Document, RoundTripError, round_trip};

/// The address ranges reserved for documentation (RFC 5737, RFC 3849); the only ones examples and
/// the manual may use.
pub const DOCUMENTATION_RANGES: [&str; 4] = [
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "2001:db8::/32",
];

/// A typed object.
#[derive(Debug)]
pub enum Example {
    Eip(Box<Eip>),
    BgpConf(Box<BgpConf>),
    BgpPeer(Box<BgpPeer>),
    Service(Box<Service>),
    Deployment(Box<Deployment>),
    /// A kind only checked for strictness (Namespace, ConfigMap, Secret, Node, the v1alpha1 kinds):
    /// no cross-checks need it.
    Checked,
}

/// Deserializes a document strictly into the type its apiVersion/kind name.
pub fn typed(doc: &Document) -> Result<Example, String> {
    let rt = |e: RoundTripError| e.to_string();
    let crd = names::API_VERSION_V1ALPHA2;
    let crd_v1 = names::API_VERSION_V1ALPHA1;
    fn checked<T>(_: T) -> Example {
        Example::Checked
    }
    Ok(match (doc.api_version(), doc.kind()) {
        (Some(v), Some(k)) if v == crd && k == names::KIND_EIP => Example::Eip(round_trip(doc).map_err(rt)?),
        (Some(v), Some(k)) if v == crd && k == names::KIND_BGP_CONF => {
            Example::BgpConf(round_trip(doc).map_err(rt)?)
        }
        (Some(v), Some(k)) if v == crd && k == names::KIND_BGP_PEER => {
            Example::BgpPeer(round_trip(doc).map_err(rt)?)
        }
        (Some(v), Some(k)) if v == crd_v1 && k == names::KIND_EIP => {
            round_trip::<v1alpha1::Eip>(doc).map(checked).map_err(rt)?
        }
        (Some(v), Some(k)) if v == crd_v1 && k == names::KIND_BGP_CONF => {
            round_trip::<v1alpha1::BgpConf>(doc).map(checked).map_err(rt)?
        }
        (Some(v), Some(k)) if v == crd_v1 && k == names::KIND_BGP_PEER => {
            round_trip::<v1alpha1::BgpPeer>(doc).map(checked).map_err(rt)?
        }
        (Some("v1"), Some("Service")) => Example::Service(round_trip(doc).map_err(rt)?),
        (Some("v1"), Some("Namespace")) => round_trip::<Namespace>(doc).map(checked).map_err(rt)?,
        (Some("v1"), Some("ConfigMap")) => round_trip::<ConfigMap>(doc).map(checked).map_err(rt)?,
        (Some("v1"), Some("Node")) => round_trip::<Node>(doc).map(checked).map_err(rt)?,
        (Some("v1"), Some("Secret")) => round_trip::<Secret>(doc).map(checked).map_err(rt)?,
        (Some("apps/v1"), Some("Deployment")) => Example::Deployment(round_trip(doc).map_err(rt)?),
        _ => {
            return Err(format!(
                "{doc}: unknown apiVersion/kind; add its type to tests/tests/common/mod.rs"
            ));
        }
    })
}

/// The apiVersion of a kind `typed` knows (OpenELB kinds at the storage version), for the manual's
/// fragments that name only their kind.
pub fn api_version_of(kind: &str) -> Option<&'static str> {
    match kind {
        names::KIND_EIP | names::KIND_BGP_CONF | names::KIND_BGP_PEER => Some(names::API_VERSION_V1ALPHA2),
        "Service" | "Namespace" | "ConfigMap" | "Node" | "Secret" => Some("v1"),
        "Deployment" => Some("apps/v1"),
        _ => None,
    }
}

pub fn documentation_ranges() -> Vec<IpNet> {
    DOCUMENTATION_RANGES
        .iter()
        .map(|r| r.parse().unwrap_or_else(|e| panic!("{r}: {e}")))
        .collect()
}

/// `None` when `ip` is a documentation address, else why not.
pub fn documentation_ip_violation(what: &str, ip: IpAddr) -> Option<String> {
    (!documentation_ranges().iter().any(|net| net.contains(&ip)))
        .then(|| format!("{what}: {ip} is not in a documentation range {DOCUMENTATION_RANGES:?}"))
}

pub fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Every address in `example` that is not a documentation address (or does not parse): an Eip's
/// pool bounds and `can_reach` target, a BgpPeer's neighbour, a Service's requested IPs (each of a
/// dual-stack pair). `what` names the document in the messages.
pub fn address_violations(what: &str, example: &Example) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |ip: IpAddr| out.extend(documentation_ip_violation(what, ip));
    let mut errors = Vec::new();
    match example {
        Example::Eip(eip) => {
            match address::parse(&eip.spec.address) {
                Ok(pool) => {
                    check(pool.first());
                    check(pool.last());
                }
                Err(e) => errors.push(format!("{what}: spec.address: {e}")),
            }
            match eip.spec.interface.as_deref().map(interface::parse) {
                Some(Ok(InterfaceSelector::CanReach(ip))) => check(ip),
                Some(Err(e)) => errors.push(format!("{what}: spec.interface: {e}")),
                _ => {}
            }
        }
        Example::BgpPeer(peer) => {
            let neighbor = peer
                .spec
                .conf
                .as_ref()
                .and_then(|c| c.neighbor_address.as_deref());
            match neighbor.map(|n| (n, n.parse::<IpAddr>())) {
                Some((_, Ok(ip))) => check(ip),
                Some((n, Err(e))) => errors.push(format!("{what}: neighborAddress {n}: {e}")),
                None => errors.push(format!("{what}: spec.conf.neighborAddress is missing")),
            }
        }
        Example::Service(service) => {
            let requested = service.spec.as_ref().and_then(|s| s.load_balancer_ip.as_deref());
            let annotated = annotation(&service.metadata, names::EIP_IP_ANNOTATION);
            for ip in requested
                .into_iter()
                .chain(annotated.into_iter().flat_map(|a| a.split(',')))
            {
                match ip.trim().parse::<IpAddr>() {
                    Ok(ip) => check(ip),
                    Err(e) => errors.push(format!("{what}: {ip}: {e}")),
                }
            }
        }
        _ => {}
    }
    out.extend(errors);
    out
}
